//! Kibana-compatible alert documents.
//!
//! An alert is what Kibana's detection engine writes to `.alerts-security.alerts-<space>`: the
//! source event's fields, `event.kind: "signal"`, the source's `event.*` copied under
//! `kibana.alert.original_event.*`, and the `kibana.alert.*` fields (written as literal dotted keys,
//! as Kibana does) describing the rule, severity, risk score, MITRE mapping, the reason, the
//! investigation guide (`kibana.alert.rule.note`), ancestry and, for new_terms rules, the new terms.
//!
//! Alert ids are deterministic: the same rule, event and term tuple always give the same
//! `kibana.alert.uuid`, so re-running a hunt over the same input reproduces its alerts.
//! Credentials in the event are redacted before any of its content is copied into the alert.

use imdsguard_ecs::{time, Document, Event, FieldPath};
use imdsguard_rules::{Rule, RuleType};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The Kibana version whose alert schema these documents follow.
pub const KIBANA_VERSION: &str = "9.1.0";

/// What the engine knows about one alerting match.
pub struct AlertInput<'a> {
    pub rule: &'a Rule,
    pub event: &'a Event,
    /// Event time (epoch ms) as the rule read it.
    pub time: Option<i64>,
    pub new_terms: Option<&'a [String]>,
    /// Whether the rule comes from the built-in pack (Kibana's `immutable`).
    pub builtin: bool,
    /// Detection time (epoch ms): the alert's `@timestamp`.
    pub now_millis: i64,
    /// For EQL sequences: the sequence this alert belongs to.
    pub group: Option<AlertGroup<'a>>,
    /// For rules with alert suppression: the group this alert stands for.
    pub suppression: Option<AlertSuppression<'a>>,
    /// For threshold rules: the group this synthetic alert stands for.
    pub threshold: Option<AlertThreshold<'a>>,
}

/// Kibana's `kibana.alert.threshold_result`. A threshold alert carries the group's field values
/// (not the whole of one event), as Kibana's threshold alerts do.
pub struct AlertThreshold<'a> {
    pub terms: &'a [(String, String)],
    pub count: u64,
    /// Earliest counted event (epoch ms).
    pub from: i64,
    pub cardinality: &'a [(String, u64)],
}

/// Set `path` (dotted) to `v` inside `obj`, creating objects on the way.
fn set_dotted(obj: &mut Map<String, Value>, path: &str, v: Value) {
    match path.split_once('.') {
        None => {
            obj.insert(path.to_string(), v);
        }
        Some((head, rest)) => {
            let child = obj.entry(head.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(m) = child {
                set_dotted(m, rest, v);
            }
        }
    }
}

/// Kibana's `kibana.alert.suppression.*`.
pub struct AlertSuppression<'a> {
    pub terms: &'a [(String, Vec<String>)],
    /// Alerts folded into this one.
    pub docs_count: u64,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// An EQL sequence, as Kibana groups its alerts.
pub struct AlertGroup<'a> {
    /// `kibana.alert.group.id`, shared by the sequence's alerts.
    pub id: &'a str,
    /// The event's position (`kibana.alert.group.index`) for a building-block alert; `None` for
    /// the shell alert that stands for the whole sequence.
    pub index: Option<usize>,
    /// For the shell alert: every event of the sequence, in order.
    pub members: &'a [Event],
}

