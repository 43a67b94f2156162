//! Compiling a resolved [`Query`] into something that runs on events: IR predicates
//! ([`imdsguard_ir::Expr`]) wherever the IR can express the test (wildcards, numbers, CIDR,
//! ranges, existence), and Sigma-specific leaves for the rest (regular expressions, field
//! references, timestamp parts, keyword searches over every field).

use crate::query::{CmpOp, Position, Query, Test, TimePart, Tok};
use imdsguard_ecs::doc::keyword_values;
use imdsguard_ecs::{Document, FieldPath, FieldTable, FieldType, ValueRef};
use imdsguard_ir::explain::{describe_pred, Explained};
use imdsguard_ir::glob::GlobToken;
use imdsguard_ir::literals::{conjunction, disjunction, Needles};
use imdsguard_ir::{Bound, Expr, Glob, IpPred, NumBounds, Pred};

/// A value test that is not an IR predicate.
#[derive(Debug, Clone)]
pub enum ValTest {
    Pred(Pred),
    Re(regex::Regex),
    /// Several case-insensitive `contains` of ASCII literals in one Aho-Corasick pass (a Sigma
    /// `|contains` list or a keyword list); `preds` are the equivalent IR predicates (needles,
    /// explanations).
    ContainsAny { ac: aho_corasick::AhoCorasick, preds: Vec<Pred> },
    /// Several case-insensitive ASCII literals of one field: whole values, prefixes, suffixes
    /// and (through `contains`, when any) substrings, compared without allocating.
    Literals { exact: Vec<String>, prefixes: Vec<String>, suffixes: Vec<String>, contains: Option<Box<ValTest>>, preds: Vec<Pred> },
    /// Any of several tests (keyword alternatives tested in one walk over the event's values).
    AnyOf(Vec<ValTest>),
}

impl ValTest {
    fn test(&self, v: ValueRef<'_>) -> bool {
        match self {
            ValTest::Pred(p) => p.test(v),
            ValTest::Re(r) => r.is_match(&v.as_keyword()),
            ValTest::ContainsAny { ac, .. } => ac.is_match(v.as_keyword().as_ref()),
            ValTest::Literals { exact, prefixes, suffixes, contains, .. } => {
                let k = v.as_keyword();
                let b = k.as_bytes();
                exact.iter().any(|e| b.eq_ignore_ascii_case(e.as_bytes()))
                    || prefixes.iter().any(|p| b.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p.as_bytes())))
                    || suffixes.iter().any(|x| {
                        b.len() >= x.len() && b.get(b.len() - x.len()..).is_some_and(|t| t.eq_ignore_ascii_case(x.as_bytes()))
                    })
                    || contains.as_ref().is_some_and(|c| c.test(v))
            }
            ValTest::AnyOf(ts) => ts.iter().any(|t| t.test(v)),
        }
    }
    fn describe(&self) -> String {
        match self {
            ValTest::Pred(p) => describe_pred(p),
            ValTest::Re(r) => format!("re /{}/", r.as_str()),
            ValTest::ContainsAny { preds, .. } | ValTest::Literals { preds, .. } => {
                format!("any of {}", preds.iter().map(|p| describe_pred(p).trim_start_matches(": ").to_string()).collect::<Vec<_>>().join(", "))
            }
            ValTest::AnyOf(ts) => format!("any of {}", ts.iter().map(ValTest::describe).collect::<Vec<_>>().join(", ")),
        }
    }
    fn needles(&self) -> Needles {
        match self {
            ValTest::Pred(p) => p.needles(),
            ValTest::Re(_) => Needles::Any,
            ValTest::ContainsAny { preds, .. } | ValTest::Literals { preds, .. } => disjunction(preds.iter().map(Pred::needles)),
            ValTest::AnyOf(ts) => disjunction(ts.iter().map(ValTest::needles)),
        }
    }
}

/// The literal of a case-insensitive `*literal*` glob with an ASCII literal (ASCII case folding
/// then equals the Unicode lower-casing the glob does, for ASCII values and literals).
fn contains_literal(p: &Pred) -> Option<String> {
    let Pred::StrGlob(g) = p else { return None };
    if !g.is_case_insensitive() {
        return None;
    }
    match g.tokens() {
        [GlobToken::Star, GlobToken::Lit(l), GlobToken::Star] if l.is_ascii() && !l.is_empty() => Some(l.clone()),
        _ => None,
    }
}

