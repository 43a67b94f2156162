//! Printing a syntax tree back to EQL. `parse(to_eql(q))` gives `q` again (ignoring spans): the
//! round trip the property tests and the fuzz target check. Parentheses are added only where the
//! grammar's precedence needs them (and around a nested `and`/`or` of the same kind, which the
//! parser would otherwise flatten).

use crate::ast::{CategoryKind, EventQuery, Expr, Field, Literal, PipeKind, Query, QueryBody, Step, UnaryOp, Value};
use crate::lexer::keyword;

/// EQL text for a query.
pub fn to_eql(q: &Query) -> String {
    let mut out = match &q.body {
        QueryBody::Event(e) => event_query(e),
        QueryBody::Sequence(s) => {
            let mut out = String::from("sequence");
            if !s.by.is_empty() {
                out.push_str(" by ");
                out.push_str(&list(&s.by));
            }
            if let Some(m) = &s.maxspan {
                out.push_str(&format!(" with maxspan={}{}", m.value, m.unit.as_str()));
            }
            for st in &s.steps {
                out.push_str("\n  ");
                out.push_str(&step(st));
            }
            if let Some(u) = &s.until {
                out.push_str("\nuntil ");
                out.push_str(&step(u));
            }
            out
        }
        QueryBody::Sample(s) => {
            let mut out = String::from("sample");
            if !s.by.is_empty() {
                out.push_str(" by ");
                out.push_str(&list(&s.by));
            }
            for st in &s.steps {
                out.push_str("\n  ");
                out.push_str(&step(st));
            }
            out
        }
    };
    for p in &q.pipes {
        let name = match p.kind {
            PipeKind::Head => "head",
            PipeKind::Tail => "tail",
        };
        out.push_str(&format!(" | {name} {}", p.count));
    }
    out
}

fn step(s: &Step) -> String {
    let mut out = String::new();
    out.push_str(if s.missing { "![" } else { "[" });
    out.push_str(&event_query(&s.query));
    out.push(']');
    if !s.by.is_empty() {
        out.push_str(" by ");
        out.push_str(&list(&s.by));
    }
    if let Some(n) = s.runs {
        out.push_str(&format!(" with runs={n}"));
    }
    out
}

fn list(items: &[Expr]) -> String {
    items.iter().map(expr).collect::<Vec<_>>().join(", ")
}

fn event_query(e: &EventQuery) -> String {
    let cat = match &e.category.kind {
        CategoryKind::Any => "any".to_string(),
        CategoryKind::Name(n) if is_plain_identifier(n) => n.clone(),
        CategoryKind::Name(n) => string(n),
    };
    format!("{cat} where {}", expr(&e.condition))
}

/// `IDENTIFIER` and not a keyword.
fn is_plain_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    let first_ok = matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b'@');
    first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') && keyword(s).is_none()
}

/// Binding strength of a node, from loosest to tightest.
fn prec(e: &Expr) -> u8 {
    match e {
        Expr::Or(..) => 1,
        Expr::And(..) => 2,
        Expr::Not(..) => 3,
        Expr::Compare { .. } => 4,
        Expr::Arith { op, .. } => match op {
            crate::ast::ArithOp::Add | crate::ast::ArithOp::Sub => 5,
            _ => 6,
        },
        Expr::Unary { .. } => 7,
        Expr::In { .. } | Expr::Match { .. } => 8,
        Expr::Call(_) | Expr::Field(_) | Expr::Literal(_) => 9,
    }
}

/// `e` printed so that it parses back at a position that needs at least strength `min`.
fn at(e: &Expr, min: u8) -> String {
    if prec(e) >= min {
        expr(e)
    } else {
        format!("({})", expr(e))
    }
}

