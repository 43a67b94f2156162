//! Unit tests: diagnostics, defaults, both input shapes, the threat JSON shape.

use serde_json::json;

use crate::*;

const GOOD: &str = r#"[metadata]
creation_date = "2024/01/01"
maturity = "production"
updated_date = "2024/01/02"
integration = ["endpoint"]
min_stack_version = "8.14.0"

[rule]
author = ["Elastic"]
description = "Test rule."
language = "kuery"
license = "Elastic License v2"
name = "Test"
risk_score = 47
rule_id = "00000000-0000-0000-0000-000000000001"
severity = "medium"
tags = ["Domain: Endpoint"]
type = "query"
query = 'process.name:curl'
investigation_fields = { field_names = ["process.name"] }
"#;

/// `GOOD` with `key = ...` lines replaced (`None` removes the line) and `extra` appended.
fn variant(replace: &[(&str, Option<&str>)], extra: &str) -> String {
    let mut out = String::new();
    for line in GOOD.lines() {
        let key = line.split(" = ").next().unwrap_or("");
        match replace.iter().find(|(k, _)| *k == key) {
            Some((_, None)) => {}
            Some((k, Some(v))) => out.push_str(&format!("{k} = {v}\n")),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push_str(extra);
    out
}

fn errs(text: &str) -> Vec<Diagnostic> {
    match parse_toml_rule(text, "t.toml") {
        Ok(r) => panic!("expected errors, got rule {}", r.rule_id),
        Err(d) => d,
    }
}

#[test]
fn good_rule_and_defaults() {
    let r = parse_toml_rule(GOOD, "t.toml").expect("loads");
    assert_eq!(r.rule_type, RuleType::Query);
    assert_eq!(r.from, "now-6m");
    assert_eq!(r.interval, "5m");
    assert_eq!(r.max_signals, 100);
    assert!(r.enabled);
    assert_eq!(r.timestamp_override, None);
    assert_eq!(r.version, None);
    assert!(r.threat.is_empty() && r.filters.is_empty() && r.new_terms.is_none() && r.threshold.is_none());
    assert_eq!(r.origin, "t.toml");
    assert_eq!(r.metadata.maturity.as_deref(), Some("production"));
    assert_eq!(r.metadata.creation_date.as_deref(), Some("2024/01/01"));
    assert_eq!(r.metadata.integration, ["endpoint"]);
    assert!(!r.metadata.deprecated);
    assert_eq!(r.metadata.extra.get("min_stack_version"), Some(&json!("8.14.0")));
    // Unknown keys are kept, not errors.
    assert_eq!(r.extra.get("investigation_fields"), Some(&json!({"field_names": ["process.name"]})));
    assert!(r.validate_semantics().is_empty());
}

#[test]
fn explicit_values_override_defaults() {
    let text = variant(
        &[],
        "from = \"now-9m\"\ninterval = \"10m\"\nmax_signals = 1000\nenabled = false\nversion = 3\n\
         timestamp_override = \"event.ingested\"\n",
    );
    let r = parse_toml_rule(&text, "t.toml").expect("loads");
    assert_eq!(
        (r.from.as_str(), r.interval.as_str(), r.max_signals, r.enabled, r.version),
        ("now-9m", "10m", 1000, false, Some(3))
    );
    assert_eq!(r.timestamp_override.as_deref(), Some("event.ingested"));
}

#[test]
fn deprecated_maturity() {
    let text = GOOD.replace("maturity = \"production\"", "maturity = \"deprecated\"");
    assert!(parse_toml_rule(&text, "t.toml").expect("loads").metadata.deprecated);
}

/// (case, text, code, text the span must cover, message fragment)
#[test]
fn diagnostics_table() {
    let new_terms = |value: &str| {
        variant(
            &[("type", Some("\"new_terms\""))],
            &format!(
                "\n[rule.new_terms]\nfield = \"new_terms_fields\"\nvalue = {value}\n\n\
                 [[rule.new_terms.history_window_start]]\nfield = \"history_window_start\"\nvalue = \"now-7d\"\n"
            ),
        )
    };
    let cases: Vec<(&str, String, &str, &str, &str)> = vec![
        ("toml syntax", GOOD.replace("name = \"Test\"", "name = \"Test"), "R001", "", "TOML syntax error"),
        ("duplicate key", format!("{GOOD}name = \"again\"\n"), "R001", "name", "duplicate key"),
        ("missing rule_id", variant(&[("rule_id", None)], ""), "R002", "[rule]", "`rule_id`"),
        ("missing name", variant(&[("name", None)], ""), "R002", "[rule]", "`name`"),
        ("missing type", variant(&[("type", None)], ""), "R002", "[rule]", "`type`"),
        ("missing severity", variant(&[("severity", None)], ""), "R002", "[rule]", "`severity`"),
        ("missing risk_score", variant(&[("risk_score", None)], ""), "R002", "[rule]", "`risk_score`"),
        ("missing description", variant(&[("description", None)], ""), "R002", "[rule]", "`description`"),
        ("missing query", variant(&[("query", None)], ""), "R002", "[rule]", "`query`"),
        (
            "missing eql query",
            variant(&[("query", None), ("type", Some("\"eql\"")), ("language", Some("\"eql\""))], ""),
            "R002",
            "[rule]",
            "`query` for a eql rule",
        ),
        ("missing new_terms", variant(&[("type", Some("\"new_terms\""))], ""), "R002", "[rule]", "new_terms_fields"),
        ("missing threshold", variant(&[("type", Some("\"threshold\""))], ""), "R002", "[rule]", "`threshold`"),
        (
            "threshold without value",
            variant(&[("type", Some("\"threshold\""))], "\n[rule.threshold]\nfield = [\"host.id\"]\n"),
            "R002",
            "",
            "`threshold.value`",
        ),
        ("missing [rule]", "[metadata]\nmaturity = \"production\"\n".to_owned(), "R002", "", "`[rule]`"),
        ("bad severity", variant(&[("severity", Some("\"urgent\""))], ""), "R003", "\"urgent\"", "severity"),
        ("risk too high", variant(&[("risk_score", Some("101"))], ""), "R003", "101", "out of range"),
        ("risk negative", variant(&[("risk_score", Some("-1"))], ""), "R003", "-1", "out of range"),
        ("risk float", variant(&[("risk_score", Some("4.5"))], ""), "R003", "4.5", "integer"),
        ("risk string", variant(&[("risk_score", Some("\"47\""))], ""), "R003", "\"47\"", "integer"),
        ("new_terms no fields", new_terms("[]"), "R003", "[]", "1 to 3 fields"),
        ("new_terms four fields", new_terms(r#"["a", "b", "c", "d"]"#), "R003", r#"["a", "b", "c", "d"]"#, "found 4"),
        (
            "language for type",
            variant(&[("language", Some("\"eql\""))], ""),
            "R003",
            "\"eql\"",
            "not a language for query",
        ),
        ("unknown language", variant(&[("language", Some("\"sql\""))], ""), "R003", "\"sql\"", "kuery or lucene"),
        ("tags not a list", variant(&[("tags", Some("\"x\""))], ""), "R003", "\"x\"", "array of strings"),
        ("tag not a string", variant(&[("tags", Some("[\"a\", 3]"))], ""), "R003", "3", "expected a string"),
        ("empty rule_id", variant(&[("rule_id", Some("\"\""))], ""), "R003", "\"\"", "must not be empty"),
        ("max_signals zero", variant(&[], "max_signals = 0\n"), "R003", "0", "out of range"),
        ("enabled not bool", variant(&[], "enabled = \"yes\"\n"), "R003", "\"yes\"", "boolean"),
        (
            "threat without tactic",
            variant(&[], "\n[[rule.threat]]\nframework = \"MITRE ATT&CK\"\n"),
            "R002",
            "",
            "`threat.0.tactic`",
        ),
        (
            "threshold zero",
            variant(&[("type", Some("\"threshold\""))], "\n[rule.threshold]\nfield = \"host.id\"\nvalue = 0\n"),
            "R003",
            "0",
            "out of range",
        ),
    ];
    for (case, text, code, covered, fragment) in cases {
        let d = errs(&text);
        let hit = d.iter().find(|d| d.code == code);
        let Some(hit) = hit else { panic!("{case}: expected {code}, got {d:?}") };
        assert!(hit.message.contains(fragment), "{case}: message {:?} lacks {fragment:?}", hit.message);
        let span = hit.span.unwrap_or_else(|| panic!("{case}: no span"));
        if !covered.is_empty() {
            assert_eq!(text.get(span.start..span.end), Some(covered), "{case}: span {span:?}");
        }
        let rendered = hit.render(&text, "t.toml");
        assert!(rendered.contains(&format!("[{code}]")) && rendered.contains('^'), "{case}: {rendered}");
    }
}

#[test]
fn toml_syntax_error_points_at_the_line() {
    let text = GOOD.replace("severity = \"medium\"", "severity = medium");
    let d = errs(&text);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].code, "R001");
    let line = text.lines().position(|l| l == "severity = medium").map(|i| i + 1);
    assert_eq!(d[0].line_col(&text).map(|(l, _)| l), line);
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = variant(&[("rule_id", None), ("severity", Some("\"urgent\"")), ("risk_score", Some("900"))], "");
    let codes: Vec<&str> = errs(&text).iter().map(|d| d.code).collect();
    assert_eq!(codes, ["R002", "R003", "R003"]);
}

#[test]
fn new_terms_and_threshold_shapes() {
    let nt = variant(
        &[("type", Some("\"new_terms\""))],
        "\n[rule.new_terms]\nfield = \"new_terms_fields\"\nvalue = [\"host.id\", \"user.name\"]\n\n\
         [[rule.new_terms.history_window_start]]\nfield = \"history_window_start\"\nvalue = \"now-14d\"\n",
    );
    let r = parse_toml_rule(&nt, "t.toml").expect("loads");
    assert_eq!(
        r.new_terms,
        Some(NewTerms { fields: vec!["host.id".into(), "user.name".into()], history_window_start: "now-14d".into() })
    );
    assert!(!r.extra.contains_key("new_terms"), "{:?}", r.extra);

    for (field, expected) in [
        ("\"host.id\"", vec!["host.id"]),
        ("[\"host.id\", \"user.name\"]", vec!["host.id", "user.name"]),
        ("\"\"", vec![]),
        ("[]", vec![]),
    ] {
        let th = variant(
            &[("type", Some("\"threshold\""))],
            &format!(
                "\n[rule.threshold]\nfield = {field}\nvalue = 25\n\n[[rule.threshold.cardinality]]\n\
                 field = \"source.ip\"\nvalue = 3\n"
            ),
        );
        let r = parse_toml_rule(&th, "t.toml").expect("loads");
        let t = r.threshold.expect("threshold");
        assert_eq!(t.field, expected, "{field}");
        assert_eq!(t.value, 25);
        assert_eq!(t.cardinality, [Cardinality { field: "source.ip".into(), value: 3 }]);
    }
}

#[test]
fn threat_serializes_to_kibana_shape() {
    let text = variant(
        &[],
        r#"
[[rule.threat]]
framework = "MITRE ATT&CK"
[[rule.threat.technique]]
id = "T1552"
name = "Unsecured Credentials"
reference = "https://attack.mitre.org/techniques/T1552/"
[[rule.threat.technique.subtechnique]]
id = "T1552.005"
name = "Cloud Instance Metadata API"
reference = "https://attack.mitre.org/techniques/T1552/005/"

[rule.threat.tactic]
id = "TA0006"
name = "Credential Access"
reference = "https://attack.mitre.org/tactics/TA0006/"

[[rule.threat]]
framework = "MITRE ATT&CK"
[rule.threat.tactic]
id = "TA0007"
name = "Discovery"
reference = "https://attack.mitre.org/tactics/TA0007/"
"#,
    );
    let r = parse_toml_rule(&text, "t.toml").expect("loads");
    let kibana = json!([
        {
            "framework": "MITRE ATT&CK",
            "tactic": {"id": "TA0006", "name": "Credential Access", "reference": "https://attack.mitre.org/tactics/TA0006/"},
            "technique": [{
                "id": "T1552",
                "name": "Unsecured Credentials",
                "reference": "https://attack.mitre.org/techniques/T1552/",
                "subtechnique": [{
                    "id": "T1552.005",
                    "name": "Cloud Instance Metadata API",
                    "reference": "https://attack.mitre.org/techniques/T1552/005/"
                }]
            }]
        },
        {
            "framework": "MITRE ATT&CK",
            "tactic": {"id": "TA0007", "name": "Discovery", "reference": "https://attack.mitre.org/tactics/TA0007/"}
        }
    ]);
    assert_eq!(serde_json::to_value(&r.threat).expect("serializes"), kibana);
    let text_form = serde_json::to_string(&r.threat).expect("serializes");
    assert!(text_form.starts_with(
        r#"[{"framework":"MITRE ATT&CK","tactic":{"id":"TA0006","name":"Credential Access","reference":"#
    ));
    // And the Kibana shape reads back to the same model.
    let back: Vec<Threat> = serde_json::from_value(kibana.clone()).expect("deserializes");
    assert_eq!(back, r.threat);
    // The JSON loader accepts it too.
    let api = json!({
        "rule_id": "x", "name": "n", "description": "d", "type": "query", "language": "kuery", "query": "a:b",
        "severity": "low", "risk_score": 21, "threat": kibana
    });
    assert_eq!(parse_json_rule(&api, "api").expect("loads").threat, r.threat);
}

#[test]
fn severity_and_type_serde() {
    assert_eq!(serde_json::to_value(Severity::Critical).expect("ser"), json!("critical"));
    assert_eq!(serde_json::from_value::<Severity>(json!("high")).expect("de"), Severity::High);
    for t in ["query", "eql", "new_terms", "threshold", "esql", "machine_learning", "threat_match", "saved_query"] {
        let rt = RuleType::parse(t);
        assert!(!matches!(rt, RuleType::Other(_)), "{t}");
        assert_eq!(serde_json::to_value(&rt).expect("ser"), json!(t));
    }
    assert_eq!(RuleType::parse("weird"), RuleType::Other("weird".into()));
}

#[test]
fn kibana_api_shape() {
    let v = json!({
        "id": "5e4c...", "rule_id": "r1", "name": "NT", "description": "d", "type": "new_terms",
        "language": "kuery", "query": "event.category:network", "index": ["logs-*"],
        "new_terms_fields": ["host.id"], "history_window_start": "now-7d",
        "severity": "medium", "risk_score": 47, "from": "now-9m", "interval": "5m", "max_signals": 100,
        "timestamp_override": "event.ingested", "enabled": false, "version": 2,
        "filters": [{"meta": {"negate": false}}], "immutable": true, "note": null,
        "related_integrations": [{"package": "endpoint"}]
    });
    let r = parse_json_rule(&v, "api").expect("loads");
    assert_eq!(r.new_terms, Some(NewTerms { fields: vec!["host.id".into()], history_window_start: "now-7d".into() }));
    assert_eq!((r.enabled, r.version, r.note.clone()), (false, Some(2), None));
    assert_eq!(r.filters.len(), 1);
    assert_eq!(r.extra.get("immutable"), Some(&json!(true)));
    assert!(r.extra.contains_key("related_integrations") && r.extra.contains_key("id"));
    assert!(!r.extra.contains_key("note"), "nulls are dropped");

    let mut bad = v.clone();
    bad["severity"] = json!("SEVERE");
    bad["new_terms_fields"] = json!(["a", "b", "c", "d"]);
    bad.as_object_mut().map(|o| o.remove("rule_id"));
    let codes: Vec<&str> = parse_json_rule(&bad, "api").expect_err("invalid").iter().map(|d| d.code).collect();
    assert_eq!(codes, ["R002", "R003", "R003"]);
    assert!(parse_json_rule(&json!([1]), "api").is_err());
}

#[test]
fn summary_shape_is_lenient_about_severity() {
    let v = json!({
        "rule_id": "r", "name": "n", "type": "eql", "language": "eql", "query": "process where true",
        "new_terms_fields": null, "from": null, "maturity": "deprecated", "deprecated": true,
        "building_block": true, "techniques": ["T1059"], "source_commit": "abc", "path": "rules/x.toml"
    });
    let r = parse_json_rule(&v, "rules.jsonl:1").expect("loads");
    assert_eq!((r.severity, r.risk_score, r.description.as_str()), (Severity::Low, 0, ""));
    assert!(r.metadata.deprecated);
    assert_eq!(r.building_block_type.as_deref(), Some("default"));
    assert_eq!(r.technique_ids(), ["T1059"]);
    assert_eq!(r.metadata.extra.get("path"), Some(&json!("rules/x.toml")));
    assert!(r.extra.is_empty(), "{:?}", r.extra);
    // Without the summary markers the same keys are required.
    let mut api = v.clone();
    api.as_object_mut().map(|o| {
        o.remove("techniques");
        o.remove("source_commit")
    });
    let missing: Vec<String> = parse_json_rule(&api, "x").expect_err("strict").into_iter().map(|d| d.message).collect();
    assert_eq!(missing.len(), 3, "{missing:?}");
}

#[test]
fn ndjson_lines_origins_and_spans() {
    let good = r#"{"rule_id":"a","name":"A","description":"d","type":"query","language":"kuery","query":"x:1","severity":"low","risk_score":21}"#;
    let bad_sev = r#"{"rule_id":"b","name":"B","description":"d","type":"query","language":"kuery","query":"x:1","severity":"huge","risk_score":21}"#;
    let text = format!(
        "{good}\n\n{bad_sev}\n{{\"rule_id\": \n{{\"exported_count\":1,\"missing_rules\":[]}}\n{{\"list_id\":\"l\",\"type\":\"detection\"}}\n"
    );
    let (rules, errors) = parse_ndjson_rules(&text, "export.ndjson");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].origin, "export.ndjson:1");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].0, "export.ndjson:3");
    let d = &errors[0].1[0];
    assert_eq!(d.code, "R003");
    let span = d.span.expect("span");
    assert_eq!(&text[span.start..span.end], "\"huge\"");
    assert!(d.render(&text, "export.ndjson").contains(" --> export.ndjson:3:"));
    assert_eq!(errors[1].0, "export.ndjson:4");
    assert_eq!(errors[1].1[0].code, "R001");
    assert_eq!(errors[1].1[0].line_col(&text).map(|(l, _)| l), Some(4));
}

