//! Kibana detection-engine semantics of a hunt: max_signals per execution window, new_terms tuples
//! (arrays, missing fields, history window, persistence across runs), de-duplication, ordering.

use imdsguard_ecs::{Event, FieldTable, Provenance};
use imdsguard_engine::history::{MemoryHistory, TermsHistory};
use imdsguard_engine::{compile_rule, Hunt, Match};
use serde_json::{json, Value};
use std::sync::Arc;

fn rule(extra: Value) -> imdsguard_rules::Rule {
    let mut base = json!({"rule_id": "r1", "name": "r", "description": "d", "severity": "high", "risk_score": 73,
        "type": "query", "language": "kuery", "query": "process.name:curl"});
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    imdsguard_rules::parse_json_rule(&base, "test").expect("rule")
}

fn ev(i: u64, doc: Value) -> Event {
    let text = doc.to_string();
    Event {
        doc: Arc::new(sonic_rs::from_str(&text).expect("json")),
        provenance: Provenance { origin: Arc::from("t"), line: i },
        key: format!("k{i}"),
        index: None,
    }
}

fn run(r: imdsguard_rules::Rule, events: &[Event], history: &mut dyn TermsHistory) -> (Vec<Match>, imdsguard_engine::HuntStats) {
    let c = compile_rule(Arc::new(r), &Arc::new(FieldTable::ecs()), 0).expect("compiles");
    let mut h = Hunt::new(vec![c]);
    for e in events {
        h.evaluate(e);
    }
    let (m, s, _) = h.finish(history).expect("finish");
    (m, s)
}

fn t(min: u32, sec: u32) -> String {
    format!("2026-05-01T10:{min:02}:{sec:02}Z")
}

#[test]
fn max_signals_caps_each_execution_window_of_event_time() {
    let r = rule(json!({"max_signals": 2, "interval": "5m"}));
    // Five matches in 10:00-10:05, one in 10:05-10:10; input order is not time order.
    let times = [t(4, 0), t(0, 1), t(1, 0), t(2, 0), t(3, 0), t(6, 0)];
    let events: Vec<Event> =
        times.iter().enumerate().map(|(i, ts)| ev(i as u64, json!({"@timestamp": ts, "process": {"name": "curl"}}))).collect();
    let (m, s) = run(r, &events, &mut MemoryHistory::default());
    let got: Vec<u64> = m.iter().map(|m| m.event.provenance.line).collect();
    assert_eq!(got, vec![1, 2, 5], "the earliest two of the first window, then the second window");
    assert_eq!(s.rules[0].max_signals_dropped, 3);
    assert_eq!(s.rules[0].windows_capped, 1);
}

#[test]
fn duplicate_events_alert_once() {
    let e = ev(1, json!({"@timestamp": t(0, 0), "process": {"name": "curl"}}));
    let (m, _) = run(rule(json!({})), &[e.clone(), e], &mut MemoryHistory::default());
    assert_eq!(m.len(), 1);
}

fn nt() -> imdsguard_rules::Rule {
    rule(json!({"type": "new_terms", "new_terms_fields": ["host.id", "process.executable"], "history_window_start": "now-7d",
        "timestamp_override": "event.ingested"}))
}

#[test]
fn new_terms_tuples_arrays_missing_fields_and_timestamps() {
    let events = vec![
        // Two hosts in an array: two tuples, both new.
        ev(1, json!({"@timestamp": t(0, 0), "host": {"id": ["h1", "h2"]}, "process": {"name": "curl", "executable": "/a"}})),
        // h1 + /a again: known.
        ev(2, json!({"@timestamp": t(1, 0), "host": {"id": "h1"}, "process": {"name": "curl", "executable": "/a"}})),
        // Missing process.executable: no tuple.
        ev(3, json!({"@timestamp": t(2, 0), "host": {"id": "h3"}, "process": {"name": "curl"}})),
        // event.ingested wins over @timestamp; no timestamp at all is ignored.
        ev(4, json!({"@timestamp": t(9, 0), "event": {"ingested": t(3, 0)}, "host": {"id": "h1"}, "process": {"name": "curl", "executable": "/b"}})),
        ev(5, json!({"host": {"id": "h9"}, "process": {"name": "curl", "executable": "/b"}})),
    ];
    let (m, s) = run(nt(), &events, &mut MemoryHistory::default());
    let tuples: Vec<Vec<String>> = m.iter().map(|m| m.new_terms.clone().unwrap_or_default()).collect();
    assert_eq!(tuples, vec![vec!["h1", "/a"], vec!["h2", "/a"], vec!["h1", "/b"]]);
    assert_eq!(m[2].time, imdsguard_ecs::time::parse_date(&t(3, 0)));
    assert_eq!(s.rules[0].missing_terms, 1);
    assert_eq!(s.rules[0].no_timestamp, 1);
}

