//! Exception items applied as Kibana applies them (a negated filter on the rule's search), each
//! entry type against hand-computed expectations.

use imdsguard_ecs::{Event, FieldTable, Provenance};
use imdsguard_engine::exceptions::ValueLists;
use imdsguard_engine::history::MemoryHistory;
use imdsguard_engine::{compile_rule, Hunt};
use imdsguard_rules::exceptions::parse_item;
use serde_json::{json, Value};
use std::sync::Arc;

const NOW: &str = "2026-05-01T12:00:00Z";

/// Which of `docs` (by index) a rule with these exception items alerts on.
fn alerting(items: &[Value], lists: &ValueLists, docs: &[Value], rule_extra: Value) -> Vec<usize> {
    let mut r = json!({"rule_id": "r", "name": "r", "description": "d", "severity": "low", "risk_score": 21,
        "type": "query", "language": "kuery", "query": "event.category: network"});
    if let (Value::Object(b), Value::Object(e)) = (&mut r, rule_extra) {
        b.extend(e);
    }
    let rule = imdsguard_rules::parse_json_rule(&r, "test").expect("rule");
    let table = Arc::new(FieldTable::ecs());
    let now = imdsguard_ecs::time::parse_date(NOW).expect("now");
    let parsed: Vec<imdsguard_rules::ExceptionItem> = items.iter().map(|i| parse_item(i, "t").expect("item")).collect();
    let refs: Vec<&imdsguard_rules::ExceptionItem> = parsed.iter().collect();
    let compiled = compile_rule(Arc::new(rule), &table, now).expect("compiles").with_exceptions(&refs, lists, &table, now).expect("exceptions");
    let mut h = Hunt::new(vec![compiled]);
    for (i, d) in docs.iter().enumerate() {
        h.evaluate(&Event {
            doc: Arc::new(sonic_rs::from_str(&d.to_string()).expect("json")),
            provenance: Provenance { origin: Arc::from("t"), line: i as u64 + 1 },
            key: format!("{i}"),
            index: None,
        });
    }
    let (m, _, _) = h.finish(&mut MemoryHistory::default()).expect("finish");
    let mut out: Vec<usize> = m.iter().map(|a| a.event.key.parse().expect("key")).collect();
    out.sort();
    out
}

fn net(extra: Value) -> Value {
    let mut d = json!({"@timestamp": "2026-05-01T10:00:00Z", "event": {"category": "network"}, "destination": {"ip": "169.254.169.254"}});
    if let (Value::Object(b), Value::Object(e)) = (&mut d, extra) {
        b.extend(e);
    }
    d
}

fn item(entries: Value) -> Value {
    json!({"item_id": "i", "list_id": "l", "entries": entries})
}

#[test]
fn each_entry_type_included_and_excluded() {
    let docs = [
        net(json!({"process": {"name": "amazon-ssm-agent", "executable": "/usr/bin/amazon-ssm-agent"}, "user": {"name": "root"}})),
        net(json!({"process": {"name": "curl", "executable": "/usr/bin/curl"}, "user": {"name": "www-data"}})),
        net(json!({"process": {"name": "Curl", "executable": "/tmp/Curl"}})),
        net(json!({})),
    ];
    let none = ValueLists::new();
    let cases: Vec<(&str, Value, Vec<usize>)> = vec![
        ("match", json!([{"field": "process.name", "operator": "included", "type": "match", "value": "curl"}]), vec![0, 2, 3]),
        // excluded: the entry holds where the value differs, including where the field is missing.
        ("match excluded", json!([{"field": "process.name", "operator": "excluded", "type": "match", "value": "curl"}]), vec![1]),
        ("match_any", json!([{"field": "process.name", "operator": "included", "type": "match_any", "value": ["curl", "amazon-ssm-agent"]}]), vec![2, 3]),
        // wildcard on a keyword field is case-sensitive.
        ("wildcard", json!([{"field": "process.executable", "operator": "included", "type": "wildcard", "value": "/usr/bin/*"}]), vec![2, 3]),
        ("exists", json!([{"field": "user.name", "operator": "included", "type": "exists"}]), vec![2, 3]),
        ("exists excluded", json!([{"field": "user.name", "operator": "excluded", "type": "exists"}]), vec![0, 1]),
        // Entries of one item are and-ed.
        (
            "two entries",
            json!([{"field": "process.name", "operator": "included", "type": "match", "value": "curl"},
                   {"field": "user.name", "operator": "included", "type": "match", "value": "root"}]),
            vec![0, 1, 2, 3],
        ),
    ];
    for (name, entries, want) in cases {
        assert_eq!(alerting(&[item(entries)], &none, &docs, json!({})), want, "{name}");
    }
    // Items are or-ed.
    let two = [
        item(json!([{"field": "process.name", "operator": "included", "type": "match", "value": "curl"}])),
        item(json!([{"field": "user.name", "operator": "included", "type": "match", "value": "root"}])),
    ];
    assert_eq!(alerting(&two, &none, &docs, json!({})), vec![2, 3]);
}

