//! Lowering KQL to the IR: the one place where Kibana's query building (`kbn-es-query`) and
//! Elasticsearch's per-type query semantics are applied.
//!
//! For each `field: value` Kibana builds, per field of the data view:
//! - `*` alone: `exists`;
//! - a value with wildcards: a `wildcard` query when the field is a plain `keyword`, otherwise a
//!   `query_string` query (which splits the pattern on whitespace and ORs the pieces);
//! - a `date` field: a `range` with `gte` and `lte` both set to the value;
//! - a plain `keyword` field: a `term` query;
//! - anything else: `match_phrase` for quoted values, `match` otherwise.
//!
//! Elasticsearch then applies the field's type: keyword exact, `ip` as address or CIDR, numbers
//! coerced from strings, text analysed. Values that Elasticsearch would reject for a type (a
//! hostname on an `ip` field) make that clause match nothing and produce a warning (`E002`): in
//! Elasticsearch the whole rule would fail (see docs/deviations.md).

use imdsguard_ecs::time;
use imdsguard_ecs::{FieldPath, FieldTable, FieldType};
use imdsguard_ir::glob::GlobToken;
use imdsguard_ir::{Bound, Expr, Glob, IpPred, NumBounds, Pred, StrBounds, TypedPreds};
use imdsguard_kql::ast::{Literal, LiteralValue, Node, Pattern, PatternPart, Query, RangeOp, ValueTree};
use imdsguard_syntax::{Diagnostic, Span};
use std::net::IpAddr;
use std::sync::Arc;

/// Every field type, plus `None` for fields the table does not know.
const ALL_TYPES: &[Option<FieldType>] = &[
    None,
    Some(FieldType::Keyword),
    Some(FieldType::ConstantKeyword),
    Some(FieldType::Wildcard),
    Some(FieldType::Text),
    Some(FieldType::MatchOnlyText),
    Some(FieldType::Long),
    Some(FieldType::Integer),
    Some(FieldType::Short),
    Some(FieldType::Byte),
    Some(FieldType::UnsignedLong),
    Some(FieldType::Double),
    Some(FieldType::Float),
    Some(FieldType::HalfFloat),
    Some(FieldType::ScaledFloat),
    Some(FieldType::Date),
    Some(FieldType::DateNanos),
    Some(FieldType::Boolean),
    Some(FieldType::Ip),
    Some(FieldType::Object),
    Some(FieldType::Nested),
    Some(FieldType::Flattened),
    Some(FieldType::GeoPoint),
    Some(FieldType::Binary),
    Some(FieldType::Version),
    Some(FieldType::Other),
];

/// Context for lowering one query.
pub struct KqlLowering<'a> {
    pub table: &'a Arc<FieldTable>,
    /// Epoch milliseconds used for `now` in date math.
    pub now_millis: i64,
    /// Warnings collected while lowering.
    pub warnings: Vec<Diagnostic>,
}

/// A value on the right of `field:` as Kibana sees it.
enum Val<'a> {
    /// Unquoted `null`: Kibana sends a JSON null, which Elasticsearch rejects.
    Null,
    /// Lone `*`.
    Exists,
    /// Unquoted with wildcards.
    Wild(&'a Pattern),
    /// Plain text; `phrase` for quoted values.
    Text(String, bool),
}

fn val_of(lit: &Literal) -> Val<'_> {
    match &lit.value {
        LiteralValue::Quoted(s) => Val::Text(s.clone(), true),
        LiteralValue::Unquoted(p) if p.is_lone_wildcard() => Val::Exists,
        LiteralValue::Unquoted(p) if p.has_wildcard() => Val::Wild(p),
        LiteralValue::Unquoted(p) => Val::Text(p.display(), false),
        LiteralValue::Null => Val::Null,
        LiteralValue::Bool(b) => Val::Text(b.to_string(), false),
    }
}

/// A field name that is a pattern (`process.*`) or a plain name.
enum FieldName {
    Plain(String),
    Glob(Glob),
    All,
}