/// The fields whose values are equal in every document (Kibana builds a sequence's shell alert
/// from them).
pub fn intersection(docs: &[Value]) -> Value {
    let Some((first, rest)) = docs.split_first() else { return Value::Object(Map::new()) };
    let mut out = Map::new();
    if let Value::Object(m) = first {
        for (k, v) in m {
            let others: Vec<&Value> = rest.iter().filter_map(|d| d.get(k)).collect();
            if others.len() != rest.len() {
                continue;
            }
            if let Value::Object(_) = v {
                let mut all = vec![v.clone()];
                all.extend(others.iter().map(|o| (*o).clone()));
                let inner = intersection(&all);
                if inner.as_object().is_some_and(|o| !o.is_empty()) {
                    out.insert(k.clone(), inner);
                }
            } else if others.iter().all(|o| *o == v) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// The deterministic alert id: hex SHA-256 of rule id, event key and new terms.
pub fn alert_uuid(rule_id: &str, event_key: &str, new_terms: Option<&[String]>) -> String {
    let mut h = Sha256::new();
    h.update(rule_id.as_bytes());
    h.update([0]);
    h.update(event_key.as_bytes());
    if let Some(t) = new_terms {
        h.update([0]);
        h.update(serde_json::to_string(t).unwrap_or_default().as_bytes());
    }
    hex(&h.finalize())
}

/// A stable id for a rule's saved object (`kibana.alert.rule.uuid`), derived from its rule_id.
pub fn rule_uuid(rule_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"imdsguard-rule\0");
    h.update(rule_id.as_bytes());
    let x = hex(&h.finalize());
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn first_value(doc: &dyn Document, field: &str) -> Option<String> {
    let mut out = None;
    doc.any_value(&FieldPath::new(field), &mut |v| {
        out = Some(v.as_keyword().into_owned());
        true
    });
    out
}

/// Kibana's rule category and rule type id for a rule type.
pub fn rule_category(t: &RuleType) -> (&'static str, &'static str) {
    match t {
        RuleType::Query => ("Custom Query Rule", "siem.queryRule"),
        RuleType::NewTerms => ("New Terms Rule", "siem.newTermsRule"),
        RuleType::Eql => ("Event Correlation Rule", "siem.eqlRule"),
        RuleType::Threshold => ("Threshold Rule", "siem.thresholdRule"),
        RuleType::Esql => ("ES|QL Rule", "siem.esqlRule"),
        RuleType::MachineLearning => ("Machine Learning Rule", "siem.mlRule"),
        RuleType::ThreatMatch => ("Indicator Match Rule", "siem.indicatorRule"),
        RuleType::SavedQuery => ("Saved Query Rule", "siem.savedQueryRule"),
        _ => ("Custom Query Rule", "siem.queryRule"),
    }
}

/// Kibana's alert reason sentence, built from the fields the event has:
/// `network event with process curl, source 10.0.0.5:40312, destination 169.254.169.254:80,
/// by root on web-1 created medium alert Suspicious ....`
pub fn reason(rule: &Rule, doc: &dyn Document) -> String {
    let get = |f: &str| first_value(doc, f);
    let mut parts = Vec::new();
    let category = get("event.category").unwrap_or_else(|| "event".into());
    let mut s = if category == "event" { "event".to_string() } else { format!("{category} event") };
    if let Some(p) = get("process.name") {
        parts.push(format!("with process {p}"));
    }
    if let Some(ip) = get("source.ip") {
        parts.push(match get("source.port") {
            Some(port) => format!("source {ip}:{port}"),
            None => format!("source {ip}"),
        });
    }
    let dest = get("destination.ip").or_else(|| get("destination.address")).or_else(|| get("url.domain"));
    if let Some(ip) = dest {
        parts.push(match get("destination.port") {
            Some(port) => format!("destination {ip}:{port}"),
            None => format!("destination {ip}"),
        });
    }
    if let Some(path) = get("url.path") {
        parts.push(format!("url {path}"));
    }
    if !parts.is_empty() {
        s.push(' ');
        s.push_str(&parts.join(", "));
        s.push(',');
    }
    if let Some(u) = get("user.name") {
        s.push_str(&format!(" by {u}"));
    }
    if let Some(h) = get("host.name").or_else(|| get("host.hostname")) {
        s.push_str(&format!(" on {h}"));
    }
    s.push_str(&format!(" created {} alert {}.", rule.severity.as_str(), rule.name));
    s
}

/// Build the alert document.
/// The alert document for a match of the engine (its sequence group, suppression or threshold
/// bucket included); also returns how many credential values were redacted.
pub fn alert_for_match(m: &imdsguard_engine::Match, rule: &Rule, builtin: bool, now_millis: i64) -> (Value, usize) {
    let (mut v, n) = build_alert_counted(&AlertInput {
        rule,
        event: &m.event,
        time: m.time,
        new_terms: m.new_terms.as_deref(),
        builtin,
        now_millis,
        group: m.sequence.as_ref().map(|s| AlertGroup { id: &s.group_id, index: s.index, members: &s.members }),
        suppression: m.suppressed.as_ref().map(|s| AlertSuppression { terms: &s.terms, docs_count: s.docs_count, start: s.start, end: s.end }),
        threshold: m.threshold.as_ref().map(|t| AlertThreshold { terms: &t.terms, count: t.count, from: t.from, cardinality: &t.cardinality }),
    });
    if let (Some(h), Value::Object(out)) = (&m.correlation, &mut v) {
        add_correlation(out, h);
    }
    (v, n)
}

/// A Sigma correlation's shell alert: its reason, and what it counted under
/// `imdsguard.correlation` (Kibana has no field set for Sigma correlations). The group values
/// come from events, so they are redacted like the rest.
fn add_correlation(out: &mut Map<String, Value>, h: &imdsguard_engine::correlate::CorrelationHit) {
    let mut reason = json!(h.reason);
    imdsguard_ecs::redact::redact(&mut reason);
    out.insert("kibana.alert.reason".into(), reason);
    let mut group = Map::new();
    for (k, v) in &h.group {
        group.insert(k.clone(), json!(v));
    }
    let mut c = json!({
        "type": h.kind,
        "group": Value::Object(group),
        "value": h.value,
        "field": h.field,
        "condition": h.condition,
        "timespan_ms": h.timespan_ms,
        "start": time::format_millis(h.first_ms),
        "end": time::format_millis(h.last_ms),
        "rules": h.rules,
    });
    imdsguard_ecs::redact::redact(&mut c);
    out.insert("imdsguard.correlation".into(), c);
    out.insert("kibana.alert.original_time".into(), json!(time::format_millis(h.first_ms)));
}

pub fn build_alert(input: &AlertInput<'_>) -> Value {
    build_alert_counted(input).0
}

/// Build the alert document; also returns how many credential values were redacted from it.
pub fn build_alert_counted(input: &AlertInput<'_>) -> (Value, usize) {
    let rule = input.rule;
    let event = input.event;
    // Redact the event's own content first: everything below that comes from the event is built
    // from the redacted copy, and the rule's texts (which hold no event data) are not rescanned.
    let shell = input.group.as_ref().filter(|g| g.index.is_none());
    let mut converted: Value = match (&input.threshold, shell) {
        (Some(th), _) => {
            let mut m = Map::new();
            for (f, v) in th.terms {
                set_dotted(&mut m, f, json!(v));
            }
            if let Some(t) = input.time {
                m.insert("@timestamp".into(), json!(time::format_millis(t)));
            }
            Value::Object(m)
        }
        (None, Some(g)) => {
            let docs: Vec<Value> = g.members.iter().map(|m| serde_json::to_value(m.doc.as_ref()).unwrap_or(Value::Null)).collect();
            intersection(&docs)
        }
        (None, None) => serde_json::to_value(event.doc.as_ref()).unwrap_or(Value::Null),
    };
    let redacted = imdsguard_ecs::redact::redact(&mut converted);
    let doc: &Value = &converted;
    let mut out: Map<String, Value> = match doc {
        Value::Object(m) => m.clone(),
        other => {
            let mut m = Map::new();
            m.insert("event.original".into(), other.clone());
            m
        }
    };
    // kibana.alert.original_event.* from event.* (nested or dotted), then event.kind = signal.
    let mut original_event = Map::new();
    if let Some(Value::Object(ev)) = out.get("event") {
        for (k, v) in ev {
            original_event.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in out.iter() {
        if let Some(rest) = k.strip_prefix("event.") {
            original_event.insert(rest.to_string(), v.clone());
        }
    }
    let original_time = match shell {
        Some(g) => g.members.first().and_then(|m| {
            let v: Value = serde_json::to_value(m.doc.as_ref()).ok()?;
            first_value(&v, "@timestamp")
        }),
        None => first_value(doc, "@timestamp"),
    };
    let uuid = match &input.group {
        None if input.threshold.is_some() => {
            let th = input.threshold.as_ref().map(|t| {
                let mut k: Vec<String> = t.terms.iter().map(|(f, v)| format!("{f}={v}")).collect();
                k.push(format!("from={}", t.from));
                k
            });
            alert_uuid(&rule.rule_id, "threshold", th.as_deref())
        }
        Some(g) => alert_uuid(&rule.rule_id, &format!("{}/{}", g.id, g.index.map(|i| i.to_string()).unwrap_or_else(|| "shell".into())), None),
        None => alert_uuid(&rule.rule_id, &event.key, input.new_terms),
    };
    let now = time::format_millis(input.now_millis);
    match out.get_mut("event") {
        Some(Value::Object(ev)) => {
            ev.insert("kind".into(), json!("signal"));
        }
        _ => {
            out.insert("event.kind".into(), json!("signal"));
        }
    }
    out.insert("@timestamp".into(), json!(now));
    for (k, v) in original_event {
        out.insert(format!("kibana.alert.original_event.{k}"), v);
    }
    let (category, type_id) = rule_category(&rule.rule_type);
    let threat = serde_json::to_value(&rule.threat).unwrap_or(Value::Array(vec![]));
    let mut params = Map::new();
    params.insert("description".into(), json!(rule.description));
    params.insert("risk_score".into(), json!(rule.risk_score));
    params.insert("severity".into(), json!(rule.severity.as_str()));
    params.insert("note".into(), json!(rule.note));
    params.insert("setup".into(), json!(rule.setup));
    params.insert("references".into(), json!(rule.references));
    params.insert("false_positives".into(), json!(rule.false_positives));
    params.insert("threat".into(), threat.clone());
    params.insert("from".into(), json!(rule.from));
    params.insert("to".into(), json!("now"));
    params.insert("interval".into(), json!(rule.interval));
    params.insert("max_signals".into(), json!(rule.max_signals));
    params.insert("index".into(), json!(rule.index));
    params.insert("language".into(), json!(rule.language));
    params.insert("query".into(), json!(rule.query));
    params.insert("timestamp_override".into(), json!(rule.timestamp_override));
    params.insert("rule_id".into(), json!(rule.rule_id));
    params.insert("type".into(), json!(rule.rule_type.as_str()));
    params.insert("immutable".into(), json!(input.builtin));
    params.insert("author".into(), json!(rule.author));
    params.insert("license".into(), json!(rule.license));
    params.insert("version".into(), json!(rule.version.unwrap_or(1)));
    if let Some(nt) = &rule.new_terms {
        params.insert("new_terms_fields".into(), json!(nt.fields));
        params.insert("history_window_start".into(), json!(nt.history_window_start));
    }
    let kv: Vec<(&str, Value)> = vec![
        ("kibana.alert.uuid", json!(uuid)),
        ("kibana.alert.start", json!(now)),
        ("kibana.alert.last_detected", json!(now)),
        ("kibana.alert.status", json!("active")),
        ("kibana.alert.workflow_status", json!("open")),
        ("kibana.alert.depth", json!(1)),
        ("kibana.alert.severity", json!(rule.severity.as_str())),
        ("kibana.alert.risk_score", json!(rule.risk_score)),
        ("kibana.alert.reason", json!(reason(rule, doc))),
        ("kibana.alert.original_time", json!(original_time.or_else(|| input.time.map(time::format_millis)))),
        (
            "kibana.alert.ancestors",
            json!([{
                "id": event.key,
                "type": "event",
                "index": event.index.clone().unwrap_or_else(|| event.provenance.origin.to_string()),
                "depth": 0,
            }]),
        ),
        ("kibana.alert.rule.uuid", json!(rule_uuid(&rule.rule_id))),
        ("kibana.alert.rule.rule_id", json!(rule.rule_id)),
        ("kibana.alert.rule.name", json!(rule.name)),
        ("kibana.alert.rule.type", json!(rule.rule_type.as_str())),
        ("kibana.alert.rule.category", json!(category)),
        ("kibana.alert.rule.rule_type_id", json!(type_id)),
        ("kibana.alert.rule.consumer", json!("siem")),
        ("kibana.alert.rule.producer", json!("siem")),
        ("kibana.alert.rule.severity", json!(rule.severity.as_str())),
        ("kibana.alert.rule.risk_score", json!(rule.risk_score)),
        ("kibana.alert.rule.description", json!(rule.description)),
        ("kibana.alert.rule.tags", json!(rule.tags)),
        ("kibana.alert.rule.threat", threat),
        ("kibana.alert.rule.note", json!(rule.note)),
        ("kibana.alert.rule.setup", json!(rule.setup)),
        ("kibana.alert.rule.false_positives", json!(rule.false_positives)),
        ("kibana.alert.rule.references", json!(rule.references)),
        ("kibana.alert.rule.from", json!(rule.from)),
        ("kibana.alert.rule.to", json!("now")),
        ("kibana.alert.rule.interval", json!(rule.interval)),
        ("kibana.alert.rule.max_signals", json!(rule.max_signals)),
        ("kibana.alert.rule.author", json!(rule.author)),
        ("kibana.alert.rule.license", json!(rule.license)),
        ("kibana.alert.rule.version", json!(rule.version.unwrap_or(1))),
        ("kibana.alert.rule.immutable", json!(input.builtin)),
        ("kibana.alert.rule.enabled", json!(rule.enabled)),
        ("kibana.alert.rule.exceptions_list", rule.extra.get("exceptions_list").cloned().unwrap_or_else(|| json!([]))),
        ("kibana.alert.rule.parameters", Value::Object(params)),
        ("kibana.space_ids", json!(["default"])),
        ("kibana.version", json!(KIBANA_VERSION)),
        (
            "imdsguard.provenance",
            json!({"origin": event.provenance.origin.as_ref(), "line": event.provenance.line}),
        ),
    ];
    for (k, v) in kv {
        out.insert(k.to_string(), v);
    }
    if let Some(t) = input.new_terms {
        out.insert("kibana.alert.new_terms".into(), json!(t));
    }
    if let Some(th) = &input.threshold {
        let mut result = Map::new();
        result.insert("terms".into(), Value::Array(th.terms.iter().map(|(f, v)| json!({"field": f, "value": v})).collect()));
        result.insert("count".into(), json!(th.count));
        result.insert("from".into(), json!(time::format_millis(th.from)));
        if !th.cardinality.is_empty() {
            result.insert(
                "cardinality".into(),
                Value::Array(th.cardinality.iter().map(|(f, n)| json!({"field": f, "value": n})).collect()),
            );
        }
        out.insert("kibana.alert.threshold_result".into(), Value::Object(result));
    }
    if let Some(s) = &input.suppression {
        let terms: Vec<Value> = s
            .terms
            .iter()
            .map(|(f, v)| json!({"field": f, "value": if v.is_empty() { Value::Null } else { json!(v) }}))
            .collect();
        out.insert("kibana.alert.suppression.terms".into(), Value::Array(terms));
        out.insert("kibana.alert.suppression.docs_count".into(), json!(s.docs_count));
        out.insert("kibana.alert.suppression.start".into(), json!(s.start.map(time::format_millis)));
        out.insert("kibana.alert.suppression.end".into(), json!(s.end.map(time::format_millis)));
    }
    if let Some(g) = &input.group {
        out.insert("kibana.alert.group.id".into(), json!(g.id));
        match g.index {
            Some(i) => {
                out.insert("kibana.alert.group.index".into(), json!(i));
                out.insert("kibana.alert.building_block_type".into(), json!("default"));
            }
            None => {
                let ancestors: Vec<Value> = g
                    .members
                    .iter()
                    .map(|m| {
                        json!({"id": m.key, "type": "event", "depth": 0,
                            "index": m.index.clone().unwrap_or_else(|| m.provenance.origin.to_string())})
                    })
                    .collect();
                out.insert("kibana.alert.ancestors".into(), Value::Array(ancestors));
            }
        }
    }
    if let Some(b) = &rule.building_block_type {
        out.insert("kibana.alert.building_block_type".into(), json!(b));
    }
    let mut v = Value::Object(out);
    // The new terms and ancestry are event values too; a second pass over the small fields that
    // are not rule text keeps the guarantee even if a rule keys on a credential field.
    let mut n = redacted;
    if let Value::Object(m) = &mut v {
        for (k, val) in m.iter_mut() {
            if k.starts_with("kibana.alert.new_terms") || k.starts_with("kibana.alert.ancestors") {
                n += imdsguard_ecs::redact::redact(val);
            }
        }
    }
    (v, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use imdsguard_ecs::Provenance;
    use std::sync::Arc;

    #[test]
    fn alert_fields_and_redaction() {
        let rules = imdsguard_rules::builtin();
        let rule = &rules.rules[0];
        let doc: sonic_rs::Value = sonic_rs::from_str(
            r#"{"@timestamp":"2026-05-01T00:00:00Z","event":{"category":["network"]},"process":{"name":"curl"},
               "destination":{"ip":"169.254.169.254","port":80},"host":{"name":"h"},
               "http":{"response":{"body":{"content":"{\"AccessKeyId\":\"ASIAAAAAAAAAAAAAAAAA\",\"Token\":\"secret-token-value\"}"}}}}"#,
        )
        .expect("json");
        let event = Event { doc: Arc::new(doc), provenance: Provenance { origin: Arc::from("f"), line: 3 }, key: "k1".into(), index: None };
        let tuple = vec!["h".to_string(), "/usr/bin/curl".to_string()];
        let input = AlertInput { rule, event: &event, time: Some(0), new_terms: Some(&tuple), builtin: true, now_millis: 0, group: None, suppression: None, threshold: None };
        let (a, n) = build_alert_counted(&input);
        assert!(n >= 2, "{n}");
        let text = a.to_string();
        assert!(!text.contains("ASIAAAAAAAAAAAAAAAAA") && !text.contains("secret-token-value"), "{text}");
        assert_eq!(a["kibana.alert.uuid"], alert_uuid(&rule.rule_id, "k1", Some(&tuple)));
        assert_eq!(a["event"]["kind"], "signal");
        assert_eq!(a["kibana.alert.original_event.category"], serde_json::json!(["network"]));
        assert_eq!(a["kibana.alert.original_time"], "2026-05-01T00:00:00Z");
        assert_eq!(a["kibana.alert.rule.category"], "New Terms Rule");
        assert_eq!(
            a["kibana.alert.reason"],
            "network event with process curl, destination 169.254.169.254:80, on h created medium alert Suspicious Instance Metadata Service (IMDS) API Request."
        );
        // Same inputs, same id; another tuple, another id.
        assert_eq!(build_alert(&input)["kibana.alert.uuid"], a["kibana.alert.uuid"]);
        assert_ne!(alert_uuid(&rule.rule_id, "k1", None), alert_uuid(&rule.rule_id, "k1", Some(&tuple)));
    }
}
