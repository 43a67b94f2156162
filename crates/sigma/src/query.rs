//! The resolved form of a Sigma rule's detection: a boolean tree over field tests, with every value
//! modifier already applied (wildcards placed, encodings computed, windash variants expanded).
//! Processing pipelines rewrite it (field names, added conditions); [`crate::lower`] compiles it.
//! It is serializable so a loaded rule can carry it as its query text.

use serde::{Deserialize, Serialize};

/// One piece of a wildcard pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tok {
    Lit(String),
    /// `*`
    Star,
    /// `?`
    One,
}

/// Where a field reference or placeholder value must occur.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    Equals,
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CmpOp {
    pub fn test(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Gt => a > b,
            CmpOp::Gte => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Lte => a <= b,
        }
    }
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
        }
    }
}

/// Part of a timestamp (the time modifiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimePart {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// The test applied to one field (or, for keywords, to any field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Test {
    /// Wildcard pattern over the value's text (case-insensitive unless `cased`).
    Str { pattern: Vec<Tok>, cased: bool },
    /// A YAML number: numeric equality (numeric strings coerce).
    Num { value: f64 },
    /// `re` with its flags; unanchored search.
    Re { pattern: String, i: bool, m: bool, s: bool },
    /// `cidr`
    Cidr { net: String },
    /// `gt`, `gte`, `lt`, `lte`
    Cmp { cmp: CmpOp, value: f64 },
    /// `exists`
    Exists { value: bool },
    /// `null`: the field has no value.
    Null,
    /// `fieldref`: compared with the values of another field of the same event.
    FieldRef { other: String, position: Position, cased: bool },
    /// `minute` ... `year`: a part of the field's timestamp (UTC) compared with a number.
    TimePart { part: TimePart, cmp: CmpOp, value: i64 },
    /// `expand`: a value with `%placeholders%`, replaced by a pipeline's `vars`.
    Placeholder { value: String, position: Position, cased: bool },
}

/// A field test. `field` is `None` for keyword (field-less) searches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaf {
    pub field: Option<String>,
    #[serde(flatten)]
    pub test: Test,
}

/// The boolean tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Query {
    And(Vec<Query>),
    Or(Vec<Query>),
    Not(Box<Query>),
    Const(bool),
    Leaf(Leaf),
}

impl Query {
    pub fn and(mut items: Vec<Query>) -> Query {
        if items.len() == 1 {
            return items.pop().unwrap_or(Query::Const(true));
        }
        Query::And(items)
    }
    pub fn or(mut items: Vec<Query>) -> Query {
        if items.len() == 1 {
            return items.pop().unwrap_or(Query::Const(false));
        }
        Query::Or(items)
    }
    pub fn leaf(field: Option<&str>, test: Test) -> Query {
        Query::Leaf(Leaf { field: field.map(str::to_string), test })
    }

    /// The JSON form (what a loaded rule stores as its query).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<Query, String> {
        serde_json::from_str(text).map_err(|e| format!("not a resolved Sigma query: {e}"))
    }

    /// A readable one-line form (Sigma field syntax with `and` / `or` / `not`), for `rules show`.
    pub fn display(&self) -> String {
        fn compound(q: &Query) -> bool {
            matches!(q, Query::And(v) | Query::Or(v) if v.len() > 1)
        }
        fn wrap(q: &Query) -> String {
            if compound(q) {
                format!("({})", q.display())
            } else {
                q.display()
            }
        }
        match self {
            Query::And(items) if items.is_empty() => "true".into(),
            Query::Or(items) if items.is_empty() => "false".into(),
            Query::And(items) => items.iter().map(wrap).collect::<Vec<_>>().join(" and "),
            Query::Or(items) => items.iter().map(|q| if matches!(q, Query::And(v) if v.len() > 1) { wrap(q) } else { q.display() }).collect::<Vec<_>>().join(" or "),
            Query::Not(q) => format!("not {}", wrap(q)),
            Query::Const(b) => b.to_string(),
            Query::Leaf(l) => {
                let f = l.field.as_deref().unwrap_or("*");
                let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
                match &l.test {
                    Test::Str { pattern, cased } => format!("{f}{}: {}", if *cased { "|cased" } else { "" }, q(&pattern_text(pattern))),
                    Test::Num { value } => format!("{f}: {value}"),
                    Test::Re { pattern, i, m, s } => format!(
                        "{f}|re{}{}{}: {}",
                        if *i { "|i" } else { "" },
                        if *m { "|m" } else { "" },
                        if *s { "|s" } else { "" },
                        q(pattern)
                    ),
                    Test::Cidr { net } => format!("{f}|cidr: {}", q(net)),
                    Test::Cmp { cmp, value } => format!("{f}|{}: {value}", cmp_name(*cmp)),
                    Test::Exists { value } => format!("{f}|exists: {value}"),
                    Test::Null => format!("{f}: null"),
                    Test::FieldRef { other, position, cased } => {
                        format!("{f}|fieldref{}{}: {other}", position_name(*position), if *cased { "|cased" } else { "" })
                    }
                    Test::TimePart { part, cmp, value } => format!(
                        "{f}|{}{}: {value}",
                        format!("{part:?}").to_lowercase(),
                        if *cmp == CmpOp::Eq { String::new() } else { format!("|{}", cmp_name(*cmp)) }
                    ),
                    Test::Placeholder { value, position, cased } => {
                        format!("{f}|expand{}{}: {}", position_name(*position), if *cased { "|cased" } else { "" }, q(value))
                    }
                }
            }
        }
    }

    /// Apply `f` to every leaf, replacing it by what `f` returns.
    pub fn map_leaves(self, f: &mut dyn FnMut(Leaf) -> Result<Query, String>) -> Result<Query, String> {
        Ok(match self {
            Query::And(items) => Query::And(items.into_iter().map(|q| q.map_leaves(f)).collect::<Result<_, _>>()?),
            Query::Or(items) => Query::Or(items.into_iter().map(|q| q.map_leaves(f)).collect::<Result<_, _>>()?),
            Query::Not(q) => Query::Not(Box::new(q.map_leaves(f)?)),
            Query::Const(b) => Query::Const(b),
            Query::Leaf(l) => f(l)?,
        })
    }

    /// Every leaf, in order.
    pub fn leaves(&self, out: &mut Vec<Leaf>) {
        match self {
            Query::And(items) | Query::Or(items) => items.iter().for_each(|q| q.leaves(out)),
            Query::Not(q) => q.leaves(out),
            Query::Const(_) => {}
            Query::Leaf(l) => out.push(l.clone()),
        }
    }
}

