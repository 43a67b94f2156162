//! The raw-byte prefilter never changes results: hunting with it and without it gives the same
//! alerts, on events written every way JSON allows (`\uXXXX` and `\/` escapes, literal dotted keys,
//! arrays, case variations, IPv4-mapped IPv6 spellings) and for stateful (new_terms) rules,
//! case-insensitive filters and analysed text fields.

use imdsguard_ecs::FieldTable;
use imdsguard_engine::history::MemoryHistory;
use imdsguard_engine::{compile_rule, Hunt};
use imdsguard_sources::{read_stream, EventSink, ReadStats};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::Arc;

fn rules() -> Vec<imdsguard_rules::Rule> {
    let mut rules = imdsguard_rules::builtin().rules;
    let extra = [
        json!({"rule_id": "t-text", "name": "text", "description": "d", "severity": "low", "risk_score": 1, "type": "query",
               "language": "kuery", "query": "message:credentials"}),
        json!({"rule_id": "t-filter-ci", "name": "ci filter", "description": "d", "severity": "low", "risk_score": 1, "type": "query",
               "language": "kuery", "query": "event.category:network",
               "filters": [{"meta": {"negate": false}, "query": {"wildcard": {"url.path": {"value": "*Security-Credentials*", "case_insensitive": true}}}}]}),
        json!({"rule_id": "t-dotted", "name": "dotted", "description": "d", "severity": "low", "risk_score": 1, "type": "query",
               "language": "kuery", "query": "process.code_signature.trusted:true and process.name:node and user.name:\"r/oot\""}),
        json!({"rule_id": "t-path", "name": "path", "description": "d", "severity": "low", "risk_score": 1, "type": "query",
               "language": "kuery", "query": "process.executable:C\\:\\\\Users\\\\*\\\\evil.exe or url.path:/latest/meta-data/*"}),
    ];
    for r in extra {
        rules.push(imdsguard_rules::parse_json_rule(&r, "test").expect("test rule"));
    }
    rules
}

/// The built-in rules plus Sigma rules: our pack (with its correlations) and rules the prefilter
/// has no literal for (a regular expression, `neq`), so per-rule gating decides which rules run.
fn rules_with_sigma() -> Vec<imdsguard_rules::Rule> {
    let mut rules = rules();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sigma/rules");
    let mut texts: Vec<(String, String)> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "yml")).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap_or_default()))
        .collect();
    texts.sort();
    assert!(texts.len() >= 5, "the Sigma pack is in {}", dir.display());
    let net = "logsource:\n  product: linux\n  category: network_connection\n";
    texts.extend(
        [
            ("re.yml", format!("title: re\nid: s-re\n{net}detection:\n  sel:\n    Image|re: '(?i)/(curl|node)$'\n  condition: sel\nlevel: low\n")),
            ("neq.yml", format!("title: neq\nid: s-neq\n{net}detection:\n  sel:\n    DestinationPort|neq: 80\n  condition: sel\nlevel: low\n")),
            ("kw.yml", "title: kw\nid: s-kw\nlogsource:\n  product: any\ndetection:\n  keywords:\n    - 'credentials'\n  condition: keywords\nlevel: low\n".to_string()),
            ("uri.yml", "title: uri\nid: s-uri\nlogsource:\n  category: webserver\ndetection:\n  sel:\n    c-uri|startswith: '/latest/meta-data/'\n  condition: sel\nlevel: low\n".to_string()),
            (
                "corr.yml",
                "title: many re\nid: s-corr\ncorrelation:\n  type: event_count\n  rules: [s-re, s-uri]\n  group-by: [host.id]\n  timespan: 2m\n  condition:\n    gte: 2\n".to_string(),
            ),
        ]
        .map(|(f, t)| (f.to_string(), t)),
    );
    let set = imdsguard_rules::load_texts_with(texts.iter().map(|(o, t)| (o.as_str(), t.as_str())), &imdsguard_sigma::builtin_pipelines());
    let errors: Vec<_> = set.errors.iter().filter(|e| e.is_error()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    rules.extend(set.rules);
    rules
}

struct Sink<'a> {
    hunt: &'a mut Hunt,
    prefilter: bool,
}