fn field_name(lit: &Literal) -> FieldName {
    match &lit.value {
        LiteralValue::Unquoted(p) if p.is_lone_wildcard() => FieldName::All,
        LiteralValue::Unquoted(p) if p.has_wildcard() => FieldName::Glob(pattern_glob(p, false)),
        other => FieldName::Plain(match other {
            LiteralValue::Quoted(s) => s.clone(),
            LiteralValue::Unquoted(p) => p.display(),
            LiteralValue::Null => "null".into(),
            LiteralValue::Bool(b) => b.to_string(),
        }),
    }
}

fn pattern_glob(p: &Pattern, lowercase: bool) -> Glob {
    let tokens = p
        .parts
        .iter()
        .map(|part| match part {
            PatternPart::Text(t) => GlobToken::Lit(if lowercase { t.to_lowercase() } else { t.clone() }),
            PatternPart::Wildcard => GlobToken::Star,
        })
        .collect();
    Glob::new(tokens, false)
}

/// Split a wildcard pattern on unescaped whitespace, as `query_string` does.
fn split_whitespace(p: &Pattern) -> Vec<Pattern> {
    let mut out = Vec::new();
    let mut cur = Pattern::default();
    let flush = |cur: &mut Pattern, out: &mut Vec<Pattern>| {
        if !cur.parts.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    for part in &p.parts {
        match part {
            PatternPart::Wildcard => cur.parts.push(PatternPart::Wildcard),
            PatternPart::Text(t) => {
                let mut buf = String::new();
                for c in t.chars() {
                    if c.is_whitespace() {
                        if !buf.is_empty() {
                            cur.parts.push(PatternPart::Text(std::mem::take(&mut buf)));
                        }
                        flush(&mut cur, &mut out);
                    } else {
                        buf.push(c);
                    }
                }
                if !buf.is_empty() {
                    cur.parts.push(PatternPart::Text(buf));
                }
            }
        }
    }
    flush(&mut cur, &mut out);
    out
}

fn is_keyword_field(ty: Option<FieldType>) -> bool {
    ty == Some(FieldType::Keyword)
}

/// Elasticsearch's `term`/`match` on one field of type `ty` with a non-wildcard value.
/// `Err` = Elasticsearch would reject the value for this type.
/// `now_millis` anchors date math in values on date fields (a date term is a range over the
/// value's precision: Elasticsearch rounds the upper bound up).
pub fn term_pred(ty: Option<FieldType>, value: &str, phrase: bool, now_millis: i64) -> Result<Option<Pred>, String> {
    let t = match ty {
        None => return Ok(Some(Pred::StrEq { value: value.to_string(), case_insensitive: false })),
        Some(t) => t,
    };
    Ok(Some(match t {
        FieldType::Keyword | FieldType::ConstantKeyword | FieldType::Wildcard | FieldType::Version | FieldType::Other => {
            Pred::StrEq { value: value.to_string(), case_insensitive: false }
        }
        FieldType::Flattened => Pred::StrEq { value: value.to_string(), case_insensitive: false },
        FieldType::Text | FieldType::MatchOnlyText => {
            let toks = imdsguard_ir::text::tokens(value);
            if phrase {
                Pred::TextPhrase(toks)
            } else {
                Pred::TextAny(toks)
            }
        }
        t if t.is_numeric() => {
            let n: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|f: &f64| f.is_finite())
                .ok_or_else(|| format!("\"{value}\" is not a number (field type {t:?})"))?;
            if t.is_integer() && n.fract() != 0.0 {
                // Elasticsearch: a decimal value on an integer field matches nothing.
                return Ok(None);
            }
            Pred::NumEq { value: n, integer: t.is_integer() }
        }
        FieldType::Boolean => match value {
            "true" => Pred::BoolEq(true),
            "false" | "" => Pred::BoolEq(false),
            _ => return Err(format!("\"{value}\" is not a boolean (expected true or false)")),
        },
        FieldType::Ip => Pred::Ip(ip_pred(value)?),
        FieldType::Date | FieldType::DateNanos => date_eq(value, now_millis).map_err(|e| format!("\"{value}\" is not a date: {e}"))?,
        FieldType::Object | FieldType::Nested => return Ok(None),
        FieldType::GeoPoint | FieldType::Binary => {
            return Err(format!("term queries are not supported on {t:?} fields"));
        }
        _ => Pred::StrEq { value: value.to_string(), case_insensitive: false },
    }))
}