#[test]
fn value_lists_of_keywords_ips_and_ranges() {
    let docs = [
        net(json!({"source": {"ip": "10.0.0.5"}, "process": {"name": "curl"}})),
        net(json!({"source": {"ip": "10.1.2.3"}, "process": {"name": "wget"}})),
        net(json!({"source": {"ip": "192.168.1.20"}, "process": {"name": "python3"}})),
    ];
    let mut lists = ValueLists::new();
    lists.insert("agents".into(), vec!["curl".into(), "wget".into()]);
    lists.insert("scanners".into(), vec!["10.1.0.0/16".into()]);
    lists.insert("ranges".into(), vec!["192.168.1.10-192.168.1.30".into()]);
    let list = |field: &str, id: &str, ty: &str, op: &str| item(json!([{"field": field, "operator": op, "type": "list", "list": {"id": id, "type": ty}}]));
    assert_eq!(alerting(&[list("process.name", "agents", "keyword", "included")], &lists, &docs, json!({})), vec![2]);
    assert_eq!(alerting(&[list("process.name", "agents", "keyword", "excluded")], &lists, &docs, json!({})), vec![0, 1]);
    // A CIDR value in an ip list matches the addresses it covers.
    assert_eq!(alerting(&[list("source.ip", "scanners", "ip", "included")], &lists, &docs, json!({})), vec![0, 2]);
    assert_eq!(alerting(&[list("source.ip", "ranges", "ip_range", "included")], &lists, &docs, json!({})), vec![0, 1]);
}

#[test]
fn nested_os_types_and_expiry() {
    // dll.pe.sections is a nested field in ECS: both conditions must hold in the same object.
    let docs = [
        net(json!({"dll": {"pe": {"sections": [{"name": ".text", "entropy": 7}, {"name": ".rsrc", "entropy": 2}]}}})),
        net(json!({"dll": {"pe": {"sections": [{"name": ".text", "entropy": 2}]}}})),
    ];
    let nested = item(json!([{"field": "dll.pe.sections", "type": "nested", "entries": [
        {"field": "name", "operator": "included", "type": "match", "value": ".text"},
        {"field": "entropy", "operator": "included", "type": "match", "value": "2"}]}]));
    assert_eq!(alerting(&[nested], &ValueLists::new(), &docs, json!({})), vec![0], "only doc 1 has .text with entropy 2");

    let docs = [
        net(json!({"host": {"os": {"type": "linux"}}, "process": {"name": "curl"}})),
        net(json!({"host": {"os": {"type": "windows"}}, "process": {"name": "curl"}})),
    ];
    let mut linux_only = item(json!([{"field": "process.name", "operator": "included", "type": "match", "value": "curl"}]));
    linux_only["os_types"] = json!(["linux"]);
    assert_eq!(alerting(&[linux_only.clone()], &ValueLists::new(), &docs, json!({})), vec![1]);
    // An expired item no longer applies.
    linux_only["expire_time"] = json!("2026-05-01T11:00:00.000Z");
    assert_eq!(alerting(&[linux_only.clone()], &ValueLists::new(), &docs, json!({})), vec![0, 1]);
    linux_only["expire_time"] = json!("2026-05-02T00:00:00.000Z");
    assert_eq!(alerting(&[linux_only], &ValueLists::new(), &docs, json!({})), vec![1]);
}

#[test]
fn exceptions_apply_to_eql_rules_and_filters_too() {
    let docs = [net(json!({"process": {"name": "curl"}})), net(json!({"process": {"name": "waagent"}}))];
    let eql = json!({"type": "eql", "language": "eql", "query": "network where destination.ip == \"169.254.169.254\""});
    let ex = item(json!([{"field": "process.name", "operator": "included", "type": "match", "value": "waagent"}]));
    assert_eq!(alerting(&[ex], &ValueLists::new(), &docs, eql.clone()), vec![0]);
    // Kibana filters on an EQL rule restrict it as they restrict a KQL rule.
    let mut filtered = eql;
    filtered["filters"] = json!([{"meta": {"negate": false}, "query": {"match_phrase": {"process.name": "waagent"}}}]);
    assert_eq!(alerting(&[], &ValueLists::new(), &docs, filtered), vec![1]);
}

#[test]
fn a_missing_value_list_is_an_error_naming_the_item() {
    let rule = imdsguard_rules::parse_json_rule(
        &json!({"rule_id": "r", "name": "r", "description": "d", "severity": "low", "risk_score": 21, "type": "query", "language": "kuery", "query": "*"}),
        "t",
    )
    .expect("rule");
    let table = Arc::new(FieldTable::ecs());
    let it = parse_item(&json!({"item_id": "needs-list", "list_id": "l", "entries": [{"field": "source.ip", "operator": "included", "type": "list", "list": {"id": "ips.txt", "type": "ip"}}]}), "ex.ndjson:2").expect("item");
    let err = compile_rule(Arc::new(rule), &table, 0).expect("compiles").with_exceptions(&[&it], &ValueLists::new(), &table, 0).expect_err("missing list");
    assert!(err.message.contains("needs-list") && err.message.contains("ex.ndjson:2") && err.message.contains("ips.txt"), "{}", err.message);
}
