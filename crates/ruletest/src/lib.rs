//! Rule tests: fixtures kept next to a detection rule and run with the engine's exact semantics.
//!
//! A rule file `X.toml` (Elastic's detection-rules format, or a rule JSON) may have a sidecar
//! `X.test.toml`:
//!
//! ```toml
//! now = "2026-05-03T00:00:00Z"        # detection time (new_terms history and windows are
//!                                      # deterministic: every test starts with no history)
//! [[test]]
//! name = "curl reads the role's credentials"
//! events = '''
//! {"@timestamp": "2026-05-01T10:00:00Z", "event": {"category": "network"}, ...}
//! '''                                  # NDJSON, or `events_file = "fixtures/tp.ndjson"`
//! alerts = 1                           # how many alerts the rule must raise
//! [[test.expect]]                      # field values of the 1st alert (a subset is checked)
//! "process.name" = "curl"
//! ```
//!
//! [`run_test`] runs one test and returns a [`Outcome`]: pass, fail with a readable diff, or an
//! error naming what could not run (a malformed event line, a rule that does not compile). This
//! crate does no I/O: callers read the sidecar and the events files.

use imdsguard_ecs::{Event, FieldTable, Provenance};
use imdsguard_engine::history::MemoryHistory;
use imdsguard_engine::{compile_rule, Hunt};
use imdsguard_rules::Rule;
use serde_json::Value;
use std::sync::Arc;

/// A parsed sidecar.
#[derive(Debug, Clone, PartialEq)]
pub struct Sidecar {
    pub tests: Vec<TestCase>,
}

/// Where a test's events come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Events {
    Inline(String),
    File(String),
}

/// One test of a sidecar.
#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    pub name: String,
    /// Detection time, epoch ms.
    pub now_millis: i64,
    pub events: Events,
    pub alerts: usize,
    /// Per alert (in order), the expected field values.
    pub expect: Vec<Vec<(String, Value)>>,
}

fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}

fn parse_time(s: &str, what: &str) -> Result<i64, String> {
    imdsguard_ecs::time::parse_date(s).ok_or_else(|| format!("{what}: `{s}` is not a date (use RFC 3339, like 2026-05-03T00:00:00Z)"))
}

/// Parse a sidecar's text. Errors name the test and the key.
pub fn parse_sidecar(text: &str) -> Result<Sidecar, String> {
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| format!("TOML syntax error: {}", e.message().trim()))?;
    let default_now = match doc.get("now") {
        Some(toml::Value::String(s)) => Some(parse_time(s, "now")?),
        Some(toml::Value::Datetime(d)) => Some(parse_time(&d.to_string(), "now")?),
        Some(_) => return Err("`now` must be a date string".into()),
        None => None,
    };
    let tests = match doc.get("test") {
        Some(toml::Value::Array(a)) => a,
        _ => return Err("no [[test]] tables".into()),
    };
    let mut out = Vec::new();
    for (i, t) in tests.iter().enumerate() {
        let t = t.as_table().ok_or_else(|| format!("test {}: not a table", i + 1))?;
        let name = t.get("name").and_then(toml::Value::as_str).map(str::to_string).unwrap_or_else(|| format!("test {}", i + 1));
        let now_millis = match t.get("now") {
            Some(toml::Value::String(s)) => parse_time(s, &format!("{name}: now"))?,
            Some(toml::Value::Datetime(d)) => parse_time(&d.to_string(), &format!("{name}: now"))?,
            Some(_) => return Err(format!("{name}: `now` must be a date string")),
            None => default_now.ok_or_else(|| format!("{name}: no `now` (set it at the top of the file or in the test)"))?,
        };
        let events = match (t.get("events").and_then(toml::Value::as_str), t.get("events_file").and_then(toml::Value::as_str)) {
            (Some(e), None) => Events::Inline(e.to_string()),
            (None, Some(f)) => Events::File(f.to_string()),
            (Some(_), Some(_)) => return Err(format!("{name}: give `events` or `events_file`, not both")),
            (None, None) => return Err(format!("{name}: no `events` or `events_file`")),
        };
        let alerts = match t.get("alerts").and_then(toml::Value::as_integer) {
            Some(n) if n >= 0 => n as usize,
            _ => return Err(format!("{name}: `alerts` (the expected number of alerts) is required")),
        };
        let mut expect = Vec::new();
        if let Some(e) = t.get("expect") {
            let arr = e.as_array().ok_or_else(|| format!("{name}: `expect` must be an array of tables ([[test.expect]])"))?;
            for (j, x) in arr.iter().enumerate() {
                let tbl = x.as_table().ok_or_else(|| format!("{name}: expect {} is not a table", j + 1))?;
                expect.push(tbl.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect());
            }
        }
        if expect.len() > alerts {
            return Err(format!("{name}: {} [[test.expect]] table(s) for {alerts} expected alert(s)", expect.len()));
        }
        for k in t.keys() {
            if !["name", "now", "events", "events_file", "alerts", "expect"].contains(&k.as_str()) {
                return Err(format!("{name}: unknown key `{k}`"));
            }
        }
        out.push(TestCase { name, now_millis, events, alerts, expect });
    }
    Ok(Sidecar { tests: out })
}