fn ip_pred(value: &str) -> Result<IpPred, String> {
    let v = value.trim();
    if v.contains('/') {
        let net: ipnet::IpNet =
            v.parse().map_err(|_| format!("\"{value}\" is not an IP address or CIDR block"))?;
        return Ok(IpPred::Cidr(net.trunc()));
    }
    v.parse::<IpAddr>().map(IpPred::Eq).map_err(|_| format!("\"{value}\" is not an IP address"))
}

/// `query_string` on one field with a wildcard pattern: whitespace-split pieces ORed.
fn query_string_preds(ty: Option<FieldType>, p: &Pattern) -> Result<Vec<Pred>, String> {
    let mut out = Vec::new();
    for piece in split_whitespace(p) {
        if piece.has_wildcard() {
            match ty {
                None | Some(FieldType::Keyword | FieldType::ConstantKeyword | FieldType::Wildcard | FieldType::Other | FieldType::Flattened) => {
                    out.push(Pred::StrGlob(pattern_glob(&piece, false)))
                }
                Some(FieldType::Text | FieldType::MatchOnlyText) => out.push(Pred::TextGlob(pattern_glob(&piece, true))),
                Some(t) => return Err(format!("wildcard values are not supported on {t:?} fields")),
            }
        } else {
            if let Some(p) = term_pred(ty, &piece.display(), false, 0)? {
                out.push(p);
            }
        }
    }
    Ok(out)
}

fn date_eq(value: &str, now: i64) -> Result<Pred, String> {
    let lo = time::parse_date_math(value, now).map_err(|e| e.to_string())?;
    let hi = time::parse_date_math_round_up(value, now).map_err(|e| e.to_string())?;
    Ok(Pred::DateRange { lower: Bound::Included(lo), upper: Bound::Included(hi) })
}

impl<'a> KqlLowering<'a> {
    pub fn new(table: &'a Arc<FieldTable>, now_millis: i64) -> Self {
        KqlLowering { table, now_millis, warnings: Vec::new() }
    }

    /// Lower a parsed query.
    pub fn lower(&mut self, q: &Query) -> Expr {
        match &q.root {
            None => Expr::Const(true),
            Some(n) => self.node(n, None),
        }
    }

    fn warn(&mut self, span: Span, msg: String) {
        self.warnings.push(
            Diagnostic::warning("E002", msg)
                .with_span(span)
                .with_label("this clause matches nothing")
                .with_help("Elasticsearch would reject this query; imdsguard treats the clause as matching no document"),
        );
    }

    fn full_name(&self, nested: Option<&str>, name: &str) -> String {
        match nested {
            Some(prefix) => format!("{prefix}.{name}"),
            None => name.to_string(),
        }
    }

    fn node(&mut self, n: &Node, nested: Option<&str>) -> Expr {
        match n {
            Node::Or(items, _) => Expr::or(items.iter().map(|i| self.node(i, nested)).collect()),
            Node::And(items, _) => Expr::and(items.iter().map(|i| self.node(i, nested)).collect()),
            Node::Not(inner, _) => Expr::not(self.node(inner, nested)),
            Node::Nested { field, query, .. } => {
                let name = match field_name(field) {
                    FieldName::Plain(s) => s,
                    FieldName::Glob(g) => g.source().to_string(),
                    FieldName::All => "*".into(),
                };
                let full = self.full_name(nested, &name);
                // A field the table does not know may be nested in the user's mapping: trust the rule.
                let resolved = self.table.resolve_alias(&full).to_string();
                let known = self.table.get(&resolved);
                let known_object = known.is_none() && !self.table.matching(&format!("{resolved}.*")).is_empty();
                if (known.is_some() && known != Some(FieldType::Nested)) || known_object {
                    self.warn(
                        field.span,
                        format!("`{full}` is not a nested field, so a nested query on it fails in Elasticsearch"),
                    );
                    return Expr::Const(false);
                }
                let inner = self.node(query, Some(&full));
                Expr::Nested(FieldPath::new(&name), Box::new(inner))
            }
            Node::Field { field, values, .. } => self.values(field, values, nested),
            Node::Range { field, op, value, span } => self.range(field, *op, value, *span, nested),
            Node::Value(lit) => self.any_field(lit),
        }
    }

