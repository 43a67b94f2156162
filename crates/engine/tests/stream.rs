//! Rules over a stream cut into batches (serve's requests, the sensor's micro-batches, Kafka
//! batches) raise the same alerts as over the whole stream at once: sequences whose steps arrive
//! in different batches, thresholds counting across batches, suppression windows and
//! `max_signals` windows that span batches, new_terms history. Every cut of the stream is tried,
//! with the state serialised to JSON and restored between batches (as a Kafka changelog would).

use imdsguard_ecs::{Event, FieldTable, Provenance};
use imdsguard_engine::history::MemoryHistory;
use imdsguard_engine::{compile_rule, CompiledRule, Hunt, Match, StreamState};
use serde_json::{json, Value};
use std::sync::Arc;

fn rule(extra: Value) -> CompiledRule {
    let mut base = json!({"rule_id": "r", "name": "r", "description": "d", "severity": "medium", "risk_score": 47,
                          "from": "now-9m", "interval": "5m"});
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    let r = imdsguard_rules::parse_json_rule(&base, "test").expect("rule");
    compile_rule(Arc::new(r), &Arc::new(FieldTable::ecs()), 0).expect("compiles")
}

fn sequence_rule() -> CompiledRule {
    rule(json!({"rule_id": "seq", "type": "eql", "language": "eql",
                "query": "sequence by host.id with maxspan=2m [process where process.name == \"curl\"] [network where destination.ip == \"169.254.169.254\"]"}))
}

fn threshold_rule() -> CompiledRule {
    rule(json!({"rule_id": "th", "type": "threshold", "language": "kuery", "query": "event.category: network",
                "threshold": {"field": ["host.id"], "value": 3}}))
}

fn suppressed_rule() -> CompiledRule {
    rule(json!({"rule_id": "sup", "type": "query", "language": "kuery", "query": "event.category: network",
                "alert_suppression": {"group_by": ["host.id"], "duration": {"value": 10, "unit": "m"}}}))
}

fn new_terms_rule() -> CompiledRule {
    rule(json!({"rule_id": "nt", "type": "new_terms", "language": "kuery", "query": "event.category: network",
                "new_terms_fields": ["host.id", "process.name"], "history_window_start": "now-7d"}))
}

fn capped_rule() -> CompiledRule {
    rule(json!({"rule_id": "cap", "type": "query", "language": "kuery", "query": "event.category: process", "max_signals": 2}))
}

fn ev(sec: i64, host: &str, kind: &str, name: &str) -> Value {
    let ts = imdsguard_ecs::time::format_millis(1_777_000_000_000 + sec * 1000);
    match kind {
        "process" => json!({"@timestamp": ts, "host": {"id": host}, "event": {"category": "process"}, "process": {"name": name}}),
        _ => json!({"@timestamp": ts, "host": {"id": host}, "event": {"category": "network"}, "process": {"name": name},
                    "destination": {"ip": "169.254.169.254"}}),
    }
}

fn event(i: usize, d: &Value) -> Event {
    Event {
        doc: Arc::new(sonic_rs::from_str(&d.to_string()).expect("json")),
        provenance: Provenance { origin: Arc::from("t"), line: i as u64 + 1 },
        key: format!("k{i}"),
        index: None,
    }
}

/// What identifies an alert (not its suppression count, which a stream cannot update).
fn identity(m: &Match, rules: &[CompiledRule]) -> String {
    format!(
        "{} {} {:?} {:?} {:?}",
        rules[m.rule].rule.rule_id,
        m.event.key,
        m.new_terms,
        m.sequence.as_ref().map(|s| (s.group_id.clone(), s.index)),
        m.threshold.as_ref().map(|t| (t.terms.clone(), t.count, t.from)),
    )
}