#[derive(PartialEq)]
enum Affix {
    Exact,
    Prefix,
    Suffix,
    Contains,
}

/// A case-insensitive ASCII literal test: its kind and literal.
fn literal_test(p: &Pred) -> Option<(Affix, String)> {
    if let Some(l) = contains_literal(p) {
        return Some((Affix::Contains, l));
    }
    match p {
        Pred::StrEq { value, case_insensitive: true } if value.is_ascii() => Some((Affix::Exact, value.clone())),
        Pred::StrGlob(g) if g.is_case_insensitive() => match g.tokens() {
            [GlobToken::Lit(l), GlobToken::Star] if l.is_ascii() => Some((Affix::Prefix, l.clone())),
            [GlobToken::Star, GlobToken::Lit(l)] if l.is_ascii() => Some((Affix::Suffix, l.clone())),
            _ => None,
        },
        _ => None,
    }
}

/// One test for a field's literal alternatives (all must be [`literal_test`]s).
fn literals(preds: Vec<Pred>) -> Option<ValTest> {
    let mut exact = Vec::new();
    let mut prefixes = Vec::new();
    let mut suffixes = Vec::new();
    let mut contains = Vec::new();
    for p in &preds {
        match literal_test(p)? {
            (Affix::Exact, l) => exact.push(l),
            (Affix::Prefix, l) => prefixes.push(l),
            (Affix::Suffix, l) => suffixes.push(l),
            (Affix::Contains, _) => contains.push(p.clone()),
        }
    }
    if exact.is_empty() && prefixes.is_empty() && suffixes.is_empty() {
        return contains_any(contains);
    }
    let contains = match contains.len() {
        0 => None,
        _ => Some(Box::new(contains_any(contains)?)),
    };
    Some(ValTest::Literals { exact, prefixes, suffixes, contains, preds })
}

fn contains_any(preds: Vec<Pred>) -> Option<ValTest> {
    let lits: Vec<String> = preds.iter().filter_map(contains_literal).collect();
    if lits.len() != preds.len() {
        return None;
    }
    let ac = aho_corasick::AhoCorasick::builder().ascii_case_insensitive(true).build(&lits).ok()?;
    Some(ValTest::ContainsAny { ac, preds })
}

/// Merge the `contains` alternatives of an `or`: keyword ones into one keyword test, field ones
/// into one test per field. Only groups of two or more are merged.
fn merge_contains(parts: Vec<SigmaMatcher>) -> Vec<SigmaMatcher> {
    let mut keyword: Vec<Pred> = Vec::new();
    let mut fields: Vec<(FieldPath, Vec<Pred>)> = Vec::new();
    let mut rest = Vec::new();
    for p in parts {
        match p {
            SigmaMatcher::AnyField(ValTest::Pred(pred)) if contains_literal(&pred).is_some() => keyword.push(pred),
            SigmaMatcher::Ir(Expr::Match(path, pred)) if literal_test(&pred).is_some() => {
                match fields.iter_mut().find(|(f, _)| f.name() == path.name()) {
                    Some((_, v)) => v.push(pred),
                    None => fields.push((path, vec![pred])),
                }
            }
            other => rest.push(other),
        }
    }
    let mut out = Vec::new();
    // Every keyword alternative is tested in one walk over the event's values.
    let mut keyword_tests: Vec<ValTest> = Vec::new();
    if keyword.len() >= 2 {
        match contains_any(keyword.clone()) {
            Some(t) => keyword_tests.push(t),
            None => keyword_tests.extend(keyword.into_iter().map(ValTest::Pred)),
        }
    } else {
        keyword_tests.extend(keyword.into_iter().map(ValTest::Pred));
    }
    let mut others = Vec::new();
    for p in rest {
        match p {
            SigmaMatcher::AnyField(t) => keyword_tests.push(t),
            other => others.push(other),
        }
    }
    let rest = others;
    match keyword_tests.len() {
        0 => {}
        1 => out.extend(keyword_tests.into_iter().map(SigmaMatcher::AnyField)),
        _ => out.push(SigmaMatcher::AnyField(ValTest::AnyOf(keyword_tests))),
    }
    for (path, preds) in fields {
        let merged = if preds.len() >= 2 { literals(preds.clone()) } else { None };
        match merged {
            Some(t) => out.push(SigmaMatcher::Field { name: path.name().to_string(), path, test: t }),
            None => out.extend(preds.into_iter().map(|p| SigmaMatcher::Ir(Expr::Match(path.clone(), p)))),
        }
    }
    out.extend(rest);
    out
}