/// The result of one test.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Pass { alerts: usize },
    /// What differs, one line each.
    Fail { diff: Vec<String> },
    Error { reason: String },
}

/// A field of an alert document: the literal (dotted) key first, then the nested path.
pub fn alert_field<'a>(alert: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = alert.get(path) {
        return Some(v);
    }
    let mut cur = alert;
    let mut rest = path;
    loop {
        if let Some(v) = cur.get(rest) {
            return Some(v);
        }
        // Longest prefix that is a key, then descend.
        let obj = cur.as_object()?;
        let (k, v) = obj.iter().filter(|(k, _)| rest.starts_with(k.as_str()) && rest[k.len()..].starts_with('.')).max_by_key(|(k, _)| k.len())?;
        cur = v;
        rest = &rest[k.len() + 1..];
    }
}

fn same(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        // A scalar matches an array holding exactly it (ECS fields are often one-element arrays).
        (e, Value::Array(a)) if !e.is_array() => a.len() == 1 && same(e, &a[0]),
        _ => expected == actual,
    }
}

/// Run one test of `rule` over `events_ndjson` (`origin` names it in errors).
pub fn run_test(rule: &Rule, case: &TestCase, events_ndjson: &str, origin: &str, table: &Arc<FieldTable>, builtin: bool) -> Outcome {
    run_test_explained(rule, case, events_ndjson, origin, table, builtin, false).0
}

/// [`run_test`], also returning, when `explain` is set, why each alert was raised
/// ([`imdsguard_engine::explain::explain_match`]).
pub fn run_test_explained(
    rule: &Rule,
    case: &TestCase,
    events_ndjson: &str,
    origin: &str,
    table: &Arc<FieldTable>,
    builtin: bool,
    explain: bool,
) -> (Outcome, Vec<String>) {
    run_test_rules(std::slice::from_ref(rule), std::slice::from_ref(&rule.rule_id), case, events_ndjson, origin, table, builtin, explain)
}

/// What a set of rules raised over some events.
#[derive(Debug, Clone, Default)]
pub struct Raised {
    /// The alert documents of the counted rules, in hunt order.
    pub alerts: Vec<Value>,
    /// Of those, the alerts that are not building blocks (what a Sigma regression test's
    /// `match_count` counts: one per matching event, one per correlation hit).
    pub matches: usize,
    pub explanations: Vec<String>,
}

/// Events as NDJSON lines: NDJSON as is; a JSON array or a single (pretty-printed) object is
/// split into one line per event.
pub fn events_as_ndjson(text: &str) -> String {
    let t = text.trim_start();
    if t.starts_with('[') {
        if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(t) {
            return items.iter().map(|v| format!("{v}\n")).collect();
        }
    }
    if t.starts_with('{') && t.lines().nth(1).is_some() {
        if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(t) {
            return format!("{v}\n");
        }
    }
    text.to_string()
}