fn whole(rules: &[CompiledRule], docs: &[Value]) -> Vec<String> {
    let mut h = Hunt::new(rules.to_vec());
    for (i, d) in docs.iter().enumerate() {
        h.evaluate(&event(i, d));
    }
    let (m, _, rules) = h.finish(&mut MemoryHistory::default()).expect("finish");
    let mut ids: Vec<String> = m.iter().map(|m| identity(m, &rules)).collect();
    ids.sort();
    ids
}

/// Run `docs` in batches cut at `cuts`, restoring the state from JSON between batches.
fn batched(rules: &[CompiledRule], docs: &[Value], cuts: &[usize]) -> (Vec<String>, StreamState) {
    let mut history = MemoryHistory::default();
    let mut state = StreamState::new();
    let mut ids = Vec::new();
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().copied());
    bounds.push(docs.len());
    for w in bounds.windows(2) {
        let mut h = Hunt::new(rules.to_vec());
        for i in w[0]..w[1] {
            h.evaluate(&event(i, &docs[i]));
        }
        let (m, _, rules) = h.finish_stream(&mut history, &mut state).expect("finish");
        ids.extend(m.iter().map(|m| identity(m, &rules)));
        state = StreamState::from_json(&state.to_json()).expect("restore");
        assert_eq!(state.stats.restore_errors, 0);
    }
    // The stream goes quiet; the clock moves on and closes the threshold windows still open.
    state.advance_clock(i64::MAX / 2);
    let (m, _, rules) = Hunt::new(rules.to_vec()).finish_stream(&mut history, &mut state).expect("finish");
    ids.extend(m.iter().map(|m| identity(m, &rules)));
    ids.sort();
    (ids, state)
}

fn stream() -> Vec<Value> {
    vec![
        ev(0, "h1", "process", "curl"),
        ev(5, "h2", "network", "python3"),
        ev(30, "h1", "network", "curl"),   // completes h1's sequence (30 s after its start)
        ev(40, "h2", "process", "curl"),
        ev(50, "h1", "process", "bash"),
        ev(70, "h2", "network", "curl"),   // completes h2's sequence
        ev(80, "h1", "network", "curl"),   // third network event of h1: threshold
        ev(100, "h3", "process", "curl"),
        ev(400, "h3", "network", "curl"),  // beyond maxspan: no sequence for h3
        ev(410, "h2", "network", "python3"),
        ev(420, "h2", "network", "python3"), // fourth for h2 (3 within the window 70..420?)
        ev(1000, "h1", "process", "curl"),
        ev(1001, "h1", "process", "curl"),
        ev(1002, "h1", "process", "curl"), // third process alert in one 5-minute window: capped at 2
    ]
}

#[test]
fn every_cut_gives_the_alerts_of_the_whole_stream() {
    let rules = vec![sequence_rule(), threshold_rule(), suppressed_rule(), new_terms_rule(), capped_rule()];
    let docs = stream();
    let expected = whole(&rules, &docs);
    // The whole-stream run itself, against hand-made expectations.
    let count = |rule: &str| expected.iter().filter(|id| id.starts_with(&format!("{rule} "))).count();
    assert_eq!(count("seq"), 6, "two sequences of two events, each with its shell alert: {expected:#?}");
    assert_eq!(count("th"), 1, "h2 has four network events within one 9-minute look-back: {expected:#?}");
    assert_eq!(count("sup"), 3, "one alert per host within 10 minutes: {expected:#?}");
    assert_eq!(count("nt"), 4, "(h2,python3) (h1,curl) (h2,curl) (h3,curl) and nothing else new: {expected:#?}");
    // Every single cut, and every batch of one event.
    for cut in 1..docs.len() {
        let (got, _) = batched(&rules, &docs, &[cut]);
        assert_eq!(got, expected, "cut after event {cut}");
    }
    let all: Vec<usize> = (1..docs.len()).collect();
    let (got, state) = batched(&rules, &docs, &all);
    assert_eq!(got, expected, "one event per batch");
    // Nothing older than a rule's reach is kept: h3's lone curl (t=100) is long gone by t=1002,
    // and once the clock has moved on no threshold window is open.
    assert!(state.carried() <= 3, "carried {}", state.carried());
}

