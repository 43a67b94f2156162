//! Threshold rules replayed over event time, against hand-computed expectations: grouping (one,
//! several and no fields; arrays; missing fields), `value`, cardinality, execution windows from
//! `from`/`interval`, and the signal history that keeps overlapping windows from counting the
//! same events twice.

use imdsguard_ecs::{Event, FieldTable, Provenance};
use imdsguard_engine::history::MemoryHistory;
use imdsguard_engine::{compile_rule, Hunt, Match, ThresholdResult};
use serde_json::{json, Value};
use std::sync::Arc;

fn rule(threshold: Value, from: &str, interval: &str) -> imdsguard_rules::Rule {
    imdsguard_rules::parse_json_rule(
        &json!({"rule_id": "th", "name": "t", "description": "d", "severity": "medium", "risk_score": 47,
                "type": "threshold", "language": "kuery", "query": "event.category: authentication",
                "from": from, "interval": interval, "threshold": threshold}),
        "test",
    )
    .expect("rule")
}

fn at(min: u32, sec: u32) -> String {
    format!("2026-05-01T10:{min:02}:{sec:02}Z")
}

fn ev(ts: &str, extra: Value) -> Value {
    let mut d = json!({"@timestamp": ts, "event": {"category": "authentication"}});
    if let (Value::Object(b), Value::Object(e)) = (&mut d, extra) {
        b.extend(e);
    }
    d
}

fn run(r: imdsguard_rules::Rule, docs: &[Value]) -> (Vec<Match>, imdsguard_engine::HuntStats) {
    run_with(r, docs, &mut MemoryHistory::default())
}

fn run_with(r: imdsguard_rules::Rule, docs: &[Value], history: &mut MemoryHistory) -> (Vec<Match>, imdsguard_engine::HuntStats) {
    let c = compile_rule(Arc::new(r), &Arc::new(FieldTable::ecs()), 0).expect("compiles");
    let mut h = Hunt::new(vec![c]);
    for (i, d) in docs.iter().enumerate() {
        h.evaluate(&Event {
            doc: Arc::new(sonic_rs::from_str(&d.to_string()).expect("json")),
            provenance: Provenance { origin: Arc::from("t"), line: i as u64 + 1 },
            key: format!("k{i}"),
            index: None,
        });
    }
    let (m, s, _) = h.finish(history).expect("finish");
    (m, s)
}

fn ms(ts: &str) -> i64 {
    imdsguard_ecs::time::parse_date(ts).expect("date")
}

fn result(terms: &[(&str, &str)], count: u64, from: &str, card: &[(&str, u64)]) -> ThresholdResult {
    ThresholdResult {
        terms: terms.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect(),
        count,
        from: ms(from),
        cardinality: card.iter().map(|(f, n)| (f.to_string(), *n)).collect(),
    }
}

fn results(m: &[Match]) -> Vec<ThresholdResult> {
    m.iter().map(|a| a.threshold.clone().expect("threshold result")).collect()
}

#[test]
fn one_alert_per_group_reaching_the_value() {
    let docs = [
        ev(&at(0, 10), json!({"host": {"name": "a"}})),
        ev(&at(1, 0), json!({"host": {"name": "a"}})),
        ev(&at(1, 30), json!({"host": {"name": "b"}})),
        ev(&at(2, 0), json!({"host": {"name": "a"}})),
        ev(&at(3, 0), json!({"host": {"name": "b"}})),
        ev(&at(3, 30), json!({"user": {"name": "no host"}})),
    ];
    let (m, s) = run(rule(json!({"field": ["host.name"], "value": 3}), "now-5m", "5m"), &docs);
    assert_eq!(results(&m), vec![result(&[("host.name", "a")], 3, &at(0, 10), &[])]);
    // The synthetic alert's time is the group's latest counted event; its event the first.
    assert_eq!(m[0].time, Some(ms(&at(2, 0))));
    assert_eq!(m[0].event.key, "k0");
    assert_eq!(s.rules[0].missing_terms, 1, "the event without host.name counts in no group");
}

