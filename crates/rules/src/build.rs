//! Turning a rule object (the `[rule]` table as JSON, or a Kibana JSON object) into a [`Rule`].
//!
//! Both input forms are first brought to a `serde_json::Map`; this module does the validation that
//! is common to them and reports problems as `R002` (missing key) and `R003` (bad value), with spans
//! looked up through a [`SpanSource`].

use std::collections::HashMap;

use imdsguard_syntax::{Diagnostic, Span};
use serde_json::{Map, Value};

use crate::model::*;

/// Missing required key.
pub(crate) const MISSING: &str = "R002";
/// Wrong value.
pub(crate) const BAD_VALUE: &str = "R003";

/// Where values are in the source text, by key path (`severity`, `threshold.value`, `threat.0.tactic`).
pub(crate) enum SpanSource<'a> {
    /// No source text (a `serde_json::Value` handed in directly).
    None,
    /// Exact spans collected while parsing TOML, keyed by path from the document root.
    Toml { values: HashMap<String, Span>, rule_header: Option<Span>, meta_header: Option<Span> },
    /// A JSON object's text starting at byte `base` of the whole source; top-level keys are found
    /// by searching the text.
    JsonText { text: &'a str, base: usize },
}

impl SpanSource<'_> {
    fn lookup(&self, root: &str, path: &str) -> Option<Span> {
        match self {
            SpanSource::None => None,
            SpanSource::Toml { values, .. } => {
                // Longest recorded prefix of the path.
                let mut p = format!("{root}.{path}");
                loop {
                    if let Some(s) = values.get(&p) {
                        return Some(*s);
                    }
                    match p.rfind('.') {
                        Some(i) if i > root.len() => p.truncate(i),
                        _ => return None,
                    }
                }
            }
            SpanSource::JsonText { text, base } => {
                let key = path.split('.').next().unwrap_or(path);
                json_key_value_span(text, key).map(|s| Span::new(s.start + base, s.end + base))
            }
        }
    }

    fn rule_value(&self, path: &str) -> Option<Span> {
        self.lookup("rule", path)
    }

    fn meta_value(&self, path: &str) -> Option<Span> {
        self.lookup("metadata", path)
    }

    fn rule_header(&self) -> Option<Span> {
        match self {
            SpanSource::None => None,
            SpanSource::Toml { rule_header, .. } => *rule_header,
            SpanSource::JsonText { text, base } => {
                let off = text.len() - text.trim_start().len();
                Some(Span::new(base + off, base + off + 1))
            }
        }
    }

    fn meta_header(&self) -> Option<Span> {
        match self {
            SpanSource::Toml { meta_header, .. } => *meta_header,
            _ => self.rule_header(),
        }
    }
}

/// Span of the value of the first top-level-looking `"key": value` pair in a JSON object's text.
pub(crate) fn json_key_value_span(text: &str, key: &str) -> Option<Span> {
    let needle = format!("\"{key}\"");
    let mut from = 0;
    while let Some(rel) = text.get(from..).and_then(|t| t.find(&needle)) {
        let at = from + rel;
        from = at + needle.len();
        if at > 0 && text.as_bytes().get(at - 1) == Some(&b'\\') {
            continue;
        }
        let rest = text.get(from..)?;
        let trimmed = rest.trim_start();
        let Some(after_colon) = trimmed.strip_prefix(':') else { continue };
        let value_text = after_colon.trim_start();
        let start = text.len() - value_text.len();
        let mut stream = serde_json::Deserializer::from_str(value_text).into_iter::<serde::de::IgnoredAny>();
        let end = match stream.next() {
            Some(Ok(_)) => start + stream.byte_offset(),
            _ => start + value_text.find([',', '}', '\n']).unwrap_or(value_text.len()),
        };
        return Some(Span::new(start, end.max(start)));
    }
    None
}