impl EventSink for Sink<'_> {
    fn wants(&mut self, raw: &[u8]) -> bool {
        !self.prefilter || self.hunt.is_candidate(raw)
    }
    fn event(&mut self, event: imdsguard_ecs::Event) {
        self.hunt.evaluate(&event);
    }
}

fn alerts(ndjson: &[u8], prefilter: bool) -> (Alerts, u64) {
    alerts_of(rules(), ndjson, prefilter)
}

type Alerts = Vec<(String, String, Option<Vec<String>>)>;

fn alerts_of(rules: Vec<imdsguard_rules::Rule>, ndjson: &[u8], prefilter: bool) -> (Alerts, u64) {
    let table = Arc::new(FieldTable::ecs());
    let compiled = rules.into_iter().map(|r| compile_rule(Arc::new(r), &table, 0).expect("compiles")).collect();
    let mut hunt = Hunt::new(compiled);
    let mut stats = ReadStats::default();
    let origin: Arc<str> = Arc::from("t");
    read_stream(&mut std::io::Cursor::new(ndjson), &origin, &mut Sink { hunt: &mut hunt, prefilter }, &mut stats);
    let (matches, hs, rules) = hunt.finish(&mut MemoryHistory::default()).expect("finish");
    let mut out: Vec<_> =
        matches.iter().map(|m| (rules[m.rule].rule.rule_id.clone(), m.event.key.clone(), m.new_terms.clone())).collect();
    out.sort();
    (out, hs.prefiltered)
}

