//! Property tests: the condition parser, the rule / pipeline loaders, multi-document files and
//! regression `info.yml` files never panic.

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn condition_parser_never_panics(s in "[a-z_*1() |]{0,40}|(not |and |or |1 of |all of |them |sel\\* |\\( |\\) ){0,20}") {
        let _ = imdsguard_sigma::condition::parse(&s);
    }

    #[test]
    fn condition_parser_any_text(s in "\\PC{0,60}") {
        let _ = imdsguard_sigma::condition::parse(&s);
    }

    #[test]
    fn rule_loader_never_panics(
        field in "[A-Za-z.]{1,8}",
        mods in proptest::collection::vec("contains|startswith|endswith|all|re|i|m|s|cidr|base64|base64offset|utf16le|utf16be|utf16|wide|windash|exists|fieldref|expand|gt|gte|lt|lte|neq|minute|hour|day|week|month|year|cased|x", 0..4),
        value in "[-a-z0-9 /*?%\\\\.:]{0,16}|true|null|~|\\[\\]|\\{\\}|1e999|[0-9]{1,20}",
        cond in "sel|not sel|1 of s\\*|all of them|sel and|\\(sel",
    ) {
        let key = if mods.is_empty() { field.clone() } else { format!("{field}|{}", mods.join("|")) };
        let text = format!("title: t\nlogsource:\n  product: linux\n  category: process_creation\ndetection:\n  sel:\n    '{key}': {value}\n  condition: {cond}\n");
        if let Ok(rule) = imdsguard_sigma::parse_rule(&text) {
            if let Ok(res) = imdsguard_sigma::apply(&rule, &imdsguard_sigma::builtin_pipelines()) {
                if let Ok(m) = imdsguard_sigma::lower(&res.query, &imdsguard_ecs::FieldTable::ecs()) {
                    let doc = serde_json::json!({"process": {"command_line": value, "executable": "/x"}, "@timestamp": "2024-01-01T00:00:00Z"});
                    let _ = m.matches(&doc);
                    let _ = m.needles();
                }
            }
        }
    }

    /// Multi-document files (correlations with their rules) and regression `info.yml` files,
    /// built from fragments: each document parses or fails with a reason.
    #[test]
    fn documents_and_info_files_never_panic(parts in proptest::collection::vec(proptest::sample::select(vec![
        "---\n", "title: t\n", "name: n\n", "id: x\n", "correlation:\n", "  type: event_count\n", "  type: temporal_ordered\n",
        "  rules: [n, x]\n", "  group-by: [h]\n", "  timespan: 5m\n", "  timespan: 0s\n", "  condition:\n", "    gte: 2\n",
        "    field: f\n", "  aliases:\n", "    h:\n", "      n: host.name\n", "logsource:\n", "  product: linux\n",
        "detection:\n", "  sel:\n", "    a: b\n", "  condition: sel\n", "action: global\n", "rule_metadata:\n", "  - id: x\n",
        "regression_tests_info:\n", "  - name: t\n", "    path: p.json\n", "    match_count: 1\n", "    match_count: -1\n", "[\n",
    ]), 0..16)) {
        let text: String = parts.concat();
        if let Ok(docs) = imdsguard_sigma::parse_documents(&text) {
            prop_assert!(!docs.is_empty());
        }
        match imdsguard_sigma::regression::parse_info(&text) {
            Ok(info) => prop_assert!(!info.rules.is_empty()),
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    #[test]
    fn yaml_any_text(s in "\\PC{0,120}") {
        let _ = imdsguard_sigma::parse_documents(&s);
        let _ = imdsguard_sigma::regression::parse_info(&s);
        let _ = imdsguard_sigma::parse_rule(&s);
        let _ = imdsguard_sigma::Pipeline::parse(&s, "p.yml");
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let cond = format!("{}sel{}", "(".repeat(500), ")".repeat(500));
    assert!(imdsguard_sigma::condition::parse(&cond).is_err());
    let nots = format!("{}sel", "not ".repeat(500));
    assert!(imdsguard_sigma::condition::parse(&nots).is_err());
    let yaml = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let _ = imdsguard_sigma::parse_rule(&yaml);
}

fn matches(detection: &str, value: &str) -> Option<bool> {
    let text = format!("title: t\nlogsource:\n  product: test\ndetection:\n{detection}");
    let rule = imdsguard_sigma::parse_rule(&text).ok()?;
    let res = imdsguard_sigma::apply(&rule, &[]).ok()?;
    let m = imdsguard_sigma::lower(&res.query, &imdsguard_ecs::FieldTable::ecs()).ok()?;
    Some(m.matches(&serde_json::json!({ "f": value, "g": { "h": value } })))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A `contains` list (one Aho-Corasick automaton) matches exactly when one of its values does
    /// on its own (an IR wildcard), for fields and for keywords.
    #[test]
    fn merged_contains_equals_separate_globs(
        lits in proptest::collection::vec("[a-zA-Z0-9/.-]{1,6}", 2..6),
        value in "[a-zA-Z0-9/. -]{0,30}",
    ) {
        let list: String = lits.iter().map(|l| format!("      - '{l}'\n")).collect();
        let merged = matches(&format!("  sel:\n    f|contains:\n{list}  condition: sel\n"), &value);
        let separate = lits.iter().map(|l| matches(&format!("  sel:\n    f|contains: '{l}'\n  condition: sel\n"), &value)).collect::<Option<Vec<bool>>>();
        prop_assert_eq!(merged, separate.map(|v| v.iter().any(|b| *b)));
        for m in ["startswith", "endswith"] {
            let merged = matches(&format!("  sel:\n    f|{m}:\n{list}  condition: sel\n"), &value);
            let separate = lits.iter().map(|l| matches(&format!("  sel:\n    f|{m}: '{l}'\n  condition: sel\n"), &value)).collect::<Option<Vec<bool>>>();
            prop_assert_eq!(merged, separate.map(|v| v.iter().any(|b| *b)), "{}", m);
        }
        // Mixed: equals, startswith, endswith and contains alternatives of one field.
        let mixed = format!("  sel:\n    - f: '{}'\n    - f|startswith: '{}'\n    - f|endswith: '{}'\n    - f|contains: '{}'\n  condition: sel\n", lits[0], lits[1], lits[lits.len() - 1], lits[0]);
        let one = |d: String| matches(&d, &value).unwrap_or(false);
        let want = one(format!("  sel:\n    f: '{}'\n  condition: sel\n", lits[0]))
            || one(format!("  sel:\n    f|startswith: '{}'\n  condition: sel\n", lits[1]))
            || one(format!("  sel:\n    f|endswith: '{}'\n  condition: sel\n", lits[lits.len() - 1]))
            || one(format!("  sel:\n    f|contains: '{}'\n  condition: sel\n", lits[0]));
        prop_assert_eq!(matches(&mixed, &value), Some(want));
        let kw: String = lits.iter().map(|l| format!("    - '{l}'\n")).collect();
        let merged_kw = matches(&format!("  keywords:\n{kw}  condition: keywords\n"), &value);
        prop_assert_eq!(merged_kw, merged);
    }
}
