//! The embedded built-in pack loads and carries Elastic's published values.

use imdsguard_rules::{builtin, RuleType, Severity, BUILTIN_FILES};

const IMDS_RULE_ID: &str = "ad02da2f-443d-454c-a12e-d9e6c65831ff";

#[test]
fn builtin_pack_loads_without_errors() {
    let set = builtin();
    assert!(set.errors.is_empty(), "{}", set.render_errors());
    assert_eq!(set.rules.len(), BUILTIN_FILES.len());
    for r in &set.rules {
        assert!(r.origin.starts_with("builtin:"), "{}", r.origin);
        assert!(r.validate_semantics().is_empty(), "{}: {:?}", r.origin, r.validate_semantics());
    }
}

#[test]
fn imds_rule_has_the_published_values() {
    let set = builtin();
    let r = set.get(IMDS_RULE_ID).expect("IMDS rule is in the built-in pack");
    assert_eq!(r.origin, "builtin:credential_access_suspicious_instance_metadata_service_api_request.toml");
    assert_eq!(r.name, "Suspicious Instance Metadata Service (IMDS) API Request");
    assert_eq!(r.rule_type, RuleType::NewTerms);
    assert_eq!(r.language.as_deref(), Some("kuery"));
    let nt = r.new_terms.as_ref().expect("new_terms parameters");
    assert_eq!(nt.fields, ["host.id", "process.executable"]);
    assert_eq!(nt.history_window_start, "now-7d");
    assert_eq!(r.from, "now-9m");
    assert_eq!(r.interval, "5m");
    assert_eq!(r.max_signals, 100);
    assert_eq!(r.timestamp_override.as_deref(), Some("event.ingested"));
    assert_eq!(r.severity, Severity::Medium);
    assert_eq!(r.risk_score, 47);
    assert_eq!(r.index, ["logs-endpoint.events.network-*"]);
    assert_eq!(r.author, ["Elastic"]);
    assert_eq!(r.license.as_deref(), Some("Elastic License v2"));
    assert!(r.enabled);
    assert!(r.threshold.is_none());
    assert!(r.query.as_deref().is_some_and(|q| q.contains("169.254.169.254")));
    assert_eq!(r.tactic_ids(), ["TA0006", "TA0007"]);
    assert!(r.technique_ids().iter().any(|t| t == "T1552.005"));
    let cred = &r.threat[0];
    assert_eq!(cred.framework, "MITRE ATT&CK");
    assert_eq!(cred.tactic.name, "Credential Access");
    assert_eq!(cred.technique[0].id, "T1552");
    assert_eq!(cred.technique[0].subtechnique[0].id, "T1552.005");
    assert_eq!(cred.technique[0].subtechnique[0].name, "Cloud Instance Metadata API");
    assert_eq!(r.threat[1].tactic.name, "Discovery");
    assert_eq!(r.metadata.maturity.as_deref(), Some("production"));
    assert_eq!(r.metadata.integration, ["endpoint"]);
    assert!(!r.metadata.deprecated);
    assert!(r.extra.is_empty(), "{:?}", r.extra);
}

#[test]
fn builtin_file_is_verbatim_upstream_copy() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../../../shared/corpus/elastic-rules/toml/rules/cross-platform/credential_access_suspicious_instance_metadata_service_api_request.toml",
    );
    let Ok(upstream) = std::fs::read_to_string(&path) else {
        panic!("corpus file missing: {}", path.display());
    };
    assert_eq!(BUILTIN_FILES[0].1, upstream);
}
