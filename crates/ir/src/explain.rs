//! Why a query did or did not match a document: the query tree with each clause's outcome and,
//! for field clauses, the values the document holds. Used by `--explain`.
//!
//! The tree is rendered with `[x]` for a clause that holds, `[ ]` for one that does not and `[?]`
//! for an EQL clause that is null (a missing field under three-valued logic). An `or` that holds
//! shows the branches that matched and counts the others; one that does not lists every branch; a
//! `not` shows the exclusion inside it and whether it matched.

use crate::expr::{Bound, Expr, IpPred, Pred};
use imdsguard_ecs::doc::keyword_values;
use imdsguard_ecs::Document;
use std::fmt::Write;

/// One clause and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    /// `Some(true)` holds, `Some(false)` does not, `None` null (EQL).
    pub outcome: Option<bool>,
    /// The clause (`and`, `or`, `not`, or a field test such as `process.name: "curl"`).
    pub text: String,
    /// For field clauses: the document's values of the field (at most a few).
    pub seen: Option<Vec<String>>,
    pub children: Vec<Explained>,
}

const MAX_SEEN: usize = 5;

impl Explained {
    pub fn leaf(outcome: Option<bool>, text: String, seen: Option<Vec<String>>) -> Explained {
        Explained { outcome, text, seen, children: Vec::new() }
    }

    pub fn node(outcome: Option<bool>, text: &str, children: Vec<Explained>) -> Explained {
        Explained { outcome, text: text.to_string(), seen: None, children }
    }

    /// The indented text form, one clause per line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out, 0);
        out
    }

    fn render_into(&self, out: &mut String, depth: usize) {
        let mark = match self.outcome {
            Some(true) => "[x]",
            Some(false) => "[ ]",
            None => "[?]",
        };
        let _ = write!(out, "{}{mark} {}", "  ".repeat(depth), self.text);
        if let Some(seen) = &self.seen {
            if seen.is_empty() {
                out.push_str("   (field absent)");
            } else {
                let shown: Vec<String> = seen.iter().take(MAX_SEEN).map(|s| format!("{s:?}")).collect();
                let more = if seen.len() > MAX_SEEN { format!(", ... {} more", seen.len() - MAX_SEEN) } else { String::new() };
                let _ = write!(out, "   (saw {}{more})", shown.join(", "));
            }
        }
        out.push('\n');
        // An `or` that holds shows the branches that matched and counts the others; one that
        // does not shows every branch (why none matched).
        let collapse = self.text == "or" && self.outcome == Some(true);
        let mut hidden = 0;
        for c in &self.children {
            if collapse && c.outcome != Some(true) {
                hidden += 1;
                continue;
            }
            c.render_into(out, depth + 1);
        }
        if hidden > 0 {
            let _ = writeln!(out, "{}... {hidden} other branch(es) did not hold", "  ".repeat(depth + 1));
        }
    }
}

fn bound<T: std::fmt::Display>(b: &Bound<T>, lower: bool) -> Option<String> {
    match (b, lower) {
        (Bound::Unbounded, _) => None,
        (Bound::Included(v), true) => Some(format!(">= {v}")),
        (Bound::Excluded(v), true) => Some(format!("> {v}")),
        (Bound::Included(v), false) => Some(format!("<= {v}")),
        (Bound::Excluded(v), false) => Some(format!("< {v}")),
    }
}

fn range<T: std::fmt::Display>(lower: &Bound<T>, upper: &Bound<T>) -> String {
    [bound(lower, true), bound(upper, false)].into_iter().flatten().collect::<Vec<_>>().join(" and ")
}