/// A compiled Sigma query.
#[derive(Debug, Clone)]
pub enum SigmaMatcher {
    Ir(Expr),
    And(Vec<SigmaMatcher>),
    Or(Vec<SigmaMatcher>),
    Not(Box<SigmaMatcher>),
    /// Some value of the field passes the test.
    Field { name: String, path: FieldPath, test: ValTest },
    /// Keyword search: some value of any field passes.
    AnyField(ValTest),
    /// `fieldref`: some value of `path` relates to some value of `other`.
    FieldRef { name: String, path: FieldPath, other_name: String, other: FieldPath, position: Position, cased: bool },
    /// A part of the field's timestamp (UTC).
    TimePart { name: String, path: FieldPath, part: TimePart, cmp: CmpOp, value: i64 },
}

fn glob(pattern: &[Tok], cased: bool) -> Glob {
    Glob::new(
        pattern
            .iter()
            .map(|t| match t {
                Tok::Lit(s) => GlobToken::Lit(s.clone()),
                Tok::Star => GlobToken::Star,
                Tok::One => GlobToken::One,
            })
            .collect(),
        !cased,
    )
}

fn is_numeric(t: Option<FieldType>) -> bool {
    matches!(
        t,
        Some(
            FieldType::Long
                | FieldType::Integer
                | FieldType::Short
                | FieldType::Byte
                | FieldType::UnsignedLong
                | FieldType::Double
                | FieldType::Float
                | FieldType::HalfFloat
                | FieldType::ScaledFloat
        )
    )
}

/// The predicate of a string test on a field of type `ty` (`None` for keywords).
fn str_pred(pattern: &[Tok], cased: bool, ty: Option<FieldType>) -> Pred {
    if let [Tok::Lit(s)] | [Tok::Lit(s), ..] = pattern {
        if pattern.len() == 1 {
            let eq = Pred::StrEq { value: if cased { s.clone() } else { s.to_lowercase() }, case_insensitive: !cased };
            if is_numeric(ty) {
                if let Ok(n) = s.trim().parse::<f64>() {
                    return Pred::AnyOf(vec![Pred::NumEq { value: n, integer: false }, eq]);
                }
            }
            if ty == Some(FieldType::Ip) {
                if let Ok(ip) = s.trim().parse::<std::net::IpAddr>() {
                    return Pred::AnyOf(vec![Pred::Ip(IpPred::Eq(ip)), eq]);
                }
            }
            return eq;
        }
    }
    if pattern.is_empty() {
        return Pred::StrEq { value: String::new(), case_insensitive: false };
    }
    Pred::StrGlob(glob(pattern, cased))
}

fn regex_of(pattern: &str, i: bool, m: bool, s: bool) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(i)
        .multi_line(m)
        .dot_matches_new_line(s)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| format!("regular expression {pattern:?} is not supported: {}", e.to_string().lines().last().unwrap_or("invalid")))
}

/// Compile `q` with the field types of `table`. Errors name what cannot run (an unsupported
/// regular expression, a placeholder left unexpanded).
pub fn lower(q: &Query, table: &FieldTable) -> Result<SigmaMatcher, String> {
    let m = lower_inner(q, table)?;
    Ok(m)
}

