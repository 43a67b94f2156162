//! The lowered form of an EQL condition and its three-valued evaluation.
//!
//! Lowering (see `lower.rs`) turns `field OP literal(s)` comparisons into typed [`Pred`]s shared
//! with KQL (so `destination.ip == "169.254.169.254"` compares addresses on an `ip` field, and the
//! prefilter can extract needles), and everything else (functions, arithmetic, field-to-field
//! comparisons) into general value expressions.
//!
//! Semantics (Elasticsearch, not the Python engine):
//! - a field that is absent (or `null`) evaluates to `null`; any comparison or function over `null`
//!   is `null`; `not null` is `null`; `and`/`or` follow SQL three-valued logic; a condition that is
//!   `null` does not match;
//! - a multi-valued field matches a positive comparison when any of its values does; a negated
//!   comparison (`!=`, `not in`) holds when no value matches (the `must_not` of the term query
//!   Elasticsearch runs);
//! - functions receive the first value of a multi-valued field.

use super::functions::{self, Func};
use super::value::Scalar;
use imdsguard_ecs::{Document, FieldPath, ValueRef};
use imdsguard_ir::literals::Needles;
use imdsguard_ir::Pred;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// A lowered EQL expression.
#[derive(Debug, Clone)]
pub enum EqlExpr {
    Lit(Scalar),
    /// A field reference; `optional` for `?field`.
    Field { path: FieldPath, optional: bool },
    Not(Box<EqlExpr>),
    And(Vec<EqlExpr>),
    Or(Vec<EqlExpr>),
    /// A typed predicate on a field's values. `negated` = "no value satisfies it" (`!=`, `not in`),
    /// still `null` when the field is absent.
    FieldPred { path: FieldPath, pred: Pred, negated: bool },
    /// A typed predicate on the value of any expression (e.g. `string(x) : "a*"`); null stays null.
    ValuePred { expr: Box<EqlExpr>, pred: Pred },
    /// The expression's value is not null (`x != null` for a computed x); never null itself.
    IsNotNull(Box<EqlExpr>),
    /// The field has at least one value (`f != null`); never null itself.
    IsPresent(FieldPath),
    /// A regular expression (Lucene syntax, whole value) on a field's values.
    Regex { path: FieldPath, patterns: Vec<regex::Regex> },
    /// A general comparison of two value expressions (e.g. field to field, function result to literal).
    Cmp { op: CmpOp, lhs: Box<EqlExpr>, rhs: Box<EqlExpr> },
    Call { func: Func, case_insensitive: bool, args: Vec<EqlExpr> },
    Arith { op: ArithOp, lhs: Box<EqlExpr>, rhs: Box<EqlExpr> },
    Neg(Box<EqlExpr>),
}

fn scalar_of(v: ValueRef<'_>) -> Scalar {
    match v {
        ValueRef::Bool(b) => Scalar::Bool(b),
        ValueRef::I64(i) => Scalar::Int(i),
        ValueRef::U64(u) => i64::try_from(u).map(Scalar::Int).unwrap_or(Scalar::Float(u as f64)),
        ValueRef::F64(f) => Scalar::Float(f),
        ValueRef::Str(s) => Scalar::Str(s.to_string()),
    }
}

/// SQL three-valued `and` (`dominant = false`) and `or` (`dominant = true`): the dominant value
/// wins at once; otherwise any null makes the result null.
fn fold3(items: impl Iterator<Item = Option<bool>>, dominant: bool) -> Option<bool> {
    let mut null = false;
    for v in items {
        match v {
            Some(b) if b == dominant => return Some(dominant),
            None => null = true,
            Some(_) => {}
        }
    }
    if null {
        None
    } else {
        Some(!dominant)
    }
}

/// Three-valued comparison of two scalars (`None` = null or incomparable types).
pub fn compare(op: CmpOp, a: &Scalar, b: &Scalar) -> Option<bool> {
    use std::cmp::Ordering;
    let ord: Ordering = match (a, b) {
        (Scalar::Null, _) | (_, Scalar::Null) => return None,
        (Scalar::Str(x), Scalar::Str(y)) => x.cmp(y),
        (Scalar::Bool(x), Scalar::Bool(y)) => x.cmp(y),
        (Scalar::Int(x), Scalar::Int(y)) => x.cmp(y),
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.partial_cmp(&y)?,
            _ => return None,
        },
    };
    Some(match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    })
}

fn arith(op: ArithOp, a: &Scalar, b: &Scalar) -> Scalar {
    let func = match op {
        ArithOp::Add => Func::Add,
        ArithOp::Sub => Func::Subtract,
        ArithOp::Mul => Func::Multiply,
        ArithOp::Div => Func::Divide,
        ArithOp::Mod => Func::Modulo,
    };
    functions::call(func, false, &[a.clone(), b.clone()]).unwrap_or(Scalar::Null)
}

impl EqlExpr {
    /// The values of an expression: all values of a field, one value otherwise (empty = null).
    pub fn values(&self, doc: &dyn Document) -> Vec<Scalar> {
        match self {
            EqlExpr::Field { path, .. } => {
                let mut out = Vec::new();
                doc.any_value(path, &mut |v| {
                    out.push(scalar_of(v));
                    false
                });
                out
            }
            other => match other.value(doc) {
                Scalar::Null => Vec::new(),
                v => vec![v],
            },
        }
    }