/// EQL text for an expression.
pub fn expr(e: &Expr) -> String {
    match e {
        Expr::Or(items, _) => items.iter().map(|i| at(i, 2)).collect::<Vec<_>>().join(" or "),
        Expr::And(items, _) => items.iter().map(|i| at(i, 3)).collect::<Vec<_>>().join(" and "),
        Expr::Not(inner, _) => format!("not {}", at(inner, 3)),
        Expr::Compare { op, left, right, .. } => format!("{} {} {}", at(left, 5), op.as_str(), at(right, 5)),
        Expr::Arith { op, left, right, .. } => {
            let p = prec(e);
            format!("{} {} {}", at(left, p), op.as_str(), at(right, p + 1))
        }
        Expr::Unary { op, expr: inner, .. } => {
            let sign = match op {
                UnaryOp::Neg => "-",
                UnaryOp::Plus => "+",
            };
            format!("{sign}{}", at(inner, 7))
        }
        Expr::In { expr: inner, negated, insensitive, list: items, .. } => format!(
            "{} {}in{} ({})",
            at(inner, 9),
            if *negated { "not " } else { "" },
            if *insensitive { "~" } else { "" },
            list(items)
        ),
        Expr::Match { expr: inner, op, patterns, .. } => {
            let rhs = match patterns.as_slice() {
                [one] => literal(one),
                many => format!("({})", many.iter().map(literal).collect::<Vec<_>>().join(", ")),
            };
            format!("{} {} {rhs}", at(inner, 9), op.as_str())
        }
        Expr::Call(c) => format!("{}{}({})", c.name, if c.insensitive { "~" } else { "" }, list(&c.args)),
        Expr::Field(f) => field(f),
        Expr::Literal(l) => literal(l),
    }
}

/// A field name: plain when every dotted part is an identifier, else back-quoted as a whole.
pub fn field(f: &Field) -> String {
    let plain = !f.name.is_empty() && f.name.split('.').all(is_plain_identifier);
    let name = if plain { f.name.clone() } else { format!("`{}`", f.name.replace('`', "``")) };
    if f.optional {
        format!("?{name}")
    } else {
        name
    }
}

pub fn literal(l: &Literal) -> String {
    match &l.value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => float(*f),
        Value::Str(s) => string(s),
    }
}

/// A double as a `DECIMAL_VALUE` that reads back to the same value.
fn float(f: f64) -> String {
    if f.is_infinite() {
        return "1e999".into();
    }
    if f.is_nan() {
        // Never produced by the parser.
        return "0.0".into();
    }
    // `{:?}` is the shortest text that reads back exactly, and always has a `.` or an exponent.
    format!("{:?}", f.abs())
}

/// A double-quoted string with the escapes Elasticsearch reads.
pub fn string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn round(q: &str) -> String {
        let ast = parse(q).unwrap_or_else(|d| panic!("{q:?}: {d}"));
        let text = to_eql(&ast);
        let back = parse(&text).unwrap_or_else(|d| panic!("{q:?} printed as {text:?}: {d}"));
        assert_eq!(back.without_spans(), ast.without_spans(), "{q:?} printed as {text:?}");
        text
    }

    #[test]
    fn prints_canonical_text() {
        assert_eq!(round("process  where a==1"), "process where a == 1");
        assert_eq!(round("any where (a or b) and not c"), "any where (a or b) and not c");
        assert_eq!(round("any where a - (b - c)"), "any where a - (b - c)");
        assert_eq!(round("any where (a - b) - c"), "any where a - b - c");
        assert_eq!(round("any where -(a + 1) * 2"), "any where -(a + 1) * 2");
        assert_eq!(round("any where f : (\"a\")"), "any where f : \"a\"");
        assert_eq!(round("any where `a b`.c like~ (\"x\", \"y\")"), "any where `a b.c` like~ (\"x\", \"y\")");
        assert_eq!(round("\"my-cat\" where ?`any` != null"), "\"my-cat\" where ?`any` != null");
        assert_eq!(round("any where x in~ (1, 2.5, \"\"\"a\\b\"\"\")"), "any where x in~ (1, 2.5, \"a\\\\b\")");
        assert_eq!(round("any where true | head 3 | tail 1"), "any where true | head 3 | tail 1");
    }

    #[test]
    fn sequences_and_samples_round_trip() {
        round("sequence by a, b with maxspan=5m [process where true] by c ![file where x] by d with runs=2 until [any where y] by e");
        round("sample by h [any where a] by o [any where b] by p");
        round("sequence [a where (x or y) and z] [b where not (p and q)]");
    }
}
