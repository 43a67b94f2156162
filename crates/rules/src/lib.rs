//! Elastic detection rules: the model and a pure loader.
//!
//! imdsguard runs Elastic's prebuilt detection rules (from the public `elastic/detection-rules`
//! repository) verbatim. This crate reads them, in either of the forms they are published in:
//!
//! * detection-rules TOML files (`[metadata]`, `[rule]` with `[[rule.threat]]`, `[rule.new_terms]`,
//!   `[rule.threshold]`, ..., and an optional `[transform]`): [`parse_toml_rule`];
//! * JSON objects in Kibana's detection engine API / export shape, or the flattened summary shape of
//!   the corpus `rules.jsonl`: [`parse_json_rule`], and NDJSON files of them: [`parse_ndjson_rules`].
//!
//! Both become a [`Rule`]. The crate is pure: it does no I/O; callers pass `(origin, text)` pairs to
//! [`load_texts`], which never stops at the first bad rule and returns a [`RuleSet`] holding the rules
//! and a [`LoadError`] (with the source text, to render carets) per failed input.
//!
//! # Diagnostics
//!
//! | code | severity | meaning |
//! | --- | --- | --- |
//! | `R001` | error | TOML syntax error (span and message from the `toml` crate) or JSON syntax error |
//! | `R002` | error | missing required key (`rule_id`, `name`, `type`, `severity`, `risk_score`, `description`; `query` for query-language types; `new_terms_fields` and `history_window_start` for `new_terms`; `threshold` for `threshold`); span: the `[rule]` header |
//! | `R003` | error | wrong value: wrong type, unknown severity, risk score outside 0..=100, `new_terms` with 0 or more than 3 fields, a language the rule type does not accept, ...; span: the value |
//! | `R004` | warning | duplicate `rule_id` in a batch; the later definition wins |
//! | `R005` | error | unsupported file extension |
//! | `R006` | warning | [`Rule::validate_semantics`]: odd `from` / `interval` / history window |
//! | `S001` | error | Sigma rule: YAML syntax error |
//! | `S002` | error | Sigma rule: invalid (missing key, bad modifier, unknown identifier in the condition, ...) |
//! | `S003` | error | Sigma rule: valid but not supported (correlation, v1 aggregation, unsupported regex, ...) |
//! | `S004` | warning | Sigma rule: no processing pipeline maps its logsource's field names |
//!
//! Unknown keys are never an error: they are kept in [`Rule::extra`] (rule keys) or
//! [`RuleMetadata::extra`] (metadata keys; unknown top-level TOML tables appear there as `@<name>`).
//!
//! # Built-in pack
//!
//! [`builtin`] loads the rule files embedded from `builtin/` (see `builtin/README.md` for
//! provenance), currently Elastic's "Suspicious Instance Metadata Service (IMDS) API Request".
//!
//! [`exceptions`] reads Elastic exception lists (Kibana's NDJSON export) that rules reference in
//! `exceptions_list`.

mod build;
pub mod exceptions;
mod json_rule;
mod load;
mod model;
pub mod sigma_rule;
mod toml_rule;

pub use exceptions::{parse_exceptions_ndjson, ExceptionItem, ExceptionList, ExceptionSet};
pub use json_rule::{parse_json_rule, parse_ndjson_rules};
pub use load::{builtin, load_texts, load_texts_with, LoadError, RuleSet, BUILTIN_FILES, BUILTIN_TESTS};
pub use model::{
    parse_date_math_lookback, parse_duration_secs, Cardinality, NewTerms, Rule, RuleMetadata, RuleType, Severity,
    Threat, ThreatSubtechnique, ThreatTactic, ThreatTechnique, Threshold, DEFAULT_FROM, DEFAULT_INTERVAL,
    DEFAULT_MAX_SIGNALS,
};
pub use toml_rule::parse_toml_rule;

/// Re-exported so callers can render [`LoadError`] diagnostics without naming the syntax crate.
pub use imdsguard_syntax::{Diagnostic, Span};

#[cfg(test)]
mod tests;
