//! detection-rules TOML files: `[metadata]`, `[rule]`, optional `[transform]`.

use std::collections::HashMap;

use imdsguard_syntax::{Diagnostic, Span};
use serde_json::{Map, Number, Value};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::build::{build_rule, kind, RawRule, SpanSource, BAD_VALUE, MISSING};
use crate::model::Rule;

/// TOML syntax error.
pub(crate) const TOML_SYNTAX: &str = "R001";

/// Parses one detection-rules TOML file.
///
/// Errors: `R001` for TOML syntax (span and message from the `toml` crate), `R002` for a missing
/// required key (span: the `[rule]` header), `R003` for a wrong value (span: the value).
pub fn parse_toml_rule(text: &str, origin: &str) -> Result<Rule, Vec<Diagnostic>> {
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let mut d = Diagnostic::error(TOML_SYNTAX, format!("TOML syntax error: {}", e.message().trim()));
            if let Some(r) = e.span() {
                d = d.with_span(Span::new(r.start, r.end)).with_label(first_line(e.message()));
            }
            return Err(vec![d]);
        }
    };
    let doc = doc.into_inner();
    let mut spans = HashMap::new();
    let mut rule = None;
    let mut metadata = Map::new();
    let mut transform = None;
    let mut rule_key_span = None;
    let mut meta_key_span = None;
    let mut diags = Vec::new();
    for (key, value) in doc.iter() {
        let k: &str = key.get_ref();
        let converted = convert(value, k, &mut spans);
        match k {
            "rule" => {
                rule_key_span = Some(key.span());
                match converted {
                    Value::Object(o) => rule = Some(o),
                    other => diags.push(
                        Diagnostic::error(
                            BAD_VALUE,
                            format!("invalid `rule`: expected a table, found {}", kind(&other)),
                        )
                        .with_span(to_span(value)),
                    ),
                }
            }
            "metadata" => {
                meta_key_span = Some(key.span());
                match converted {
                    Value::Object(o) => metadata = o,
                    other => diags.push(
                        Diagnostic::error(
                            BAD_VALUE,
                            format!("invalid `metadata`: expected a table, found {}", kind(&other)),
                        )
                        .with_span(to_span(value)),
                    ),
                }
            }
            "transform" => transform = Some(converted),
            _ => {
                // Unknown top-level tables are kept with the metadata, never an error.
                metadata.insert(format!("@{k}"), converted);
            }
        }
    }
    let rule_header = header_span(text, "rule").or(rule_key_span.map(|r| Span::new(r.start, r.end)));
    let meta_header = header_span(text, "metadata").or(meta_key_span.map(|r| Span::new(r.start, r.end)));
    let Some(rule) = rule else {
        if diags.is_empty() {
            let mut d = Diagnostic::error(MISSING, "missing required table `[rule]`");
            d = d.with_span(Span::point(0)).with_label("no `[rule]` table in this file");
            diags.push(d);
        }
        return Err(diags);
    };
    if !diags.is_empty() {
        return Err(diags);
    }
    let source = SpanSource::Toml { values: spans, rule_header, meta_header };
    build_rule(RawRule { rule, metadata, transform, summary: false }, origin, &source)
}

fn first_line(s: &str) -> String {
    s.trim().lines().next().unwrap_or("").to_owned()
}

fn to_span<T>(v: &Spanned<T>) -> Span {
    let r = v.span();
    Span::new(r.start, r.end)
}

/// Span of a `[name]` header line, by looking for it in the text.
fn header_span(text: &str, name: &str) -> Option<Span> {
    let header = format!("[{name}]");
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed == header || trimmed.starts_with(&format!("{header} ")) || trimmed.starts_with(&format!("{header}#"))
        {
            let lead = line.len() - line.trim_start().len();
            return Some(Span::new(offset + lead, offset + lead + header.len()));
        }
        offset += line.len();
    }
    None
}

/// Converts a TOML value to JSON, recording the span of every value under its dotted path.
fn convert(v: &Spanned<DeValue<'_>>, path: &str, spans: &mut HashMap<String, Span>) -> Value {
    spans.insert(path.to_owned(), to_span(v));
    match v.get_ref() {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Value::Number(n.into()),
            Err(_) => match u64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Value::Number(n.into()),
                Err(_) => Value::String(i.to_string()),
            },
        },
        DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Value::Number(n),
            None => Value::String(f.as_str().to_owned()),
        },
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Array(a) => {
            Value::Array(a.iter().enumerate().map(|(i, item)| convert(item, &format!("{path}.{i}"), spans)).collect())
        }
        DeValue::Table(t) => table_to_json(t, path, spans),
    }
}

fn table_to_json(t: &DeTable<'_>, path: &str, spans: &mut HashMap<String, Span>) -> Value {
    let mut out = Map::new();
    for (k, v) in t.iter() {
        let key: &str = k.get_ref();
        let child = format!("{path}.{key}");
        let value = convert(v, &child, spans);
        out.insert(key.to_owned(), value);
    }
    Value::Object(out)
}