/// The input of [`build_rule`].
pub(crate) struct RawRule {
    /// The rule keys.
    pub rule: Map<String, Value>,
    /// The metadata keys.
    pub metadata: Map<String, Value>,
    /// The `[transform]` table.
    pub transform: Option<Value>,
    /// A summary record (the corpus `rules.jsonl` shape) that carries no description, severity or
    /// risk score: those are not required and get placeholder values.
    pub summary: bool,
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

fn take(map: &mut Map<String, Value>, key: &str) -> Option<Value> {
    match map.remove(key) {
        Some(Value::Null) | None => None,
        v => v,
    }
}

struct Builder<'s, 'a> {
    spans: &'s SpanSource<'a>,
    diags: Vec<Diagnostic>,
}

impl Builder<'_, '_> {
    fn missing(&mut self, key: &str, context: &str) {
        let mut d = Diagnostic::error(MISSING, format!("missing required key `{key}`{context}"));
        if let Some(s) = self.spans.rule_header() {
            d = d.with_span(s).with_label(format!("`{key}` expected in this rule"));
        }
        self.diags.push(d);
    }

    fn missing_in(&mut self, key: &str, within: &str) {
        let mut d = Diagnostic::error(MISSING, format!("missing required key `{within}.{key}`"));
        if let Some(s) = self.spans.rule_value(within).or_else(|| self.spans.rule_header()) {
            d = d.with_span(s).with_label(format!("`{key}` expected here"));
        }
        self.diags.push(d);
    }

    fn bad(&mut self, path: &str, msg: impl Into<String>) {
        let msg = msg.into();
        let mut d = Diagnostic::error(BAD_VALUE, format!("invalid `{path}`: {msg}"));
        if let Some(s) = self.spans.rule_value(path).or_else(|| self.spans.rule_header()) {
            d = d.with_span(s).with_label(msg);
        }
        self.diags.push(d);
    }

    fn bad_meta(&mut self, path: &str, msg: impl Into<String>) {
        let msg = msg.into();
        let mut d = Diagnostic::error(BAD_VALUE, format!("invalid `metadata.{path}`: {msg}"));
        if let Some(s) = self.spans.meta_value(path).or_else(|| self.spans.meta_header()) {
            d = d.with_span(s).with_label(msg);
        }
        self.diags.push(d);
    }

    fn string(&mut self, v: Value, path: &str) -> Option<String> {
        match v {
            Value::String(s) => Some(s),
            other => {
                self.bad(path, format!("expected a string, found {}", kind(&other)));
                None
            }
        }
    }

    fn req_string(&mut self, map: &mut Map<String, Value>, key: &str) -> Option<String> {
        match take(map, key) {
            None => {
                self.missing(key, "");
                None
            }
            Some(v) => self.string(v, key),
        }
    }

    fn req_nonempty(&mut self, map: &mut Map<String, Value>, key: &str) -> Option<String> {
        let s = self.req_string(map, key)?;
        if s.trim().is_empty() {
            self.bad(key, "must not be empty");
            return None;
        }
        Some(s)
    }

    fn opt_string(&mut self, map: &mut Map<String, Value>, key: &str) -> Option<String> {
        take(map, key).and_then(|v| self.string(v, key))
    }