    fn values(&mut self, field: &Literal, tree: &ValueTree, nested: Option<&str>) -> Expr {
        match tree {
            ValueTree::Or(items, _) => Expr::or(items.iter().map(|t| self.values(field, t, nested)).collect()),
            ValueTree::And(items, _) => Expr::and(items.iter().map(|t| self.values(field, t, nested)).collect()),
            ValueTree::Not(inner, _) => Expr::not(self.values(field, inner, nested)),
            ValueTree::Value(v) => self.is(field, v, nested),
        }
    }

    /// Kibana's `is` function.
    fn is(&mut self, field: &Literal, value: &Literal, nested: Option<&str>) -> Expr {
        let val = val_of(value);
        match field_name(field) {
            FieldName::All => match val {
                Val::Exists => Expr::Const(true),
                _ => self.any_field(value),
            },
            FieldName::Glob(glob) => {
                // Field patterns are matched against the names inside the current (nested) object.
                let typed = self.typed_preds(&val, value.span);
                // Multi-fields (`process.name.text`) have no key of their own in documents: they are
                // indexed from their parent's value, so they are matched explicitly.
                let mut alts = Vec::new();
                let multi: Vec<(String, FieldType)> = self
                    .table
                    .matching(glob.source())
                    .into_iter()
                    .filter(|(name, _)| self.table.multi_field_parent(name).is_some())
                    .map(|(n, t)| (n.to_string(), t))
                    .collect();
                for (name, ty) in multi {
                    let parent = self.table.multi_field_parent(&name).unwrap_or_default().to_string();
                    if let Some(p) = typed.preds.iter().find(|(t, _)| *t == Some(ty)).and_then(|(_, p)| p.clone()) {
                        alts.push(Expr::Match(FieldPath::new(&parent), p));
                    } else if typed.exists {
                        alts.push(Expr::Exists(FieldPath::new(&parent)));
                    }
                }
                alts.insert(0, Expr::MatchGlob { fields: glob, typed });
                Expr::or(alts)
            }
            FieldName::Plain(name) => {
                let full = self.full_name(nested, &name);
                let resolved = self.table.resolve_alias(&full).to_string();
                let ty = self.table.get(&resolved);
                // Kibana refuses a nested sub-field outside its nested group (and the reverse).
                let nested_parent = self.table.nested_parent(&resolved).map(str::to_string);
                // Only judge what the table knows: a nested group the table does not know comes from
                // a mapping we were not given.
                let group_known = nested.is_none_or(|g| self.table.get(g) == Some(FieldType::Nested));
                if group_known && nested_parent.as_deref() != nested {
                    let msg = match (&nested_parent, nested) {
                        (Some(p), None) => format!("`{resolved}` is a nested field (of `{p}`) but is not in a nested group: write {p}:{{ ... }}"),
                        (_, Some(group)) => format!("`{resolved}` is not a nested field of the nested group `{group}`"),
                        (None, None) => String::new(),
                    };
                    if !msg.is_empty() {
                        self.warn(field.span, msg);
                        return Expr::Const(false);
                    }
                }
                // A multi-field is indexed from its parent's value.
                let source = self.table.multi_field_parent(&resolved).map(str::to_string).unwrap_or_else(|| resolved.clone());
                let lookup = match nested {
                    Some(group) => source.strip_prefix(group).and_then(|s| s.strip_prefix('.')).unwrap_or(&name).to_string(),
                    None => source.clone(),
                };
                let path = FieldPath::new(&lookup);
                if let Val::Null = val {
                    self.warn(value.span, "`null` is not a value Elasticsearch can search for (the query would fail); use `not field:*` for a missing field".into());
                    return Expr::Const(false);
                }
                if !self.table.is_indexed(&resolved) && !matches!(val, Val::Exists) {
                    self.warn(value.span, format!("field `{resolved}` is not indexed, so it cannot be searched"));
                    return Expr::Const(false);
                }
                match self.pred_expr(ty, &val, value.span) {
                    // `exists` on an object means "some sub-field has a value" (ES expands it to `f.*`).
                    PredExpr::Exists if matches!(ty, None | Some(FieldType::Object | FieldType::Flattened)) => Expr::or(vec![
                        Expr::Exists(path),
                        Expr::MatchGlob {
                            fields: Glob::parse(&format!("{lookup}.*"), false, false),
                            typed: TypedPreds { table: Arc::new(FieldTable::empty()), preds: vec![], exists: true },
                        },
                    ]),
                    PredExpr::Exists => Expr::Exists(path),
                    PredExpr::Preds(preds) => {
                        let mut alts: Vec<Expr> = preds.into_iter().map(|p| Expr::Match(path.clone(), p)).collect();
                        if ty == Some(FieldType::Flattened) {
                            if let Val::Text(t, _) = &val {
                                let typed = TypedPreds {
                                    table: Arc::new(FieldTable::empty()),
                                    preds: vec![(None, Some(Pred::StrEq { value: t.clone(), case_insensitive: false }))],
                                    exists: false,
                                };
                                alts.push(Expr::MatchGlob { fields: Glob::parse(&format!("{lookup}.*"), false, false), typed });
                            }
                        }
                        Expr::or(alts)
                    }
                }
            }
        }
    }