#[test]
fn new_terms_history_window_and_persistence_across_runs() {
    let mut history = MemoryHistory::default();
    let day = |d: u32| format!("2026-05-{d:02}T00:00:00Z");
    let e = |i: u64, ts: String| ev(i, json!({"@timestamp": ts, "host": {"id": "h1"}, "process": {"name": "curl", "executable": "/a"}}));
    let (m1, _) = run(nt(), &[e(1, day(1))], &mut history);
    assert_eq!(m1.len(), 1);
    // Next run, three days later: within now-7d of the last sighting, not new.
    let (m2, _) = run(nt(), &[e(2, day(4))], &mut history);
    assert!(m2.is_empty());
    // Eight days after the last sighting: outside the history window, new again.
    let (m3, _) = run(nt(), &[e(3, day(12))], &mut history);
    assert_eq!(m3.len(), 1);
    // Re-running the first day's input gives its alert again (same event, same result).
    let (m4, _) = run(nt(), &[e(1, day(1))], &mut history);
    assert_eq!(m4.len(), 1);
}

#[test]
fn alert_suppression_groups_by_fields_within_the_duration() {
    let r = rule(json!({"alert_suppression": {"group_by": ["host.name"], "duration": {"value": 10, "unit": "m"},
        "missing_fields_strategy": "suppress"}}));
    let e = |i: u64, min: u32, host: Option<&str>| {
        let mut d = json!({"@timestamp": t(min, 0), "process": {"name": "curl"}});
        if let Some(h) = host {
            d["host"] = json!({"name": h});
        }
        ev(i, d)
    };
    let events = vec![e(1, 0, Some("a")), e(2, 1, Some("a")), e(3, 2, Some("b")), e(4, 9, Some("a")), e(5, 11, Some("a")), e(6, 3, None), e(7, 4, None)];
    let (m, _) = run(r, &events, &mut MemoryHistory::default());
    let got: Vec<(u64, u64)> = m.iter().map(|m| (m.event.provenance.line, m.suppressed.as_ref().map(|s| s.docs_count).unwrap_or(99))).collect();
    // a: 1 folds 2 and 4 (within 10 minutes of 10:00); 5 opens a new window; b alone; missing host is its own group.
    assert_eq!(got, vec![(1, 2), (3, 0), (6, 1), (5, 0)]);
    let dns = rule(json!({"alert_suppression": {"group_by": ["host.name"], "missing_fields_strategy": "doNotSuppress"}}));
    let (m, _) = run(dns, &events, &mut MemoryHistory::default());
    assert_eq!(m.iter().filter(|m| m.suppressed.is_none()).count(), 2, "alerts without host.name are never suppressed");
}

#[test]
fn new_terms_alerts_can_be_suppressed() {
    // Two new terms on one host within the hour: suppressed by host.name into one alert.
    let r = rule(json!({"type": "new_terms", "new_terms": {"field": "new_terms_fields", "value": ["process.executable"],
        "history_window_start": [{"field": "history_window_start", "value": "now-7d"}]},
        "alert_suppression": {"group_by": ["host.name"], "duration": {"value": 1, "unit": "h"}}}));
    let events = [
        ev(1, json!({"@timestamp": t(0, 0), "host": {"name": "h"}, "process": {"name": "curl", "executable": "/usr/bin/curl"}})),
        ev(2, json!({"@timestamp": t(1, 0), "host": {"name": "h"}, "process": {"name": "curl", "executable": "/tmp/curl"}})),
    ];
    let (m, _) = run(r, &events, &mut MemoryHistory::default());
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].suppressed.as_ref().map(|s| s.docs_count), Some(1));
}

#[test]
fn two_events_with_a_new_tuple_in_the_same_millisecond_alert_once() {
    let r = rule(json!({"type": "new_terms", "new_terms": {"field": "new_terms_fields", "value": ["process.executable"],
        "history_window_start": [{"field": "history_window_start", "value": "now-7d"}]}}));
    let events = [
        ev(1, json!({"@timestamp": t(0, 0), "process": {"name": "curl", "executable": "/usr/bin/curl"}})),
        ev(2, json!({"@timestamp": t(0, 0), "process": {"name": "curl", "executable": "/usr/bin/curl"}})),
    ];
    let (m, _) = run(r, &events, &mut MemoryHistory::default());
    assert_eq!(m.len(), 1);
}
