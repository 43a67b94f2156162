//! Printing a syntax tree back to KQL. `parse(to_kql(q))` gives `q` again (ignoring spans): the
//! round trip the property tests and the fuzz target check.

use crate::ast::{Literal, LiteralValue, Node, PatternPart, Query, RangeOp, ValueTree};

/// KQL text for a query.
pub fn to_kql(q: &Query) -> String {
    match &q.root {
        None => String::new(),
        Some(n) => node(n),
    }
}

fn node(n: &Node) -> String {
    match n {
        Node::Or(items, _) => items.iter().map(wrap_or_child).collect::<Vec<_>>().join(" or "),
        Node::And(items, _) => items.iter().map(wrap_and_child).collect::<Vec<_>>().join(" and "),
        Node::Not(inner, _) => format!("not {}", wrap_not_child(inner)),
        Node::Nested { field, query, .. } => format!("{}:{{ {} }}", literal(field), node(query)),
        Node::Range { field, op, value, .. } => {
            let op = match op {
                RangeOp::Lt => "<",
                RangeOp::Lte => "<=",
                RangeOp::Gt => ">",
                RangeOp::Gte => ">=",
            };
            format!("{} {op} {}", literal(field), literal(value))
        }
        Node::Field { field, values, .. } => format!("{}:{}", literal(field), value_tree_top(values)),
        Node::Value(v) => literal(v),
    }
}

fn wrap_or_child(n: &Node) -> String {
    match n {
        Node::Or(..) => format!("({})", node(n)),
        _ => node(n),
    }
}

fn wrap_and_child(n: &Node) -> String {
    match n {
        Node::Or(..) | Node::And(..) => format!("({})", node(n)),
        _ => node(n),
    }
}

fn wrap_not_child(n: &Node) -> String {
    match n {
        Node::Or(..) | Node::And(..) | Node::Not(..) => format!("({})", node(n)),
        _ => node(n),
    }
}

fn value_tree_top(t: &ValueTree) -> String {
    match t {
        ValueTree::Value(v) => literal(v),
        other => format!("({})", value_tree(other)),
    }
}

fn value_tree(t: &ValueTree) -> String {
    match t {
        ValueTree::Or(items, _) => items
            .iter()
            .map(|i| if matches!(i, ValueTree::Or(..)) { format!("({})", value_tree(i)) } else { value_tree(i) })
            .collect::<Vec<_>>()
            .join(" or "),
        ValueTree::And(items, _) => items
            .iter()
            .map(|i| {
                if matches!(i, ValueTree::Or(..) | ValueTree::And(..)) {
                    format!("({})", value_tree(i))
                } else {
                    value_tree(i)
                }
            })
            .collect::<Vec<_>>()
            .join(" and "),
        ValueTree::Not(inner, _) => match inner.as_ref() {
            ValueTree::Value(v) => format!("not {}", literal(v)),
            other => format!("not ({})", value_tree(other)),
        },
        ValueTree::Value(v) => literal(v),
    }
}

/// A literal as KQL text: quoted strings are re-escaped; unquoted text is quoted when it cannot
/// be written unquoted, otherwise special characters are backslash-escaped.
pub fn literal(l: &Literal) -> String {
    match &l.value {
        LiteralValue::Quoted(s) => quote(s),
        LiteralValue::Null => "null".into(),
        LiteralValue::Bool(b) => b.to_string(),
        LiteralValue::Unquoted(p) => {
            if p.parts.is_empty() {
                // The empty text (from e.g. `a:\t`, trimmed to nothing): an escaped tab is the
                // shortest spelling that parses back to it.
                return "\\t".into();
            }
            let mut out = String::new();
            for part in &p.parts {
                match part {
                    PatternPart::Wildcard => out.push('*'),
                    PatternPart::Text(t) => out.push_str(&escape_unquoted(t)),
                }
            }
            // Note: unquoted text `null`, `true` or `false` cannot be written (Kibana reads the words
            // as literals whatever their escapes); the parser never produces it.
            out
        }
    }
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Escape text for an unquoted literal: special characters, whitespace escapes, and every
/// whitespace or keyword boundary (written as `\u0020` so the value keeps its spaces but never
/// forms ` or `, ` and `, `not ` or gets trimmed).
fn escape_unquoted(t: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = t.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '\\' | '(' | ')' | ':' | '<' | '>' | '"' | '*' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if c.is_whitespace() || c == '\u{feff}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => {
                // `not` followed by whitespace starts a keyword: escape its first letter. At the
                // end of the text the whitespace may come from what is printed after the literal
                // (`a:(not or b)`), so escape there too. (`\not` would not do: `\n` is a newline.)
                let starts_not = (c == 'n' || c == 'N')
                    && chars.get(i + 1).is_some_and(|x| x.eq_ignore_ascii_case(&'o'))
                    && chars.get(i + 2).is_some_and(|x| x.eq_ignore_ascii_case(&'t'))
                    && !matches!(chars.get(i + 3), Some(x) if !x.is_whitespace());
                if starts_not {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push(c);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn round(q: &str) -> String {
        let ast = parse(q).unwrap_or_else(|d| panic!("{q:?}: {d}"));
        let text = to_kql(&ast);
        let back = parse(&text).unwrap_or_else(|d| panic!("{q:?} printed as {text:?}: {d}"));
        assert_eq!(back.without_spans(), ast.without_spans(), "{q:?} printed as {text:?}");
        text
    }

    #[test]
    fn prints_canonical_text() {
        assert_eq!(round("a:b  OR  c:d"), "a:b or c:d");
        assert_eq!(round("(a:b or c:d) and not e:f"), "(a:b or c:d) and not e:f");
        assert_eq!(round("a:(b or c and not d)"), "a:(b or c and not d)");
        assert_eq!(round("a:{ b:c }"), "a:{ b:c }");
        assert_eq!(round("a>=1"), "a >= 1");
        assert_eq!(round(r#"a:"x\"y\\z""#), r#"a:"x\"y\\z""#);
        assert_eq!(round(r"a:b\*c*"), r"a:b\*c*");
        assert_eq!(round(""), "");
    }

    #[test]
    fn tricky_literals_survive() {
        for q in [
            r"a:\t",
            r"a:(\t or b)",
            "a:(not or b)",
            r"a:x\u0020not",
            r"a:\or",
            r"a:x \and y",
            "message:hello world",
            "a:x\u{a0}y",
            r"a:\u006eot\u0020x",
            r"a:C\:\\Windows\(x86\)",
            r#"a:"tab\there\n""#,
            "a < not",
            "not:x and a:nothing",
            r"\u006eot < 5",
            r"a:\{\}\<\>",
            "*:*",
        ] {
            round(q);
        }
    }
}