    fn pred_expr(&mut self, ty: Option<FieldType>, val: &Val<'_>, span: Span) -> PredExpr {
        let r: Result<Vec<Pred>, String> = match val {
            Val::Exists => return PredExpr::Exists,
            Val::Null => Err("`null` cannot be searched for".into()),
            Val::Wild(p) => {
                if is_keyword_field(ty) {
                    Ok(vec![Pred::StrGlob(pattern_glob(p, false))])
                } else {
                    query_string_preds(ty, p)
                }
            }
            Val::Text(t, phrase) => term_pred(ty, t, *phrase, self.now_millis).map(|p| p.into_iter().collect()),
        };
        match r {
            Ok(preds) => PredExpr::Preds(preds),
            Err(msg) => {
                self.warn(span, msg);
                PredExpr::Preds(vec![])
            }
        }
    }

    /// Predicates for every type, for wildcard field names and field-less queries (lenient).
    fn typed_preds(&mut self, val: &Val<'_>, span: Span) -> TypedPreds {
        let exists = matches!(val, Val::Exists);
        let mut preds = Vec::new();
        for ty in ALL_TYPES {
            let saved = self.warnings.len();
            let p = match self.pred_expr(*ty, val, span) {
                PredExpr::Exists => None,
                PredExpr::Preds(mut ps) => match ps.len() {
                    0 => None,
                    1 => ps.pop(),
                    _ => Some(Pred::AnyOf(ps)),
                },
            };
            self.warnings.truncate(saved);
            preds.push((*ty, p));
        }
        TypedPreds { table: Arc::clone(self.table), preds, exists }
    }

    /// A value with no field: `multi_match` (lenient) or `query_string` over all fields.
    fn any_field(&mut self, value: &Literal) -> Expr {
        let val = val_of(value);
        if matches!(val, Val::Exists) {
            return Expr::Const(true);
        }
        Expr::AnyField(self.typed_preds(&val, value.span))
    }

