//! imdsguard's own metadata-service rules (issue 4), each with true-positive and true-negative
//! events shaped as the capture decoder writes them.

use imdsguard_ecs::{Event, FieldTable, Provenance};
use imdsguard_engine::history::MemoryHistory;
use imdsguard_engine::{compile_rule, Hunt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

fn alerts_per_rule(events: &[Value]) -> HashMap<String, usize> {
    let table = Arc::new(FieldTable::ecs());
    let rules = imdsguard_rules::builtin().rules.into_iter().map(|r| compile_rule(Arc::new(r), &table, 0).expect("compiles")).collect();
    let mut hunt = Hunt::new(rules);
    for (i, e) in events.iter().enumerate() {
        let ev = Event {
            doc: Arc::new(sonic_rs::from_str(&e.to_string()).expect("json")),
            provenance: Provenance { origin: Arc::from("t"), line: i as u64 + 1 },
            key: format!("k{i}"),
            index: None,
        };
        hunt.evaluate(&ev);
    }
    let (matches, _, rules) = hunt.finish(&mut MemoryHistory::default()).expect("finish");
    let mut out = HashMap::new();
    for m in matches {
        *out.entry(rules[m.rule].rule.rule_id.clone()).or_insert(0) += 1;
    }
    out
}

fn http(ts: &str, dst: &str, method: &str, path: &str, imds: Value) -> Value {
    json!({
        "@timestamp": ts,
        "event": {"module": "network_traffic", "dataset": "network_traffic.http", "category": ["network"], "type": ["connection", "protocol"]},
        "source": {"ip": "10.0.0.5", "port": 40000},
        "destination": {"ip": dst, "port": 80},
        "http": {"request": {"method": method}},
        "url": {"path": path},
        "imds": imds,
    })
}

const OTHER_CLOUDS: &str = "7a2d3b45-9e4f-4c6b-8d8f-2e3f4a5b6c71";
const FORWARDED: &str = "8b3e4c56-af50-4d7c-9e90-3f4a5b6c7d82";
const IPV6: &str = "9c4f5d67-b061-4e8d-af01-4a5b6c7d8e93";
const FALLBACK: &str = "ad50e678-c172-4f9e-b012-5b6c7d8e9fa4";

fn count(a: &HashMap<String, usize>, id: &str) -> usize {
    a.get(id).copied().unwrap_or(0)
}

#[test]
fn credential_requests_on_other_clouds() {
    let gcp = http("2026-05-01T10:00:00Z", "169.254.169.254", "GET", "/computeMetadata/v1/instance/service-accounts/default/token",
        json!({"cloud_provider": "gcp", "credentials_request": true, "forwarded": false}));
    let azure = http("2026-05-01T10:00:01Z", "169.254.169.254", "GET", "/metadata/identity/oauth2/token",
        json!({"cloud_provider": "azure", "credentials_request": true, "forwarded": false}));
    let gcp_instance = http("2026-05-01T10:00:02Z", "169.254.169.254", "GET", "/computeMetadata/v1/instance/id",
        json!({"cloud_provider": "gcp", "credentials_request": false, "forwarded": false}));
    let aws = http("2026-05-01T10:00:03Z", "169.254.169.254", "GET", "/latest/meta-data/iam/security-credentials/r",
        json!({"cloud_provider": "aws", "credentials_request": true, "forwarded": false, "aws": {"is_imds_v2": true, "token_request": false}}));
    let a = alerts_per_rule(&[gcp, azure, gcp_instance, aws]);
    assert_eq!(count(&a, OTHER_CLOUDS), 2, "{a:?}");
}

#[test]
fn forwarded_token_request_and_ipv6() {
    let fwd = http("2026-05-01T10:00:00Z", "169.254.169.254", "PUT", "/latest/api/token",
        json!({"cloud_provider": "aws", "credentials_request": false, "forwarded": true, "aws": {"is_imds_v2": false, "token_request": true}}));
    let plain = http("2026-05-01T10:00:01Z", "169.254.169.254", "PUT", "/latest/api/token",
        json!({"cloud_provider": "aws", "credentials_request": false, "forwarded": false, "aws": {"is_imds_v2": false, "token_request": true}}));
    let v6 = http("2026-05-01T10:00:02Z", "fd00:ec2::254", "GET", "/latest/meta-data/",
        json!({"cloud_provider": "aws", "credentials_request": false, "forwarded": false, "aws": {"is_imds_v2": true, "token_request": false}}));
    let a = alerts_per_rule(&[fwd, plain, v6]);
    assert_eq!(count(&a, FORWARDED), 1, "{a:?}");
    assert_eq!(count(&a, IPV6), 1, "{a:?}");
}

#[test]
fn hop_limit_fallback_is_a_token_put_then_tokenless_requests() {
    let put = |ts: &str| http(ts, "169.254.169.254", "PUT", "/latest/api/token",
        json!({"cloud_provider": "aws", "credentials_request": false, "forwarded": false, "aws": {"is_imds_v2": false, "token_request": true}}));
    let v1 = |ts: &str| http(ts, "169.254.169.254", "GET", "/latest/meta-data/iam/security-credentials/r",
        json!({"cloud_provider": "aws", "credentials_request": true, "forwarded": false, "aws": {"is_imds_v2": false, "token_request": false}}));
    let v2 = |ts: &str| http(ts, "169.254.169.254", "GET", "/latest/meta-data/iam/security-credentials/r",
        json!({"cloud_provider": "aws", "credentials_request": true, "forwarded": false, "aws": {"is_imds_v2": true, "token_request": false}}));
    // Fallback: PUT, then an IMDSv1 GET 2 s later -> one sequence (2 building blocks + shell).
    let a = alerts_per_rule(&[put("2026-05-01T10:00:00Z"), v1("2026-05-01T10:00:02Z")]);
    assert_eq!(count(&a, FALLBACK), 3, "{a:?}");
    // Working IMDSv2: PUT then GET with the token -> nothing.
    let a = alerts_per_rule(&[put("2026-05-01T10:00:00Z"), v2("2026-05-01T10:00:01Z")]);
    assert_eq!(count(&a, FALLBACK), 0, "{a:?}");
    // Too late: the IMDSv1 GET a minute after the PUT is not the fallback.
    let a = alerts_per_rule(&[put("2026-05-01T10:00:00Z"), v1("2026-05-01T10:01:00Z")]);
    assert_eq!(count(&a, FALLBACK), 0, "{a:?}");
}

/// The built-in pack keeps the raw-byte prefilter on: every rule yields literals to scan for.
#[test]
fn every_builtin_rule_has_prefilter_literals() {
    let table = Arc::new(FieldTable::ecs());
    let mut any = Vec::new();
    for r in imdsguard_rules::builtin().rules {
        let name = r.name.clone();
        let c = compile_rule(Arc::new(r), &table, 0).expect("compiles");
        match c.matcher.needles() {
            imdsguard_ir::literals::Needles::Any => any.push(name),
            // Scanning only for an event category would make nearly every event a candidate.
            imdsguard_ir::literals::Needles::AnyOf(n) if n.iter().all(|x| ["network", "process", "file"].contains(&x.text.as_str())) => {
                any.push(name)
            }
            _ => {}
        }
    }
    assert!(any.is_empty(), "rules without literals disable the prefilter: {any:?}");
}

/// The `imds` field set is typed (boolean, long, date, keyword) as its documented mapping types
/// it, so queries over decoded events behave as they would in Elasticsearch with that mapping.
#[test]
fn imds_fields_have_their_mapping_semantics() {
    let table = Arc::new(FieldTable::ecs());
    let matches = |query: &str, imds: Value| -> bool {
        let rule = imdsguard_rules::parse_json_rule(
            &json!({"rule_id": "t", "name": "t", "description": "d", "severity": "low", "risk_score": 21,
                    "type": "query", "language": "kuery", "query": query}),
            "test",
        )
        .expect("rule");
        let mut hunt = Hunt::new(vec![compile_rule(Arc::new(rule), &table, 0).expect("compiles")]);
        let doc = http("2026-05-01T10:00:00Z", "169.254.169.254", "GET", "/latest/meta-data/", imds);
        hunt.evaluate(&Event {
            doc: Arc::new(sonic_rs::from_str(&doc.to_string()).expect("json")),
            provenance: Provenance { origin: Arc::from("t"), line: 1 },
            key: "k".into(),
            index: None,
        });
        !hunt.finish(&mut MemoryHistory::default()).expect("finish").0.is_empty()
    };
    let imds = json!({"cloud_provider": "aws", "credentials_request": true, "forwarded": false,
        "aws": {"is_imds_v2": false, "token_request": false, "token_ttl_seconds": 21600},
        "credentials": {"type": "AWS-HMAC", "expiration": "2026-05-01T16:00:00Z", "role": "web-role", "returned": true}});
    let cases: &[(&str, bool)] = &[
        // boolean: JSON false matches `false` and "false"; not a keyword, so no wildcard on it.
        ("imds.aws.is_imds_v2: false", true),
        ("imds.aws.is_imds_v2: \"false\"", true),
        ("imds.aws.is_imds_v2: true", false),
        ("not imds.aws.is_imds_v2: true", true),
        // long: numeric ranges, not string order ("21600" < "300" as strings).
        ("imds.aws.token_ttl_seconds >= 300", true),
        ("imds.aws.token_ttl_seconds < 300", false),
        // date: date math and ranges on the expiration.
        ("imds.credentials.expiration < \"2026-05-02\"", true),
        ("imds.credentials.expiration >= \"2026-05-01T16:00:01Z\"", false),
        // keyword: exact, case-sensitive, wildcards.
        ("imds.credentials.role: web-*", true),
        ("imds.cloud_provider: AWS", false),
    ];
    for (query, want) in cases {
        assert_eq!(matches(query, imds.clone()), *want, "{query}");
    }
    assert_eq!(table.get("imds.credentials.expiration"), Some(imdsguard_ecs::FieldType::Date));
}