    /// The value of an expression (the first value of a multi-valued field).
    pub fn value(&self, doc: &dyn Document) -> Scalar {
        match self {
            EqlExpr::Lit(s) => s.clone(),
            EqlExpr::Field { path, .. } => {
                let mut out = Scalar::Null;
                doc.any_value(path, &mut |v| {
                    out = scalar_of(v);
                    true
                });
                out
            }
            EqlExpr::Call { func, case_insensitive, args } => {
                let vals: Vec<Scalar> = args.iter().map(|a| a.value(doc)).collect();
                functions::call(*func, *case_insensitive, &vals).unwrap_or(Scalar::Null)
            }
            EqlExpr::Arith { op, lhs, rhs } => arith(*op, &lhs.value(doc), &rhs.value(doc)),
            EqlExpr::Neg(inner) => match inner.value(doc) {
                Scalar::Int(i) => i.checked_neg().map(Scalar::Int).unwrap_or(Scalar::Null),
                Scalar::Float(f) => Scalar::Float(-f),
                _ => Scalar::Null,
            },
            cond => match cond.eval(doc) {
                Some(b) => Scalar::Bool(b),
                None => Scalar::Null,
            },
        }
    }

    /// Three-valued truth: `Some(true)`, `Some(false)` or `None` (null).
    pub fn eval(&self, doc: &dyn Document) -> Option<bool> {
        match self {
            EqlExpr::Not(inner) => inner.eval(doc).map(|b| !b),
            EqlExpr::And(items) => fold3(items.iter().map(|i| i.eval(doc)), false),
            EqlExpr::Or(items) => fold3(items.iter().map(|i| i.eval(doc)), true),
            EqlExpr::FieldPred { path, pred, negated } => {
                let mut any_value = false;
                let hit = doc.any_value(path, &mut |v| {
                    any_value = true;
                    pred.test(v)
                });
                if !any_value && !hit {
                    return None;
                }
                Some(hit != *negated)
            }
            EqlExpr::IsPresent(path) => Some(doc.exists(path)),
            EqlExpr::IsNotNull(e) => Some(!e.value(doc).is_null()),
            EqlExpr::ValuePred { expr, pred } => {
                let vals = expr.values(doc);
                if vals.is_empty() {
                    return None;
                }
                Some(vals.iter().any(|v| match v {
                    Scalar::Null => false,
                    Scalar::Bool(b) => pred.test(ValueRef::Bool(*b)),
                    Scalar::Int(i) => pred.test(ValueRef::I64(*i)),
                    Scalar::Float(f) => pred.test(ValueRef::F64(*f)),
                    Scalar::Str(s) => pred.test(ValueRef::Str(s)),
                }))
            }
            EqlExpr::Regex { path, patterns } => {
                let mut any_value = false;
                let hit = doc.any_value(path, &mut |v| {
                    any_value = true;
                    let s = v.as_keyword();
                    patterns.iter().any(|r| r.is_match(&s))
                });
                if any_value {
                    Some(hit)
                } else {
                    None
                }
            }
            EqlExpr::Cmp { op, lhs, rhs } => {
                let (a, b) = (lhs.values(doc), rhs.values(doc));
                if a.is_empty() && b.is_empty() && (lhs.is_optional_field() || rhs.is_optional_field()) {
                    // `?x == ?y` with both absent: equal (Elasticsearch's optional-field semantics).
                    return match op {
                        CmpOp::Eq => Some(true),
                        CmpOp::Ne => Some(false),
                        _ => None,
                    };
                }
                if a.is_empty() || b.is_empty() {
                    return None;
                }
                let mut null = false;
                for x in &a {
                    for y in &b {
                        match compare(*op, x, y) {
                            Some(true) => return Some(true),
                            None => null = true,
                            Some(false) => {}
                        }
                    }
                }
                if null {
                    None
                } else {
                    Some(false)
                }
            }
            EqlExpr::Lit(Scalar::Bool(b)) => Some(*b),
            other => match other.value(doc) {
                Scalar::Bool(b) => Some(b),
                _ => None,
            },
        }
    }

    fn is_optional_field(&self) -> bool {
        matches!(self, EqlExpr::Field { optional: true, .. })
    }

    /// Whether the condition matches (null does not).
    pub fn matches(&self, doc: &dyn Document) -> bool {
        self.eval(doc) == Some(true)
    }

    /// Literals an event must contain to possibly match (see `imdsguard_ir::literals`).
    pub fn needles(&self) -> Needles {
        match self {
            EqlExpr::And(items) => {
                let parts: Vec<Needles> = items.iter().map(EqlExpr::needles).collect();
                imdsguard_ir::literals::conjunction(parts)
            }
            EqlExpr::Or(items) => imdsguard_ir::literals::disjunction(items.iter().map(EqlExpr::needles)),
            EqlExpr::FieldPred { pred, negated: false, .. } => pred.needles(),
            EqlExpr::Lit(Scalar::Bool(false)) => Needles::AnyOf(vec![]),
            _ => Needles::Any,
        }
    }
}