/// A short description of a predicate, as the right-hand side of `field ...`.
pub fn describe_pred(p: &Pred) -> String {
    match p {
        Pred::StrEq { value, case_insensitive: false } => format!(": {value:?}"),
        Pred::StrEq { value, case_insensitive: true } => format!(": {value:?} (case-insensitive)"),
        Pred::StrGlob(g) => format!(": {} (wildcard)", g.source()),
        Pred::StrRange(b) => range(&b.lower, &b.upper),
        Pred::NumEq { value, .. } => format!("== {value}"),
        Pred::NumRange(b) => range(&b.lower, &b.upper),
        Pred::BoolEq(b) => format!(": {b}"),
        Pred::Ip(IpPred::Eq(a)) => format!(": {a} (ip)"),
        Pred::Ip(IpPred::Cidr(n)) => format!(": {n} (ip)"),
        Pred::Ip(IpPred::Range { lower, upper }) => format!("ip range {}", range(lower, upper)),
        Pred::DateRange { lower, upper } => {
            let f = |b: &Bound<i64>| match b {
                Bound::Unbounded => Bound::Unbounded,
                Bound::Included(v) => Bound::Included(imdsguard_ecs::time::format_millis(*v)),
                Bound::Excluded(v) => Bound::Excluded(imdsguard_ecs::time::format_millis(*v)),
            };
            range(&f(lower), &f(upper))
        }
        Pred::TextAny(t) => format!(" matches any of {t:?} (text)"),
        Pred::TextPhrase(t) => format!(" matches the phrase {t:?} (text)"),
        Pred::TextGlob(g) => format!(": {} (text wildcard)", g.source()),
        Pred::VersionRange(b) => format!("version {}", range(&b.lower, &b.upper)),
        Pred::AnyOf(ps) => {
            let eq: Option<Vec<(&String, bool)>> = ps
                .iter()
                .map(|p| match p {
                    Pred::StrEq { value, case_insensitive } => Some((value, *case_insensitive)),
                    _ => None,
                })
                .collect();
            match eq {
                Some(v) if !v.is_empty() && v.iter().all(|(_, ci)| *ci == v[0].1) => {
                    let values: Vec<String> = v.iter().map(|(s, _)| format!("{s:?}")).collect();
                    format!(" in ({}){}", values.join(", "), if v[0].1 { " (case-insensitive)" } else { "" })
                }
                _ if ps.len() == 1 => describe_pred(&ps[0]),
                _ => format!(": {}", ps.iter().map(|p| describe_pred(p).trim_start_matches(": ").to_string()).collect::<Vec<_>>().join(" or ")),
            }
        }
    }
}

/// Explain `expr` on `doc`.
pub fn explain(expr: &Expr, doc: &dyn Document) -> Explained {
    match expr {
        Expr::Const(b) => Explained::leaf(Some(*b), if *b { "match all".into() } else { "match none".into() }, None),
        Expr::And(items) => {
            let children: Vec<Explained> = items.iter().map(|e| explain(e, doc)).collect();
            let outcome = children.iter().all(|c| c.outcome == Some(true));
            Explained::node(Some(outcome), "and", children)
        }
        Expr::Or(items) => {
            let children: Vec<Explained> = items.iter().map(|e| explain(e, doc)).collect();
            let outcome = children.iter().any(|c| c.outcome == Some(true));
            Explained::node(Some(outcome), "or", children)
        }
        Expr::Not(inner) => {
            let c = explain(inner, doc);
            let outcome = c.outcome != Some(true);
            Explained::node(Some(outcome), "not", vec![c])
        }
        Expr::Exists(path) => {
            let seen = keyword_values(doc, path);
            Explained::leaf(Some(expr.matches(doc)), format!("{} exists", path.name()), Some(seen))
        }
        Expr::Match(path, pred) => {
            let seen = keyword_values(doc, path);
            Explained::leaf(Some(expr.matches(doc)), format!("{} {}", path.name(), describe_pred(pred)).replace(" :", ":"), Some(seen))
        }
        Expr::MatchGlob { fields, .. } => Explained::leaf(Some(expr.matches(doc)), format!("{}: ... (fields matching the pattern)", fields.source()), None),
        Expr::Nested(path, inner) => {
            let mut best: Option<Explained> = None;
            doc.any_object(path, &mut |obj| {
                let e = explain(inner, obj);
                let hit = e.outcome == Some(true);
                if hit || best.is_none() {
                    best = Some(e);
                }
                hit
            });
            let outcome = expr.matches(doc);
            Explained::node(Some(outcome), &format!("nested {} (one object)", path.name()), best.into_iter().collect())
        }
        Expr::AnyField(_) => Explained::leaf(Some(expr.matches(doc)), "any field (a query without a field name)".into(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glob::Glob;
    use imdsguard_ecs::FieldPath;
    use serde_json::json;

    #[test]
    fn tree_with_outcomes_and_values() {
        let e = Expr::And(vec![
            Expr::Match(FieldPath::new("process.name"), Pred::StrEq { value: "curl".into(), case_insensitive: false }),
            Expr::Or(vec![
                Expr::Match(FieldPath::new("url.path"), Pred::StrGlob(Glob::parse("*token*", true, false))),
                Expr::Exists(FieldPath::new("user.name")),
            ]),
            Expr::Not(Box::new(Expr::Match(FieldPath::new("destination.port"), Pred::NumEq { value: 443.0, integer: true }))),
        ]);
        let doc = json!({"process": {"name": "curl"}, "url": {"path": "/latest/api/token"}, "destination": {"port": 80}});
        assert_eq!(
            explain(&e, &doc).render(),
            "[x] and\n  [x] process.name: \"curl\"   (saw \"curl\")\n  [x] or\n    [x] url.path: *token* (wildcard)   (saw \"/latest/api/token\")\n    ... 1 other branch(es) did not hold\n  [x] not\n    [ ] destination.port == 443   (saw \"80\")\n"
        );
    }
}