/// Write a JSON value, escaping string characters at random (`\uXXXX`, `\/`) as producers may.
fn write_json(v: &Value, rng: &mut u64, out: &mut String) {
    let mut next = || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    match v {
        Value::String(s) => {
            out.push('"');
            for c in s.chars() {
                let r = next() % 10;
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '/' if r < 3 => out.push_str("\\/"),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c if r == 0 && (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04X}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(it, rng, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, it)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(&Value::String(k.clone()), rng, out);
                out.push(':');
                write_json(it, rng, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn flatten(v: &Value, prefix: &str, out: &mut serde_json::Map<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(x, &key, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn event() -> impl Strategy<Value = Value> {
    let ip = prop_oneof![
        Just("169.254.169.254"),
        Just("::ffff:169.254.169.254"),
        Just("::ffff:a9fe:a9fe"),
        Just("::FFFF:A9FE:A9FE"),
        Just("0:0:0:0:0:ffff:A9fe:a9Fe"),
        Just("169.254.170.2"),
        Just("10.0.0.1"),
        Just("fd00:ec2::254"),
    ];
    let name = prop_oneof![Just("curl"), Just("CURL"), Just("node"), Just("python3.11"), Just("nginx"), Just("amazon-ssm-agent")];
    let exe = prop_oneof![
        Just("/usr/bin/curl"),
        Just("/tmp/x/curl"),
        Just("C:\\Users\\bob\\evil.exe"),
        Just("c:\\users\\bob\\evil.exe"),
        Just("/vscode/vscode-server/bin/linux-x64/1/node"),
    ];
    let path = prop_oneof![
        Just("/latest/meta-data/iam/security-credentials/role"),
        Just("/LATEST/META-DATA/IAM/SECURITY-CREDENTIALS/"),
        Just("/computeMetadata/v1/"),
        Just("/"),
    ];
    let msg = prop_oneof![Just("fetched Credentials from IMDS"), Just("nothing here"), Just("CREDENTIALS."), Just("credentials_x")];
    (ip, name, exe, path, msg, 0u8..4, any::<bool>(), 0u32..3, 0u8..3, prop_oneof![Just("root"), Just("r/oot"), Just("bob")]).prop_map(
        |(ip, name, exe, path, msg, host, trusted, port_kind, shape, user)| {
            let port = match port_kind {
                0 => json!(80),
                1 => json!("80"),
                _ => json!(8080),
            };
            let doc = json!({
                "@timestamp": format!("2026-05-01T00:0{}:00Z", host),
                "event": {"category": if shape == 2 { json!("network") } else { json!(["network"]) }, "ingested": "2026-05-01T00:00:00Z"},
                "host": {"id": format!("h{host}"), "os": {"type": if host == 3 { "macos" } else { "linux" }}},
                "process": {"name": name, "executable": exe, "code_signature": {"trusted": trusted}},
                "destination": {"ip": ip, "port": port},
                "url": {"path": path},
                "message": msg,
                "user": {"name": user},
            });
            if shape == 1 {
                let mut flat = serde_json::Map::new();
                flatten(&doc, "", &mut flat);
                Value::Object(flat)
            } else {
                doc
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prefilter_on_and_off_give_identical_alerts(events in prop::collection::vec(event(), 1..40), seed in 1u64..u64::MAX) {
        let mut rng = seed;
        let mut ndjson = String::new();
        for e in &events {
            write_json(e, &mut rng, &mut ndjson);
            ndjson.push('\n');
        }
        let (with, _) = alerts(ndjson.as_bytes(), true);
        let (without, skipped) = alerts(ndjson.as_bytes(), false);
        prop_assert_eq!(skipped, 0);
        prop_assert_eq!(with, without, "input:\n{}", ndjson);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// With Sigma rules, some without any literal: every event is parsed, and per-rule gating
    /// skips the rules whose needles are absent; the alerts (correlations included) are the same.
    #[test]
    fn per_rule_gating_with_sigma_rules_gives_identical_alerts(events in prop::collection::vec(event(), 1..40), seed in 1u64..u64::MAX) {
        let mut rng = seed;
        let mut ndjson = String::new();
        for e in &events {
            write_json(e, &mut rng, &mut ndjson);
            ndjson.push('\n');
        }
        let (with, _) = alerts_of(rules_with_sigma(), ndjson.as_bytes(), true);
        let (without, _) = alerts_of(rules_with_sigma(), ndjson.as_bytes(), false);
        prop_assert_eq!(with, without, "input:\n{}", ndjson);
    }
}

#[test]
fn sigma_rules_alert_through_the_gated_hunt() {
    let attack = json!({"@timestamp": "2026-05-01T00:00:00Z", "event": {"category": ["network"]}, "host": {"id": "h", "os": {"type": "linux"}},
        "destination": {"ip": "169.254.169.254", "port": 80}, "url": {"path": "/latest/meta-data/iam/security-credentials/r"},
        "process": {"name": "curl", "executable": "/usr/bin/curl"}});
    let benign = json!({"@timestamp": "2026-05-01T00:00:30Z", "event": {"category": ["network"]}, "host": {"id": "h", "os": {"type": "linux"}},
        "destination": {"ip": "10.0.0.1", "port": 443}, "process": {"name": "nginx", "executable": "/usr/sbin/nginx"}});
    let text = format!("{attack}\n{benign}\n{attack}\n");
    let (with, _) = alerts_of(rules_with_sigma(), text.as_bytes(), true);
    let ids: std::collections::BTreeSet<&str> = with.iter().map(|(r, _, _)| r.as_str()).collect();
    for id in ["s-neq", "s-kw", "s-corr", "7c0e5a52-2f4e-4f57-9c83-5a6f0e2b1102"] {
        assert!(ids.contains(id), "{id} alerts: {ids:?}");
    }
    // The correlation's inputs (a rule without needles and one with) feed it silently.
    assert!(!ids.contains("s-re") && !ids.contains("s-uri"), "{ids:?}");
    assert_eq!(with, alerts_of(rules_with_sigma(), text.as_bytes(), false).0);
}

#[test]
fn the_prefilter_does_skip_events_and_still_alerts() {
    let benign = json!({"event": {"category": ["network"]}, "destination": {"ip": "10.1.2.3", "port": 443}, "process": {"name": "nginx"}});
    let attack = json!({"@timestamp": "2026-05-01T00:00:00Z", "event": {"category": ["network"]}, "host": {"id": "h", "os": {"type": "linux"}},
        "destination": {"ip": "::ffff:a9fe:a9fe", "port": 80}, "process": {"name": "curl", "executable": "/usr/bin/curl"}});
    let text = format!("{benign}\n{benign}\n{attack}\n");
    let (with, skipped) = alerts(text.as_bytes(), true);
    assert_eq!(skipped, 2, "the benign events are never parsed");
    assert_eq!(with.len(), 2, "the new_terms seed and the EQL seed 002 both alert");
    assert_eq!(with, alerts(text.as_bytes(), false).0);
}
