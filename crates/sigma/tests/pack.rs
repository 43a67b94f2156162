//! Our Sigma pack (`rules/`): every rule loads with the built-in pipelines and alerts on each
//! line of its `fixtures/<rule>.hit.ndjson` and on no line of `fixtures/<rule>.miss.ndjson`.

use imdsguard_ecs::FieldTable;
use imdsguard_sigma::{apply, builtin_pipelines, lower, parse_rule, BUILTIN_RULES};
use std::path::Path;

#[test]
fn pack_rules_alert_on_their_fixtures() {
    assert!(BUILTIN_RULES.len() >= 4, "the pack has the four metadata-service rules");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let table = FieldTable::ecs();
    let mut failures = Vec::new();
    for (file, text) in BUILTIN_RULES {
        let rule = match parse_rule(text) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{file}: {e}"));
                continue;
            }
        };
        assert!(rule.id.is_some() && rule.level.is_some(), "{file}: id and level are required in our pack");
        let resolved = match apply(&rule, &builtin_pipelines()) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{file}: {e}"));
                continue;
            }
        };
        assert!(resolved.warnings.is_empty(), "{file}: {:?}", resolved.warnings);
        let m = match lower(&resolved.query, &table) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{file}: {e}"));
                continue;
            }
        };
        let stem = file.trim_end_matches(".yml");
        for (kind, want) in [("hit", true), ("miss", false)] {
            let path = dir.join(format!("{stem}.{kind}.ndjson"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {} is missing: {e}", path.display()));
            let mut n = 0;
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                n += 1;
                let doc: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1));
                if m.matches(&doc) != want {
                    failures.push(format!("{file}: {kind} fixture line {} {}", i + 1, if want { "did not alert" } else { "alerted" }));
                }
            }
            assert!(n > 0, "{} has no events", path.display());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
