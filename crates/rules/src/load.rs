//! Loading batches of rule texts into a [`RuleSet`], and the embedded built-in pack.

use std::collections::HashMap;

use imdsguard_syntax::{Diagnostic, Span};
use serde_json::Value;

use crate::build::{json_key_value_span, SpanSource};
use crate::json_rule::{json_syntax, parse_json_rule_in, parse_ndjson_rules};
use crate::model::Rule;
use crate::toml_rule::parse_toml_rule;

/// Duplicate `rule_id` (warning; the later rule wins).
pub(crate) const DUPLICATE: &str = "R004";
/// Unsupported file extension.
pub(crate) const UNSUPPORTED: &str = "R005";

/// Problems found in one input (a file, or one line of an NDJSON file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// Where: the file's origin, or `<origin>:<line>` for an NDJSON line, or `<origin>[<i>]` for an
    /// element of a JSON array.
    pub origin: String,
    /// The file's origin (what to show in the ` --> file:line:col` of a rendering).
    pub file: String,
    /// The whole text of the file; diagnostic spans are byte offsets into it.
    pub source: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl LoadError {
    /// Whether any diagnostic is an error (not just a warning).
    pub fn is_error(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Every diagnostic rendered with carets (see [`Diagnostic::render`]).
    pub fn render(&self) -> String {
        self.diagnostics.iter().map(|d| d.render(&self.source, &self.file)).collect()
    }
}

/// The outcome of loading a batch: every rule that loaded and every problem found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// Errors (rules that did not load) and warnings (duplicate `rule_id`s), in input order.
    pub errors: Vec<LoadError>,
}

impl RuleSet {
    /// The rule with this `rule_id`.
    pub fn get(&self, rule_id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.rule_id == rule_id)
    }

    /// Entries of [`RuleSet::errors`] that hold at least one error, not only warnings.
    pub fn hard_errors(&self) -> impl Iterator<Item = &LoadError> {
        self.errors.iter().filter(|e| e.is_error())
    }

    /// All problems rendered with carets, one after the other.
    pub fn render_errors(&self) -> String {
        self.errors.iter().map(LoadError::render).collect::<Vec<_>>().join("\n")
    }
}

fn extension(origin: &str) -> String {
    let name = origin.rsplit(['/', '\\']).next().unwrap_or(origin);
    match name.rfind('.') {
        Some(i) => name[i + 1..].to_ascii_lowercase(),
        None => String::new(),
    }
}

/// Loads a batch of `(origin, text)` pairs, dispatching on the origin's extension: `.toml`
/// (detection-rules file), `.json` (one rule object, or an array of them), `.ndjson` / `.jsonl`
/// (one rule per line). Never stops at the first bad rule. When two rules share a `rule_id`, the
/// later one replaces the earlier (keeping its position) and a warning `R004` is reported.
pub fn load_texts<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>) -> RuleSet {
    load_texts_with(items, &imdsguard_sigma::builtin_pipelines())
}

/// [`load_texts`] with the Sigma processing pipelines to apply to `.yml` / `.yaml` Sigma rules
/// (see [`crate::sigma_rule`]).
pub fn load_texts_with<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>, pipelines: &[imdsguard_sigma::Pipeline]) -> RuleSet {
    let mut set = RuleSet::default();
    // Per loaded rule, the (file origin, text) it came from, for duplicate warnings.
    let mut sources: Vec<(&'a str, &'a str)> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();

    let mut add = |set: &mut RuleSet,
                   sources: &mut Vec<(&'a str, &'a str)>,
                   rule: Rule,
                   file: &'a str,
                   text: &'a str| {
        if let Some(&i) = by_id.get(&rule.rule_id) {
            let earlier = set.rules.get(i).map(|r| r.origin.clone()).unwrap_or_default();
            let mut d = Diagnostic::warning(
                DUPLICATE,
                format!("duplicate rule_id {} (also defined in {earlier}); this later definition wins", rule.rule_id),
            );
            if let Some(s) = find_value(text, &rule.rule_id) {
                d = d.with_span(s).with_label("duplicate rule_id");
            }
            set.errors.push(LoadError {
                origin: rule.origin.clone(),
                file: file.to_owned(),
                source: text.to_owned(),
                diagnostics: vec![d],
            });
            if let (Some(slot), Some(src)) = (set.rules.get_mut(i), sources.get_mut(i)) {
                *slot = rule;
                *src = (file, text);
            }
        } else {
            by_id.insert(rule.rule_id.clone(), set.rules.len());
            set.rules.push(rule);
            sources.push((file, text));
        }
    };

    for (origin, text) in items {
        let fail = |o: String, diagnostics: Vec<Diagnostic>| LoadError {
            origin: o,
            file: origin.to_owned(),
            source: text.to_owned(),
            diagnostics,
        };
        match extension(origin).as_str() {
            "toml" => match parse_toml_rule(text, origin) {
                Ok(r) => add(&mut set, &mut sources, r, origin, text),
                Err(d) => set.errors.push(fail(origin.to_owned(), d)),
            },
            "ndjson" | "jsonl" => {
                let (rules, errors) = parse_ndjson_rules(text, origin);
                for r in rules {
                    add(&mut set, &mut sources, r, origin, text);
                }
                for (o, d) in errors {
                    set.errors.push(fail(o, d));
                }
            }
            "json" => match serde_json::from_str::<Value>(text) {
                Err(e) => set.errors.push(fail(origin.to_owned(), vec![json_syntax(text, &e, 0)])),
                Ok(Value::Array(items)) => {
                    for (i, v) in items.iter().enumerate() {
                        let o = format!("{origin}[{i}]");
                        match parse_json_rule_in(v, &o, &SpanSource::None) {
                            Ok(r) => add(&mut set, &mut sources, r, origin, text),
                            Err(d) => set.errors.push(fail(o, d)),
                        }
                    }
                }
                Ok(v) => match parse_json_rule_in(&v, origin, &SpanSource::JsonText { text, base: 0 }) {
                    Ok(r) => add(&mut set, &mut sources, r, origin, text),
                    Err(d) => set.errors.push(fail(origin.to_owned(), d)),
                },
            },
            "yml" | "yaml" => {
                for doc in crate::sigma_rule::from_sigma_file(text, origin, pipelines) {
                    match doc {
                        Ok((r, warnings)) => {
                            if !warnings.is_empty() {
                                set.errors.push(fail(origin.to_owned(), warnings));
                            }
                            add(&mut set, &mut sources, r, origin, text)
                        }
                        Err(d) => set.errors.push(fail(origin.to_owned(), d)),
                    }
                }
            }
            other => set.errors.push(fail(
                origin.to_owned(),
                vec![Diagnostic::error(UNSUPPORTED, format!("unsupported rule file extension {other:?}"))
                    .with_help("rule files must end in .toml, .json, .ndjson, .jsonl, or .yml / .yaml (Sigma)")],
            )),
        }
    }
    set
}