#[test]
fn load_texts_dispatch_duplicates_and_unsupported() {
    let second = GOOD.replace("name = \"Test\"", "name = \"Second\"");
    let json_rule = r#"{"rule_id":"j","name":"J","description":"d","type":"esql","language":"esql","query":"from x","severity":"high","risk_score":73}"#;
    let json_array = format!("[{json_rule}]");
    let set = load_texts([
        ("a/one.toml", GOOD),
        ("b/two.TOML", second.as_str()),
        ("c.json", json_rule),
        ("d.json", json_array.as_str()),
        ("e.yaml", "x: 1"),
        ("f.json", "{ not json"),
        ("g.txt", "x"),
    ]);
    // one.toml replaced by two.toml in place; c.json and d.json[0] both define `j`.
    assert_eq!(set.rules.len(), 2, "{:?}", set.rules.iter().map(|r| &r.origin).collect::<Vec<_>>());
    assert_eq!(set.rules[0].name, "Second");
    assert_eq!(set.rules[0].origin, "b/two.TOML");
    assert_eq!(set.rules[1].origin, "d.json[0]");
    let codes: Vec<(&str, &str)> =
        set.errors.iter().flat_map(|e| e.diagnostics.iter().map(move |d| (e.origin.as_str(), d.code))).collect();
    assert_eq!(codes, [("b/two.TOML", "R004"), ("d.json[0]", "R004"), ("e.yaml", "S002"), ("f.json", "R001"), ("g.txt", "R005")]);
    assert!(!set.errors[0].is_error());
    assert_eq!(set.hard_errors().count(), 3);
    let dup = set.errors[0].render();
    assert!(dup.contains("warning[R004]") && dup.contains("rule_id = \"00000000") && dup.contains('^'), "{dup}");
    assert!(set.get("j").is_some());
}

#[test]
fn date_math_helpers() {
    assert_eq!(parse_date_math_lookback("now-9m"), Some(540));
    assert_eq!(parse_date_math_lookback("now"), Some(0));
    assert_eq!(parse_date_math_lookback("now-7d"), Some(604_800));
    assert_eq!(parse_date_math_lookback("now-6m/m"), None);
    assert_eq!(parse_duration_secs("1h"), Some(3600));
    assert_eq!(parse_duration_secs("h"), None);
    assert_eq!(parse_duration_secs("5é"), None);
    let mut r = parse_toml_rule(GOOD, "t.toml").expect("loads");
    r.interval = "often".into();
    assert_eq!(r.validate_semantics().iter().map(|d| d.code).collect::<Vec<_>>(), ["R006"]);
}