fn cmp_name(c: CmpOp) -> &'static str {
    match c {
        CmpOp::Eq => "eq",
        CmpOp::Gt => "gt",
        CmpOp::Gte => "gte",
        CmpOp::Lt => "lt",
        CmpOp::Lte => "lte",
    }
}

fn position_name(p: Position) -> &'static str {
    match p {
        Position::Equals => "",
        Position::Contains => "|contains",
        Position::StartsWith => "|startswith",
        Position::EndsWith => "|endswith",
    }
}

/// Parse a Sigma string value: `*` and `?` are wildcards; `\*`, `\?` and `\\` are the literal
/// characters; a backslash before anything else is a literal backslash.
pub fn parse_wildcards(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&n @ ('*' | '?' | '\\')) => {
                    lit.push(n);
                    chars.next();
                }
                _ => lit.push('\\'),
            },
            '*' | '?' => {
                if !lit.is_empty() {
                    out.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                out.push(if c == '*' { Tok::Star } else { Tok::One });
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Tok::Lit(lit));
    }
    out
}

/// A pattern in Sigma's own escaping (for display).
pub fn pattern_text(p: &[Tok]) -> String {
    p.iter()
        .map(|t| match t {
            Tok::Lit(s) => s.replace('\\', "\\\\").replace('*', "\\*").replace('?', "\\?"),
            Tok::Star => "*".into(),
            Tok::One => "?".into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_escapes() {
        let cases: &[(&str, Vec<Tok>)] = &[
            ("a*b", vec![Tok::Lit("a".into()), Tok::Star, Tok::Lit("b".into())]),
            ("a\\*b", vec![Tok::Lit("a*b".into())]),
            ("a\\?b?", vec![Tok::Lit("a?b".into()), Tok::One]),
            ("C:\\Windows\\", vec![Tok::Lit("C:\\Windows\\".into())]),
            ("a\\\\*", vec![Tok::Lit("a\\".into()), Tok::Star]),
        ];
        for (input, want) in cases {
            assert_eq!(&parse_wildcards(input), want, "{input}");
        }
    }

    #[test]
    fn display_table() {
        let s = |p: &str| Query::leaf(Some("f"), Test::Str { pattern: parse_wildcards(p), cased: false });
        let cases = [
            (Query::And(vec![s("a"), Query::Or(vec![s("b*"), s("c")])]), r#"f: "a" and (f: "b*" or f: "c")"#),
            (Query::Not(Box::new(Query::And(vec![s("a"), s("b")]))), r#"not (f: "a" and f: "b")"#),
            (Query::leaf(Some("g"), Test::Cmp { cmp: CmpOp::Gte, value: 3.0 }), "g|gte: 3"),
            (Query::leaf(None, Test::Str { pattern: parse_wildcards("*x\\*y*"), cased: true }), r#"*|cased: "*x\\*y*""#),
        ];
        for (q, want) in cases {
            assert_eq!(q.display(), want);
        }
    }

    #[test]
    fn json_round_trip() {
        let q = Query::And(vec![
            Query::leaf(Some("a"), Test::Str { pattern: parse_wildcards("x*"), cased: false }),
            Query::Not(Box::new(Query::leaf(None, Test::Null))),
        ]);
        assert_eq!(Query::from_json(&q.to_json()), Ok(q));
    }
}