    fn range(&mut self, field: &Literal, op: RangeOp, value: &Literal, span: Span, nested: Option<&str>) -> Expr {
        let text = match &value.value {
            LiteralValue::Quoted(s) => s.clone(),
            LiteralValue::Unquoted(p) => p.display(),
            LiteralValue::Null => "null".into(),
            LiteralValue::Bool(b) => b.to_string(),
        };
        let name = match field_name(field) {
            FieldName::Plain(s) => s,
            FieldName::Glob(_) | FieldName::All => {
                // Wildcard field names in ranges: lenient per-type predicates over matching fields.
                let mut preds = Vec::new();
                for ty in ALL_TYPES {
                    preds.push((*ty, range_pred(*ty, op, &text, self.now_millis).ok()));
                }
                let typed = TypedPreds { table: Arc::clone(self.table), preds, exists: false };
                return Expr::MatchGlob { fields: field_glob(field), typed };
            }
        };
        let full = self.full_name(nested, &name);
        let resolved = self.table.resolve_alias(&full).to_string();
        let ty = self.table.get(&resolved);
        let lookup = if nested.is_some() { name } else { resolved };
        match range_pred(ty, op, &text, self.now_millis) {
            Ok(p) => Expr::Match(FieldPath::new(&lookup), p),
            Err(msg) => {
                self.warn(span.to(value.span), msg);
                Expr::Const(false)
            }
        }
    }
}

fn field_glob(field: &Literal) -> Glob {
    match &field.value {
        LiteralValue::Unquoted(p) => pattern_glob(p, false),
        other => Glob::new(vec![GlobToken::Lit(format!("{other:?}"))], false),
    }
}

enum PredExpr {
    Exists,
    Preds(Vec<Pred>),
}

fn bounds<T>(op: RangeOp, v: T) -> (Bound<T>, Bound<T>) {
    match op {
        RangeOp::Gt => (Bound::Excluded(v), Bound::Unbounded),
        RangeOp::Gte => (Bound::Included(v), Bound::Unbounded),
        RangeOp::Lt => (Bound::Unbounded, Bound::Excluded(v)),
        RangeOp::Lte => (Bound::Unbounded, Bound::Included(v)),
    }
}

/// Elasticsearch `range` on one field type.
pub fn range_pred(ty: Option<FieldType>, op: RangeOp, text: &str, now: i64) -> Result<Pred, String> {
    match ty {
        Some(t) if t.is_date() => {
            // ES rounds `gt` and `lte` bounds up (to the end of the unit), `gte` and `lt` down.
            let ms = match op {
                RangeOp::Gt | RangeOp::Lte => time::parse_date_math_round_up(text, now),
                RangeOp::Gte | RangeOp::Lt => time::parse_date_math(text, now),
            }
            .map_err(|e| format!("\"{text}\" is not a date: {e}"))?;
            let (lower, upper) = bounds(op, ms);
            Ok(Pred::DateRange { lower, upper })
        }
        Some(t) if t.is_numeric() => {
            let integer = t.is_integer();
            let n: f64 = text
                .trim()
                .parse()
                .ok()
                .filter(|f: &f64| !f.is_nan())
                .ok_or_else(|| format!("\"{text}\" is not a number"))?;
            let (lower, upper) = bounds(op, n);
            Ok(Pred::NumRange(NumBounds { lower, upper, integer }))
        }
        Some(FieldType::Ip) => {
            let ip: IpAddr = text.trim().parse().map_err(|_| format!("\"{text}\" is not an IP address"))?;
            let k = match ip {
                IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
                IpAddr::V6(v6) => u128::from(v6),
            };
            let (lower, upper) = bounds(op, k);
            Ok(Pred::Ip(IpPred::Range { lower, upper }))
        }
        Some(FieldType::Version) => {
            let (lower, upper) = bounds(op, text.to_string());
            Ok(Pred::VersionRange(StrBounds { lower, upper }))
        }
        Some(FieldType::Boolean) => Err("range queries are not supported on boolean fields".into()),
        Some(FieldType::GeoPoint | FieldType::Binary | FieldType::Object | FieldType::Nested) => {
            Err("range queries are not supported on this field type".into())
        }
        _ => {
            let (lower, upper) = bounds(op, text.to_string());
            Ok(Pred::StrRange(StrBounds { lower, upper }))
        }
    }
}