    fn string_list_value(&mut self, v: Value, path: &str) -> Vec<String> {
        match v {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    if let Some(s) = self.string(item, &format!("{path}.{i}")) {
                        out.push(s);
                    }
                }
                out
            }
            other => {
                self.bad(path, format!("expected an array of strings, found {}", kind(&other)));
                Vec::new()
            }
        }
    }

    fn string_list(&mut self, map: &mut Map<String, Value>, key: &str) -> Vec<String> {
        match take(map, key) {
            None => Vec::new(),
            Some(v) => self.string_list_value(v, key),
        }
    }

    fn uint(&mut self, v: &Value, path: &str, min: u64, max: u64) -> Option<u64> {
        let n = match v {
            Value::Number(n) => n,
            other => {
                self.bad(path, format!("expected an integer, found {}", kind(other)));
                return None;
            }
        };
        match n.as_u64() {
            Some(x) if (min..=max).contains(&x) => Some(x),
            _ if n.is_f64() => {
                self.bad(path, format!("expected an integer, found {n}"));
                None
            }
            _ => {
                let range = if max == u64::MAX { format!("at least {min}") } else { format!("in {min}..={max}") };
                self.bad(path, format!("{n} is out of range: must be {range}"));
                None
            }
        }
    }

    fn opt_u32(&mut self, map: &mut Map<String, Value>, key: &str, min: u32) -> Option<u32> {
        let v = take(map, key)?;
        self.uint(&v, key, u64::from(min), u64::from(u32::MAX)).and_then(|x| u32::try_from(x).ok())
    }

    fn bool(&mut self, map: &mut Map<String, Value>, key: &str) -> Option<bool> {
        match take(map, key)? {
            Value::Bool(b) => Some(b),
            other => {
                self.bad(key, format!("expected a boolean, found {}", kind(&other)));
                None
            }
        }
    }

    fn object(&mut self, v: Value, path: &str) -> Option<Map<String, Value>> {
        match v {
            Value::Object(o) => Some(o),
            other => {
                self.bad(path, format!("expected a table, found {}", kind(&other)));
                None
            }
        }
    }

    fn field(&mut self, obj: &mut Map<String, Value>, key: &str, within: &str) -> Option<String> {
        match take(obj, key) {
            None => {
                self.missing_in(key, within);
                None
            }
            Some(v) => self.string(v, &format!("{within}.{key}")),
        }
    }

    fn threat(&mut self, v: Value) -> Vec<Threat> {
        let Value::Array(items) = v else {
            self.bad("threat", format!("expected an array of tables, found {}", kind(&v)));
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let path = format!("threat.{i}");
            let Some(mut o) = self.object(item, &path) else { continue };
            let framework = self.field(&mut o, "framework", &path);
            let tactic = match take(&mut o, "tactic") {
                None => {
                    self.missing_in("tactic", &path);
                    None
                }
                Some(t) => {
                    let tpath = format!("{path}.tactic");
                    self.object(t, &tpath).and_then(|mut t| {
                        let id = self.field(&mut t, "id", &tpath);
                        let name = self.field(&mut t, "name", &tpath);
                        let reference = self.field(&mut t, "reference", &tpath);
                        Some(ThreatTactic { id: id?, name: name?, reference: reference? })
                    })
                }
            };
            let mut technique = Vec::new();
            if let Some(ts) = take(&mut o, "technique") {
                let tspath = format!("{path}.technique");
                match ts {
                    Value::Array(ts) => {
                        for (j, t) in ts.into_iter().enumerate() {
                            let tpath = format!("{tspath}.{j}");
                            if let Some(t) = self.technique(t, &tpath) {
                                technique.push(t);
                            }
                        }
                    }
                    other => self.bad(&tspath, format!("expected an array of tables, found {}", kind(&other))),
                }
            }
            if let (Some(framework), Some(tactic)) = (framework, tactic) {
                out.push(Threat { framework, tactic, technique });
            }
        }
        out
    }

    fn technique(&mut self, v: Value, path: &str) -> Option<ThreatTechnique> {
        let mut t = self.object(v, path)?;
        let id = self.field(&mut t, "id", path);
        let name = self.field(&mut t, "name", path);
        let reference = self.field(&mut t, "reference", path);
        let mut subtechnique = Vec::new();
        if let Some(subs) = take(&mut t, "subtechnique") {
            let spath = format!("{path}.subtechnique");
            match subs {
                Value::Array(subs) => {
                    for (k, s) in subs.into_iter().enumerate() {
                        let p = format!("{spath}.{k}");
                        let Some(mut s) = self.object(s, &p) else { continue };
                        let id = self.field(&mut s, "id", &p);
                        let name = self.field(&mut s, "name", &p);
                        let reference = self.field(&mut s, "reference", &p);
                        if let (Some(id), Some(name), Some(reference)) = (id, name, reference) {
                            subtechnique.push(ThreatSubtechnique { id, name, reference });
                        }
                    }
                }
                other => self.bad(&spath, format!("expected an array of tables, found {}", kind(&other))),
            }
        }
        Some(ThreatTechnique { id: id?, name: name?, reference: reference?, subtechnique })
    }

    /// `new_terms` in either shape: detection-rules TOML (`[rule.new_terms]` with `field`/`value` and
    /// `[[rule.new_terms.history_window_start]]`) or Kibana JSON (`new_terms_fields`,
    /// `history_window_start` at top level).
    fn new_terms(&mut self, map: &mut Map<String, Value>) -> Option<NewTerms> {
        let mut fields: Option<(Value, String)> = take(map, "new_terms_fields").map(|v| (v, "new_terms_fields".into()));
        let mut hws: Option<(Value, String)> =
            take(map, "history_window_start").map(|v| (v, "history_window_start".into()));
        if let Some(nt) = take(map, "new_terms") {
            match nt {
                Value::Object(mut o) => {
                    if let Some(f) = take(&mut o, "field") {
                        if f.as_str() != Some("new_terms_fields") {
                            self.bad("new_terms.field", format!("expected \"new_terms_fields\", found {f}"));
                        }
                    }
                    if let Some(v) = take(&mut o, "value") {
                        fields = Some((v, "new_terms.value".into()));
                    }
                    match take(&mut o, "history_window_start") {
                        None => {}
                        Some(Value::Array(items)) => {
                            for (i, item) in items.into_iter().enumerate() {
                                let p = format!("new_terms.history_window_start.{i}");
                                match item {
                                    Value::Object(mut h) => {
                                        if let Some(f) = take(&mut h, "field") {
                                            if f.as_str() != Some("history_window_start") {
                                                self.bad(
                                                    &format!("{p}.field"),
                                                    format!("expected \"history_window_start\", found {f}"),
                                                );
                                            }
                                        }
                                        if let Some(v) = take(&mut h, "value") {
                                            hws.get_or_insert((v, format!("{p}.value")));
                                        }
                                    }
                                    Value::String(s) => {
                                        hws.get_or_insert((Value::String(s), p));
                                    }
                                    other => self.bad(&p, format!("expected a table, found {}", kind(&other))),
                                }
                            }
                        }
                        Some(Value::Object(mut h)) => {
                            if let Some(v) = take(&mut h, "value") {
                                hws = Some((v, "new_terms.history_window_start.value".into()));
                            }
                        }
                        Some(v @ Value::String(_)) => hws = Some((v, "new_terms.history_window_start".into())),
                        Some(other) => self.bad(
                            "new_terms.history_window_start",
                            format!("expected an array of tables, found {}", kind(&other)),
                        ),
                    }
                }
                Value::Array(items) => fields = Some((Value::Array(items), "new_terms".into())),
                other => self.bad("new_terms", format!("expected a table, found {}", kind(&other))),
            }
        }
        let fields = match fields {
            None => {
                self.missing("new_terms_fields", " (`[rule.new_terms]` with `value = [...]`) for a new_terms rule");
                None
            }
            Some((v, path)) => {
                let list = self.string_list_value(v, &path);
                if list.is_empty() || list.len() > 3 {
                    self.bad(&path, format!("new_terms rules need 1 to 3 fields, found {}", list.len()));
                    None
                } else if list.iter().any(|f| f.trim().is_empty()) {
                    self.bad(&path, "field names must not be empty");
                    None
                } else {
                    Some(list)
                }
            }
        };
        let hws = match hws {
            None => {
                self.missing("history_window_start", " for a new_terms rule");
                None
            }
            Some((v, path)) => self.string(v, &path),
        };
        Some(NewTerms { fields: fields?, history_window_start: hws? })
    }

    fn threshold(&mut self, v: Value) -> Option<Threshold> {
        let mut o = self.object(v, "threshold")?;
        let field = match take(&mut o, "field") {
            None => Vec::new(),
            Some(Value::String(s)) if s.is_empty() => Vec::new(),
            Some(Value::String(s)) => vec![s],
            Some(v) => self.string_list_value(v, "threshold.field"),
        };
        let value = match take(&mut o, "value") {
            None => {
                self.missing_in("value", "threshold");
                None
            }
            Some(v) => self.uint(&v, "threshold.value", 1, u64::MAX),
        };
        let mut cardinality = Vec::new();
        match take(&mut o, "cardinality") {
            None => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.into_iter().enumerate() {
                    let p = format!("threshold.cardinality.{i}");
                    let Some(mut c) = self.object(item, &p) else { continue };
                    let f = self.field(&mut c, "field", &p);
                    let v = match take(&mut c, "value") {
                        None => {
                            self.missing_in("value", &p);
                            None
                        }
                        Some(v) => self.uint(&v, &format!("{p}.value"), 1, u64::MAX),
                    };
                    if let (Some(field), Some(value)) = (f, v) {
                        cardinality.push(Cardinality { field, value });
                    }
                }
            }
            Some(other) => {
                self.bad("threshold.cardinality", format!("expected an array of tables, found {}", kind(&other)))
            }
        }
        Some(Threshold { field, value: value?, cardinality })
    }

    fn metadata(&mut self, mut m: Map<String, Value>) -> RuleMetadata {
        let s = |b: &mut Self, key: &str, m: &mut Map<String, Value>| match take(m, key) {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                b.bad_meta(key, format!("expected a string, found {}", kind(&other)));
                None
            }
        };
        let maturity = s(self, "maturity", &mut m);
        let creation_date = s(self, "creation_date", &mut m);
        let updated_date = s(self, "updated_date", &mut m);
        let integration = match take(&mut m, "integration") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s],
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) => out.push(s),
                        other => self.bad_meta("integration", format!("expected strings, found {}", kind(&other))),
                    }
                }
                out
            }
            Some(other) => {
                self.bad_meta("integration", format!("expected an array of strings, found {}", kind(&other)));
                Vec::new()
            }
        };
        let flagged = match take(&mut m, "deprecated") {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                self.bad_meta("deprecated", format!("expected a boolean, found {}", kind(&other)));
                false
            }
        };
        let deprecated = flagged || maturity.as_deref() == Some("deprecated");
        m.retain(|_, v| !v.is_null());
        RuleMetadata { maturity, creation_date, updated_date, integration, deprecated, extra: m }
    }
}