fn lower_inner(q: &Query, table: &FieldTable) -> Result<SigmaMatcher, String> {
    Ok(match q {
        Query::Const(b) => SigmaMatcher::Ir(Expr::Const(*b)),
        Query::And(items) => fold(items.iter().map(|q| lower_inner(q, table)).collect::<Result<_, _>>()?, true),
        Query::Or(items) => fold(items.iter().map(|q| lower_inner(q, table)).collect::<Result<_, _>>()?, false),
        Query::Not(inner) => match lower_inner(inner, table)? {
            SigmaMatcher::Ir(e) => SigmaMatcher::Ir(Expr::not(e)),
            other => SigmaMatcher::Not(Box::new(other)),
        },
        Query::Leaf(l) => {
            let Some(name) = &l.field else {
                return Ok(match &l.test {
                    Test::Str { pattern, cased } => SigmaMatcher::AnyField(ValTest::Pred(str_pred(pattern, *cased, None))),
                    Test::Num { value } => SigmaMatcher::AnyField(ValTest::Pred(Pred::StrEq { value: value.to_string(), case_insensitive: false })),
                    Test::Re { pattern, i, m, s } => SigmaMatcher::AnyField(ValTest::Re(regex_of(pattern, *i, *m, *s)?)),
                    other => return Err(format!("a keyword search cannot use {other:?}")),
                });
            };
            let path = FieldPath::new(name);
            let ty = table.get(name);
            match &l.test {
                Test::Str { pattern, cased } => SigmaMatcher::Ir(Expr::Match(path, str_pred(pattern, *cased, ty))),
                Test::Num { value } => SigmaMatcher::Ir(Expr::Match(path, Pred::NumEq { value: *value, integer: false })),
                Test::Re { pattern, i, m, s } => SigmaMatcher::Field { name: name.clone(), path, test: ValTest::Re(regex_of(pattern, *i, *m, *s)?) },
                Test::Cidr { net } => {
                    let net: ipnet::IpNet = net.parse().map_err(|_| format!("{net:?} is not a CIDR block"))?;
                    SigmaMatcher::Ir(Expr::Match(path, Pred::Ip(IpPred::Cidr(net))))
                }
                Test::Cmp { cmp, value } => {
                    let (lower, upper) = match cmp {
                        CmpOp::Gt => (Bound::Excluded(*value), Bound::Unbounded),
                        CmpOp::Gte => (Bound::Included(*value), Bound::Unbounded),
                        CmpOp::Lt => (Bound::Unbounded, Bound::Excluded(*value)),
                        CmpOp::Lte => (Bound::Unbounded, Bound::Included(*value)),
                        CmpOp::Eq => (Bound::Included(*value), Bound::Included(*value)),
                    };
                    SigmaMatcher::Ir(Expr::Match(path, Pred::NumRange(NumBounds { lower, upper, integer: false })))
                }
                Test::Exists { value: true } => SigmaMatcher::Ir(Expr::Exists(path)),
                Test::Exists { value: false } | Test::Null => SigmaMatcher::Ir(Expr::not(Expr::Exists(path))),
                Test::FieldRef { other, position, cased } => SigmaMatcher::FieldRef {
                    name: name.clone(),
                    path,
                    other_name: other.clone(),
                    other: FieldPath::new(other),
                    position: *position,
                    cased: *cased,
                },
                Test::TimePart { part, cmp, value } => SigmaMatcher::TimePart { name: name.clone(), path, part: *part, cmp: *cmp, value: *value },
                Test::Placeholder { value, .. } => return Err(format!("placeholder {value:?} was never expanded")),
            }
        }
    })
}

/// And/or of compiled parts: `contains` alternatives of an `or` merge into Aho-Corasick tests;
/// IR parts merge into one IR expression.
fn fold(parts: Vec<SigmaMatcher>, and: bool) -> SigmaMatcher {
    let parts = if and { parts } else { merge_contains(parts) };
    if parts.len() == 1 {
        if let Some(p) = parts.into_iter().next() {
            return p;
        }
        return SigmaMatcher::Ir(Expr::Const(false));
    }
    if parts.iter().all(|p| matches!(p, SigmaMatcher::Ir(_))) {
        let exprs: Vec<Expr> = parts.into_iter().filter_map(|p| if let SigmaMatcher::Ir(e) = p { Some(e) } else { None }).collect();
        return SigmaMatcher::Ir(if and { Expr::and(exprs) } else { Expr::or(exprs) });
    }
    if and {
        SigmaMatcher::And(parts)
    } else {
        SigmaMatcher::Or(parts)
    }
}

/// The part of a UTC timestamp (epoch ms). Weeks are ISO 8601 week numbers.
pub fn time_part(ms: i64, part: TimePart) -> i64 {
    let Some(p) = imdsguard_ecs::time::utc_parts(ms) else { return -1 };
    match part {
        TimePart::Minute => p.minute,
        TimePart::Hour => p.hour,
        TimePart::Day => p.day,
        TimePart::Month => p.month,
        TimePart::Year => p.year,
        TimePart::Week => p.iso_week,
    }
}

