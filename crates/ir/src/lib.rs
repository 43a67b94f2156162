//! The intermediate form every query language (KQL today, EQL and Sigma later) lowers to.
//!
//! An [`Expr`] is a boolean tree over typed field predicates ([`Pred`]). The type decisions of
//! Elasticsearch (keyword = exact and case-sensitive, `ip` compared as addresses with CIDR support,
//! numbers coerced from strings, dates parsed, text analysed into tokens) are made once, when a
//! query is lowered, so evaluation is a cheap walk. This crate owns
//! - the tree ([`Expr`], [`Pred`], [`TypedPreds`]) and its evaluation against any
//!   [`imdsguard_ecs::Document`] ([`Expr::matches`]);
//! - [`glob::Glob`], the `*`/`?` matcher used by wildcard queries;
//! - [`text`], an approximation of Elasticsearch's `standard` analyzer for `text` fields;
//! - [`literals`], extraction of the byte strings an event must contain to possibly match, used by
//!   the engine's prefilter to skip parsing events that cannot match any rule.
//!
//! Pure: no I/O, no allocation during evaluation except where a document value must be converted.

pub mod explain;
pub mod glob;
pub mod literals;
pub mod text;

mod eval;
mod expr;

pub use expr::{Bound, Expr, IpPred, NumBounds, Pred, StrBounds, TypedPreds};
pub use glob::Glob;