#[test]
fn overlapping_windows_do_not_count_the_same_events_twice() {
    // Every 5 minutes over the last 10: each event is in two executions' windows.
    let r = || rule(json!({"field": "host.name", "value": 3}), "now-10m", "5m");
    let first = [ev(&at(1, 0), json!({"host": {"name": "a"}})), ev(&at(2, 0), json!({"host": {"name": "a"}})), ev(&at(3, 0), json!({"host": {"name": "a"}}))];
    // The execution ending 10:05 alerts; the one ending 10:10 sees the same three events but
    // the signal history excludes them: one alert, not two.
    let (m, _) = run(r(), &first);
    assert_eq!(results(&m), vec![result(&[("host.name", "a")], 3, &at(1, 0), &[])]);
    // Three more events in 10:05-10:10: the execution ending 10:10 counts only those (3, not 6).
    let mut docs = first.to_vec();
    for min in [6, 7, 8] {
        docs.push(ev(&at(min, 0), json!({"host": {"name": "a"}})));
    }
    let (m, _) = run(r(), &docs);
    assert_eq!(
        results(&m),
        vec![result(&[("host.name", "a")], 3, &at(1, 0), &[]), result(&[("host.name", "a")], 3, &at(6, 0), &[])]
    );
    // Two more only: below the value once the first three are excluded; no second alert.
    let mut docs = first.to_vec();
    docs.push(ev(&at(6, 0), json!({"host": {"name": "a"}})));
    docs.push(ev(&at(7, 0), json!({"host": {"name": "a"}})));
    let (m, _) = run(r(), &docs);
    assert_eq!(m.len(), 1);
}

#[test]
fn windows_are_half_open_and_follow_the_interval() {
    // from now-5m, interval 5m: executions end at 10:05, 10:10; an event at exactly 10:05 is in
    // the first window ((10:00, 10:05]), one at 10:00:00 in the window ending 10:00.
    let r = || rule(json!({"field": ["host.name"], "value": 2}), "now-5m", "5m");
    let (m, _) = run(r(), &[ev(&at(4, 0), json!({"host": {"name": "a"}})), ev(&at(5, 0), json!({"host": {"name": "a"}}))]);
    assert_eq!(m.len(), 1);
    let (m, _) = run(r(), &[ev(&at(0, 0), json!({"host": {"name": "a"}})), ev(&at(0, 1), json!({"host": {"name": "a"}}))]);
    assert!(m.is_empty(), "10:00:00 and 10:00:01 fall in different executions");
}

#[test]
fn cardinality_counts_distinct_values_exactly() {
    let mut docs = Vec::new();
    for u in ["alice", "alice", "bob", "carol"] {
        docs.push(ev(&at(1, 0), json!({"source": {"ip": "10.0.0.1"}, "user": {"name": u}})));
    }
    for u in ["alice", "alice", "bob", "bob", "bob"] {
        docs.push(ev(&at(1, 0), json!({"source": {"ip": "10.0.0.2"}, "user": {"name": u}})));
    }
    let (m, _) = run(
        rule(json!({"field": ["source.ip"], "value": 2, "cardinality": [{"field": "user.name", "value": 3}]}), "now-5m", "5m"),
        &docs,
    );
    assert_eq!(results(&m), vec![result(&[("source.ip", "10.0.0.1")], 4, &at(1, 0), &[("user.name", 3)])]);
}

#[test]
fn several_fields_and_arrays_count_in_every_combination() {
    let docs = [
        ev(&at(1, 0), json!({"host": {"name": "a"}, "user": {"name": ["u1", "u2"]}})),
        ev(&at(1, 10), json!({"host": {"name": "a"}, "user": {"name": "u1"}})),
        ev(&at(1, 20), json!({"host": {"name": "a"}, "user": {"name": "u2"}})),
        ev(&at(1, 30), json!({"host": {"name": "b"}, "user": {"name": "u1"}})),
    ];
    let (m, _) = run(rule(json!({"field": ["host.name", "user.name"], "value": 2}), "now-5m", "5m"), &docs);
    let mut got = results(&m);
    got.sort_by(|a, b| a.terms.cmp(&b.terms));
    assert_eq!(
        got,
        vec![
            result(&[("host.name", "a"), ("user.name", "u1")], 2, &at(1, 0), &[]),
            result(&[("host.name", "a"), ("user.name", "u2")], 2, &at(1, 0), &[]),
        ]
    );
}

