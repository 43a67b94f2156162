//! Rules as JSON objects: Kibana's detection engine API / export shape and the flattened summary
//! shape of the corpus `rules.jsonl`.

use imdsguard_syntax::{Diagnostic, Span};
use serde_json::{Map, Value};

use crate::build::{build_rule, kind, RawRule, SpanSource, BAD_VALUE};
use crate::model::Rule;

/// JSON syntax error (same code as TOML syntax errors, see `docs/diagnostics.md`).
pub(crate) const JSON_SYNTAX: &str = "R001";

/// Keys of the summary shape that describe the rule's file rather than the rule; they go to
/// [`crate::RuleMetadata`].
const SUMMARY_METADATA_KEYS: &[&str] =
    &["maturity", "deprecated", "building_block", "path", "source_commit", "techniques", "integration"];

/// Parses one rule from a JSON object in Kibana's API / export shape (`rule_id`, `type`,
/// `new_terms_fields`, `history_window_start`, `threshold`, `threat`, ...) or the corpus summary shape
/// (`rules.jsonl`: the same keys plus `maturity`, `deprecated`, `building_block`, `path`,
/// `techniques`, `source_commit`, and no `description` / `severity` / `risk_score`).
///
/// `null` means absent. Summary records (recognised by `source_commit` or a `techniques` array) do
/// not need `description`, `severity` or `risk_score`; when missing they become `""`, `low` and `0`,
/// and `metadata.extra["summary"]` is set to `true`. No spans are available for a bare value.
pub fn parse_json_rule(value: &Value, origin: &str) -> Result<Rule, Vec<Diagnostic>> {
    parse_json_rule_in(value, origin, &SpanSource::None)
}

pub(crate) fn parse_json_rule_in(value: &Value, origin: &str, spans: &SpanSource<'_>) -> Result<Rule, Vec<Diagnostic>> {
    let Value::Object(obj) = value else {
        let mut d = Diagnostic::error(BAD_VALUE, format!("expected a rule object, found {}", kind(value)));
        if let SpanSource::JsonText { text, base } = spans {
            let lead = text.len() - text.trim_start().len();
            d = d.with_span(Span::new(base + lead, base + text.trim_end().len()));
        }
        return Err(vec![d]);
    };
    let mut rule = obj.clone();
    let summary = rule.contains_key("source_commit") || matches!(rule.get("techniques"), Some(Value::Array(_)));
    let mut metadata = Map::new();
    if summary {
        for key in SUMMARY_METADATA_KEYS {
            if let Some(v) = rule.remove(*key) {
                metadata.insert((*key).to_owned(), v);
            }
        }
        if metadata.get("building_block") == Some(&Value::Bool(true))
            && !matches!(rule.get("building_block_type"), Some(v) if !v.is_null())
        {
            rule.insert("building_block_type".into(), Value::String("default".into()));
        }
        metadata.insert("summary".into(), Value::Bool(true));
    }
    // A nested detection-rules style `metadata` object is honoured too.
    if let Some(Value::Object(m)) = rule.remove("metadata") {
        for (k, v) in m {
            metadata.entry(k).or_insert(v);
        }
    }
    build_rule(RawRule { rule, metadata, transform: None, summary }, origin, spans)
}

/// Byte offset of serde_json's 1-based line / column within `text`.
pub(crate) fn json_error_span(text: &str, e: &serde_json::Error) -> Span {
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if i + 1 == e.line() {
            let col = e.column().saturating_sub(1).min(line.trim_end_matches('\n').len());
            let at = offset + col;
            return Span::new(at, (at + 1).min(text.len()));
        }
        offset += line.len();
    }
    let end = text.trim_end().len();
    Span::new(end.saturating_sub(1), end)
}

pub(crate) fn json_syntax(text: &str, e: &serde_json::Error, base: usize) -> Diagnostic {
    let s = json_error_span(text, e);
    Diagnostic::error(JSON_SYNTAX, format!("JSON syntax error: {e}"))
        .with_span(Span::new(s.start + base, s.end + base))
        .with_label("here")
}

/// Whether a JSON object is not a rule at all but another line of a Kibana export (the export
/// summary, an exception list or list item, an action connector).
fn is_export_noise(v: &Value) -> bool {
    let Value::Object(o) = v else { return false };
    if o.contains_key("rule_id") {
        return false;
    }
    o.contains_key("exported_count")
        || o.contains_key("exported_rules_count")
        || o.contains_key("list_id")
        || o.get("type").and_then(Value::as_str).is_some_and(|t| t == "action")
        || o.contains_key("actionTypeId")
}

/// Parses newline-delimited JSON, one rule per line (Kibana's rule export, or `rules.jsonl`).
///
/// Blank lines and the non-rule lines of a Kibana export (the export summary, exception lists) are
/// skipped. Each rule's origin is `<origin>:<line>`; failures come back with that same origin.
/// Diagnostic spans are byte offsets into the whole `text`, so render them against `text` and the
/// file name.
pub fn parse_ndjson_rules(text: &str, origin: &str) -> (Vec<Rule>, Vec<(String, Vec<Diagnostic>)>) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let base = offset;
        offset += line.len();
        if line.trim().is_empty() {
            continue;
        }
        let line_origin = format!("{origin}:{}", i + 1);
        let line = line.trim_end_matches(['\n', '\r']);
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                errors.push((line_origin, vec![json_syntax(line, &e, base)]));
                continue;
            }
        };
        if is_export_noise(&value) {
            continue;
        }
        match parse_json_rule_in(&value, &line_origin, &SpanSource::JsonText { text: line, base }) {
            Ok(r) => rules.push(r),
            Err(d) => errors.push((line_origin, d)),
        }
    }
    (rules, errors)
}