/// Run `rules` (the tested ones and any they need, such as the rules a Sigma correlation
/// references) over `events_ndjson`; the alerts of the rules whose id is in `counted` are kept.
#[allow(clippy::too_many_arguments)]
pub fn raise(
    rules: &[Rule],
    counted: &[String],
    events_ndjson: &str,
    origin: &str,
    table: &Arc<FieldTable>,
    now_millis: i64,
    builtin: bool,
    explain: bool,
) -> Result<Raised, String> {
    let mut compiled = Vec::new();
    for rule in rules {
        match compile_rule(Arc::new(rule.clone()), table, now_millis) {
            Ok(c) => compiled.push(c),
            Err(d) => {
                let reasons: Vec<String> = d.iter().map(|d| format!("{}: {}", d.code, d.message)).collect();
                return Err(format!("the rule {} does not compile: {}", rule.name, reasons.join("; ")));
            }
        }
    }
    if let Some((i, reason)) = imdsguard_engine::correlate::check_references(&compiled).into_iter().next() {
        return Err(format!("the Sigma correlation {} {reason}", compiled[i].rule.name));
    }
    let mut hunt = Hunt::new(compiled);
    let origin: Arc<str> = Arc::from(origin);
    for (i, line) in events_ndjson.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let doc: sonic_rs::Value = sonic_rs::from_str(line).map_err(|e| format!("{origin}: event line {}: invalid JSON: {e}", i + 1))?;
        if !sonic_rs::JsonValueTrait::is_object(&doc) {
            return Err(format!("{origin}: event line {}: not a JSON object", i + 1));
        }
        hunt.evaluate(&Event { doc: Arc::new(doc), provenance: Provenance { origin: origin.clone(), line: i as u64 + 1 }, key: format!("{origin}:{}", i + 1), index: None });
    }
    let (matches, _, rules) = hunt.finish(&mut MemoryHistory::default()).map_err(|e| format!("history: {e}"))?;
    let kept: Vec<&imdsguard_engine::Match> = matches.iter().filter(|m| counted.contains(&rules[m.rule].rule.rule_id)).collect();
    Ok(Raised {
        alerts: kept.iter().map(|m| imdsguard_alerts::alert_for_match(m, &rules[m.rule].rule, builtin, now_millis).0).collect(),
        matches: kept.iter().filter(|m| m.sequence.as_ref().is_none_or(|s| s.index.is_none())).count(),
        explanations: if explain { kept.iter().map(|m| imdsguard_engine::explain::explain_match(&rules[m.rule], m)).collect() } else { Vec::new() },
    })
}

/// Run one test of a set of rules (a Sigma file's rules and what they reference): the alerts of
/// the rules in `counted` are checked against the test's expectations.
#[allow(clippy::too_many_arguments)]
pub fn run_test_rules(
    rules: &[Rule],
    counted: &[String],
    case: &TestCase,
    events_ndjson: &str,
    origin: &str,
    table: &Arc<FieldTable>,
    builtin: bool,
    explain: bool,
) -> (Outcome, Vec<String>) {
    let raised = match raise(rules, counted, events_ndjson, origin, table, case.now_millis, builtin, explain) {
        Ok(r) => r,
        Err(reason) => return (Outcome::Error { reason }, Vec::new()),
    };
    let Raised { alerts, explanations, .. } = raised;
    let mut diff = Vec::new();
    if alerts.len() != case.alerts {
        diff.push(format!("expected {} alert(s), got {}", case.alerts, alerts.len()));
        for (i, a) in alerts.iter().enumerate() {
            let reason = alert_field(a, "kibana.alert.reason").and_then(Value::as_str).unwrap_or("");
            let line = alert_field(a, "imdsguard.provenance.line").map(Value::to_string).unwrap_or_default();
            diff.push(format!("  got alert {} (event line {line}): {reason}", i + 1));
        }
    }
    for (i, fields) in case.expect.iter().enumerate() {
        let Some(a) = alerts.get(i) else {
            diff.push(format!("alert {}: missing (expected {} field value(s))", i + 1, fields.len()));
            continue;
        };
        for (path, want) in fields {
            match alert_field(a, path) {
                Some(got) if same(want, got) => {}
                Some(got) => diff.push(format!("alert {} {path}: expected {want}, got {got}", i + 1)),
                None => diff.push(format!("alert {} {path}: expected {want}, field absent", i + 1)),
            }
        }
    }
    if diff.is_empty() {
        (Outcome::Pass { alerts: alerts.len() }, explanations)
    } else {
        (Outcome::Fail { diff }, explanations)
    }
}

