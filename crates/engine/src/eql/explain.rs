//! `--explain` for EQL: the three-valued outcome of each clause of an event query (and, for
//! sequences and samples, which steps an event satisfies), in the shape of
//! [`imdsguard_ir::explain`].

use super::expr::EqlExpr;
use imdsguard_ecs::doc::keyword_values;
use imdsguard_ecs::Document;
use imdsguard_ir::explain::{describe_pred, Explained};

fn describe(e: &EqlExpr) -> String {
    match e {
        EqlExpr::Lit(s) => format!("{s:?}"),
        EqlExpr::Field { path, optional } => format!("{}{}", if *optional { "?" } else { "" }, path.name()),
        EqlExpr::FieldPred { path, pred, negated } => {
            format!("{}{} {}", if *negated { "not " } else { "" }, path.name(), describe_pred(pred)).replace(" :", ":")
        }
        EqlExpr::ValuePred { expr, pred } => format!("{} {}", describe(expr), describe_pred(pred)).replace(" :", ":"),
        EqlExpr::IsNotNull(x) => format!("{} != null", describe(x)),
        EqlExpr::IsPresent(p) => format!("{} != null", p.name()),
        EqlExpr::Regex { path, patterns } => format!("{} regex {:?}", path.name(), patterns.iter().map(|r| r.as_str()).collect::<Vec<_>>()),
        EqlExpr::Cmp { op, lhs, rhs } => format!("{} {op:?} {}", describe(lhs), describe(rhs)),
        EqlExpr::Call { func, case_insensitive, args } => format!(
            "{}{}({})",
            func.name(),
            if *case_insensitive { "~" } else { "" },
            args.iter().map(describe).collect::<Vec<_>>().join(", ")
        ),
        EqlExpr::Arith { op, lhs, rhs } => format!("({} {op:?} {})", describe(lhs), describe(rhs)),
        EqlExpr::Neg(x) => format!("-{}", describe(x)),
        EqlExpr::Not(x) => format!("not {}", describe(x)),
        EqlExpr::And(_) => "and".into(),
        EqlExpr::Or(_) => "or".into(),
    }
}

/// Explain an EQL condition on `doc`.
pub fn explain(e: &EqlExpr, doc: &dyn Document) -> Explained {
    match e {
        EqlExpr::And(items) => Explained::node(e.eval(doc), "and", items.iter().map(|i| explain(i, doc)).collect()),
        EqlExpr::Or(items) => Explained::node(e.eval(doc), "or", items.iter().map(|i| explain(i, doc)).collect()),
        EqlExpr::Not(inner) => Explained::node(e.eval(doc), "not", vec![explain(inner, doc)]),
        EqlExpr::FieldPred { path, .. } | EqlExpr::Regex { path, .. } | EqlExpr::IsPresent(path) => {
            Explained::leaf(e.eval(doc), describe(e), Some(keyword_values(doc, path)))
        }
        other => Explained::leaf(other.eval(doc), describe(other), None),
    }
}