fn relate(a: &str, b: &str, position: Position, cased: bool) -> bool {
    let (a, b) = if cased { (a.to_string(), b.to_string()) } else { (a.to_lowercase(), b.to_lowercase()) };
    match position {
        Position::Equals => a == b,
        Position::Contains => a.contains(&b),
        Position::StartsWith => a.starts_with(&b),
        Position::EndsWith => a.ends_with(&b),
    }
}

impl SigmaMatcher {
    pub fn matches(&self, doc: &dyn Document) -> bool {
        match self {
            SigmaMatcher::Ir(e) => e.matches(doc),
            SigmaMatcher::And(items) => items.iter().all(|m| m.matches(doc)),
            SigmaMatcher::Or(items) => items.iter().any(|m| m.matches(doc)),
            SigmaMatcher::Not(m) => !m.matches(doc),
            SigmaMatcher::Field { path, test, .. } => doc.any_value(path, &mut |v| test.test(v)),
            SigmaMatcher::AnyField(test) => {
                let mut hit = false;
                doc.for_each_leaf(&mut |_, v| {
                    if !hit && test.test(v) {
                        hit = true;
                    }
                });
                hit
            }
            SigmaMatcher::FieldRef { path, other, position, cased, .. } => {
                let others = keyword_values(doc, other);
                doc.any_value(path, &mut |v| {
                    let a = v.as_keyword();
                    others.iter().any(|b| relate(&a, b, *position, *cased))
                })
            }
            SigmaMatcher::TimePart { path, part, cmp, value, .. } => doc.any_value(path, &mut |v| {
                imdsguard_ecs::time::value_to_millis(v).is_some_and(|ms| cmp.test(time_part(ms, *part) as f64, *value as f64))
            }),
        }
    }

    /// What a raw event must contain to possibly match (see [`imdsguard_ir::literals`]).
    pub fn needles(&self) -> Needles {
        match self {
            SigmaMatcher::Ir(e) => e.needles(),
            SigmaMatcher::And(items) => conjunction(items.iter().map(SigmaMatcher::needles)),
            SigmaMatcher::Or(items) => disjunction(items.iter().map(SigmaMatcher::needles)),
            SigmaMatcher::AnyField(t) | SigmaMatcher::Field { test: t, .. } => t.needles(),
            _ => Needles::Any,
        }
    }

    /// Why `doc` does or does not match.
    pub fn explain(&self, doc: &dyn Document) -> Explained {
        let outcome = Some(self.matches(doc));
        match self {
            SigmaMatcher::Ir(e) => imdsguard_ir::explain::explain(e, doc),
            SigmaMatcher::And(items) => Explained::node(outcome, "and", items.iter().map(|m| m.explain(doc)).collect()),
            SigmaMatcher::Or(items) => Explained::node(outcome, "or", items.iter().map(|m| m.explain(doc)).collect()),
            SigmaMatcher::Not(m) => Explained::node(outcome, "not", vec![m.explain(doc)]),
            SigmaMatcher::Field { name, path, test } => {
                Explained::leaf(outcome, format!("{name}: {}", test.describe()), Some(keyword_values(doc, path)))
            }
            SigmaMatcher::AnyField(test) => Explained::leaf(outcome, format!("any field: {}", test.describe()), None),
            SigmaMatcher::FieldRef { name, path, other_name, position, .. } => Explained::leaf(
                outcome,
                format!("{name} {position:?} field {other_name}"),
                Some(keyword_values(doc, path)),
            ),
            SigmaMatcher::TimePart { name, path, part, cmp, value } => Explained::leaf(
                outcome,
                format!("{part:?} of {name} {} {value}", cmp.symbol()),
                Some(keyword_values(doc, path)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_parts() {
        // 2024-12-30T13:45:00Z is in ISO week 1 of 2025.
        let ms = 1_735_566_300_000;
        assert_eq!(time_part(ms, TimePart::Year), 2024);
        assert_eq!(time_part(ms, TimePart::Month), 12);
        assert_eq!(time_part(ms, TimePart::Day), 30);
        assert_eq!(time_part(ms, TimePart::Hour), 13);
        assert_eq!(time_part(ms, TimePart::Minute), 45);
        assert_eq!(time_part(ms, TimePart::Week), 1);
        // 2021-01-03 (Sunday) is in ISO week 53 of 2020.
        assert_eq!(time_part(1_609_632_000_000, TimePart::Week), 53);
    }
}