/// Validates and converts one rule object. All problems are collected, not just the first.
pub(crate) fn build_rule(raw: RawRule, origin: &str, spans: &SpanSource<'_>) -> Result<Rule, Vec<Diagnostic>> {
    let RawRule { rule: mut m, metadata, transform, summary } = raw;
    let mut b = Builder { spans, diags: Vec::new() };

    let rule_id = b.req_nonempty(&mut m, "rule_id");
    let name = b.req_nonempty(&mut m, "name");
    let description = if summary {
        b.opt_string(&mut m, "description").or(Some(String::new()))
    } else {
        b.req_string(&mut m, "description")
    };
    let rule_type = b.req_nonempty(&mut m, "type").map(|t| RuleType::parse(&t));
    let language = b.opt_string(&mut m, "language");
    if let (Some(t), Some(l)) = (&rule_type, &language) {
        if let Some(allowed) = t.allowed_languages() {
            if !allowed.contains(&l.as_str()) {
                b.bad("language", format!("{l:?} is not a language for {t} rules (expected {})", allowed.join(" or ")));
            }
        }
    }
    let query = match &rule_type {
        Some(t) if t.requires_query() => match take(&mut m, "query") {
            None => {
                b.missing("query", &format!(" for a {t} rule"));
                None
            }
            Some(v) => b.string(v, "query"),
        },
        _ => b.opt_string(&mut m, "query"),
    };
    let index = b.string_list(&mut m, "index");
    let data_view_id = b.opt_string(&mut m, "data_view_id");
    let severity = match take(&mut m, "severity") {
        None if summary => Some(Severity::Low),
        None => {
            b.missing("severity", "");
            None
        }
        Some(v) => b.string(v, "severity").and_then(|s| {
            let sev = Severity::parse(&s);
            if sev.is_none() {
                b.bad("severity", format!("{s:?} is not one of low, medium, high, critical"));
            }
            sev
        }),
    };
    let risk_score = match take(&mut m, "risk_score") {
        None if summary => Some(0),
        None => {
            b.missing("risk_score", "");
            None
        }
        Some(v) => b.uint(&v, "risk_score", 0, 100).and_then(|x| u32::try_from(x).ok()),
    };
    let tags = b.string_list(&mut m, "tags");
    let author = b.string_list(&mut m, "author");
    let license = b.opt_string(&mut m, "license");
    let version = b.opt_u32(&mut m, "version", 1);
    let threat = take(&mut m, "threat").map(|v| b.threat(v)).unwrap_or_default();
    let note = b.opt_string(&mut m, "note");
    let setup = b.opt_string(&mut m, "setup");
    let false_positives = b.string_list(&mut m, "false_positives");
    let references = b.string_list(&mut m, "references");
    let from = b.opt_string(&mut m, "from").unwrap_or_else(|| DEFAULT_FROM.to_owned());
    let interval = b.opt_string(&mut m, "interval").unwrap_or_else(|| DEFAULT_INTERVAL.to_owned());
    let max_signals = b.opt_u32(&mut m, "max_signals", 1).unwrap_or(DEFAULT_MAX_SIGNALS);
    let timestamp_override = b.opt_string(&mut m, "timestamp_override");
    // Type-specific parameters are only interpreted for their own type; elsewhere they stay in `extra`.
    let new_terms = match &rule_type {
        Some(RuleType::NewTerms) => b.new_terms(&mut m),
        _ => None,
    };
    let threshold = match &rule_type {
        Some(RuleType::Threshold) => match take(&mut m, "threshold") {
            None => {
                b.missing("threshold", " for a threshold rule");
                None
            }
            Some(v) => b.threshold(v),
        },
        _ => None,
    };
    let filters = match take(&mut m, "filters") {
        None => Vec::new(),
        Some(Value::Array(f)) => f,
        Some(other) => {
            b.bad("filters", format!("expected an array, found {}", kind(&other)));
            Vec::new()
        }
    };
    let alert_suppression = take(&mut m, "alert_suppression");
    let building_block_type = b.opt_string(&mut m, "building_block_type");
    let enabled = b.bool(&mut m, "enabled").unwrap_or(true);
    let metadata = b.metadata(metadata);
    m.retain(|_, v| !v.is_null());

    if !b.diags.is_empty() {
        return Err(b.diags);
    }
    match (rule_id, name, description, rule_type, severity, risk_score) {
        (Some(rule_id), Some(name), Some(description), Some(rule_type), Some(severity), Some(risk_score)) => Ok(Rule {
            rule_id,
            name,
            description,
            rule_type,
            language,
            query,
            index,
            data_view_id,
            severity,
            risk_score,
            tags,
            author,
            license,
            version,
            threat,
            note,
            setup,
            false_positives,
            references,
            from,
            interval,
            max_signals,
            timestamp_override,
            new_terms,
            threshold,
            filters,
            alert_suppression,
            building_block_type,
            enabled,
            metadata,
            transform,
            origin: origin.to_owned(),
            extra: m,
        }),
        // Every `None` above pushed a diagnostic, so this is unreachable in practice; stay total.
        _ => Err(vec![Diagnostic::error(MISSING, "rule is incomplete")]),
    }
}