#[test]
fn no_fields_is_one_group_of_every_matching_event() {
    let docs: Vec<Value> = (0..4).map(|i| ev(&at(1, i), json!({}))).collect();
    let (m, _) = run(rule(json!({"field": [], "value": 4}), "now-5m", "5m"), &docs);
    assert_eq!(results(&m), vec![result(&[], 4, &at(1, 0), &[])]);
    let (m, _) = run(rule(json!({"field": [], "value": 5}), "now-5m", "5m"), &docs);
    assert!(m.is_empty());
}

#[test]
fn threshold_alert_document_has_kibanas_threshold_result() {
    let docs: Vec<Value> = (0..3).map(|i| ev(&at(1, i), json!({"host": {"name": "a"}, "process": {"name": "curl"}}))).collect();
    let r = rule(json!({"field": ["host.name"], "value": 3, "cardinality": [{"field": "process.name", "value": 1}]}), "now-5m", "5m");
    let (m, _) = run(r.clone(), &docs);
    assert_eq!(m.len(), 1);
    let t = m[0].threshold.as_ref().expect("threshold");
    let a = imdsguard_alerts::build_alert(&imdsguard_alerts::AlertInput {
        rule: &r,
        event: &m[0].event,
        time: m[0].time,
        new_terms: None,
        builtin: false,
        now_millis: ms("2026-05-01T10:05:00Z"),
        group: None,
        suppression: None,
        threshold: Some(imdsguard_alerts::AlertThreshold { terms: &t.terms, count: t.count, from: t.from, cardinality: &t.cardinality }),
    });
    assert_eq!(
        a["kibana.alert.threshold_result"],
        json!({"terms": [{"field": "host.name", "value": "a"}], "count": 3, "from": "2026-05-01T10:01:00.000Z",
               "cardinality": [{"field": "process.name", "value": 1}]})
    );
    // The alert carries the group's values, not one event's other fields.
    assert_eq!(a["host"]["name"], "a");
    assert!(a.get("process").is_none());
    assert_eq!(a["kibana.alert.original_time"], "2026-05-01T10:01:02.000Z");
    assert_eq!(a["kibana.alert.rule.type"], "threshold");
}

#[test]
fn suppression_folds_a_groups_alerts_within_the_duration() {
    let docs: Vec<Value> = [(1, 0), (1, 30), (6, 0), (6, 30), (11, 0), (11, 30)]
        .iter()
        .map(|(m, s)| ev(&at(*m, *s), json!({"host": {"name": "a"}})))
        .collect();
    let th = json!({"field": ["host.name"], "value": 2});
    let (m, _) = run(rule(th.clone(), "now-5m", "5m"), &docs);
    assert_eq!(m.len(), 3, "one alert per execution without suppression");
    let mut r = rule(th, "now-5m", "5m");
    r.alert_suppression = Some(json!({"duration": {"value": 1, "unit": "h"}}));
    let (m, _) = run(r, &docs);
    assert_eq!(m.len(), 1);
    let s = m[0].suppressed.as_ref().expect("suppressed");
    assert_eq!(s.docs_count, 2);
    assert_eq!(s.terms, vec![("host.name".to_string(), vec!["a".to_string()])]);
}

#[test]
fn signal_history_carries_over_to_the_next_hunt() {
    // A second hunt over the same events (plus new ones), with the state the first one left,
    // does not alert again on what the first already alerted on.
    let r = || rule(json!({"field": "host.name", "value": 3}), "now-10m", "5m");
    let first: Vec<Value> = [1, 2, 3].iter().map(|m| ev(&at(*m, 0), json!({"host": {"name": "a"}}))).collect();
    let mut state = MemoryHistory::default();
    let (m, _) = run_with(r(), &first, &mut state);
    assert_eq!(results(&m), vec![result(&[("host.name", "a")], 3, &at(1, 0), &[])]);
    let mut both = first.clone();
    for min in [6, 7, 8] {
        both.push(ev(&at(min, 0), json!({"host": {"name": "a"}})));
    }
    let (m, _) = run_with(r(), &both, &mut state);
    assert_eq!(results(&m), vec![result(&[("host.name", "a")], 3, &at(6, 0), &[])]);
    // Without the state, the second hunt alerts on both groups of events.
    let (m, _) = run(r(), &both);
    assert_eq!(m.len(), 2);
}