/// The sidecar path of a rule file: `X.toml`, `X.json`, `X.yml` or `X.yaml` (Sigma) ->
/// `X.test.toml`.
pub fn sidecar_name(rule_file: &str) -> Option<String> {
    let stem = [".toml", ".json", ".yml", ".yaml"].iter().find_map(|ext| rule_file.strip_suffix(ext))?;
    if stem.ends_with(".test") {
        return None;
    }
    Some(format!("{stem}.test.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sidecar_errors_name_the_test_and_key() {
        let cases = [
            ("now = 3\n[[test]]\nevents = ''\nalerts = 0\n", "`now` must be a date string"),
            ("[[test]]\nname = \"a\"\nevents = ''\nalerts = 0\n", "a: no `now`"),
            ("now = \"2026-05-03T00:00:00Z\"\n[[test]]\nname = \"b\"\nalerts = 0\n", "b: no `events` or `events_file`"),
            ("now = \"2026-05-03T00:00:00Z\"\n[[test]]\nname = \"c\"\nevents = ''\n", "c: `alerts`"),
            ("now = \"2026-05-03T00:00:00Z\"\n[[test]]\nname = \"d\"\nevents = ''\nalerts = 0\nalert = 1\n", "d: unknown key `alert`"),
            ("now = \"2026-05-03T00:00:00Z\"\n[[test]]\nname = \"e\"\nevents = ''\nalerts = 0\n[[test.expect]]\nx = 1\n", "e: 1 [[test.expect]] table(s) for 0"),
            ("not toml = = \n", "TOML syntax error"),
        ];
        for (text, want) in cases {
            let e = parse_sidecar(text).expect_err(text);
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn alert_fields_by_dotted_key_or_nested_path() {
        let a = json!({"kibana.alert.rule.rule_id": "r", "process": {"name": "curl", "args": ["curl"]}, "a.b": {"c": 1}});
        assert_eq!(alert_field(&a, "kibana.alert.rule.rule_id"), Some(&json!("r")));
        assert_eq!(alert_field(&a, "process.name"), Some(&json!("curl")));
        assert_eq!(alert_field(&a, "a.b.c"), Some(&json!(1)));
        assert_eq!(alert_field(&a, "process.pid"), None);
        assert!(same(&json!("curl"), &json!(["curl"])));
        assert!(same(&json!(1), &json!(1.0)));
        assert!(!same(&json!("curl"), &json!(["curl", "x"])));
    }

    #[test]
    fn sidecar_names() {
        assert_eq!(sidecar_name("rules/x.toml").as_deref(), Some("rules/x.test.toml"));
        assert_eq!(sidecar_name("x.json").as_deref(), Some("x.test.toml"));
        assert_eq!(sidecar_name("x.test.toml"), None);
        assert_eq!(sidecar_name("sigma/x.yml").as_deref(), Some("sigma/x.test.toml"));
    }
}

#[cfg(test)]
mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        /// Arbitrary sidecar text built from TOML fragments: parsed or refused with a message.
        #[test]
        fn arbitrary_sidecars(parts in prop::collection::vec(prop::sample::select(vec![
            "now = \"2026-05-03T00:00:00Z\"\n", "now = 3\n", "[[test]]\n", "name = \"x\"\n", "events = '''\n{}\n'''\n",
            "events_file = \"f\"\n", "alerts = 1\n", "alerts = -1\n", "[[test.expect]]\n", "\"a.b\" = 1\n", "x = [1, \"a\"]\n", "]]\n", "= =\n",
        ]), 0..12)) {
            let text: String = parts.concat();
            match parse_sidecar(&text) {
                Ok(s) => prop_assert!(s.tests.iter().all(|t| t.expect.len() <= t.alerts)),
                Err(e) => prop_assert!(!e.is_empty()),
            }
        }
    }
}
