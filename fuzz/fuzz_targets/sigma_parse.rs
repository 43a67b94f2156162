#![no_main]
//! Sigma: arbitrary text as a rule (parse, pipelines, lowering, one evaluation), as a condition
//! as a pipeline, as a multi-document file (correlations) and as a regression info.yml. Nothing
//! may panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = imdsguard_sigma::condition::parse(text);
    let _ = imdsguard_sigma::Pipeline::parse(text, "fuzz.yml");
    let _ = imdsguard_sigma::parse_documents(text);
    let _ = imdsguard_sigma::regression::parse_info(text);
    if let Ok(rule) = imdsguard_sigma::parse_rule(text) {
        if let Ok(res) = imdsguard_sigma::apply(&rule, &imdsguard_sigma::builtin_pipelines()) {
            if let Ok(m) = imdsguard_sigma::lower(&res.query, &imdsguard_ecs::FieldTable::ecs()) {
                let doc = serde_json::json!({"process": {"command_line": text}});
                let _ = m.matches(&doc);
            }
        }
    }
});