#[test]
fn a_threshold_window_waits_until_it_has_closed() {
    let rules = vec![threshold_rule()];
    let mut history = MemoryHistory::default();
    let mut state = StreamState::new();
    let docs = [ev(0, "h1", "network", "a"), ev(1, "h1", "network", "a"), ev(2, "h1", "network", "a")];
    let mut h = Hunt::new(rules.clone());
    for (i, d) in docs.iter().enumerate() {
        h.evaluate(&event(i, d));
    }
    let (m, _, _) = h.finish_stream(&mut history, &mut state).expect("finish");
    assert!(m.is_empty(), "the execution containing t=2 s ends later");
    assert_eq!(state.carried(), 3);
    // Five minutes later by the caller's clock: the window has closed, the alert is raised once.
    state.advance_clock(1_777_000_000_000 + 10 * 60 * 1000);
    let (m, _, _) = Hunt::new(rules.clone()).finish_stream(&mut history, &mut state).expect("finish");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].threshold.as_ref().map(|t| t.count), Some(3));
    let (m, _, _) = Hunt::new(rules).finish_stream(&mut history, &mut state).expect("finish");
    assert!(m.is_empty());
    assert_eq!(state.carried(), 0);
}

#[test]
fn a_sequence_is_raised_once_even_when_its_events_come_back() {
    let rules = vec![sequence_rule()];
    let docs = vec![ev(0, "h1", "process", "curl"), ev(10, "h1", "network", "curl"), ev(20, "h1", "network", "curl")];
    let (got, _) = batched(&rules, &docs, &[1, 2]);
    assert_eq!(got.len(), 3, "{got:#?}");
}

#[test]
fn carried_events_are_capped_and_the_evictions_counted() {
    let rules = vec![sequence_rule()];
    let mut state = StreamState::new();
    state.set_max_carried(3);
    let mut history = MemoryHistory::default();
    let mut h = Hunt::new(rules.clone());
    for i in 0..10 {
        h.evaluate(&event(i, &ev(i as i64, &format!("h{i}"), "process", "curl")));
    }
    let (m, _, _) = h.finish_stream(&mut history, &mut state).expect("finish");
    assert!(m.is_empty());
    assert_eq!(state.carried(), 3);
    assert_eq!(state.stats.carry_evicted, 7);
}

#[test]
fn a_foreign_snapshot_is_refused_and_bad_entries_are_counted() {
    assert!(StreamState::from_json(&json!({"rules": {}})).is_err());
    let st = StreamState::from_json(&json!({"version": 1, "next_seq": 5, "rules": {"seq": {"carried": [{"doc": "not json", "key": "k", "seq": 1}, {"doc": "{}", "key": "k2", "seq": 2, "time": 7}], "windows": [[1, 2], ["x"]]}}}))
        .expect("restores");
    assert_eq!(st.carried(), 1);
    assert_eq!(st.stats.restore_errors, 2);
}

#[test]
fn the_serialised_state_holds_no_credentials() {
    let rules = vec![sequence_rule()];
    let mut state = StreamState::new();
    let mut h = Hunt::new(rules);
    let mut doc = ev(0, "h1", "process", "curl");
    doc["http"] = json!({"response": {"body": {"content": "{\"AccessKeyId\": \"ASIAEXAMPLEKEY123456\", \"SecretAccessKey\": \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"}"}}});
    h.evaluate(&event(0, &doc));
    h.finish_stream(&mut MemoryHistory::default(), &mut state).expect("finish");
    assert_eq!(state.carried(), 1);
    let text = state.to_json().to_string();
    assert!(!text.contains("wJalrXUtnFEMI") && !text.contains("ASIAEXAMPLEKEY123456"), "{text}");
    assert!(text.contains("REDACTED"), "{text}");
}