/// Span of the `rule_id` value in a TOML or JSON text, for the duplicate warning.
fn find_value(text: &str, rule_id: &str) -> Option<Span> {
    if let Some(s) = json_key_value_span(text, "rule_id") {
        if text.get(s.start..s.end).is_some_and(|v| v.contains(rule_id)) {
            return Some(s);
        }
    }
    let quoted = format!("\"{rule_id}\"");
    let at = text.find(&quoted).or_else(|| text.find(&format!("'{rule_id}'")))?;
    Some(Span::new(at, at + quoted.len()))
}

/// The files of the built-in pack: `(file name, text)`, embedded at build time.
/// The fixtures of the built-in rules (`<rule>.test.toml` sidecars, see `imdsguard-ruletest`),
/// by rule file name.
pub const BUILTIN_TESTS: &[(&str, &str)] = &[
    ("credential_access_cloud_imds_credential_http_request.toml", include_str!("../builtin/credential_access_cloud_imds_credential_http_request.test.toml")),
    ("credential_access_detect_cloud_instance_metadata_api.toml", include_str!("../builtin/credential_access_detect_cloud_instance_metadata_api.test.toml")),
    ("credential_access_suspicious_instance_metadata_service_api_request.toml", include_str!("../builtin/credential_access_suspicious_instance_metadata_service_api_request.test.toml")),
    ("imdsguard_aws_imdsv1_should_not_be_used.toml", include_str!("../builtin/imdsguard_aws_imdsv1_should_not_be_used.test.toml")),
    ("imdsguard_aws_ipv6_metadata_endpoint.toml", include_str!("../builtin/imdsguard_aws_ipv6_metadata_endpoint.test.toml")),
    ("imdsguard_imdsv2_hop_limit_fallback.toml", include_str!("../builtin/imdsguard_imdsv2_hop_limit_fallback.test.toml")),
    ("imdsguard_imdsv2_token_request_forwarded.toml", include_str!("../builtin/imdsguard_imdsv2_token_request_forwarded.test.toml")),
    ("imdsguard_metadata_credential_request_other_clouds.toml", include_str!("../builtin/imdsguard_metadata_credential_request_other_clouds.test.toml")),
];

pub const BUILTIN_FILES: &[(&str, &str)] = &[
    (
        "credential_access_suspicious_instance_metadata_service_api_request.toml",
        include_str!("../builtin/credential_access_suspicious_instance_metadata_service_api_request.toml"),
    ),
    (
        "credential_access_cloud_imds_credential_http_request.toml",
        include_str!("../builtin/credential_access_cloud_imds_credential_http_request.toml"),
    ),
    (
        "credential_access_detect_cloud_instance_metadata_api.toml",
        include_str!("../builtin/credential_access_detect_cloud_instance_metadata_api.toml"),
    ),
    ("imdsguard_aws_imdsv1_should_not_be_used.toml", include_str!("../builtin/imdsguard_aws_imdsv1_should_not_be_used.toml")),
    (
        "imdsguard_metadata_credential_request_other_clouds.toml",
        include_str!("../builtin/imdsguard_metadata_credential_request_other_clouds.toml"),
    ),
    ("imdsguard_imdsv2_token_request_forwarded.toml", include_str!("../builtin/imdsguard_imdsv2_token_request_forwarded.toml")),
    ("imdsguard_aws_ipv6_metadata_endpoint.toml", include_str!("../builtin/imdsguard_aws_ipv6_metadata_endpoint.toml")),
    ("imdsguard_imdsv2_hop_limit_fallback.toml", include_str!("../builtin/imdsguard_imdsv2_hop_limit_fallback.toml")),
];

/// Loads the embedded built-in pack (see `builtin/README.md`); origins are `builtin:<file>`.
pub fn builtin() -> RuleSet {
    let named: Vec<(String, &str)> = BUILTIN_FILES.iter().map(|(f, t)| (format!("builtin:{f}"), *t)).collect();
    load_texts(named.iter().map(|(o, t)| (o.as_str(), *t)))
}
