//! The expression tree.

use crate::glob::Glob;
use imdsguard_ecs::{FieldPath, FieldTable, FieldType};
use std::sync::Arc;
use ipnet::IpNet;
use std::net::IpAddr;

/// One bound of a range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound<T> {
    Unbounded,
    Included(T),
    Excluded(T),
}

impl<T: PartialOrd> Bound<T> {
    /// Whether `v` satisfies this bound as a lower bound.
    pub fn below_ok(&self, v: &T) -> bool {
        match self {
            Bound::Unbounded => true,
            Bound::Included(b) => v >= b,
            Bound::Excluded(b) => v > b,
        }
    }
    /// Whether `v` satisfies this bound as an upper bound.
    pub fn above_ok(&self, v: &T) -> bool {
        match self {
            Bound::Unbounded => true,
            Bound::Included(b) => v <= b,
            Bound::Excluded(b) => v < b,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NumBounds {
    pub lower: Bound<f64>,
    pub upper: Bound<f64>,
    /// Integer field: document values are truncated toward zero before comparing.
    pub integer: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StrBounds {
    pub lower: Bound<String>,
    pub upper: Bound<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IpPred {
    /// Equal address (IPv4 and IPv4-mapped IPv6 are the same address, as in Elasticsearch).
    Eq(IpAddr),
    /// Inside a CIDR block.
    Cidr(IpNet),
    /// Between two addresses.
    Range { lower: Bound<u128>, upper: Bound<u128> },
}

/// A test on one value of a field, already specialised for the field's type.
#[derive(Debug, Clone)]
pub enum Pred {
    /// Exact string equality on the keyword form of the value (keyword, constant_keyword,
    /// wildcard-type and untyped fields; numbers and booleans compare by their JSON text).
    StrEq { value: String, case_insensitive: bool },
    /// Wildcard pattern on the keyword form of the value.
    StrGlob(Glob),
    /// Lexicographic range on the keyword form (Elasticsearch `range` on keyword fields).
    StrRange(StrBounds),
    /// Numeric equality (numeric fields; numeric strings are coerced). On integer fields
    /// (`integer`), document values are truncated toward zero first, as Elasticsearch's `coerce`
    /// indexes `80.5` as `80`.
    NumEq { value: f64, integer: bool },
    NumRange(NumBounds),
    BoolEq(bool),
    Ip(IpPred),
    /// Dates in epoch milliseconds (document values parsed with the default ES date format).
    DateRange { lower: Bound<i64>, upper: Bound<i64> },
    /// `match` on an analysed text field: any of the query tokens is among the value's tokens.
    TextAny(Vec<String>),
    /// `match_phrase` on an analysed text field: the tokens appear consecutively.
    TextPhrase(Vec<String>),
    /// Wildcard term on an analysed field: some token of the value matches (pattern lower-cased).
    TextGlob(Glob),
    /// Range on a `version` field (semantic-version order).
    VersionRange(StrBounds),
    /// Any of several predicates (a `query_string` split on whitespace).
    AnyOf(Vec<Pred>),
}

/// A boolean query.
#[derive(Debug, Clone)]
pub enum Expr {
    Const(bool),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// The field has at least one indexed value.
    Exists(FieldPath),
    /// Some value of the field satisfies the predicate.
    Match(FieldPath, Pred),
    /// A wildcard field name (KQL `process.*:x`): some document field whose full name matches,
    /// with the predicate lowered for that field's type.
    MatchGlob { fields: Glob, typed: TypedPreds },
    /// Some object of the nested field matches the inner query (paths inside are relative).
    Nested(FieldPath, Box<Expr>),
    /// A query without a field: some leaf field matches, with its type's predicate (lenient:
    /// types the value cannot apply to are skipped).
    AnyField(TypedPreds),
}

/// Predicates prepared for every field type a wildcard field name or a field-less query may meet.
#[derive(Debug, Clone)]
pub struct TypedPreds {
    /// The field table used to type document fields.
    pub table: Arc<FieldTable>,
    /// The predicate per type (`None` type = fields the table does not know). A `None` predicate
    /// means the value cannot match fields of that type.
    pub preds: Vec<(Option<FieldType>, Option<Pred>)>,
    /// Exists query: any value matches.
    pub exists: bool,
}

impl TypedPreds {
    pub fn pred_for(&self, field: &str) -> Option<&Pred> {
        let ty = self.table.get(field);
        self.preds.iter().find(|(t, _)| *t == ty).and_then(|(_, p)| p.as_ref())
    }
}

impl Expr {
    pub fn and(mut items: Vec<Expr>) -> Expr {
        match items.len() {
            0 => Expr::Const(true),
            1 => items.pop().unwrap_or(Expr::Const(true)),
            _ => Expr::And(items),
        }
    }
    pub fn or(mut items: Vec<Expr>) -> Expr {
        match items.len() {
            0 => Expr::Const(false),
            1 => items.pop().unwrap_or(Expr::Const(false)),
            _ => Expr::Or(items),
        }
    }
    #[allow(clippy::should_implement_trait)]
    pub fn not(e: Expr) -> Expr {
        Expr::Not(Box::new(e))
    }
}
