//! Sigma rules, run natively on ECS events.
//!
//! This crate owns the Sigma side of imdsguard, without I/O:
//! - [`yaml`]: YAML (via `saphyr`) into a small tree with line numbers;
//! - [`rule`]: the rule model ([`SigmaRule`]) and parser: metadata, `logsource`, `detection`;
//! - [`condition`]: the condition language (tokenizer, parser with spans);
//! - [`modifiers`]: every value modifier of the Sigma v2 specification, wildcards and escapes;
//! - [`query`]: the resolved, serializable detection tree ([`Query`]);
//! - [`pipeline`]: processing pipelines (pySigma's YAML format, a subset) mapping log sources and
//!   field names to ECS; the built-in ones are embedded from `pipelines/`;
//! - [`lower`]: compilation to the engine's IR ([`imdsguard_ir::Expr`]) plus the few
//!   Sigma-only leaves (regex, field references, timestamp parts, keywords, literal lists run as
//!   one Aho-Corasick pass): [`SigmaMatcher`];
//! - [`correlation`]: correlation rules (event_count, value_count, temporal, temporal_ordered,
//!   value_sum/avg/min/max) and a streaming evaluator with bounded state (run by the engine's
//!   `correlate` module);
//! - [`regression`]: SigmaHQ's regression-test `info.yml` (rule ids, data files, match counts);
//! - [`export`]: single-event EQL and IR (KQL) detections written out as Sigma YAML.
//!
//! Rules that cannot run load with a per-rule [`SigmaError`] whose [`ErrorKind`] says whether
//! the rule is invalid or uses something not supported (correlations, v1 aggregations, ...).
//! The built-in Sigma pack (our metadata-service detections) is [`BUILTIN_RULES`].

pub mod condition;
pub mod correlation;
pub mod export;
pub mod lower;
pub mod modifiers;
pub mod pipeline;
pub mod query;
pub mod regression;
pub mod rule;
pub mod yaml;

pub use lower::{lower, SigmaMatcher};
pub use pipeline::{apply, builtin_pipelines, Pipeline, Resolved, BUILTIN_PIPELINES};
pub use query::{Leaf, Query, Test};
pub use rule::{looks_like_sigma, parse_document, parse_documents, parse_rule, ErrorKind, LogSource, SigmaDocument, SigmaError, SigmaRule};

/// Sigma level to Kibana severity and risk score (informational and low are `low`).
pub fn severity_of(level: Option<&str>) -> (&'static str, u32) {
    match level.map(str::to_ascii_lowercase).as_deref() {
        Some("critical") => ("critical", 99),
        Some("high") => ("high", 73),
        Some("medium") => ("medium", 47),
        _ => ("low", 21),
    }
}

/// ATT&CK tactic ids by the tag names Sigma uses (`attack.credential-access`).
pub const TACTICS: &[(&str, &str, &str)] = &[
    ("reconnaissance", "TA0043", "Reconnaissance"),
    ("resource-development", "TA0042", "Resource Development"),
    ("initial-access", "TA0001", "Initial Access"),
    ("execution", "TA0002", "Execution"),
    ("persistence", "TA0003", "Persistence"),
    ("privilege-escalation", "TA0004", "Privilege Escalation"),
    ("defense-evasion", "TA0005", "Defense Evasion"),
    ("credential-access", "TA0006", "Credential Access"),
    ("discovery", "TA0007", "Discovery"),
    ("lateral-movement", "TA0008", "Lateral Movement"),
    ("collection", "TA0009", "Collection"),
    ("command-and-control", "TA0011", "Command and Control"),
    ("exfiltration", "TA0010", "Exfiltration"),
    ("impact", "TA0040", "Impact"),
];

/// The `attack.*` tags of a rule split into tactic names (`credential-access`) and technique ids
/// (`T1552.005`), in order.
pub fn attack_tags(tags: &[String]) -> (Vec<String>, Vec<String>) {
    let mut tactics = Vec::new();
    let mut techniques = Vec::new();
    for t in tags {
        let Some(rest) = t.strip_prefix("attack.") else { continue };
        let lower = rest.to_ascii_lowercase();
        if lower.starts_with('t') && lower[1..].chars().next().is_some_and(|c| c.is_ascii_digit()) {
            techniques.push(rest.to_ascii_uppercase());
        } else if TACTICS.iter().any(|(n, _, _)| *n == lower) {
            tactics.push(lower);
        }
    }
    (tactics, techniques)
}

/// Our Sigma pack: `(file name, YAML)`, embedded from `rules/`.
pub const BUILTIN_RULES: &[(&str, &str)] = &[
    ("imds_aws_imdsv1_use.yml", include_str!("../rules/imds_aws_imdsv1_use.yml")),
    ("imds_http_credential_path_request.yml", include_str!("../rules/imds_http_credential_path_request.yml")),
    ("imds_net_connection_lnx_metadata_endpoint.yml", include_str!("../rules/imds_net_connection_lnx_metadata_endpoint.yml")),
    ("imds_proc_creation_lnx_metadata_api_cmdline.yml", include_str!("../rules/imds_proc_creation_lnx_metadata_api_cmdline.yml")),
];
