//! Kibana Query Language (KQL), syntax only.
//!
//! [`parse`] turns query text into an [`ast::Query`] exactly as Kibana's `kbn-es-query` PEG grammar
//! does (precedence `not` > `and` > `or`, value lists, unquoted literals that may contain spaces,
//! escapes, wildcards, nested `field:{...}` queries, ranges). Errors carry a span and name what was
//! expected. Field types and Elasticsearch semantics are applied later, by lowering
//! (`imdsguard-engine`), the one place that sees the field table.
//!
//! [`to_kql`] prints a tree back to KQL text; `parse(&to_kql(&q))` gives `q` again up to spans
//! (compare with [`ast::Query::without_spans`]), which the property tests and the fuzz target check.
//!
//! Limits: input longer than [`MAX_QUERY_BYTES`] or nesting deeper than [`MAX_DEPTH`] is rejected
//! with a diagnostic, so the parser never overflows the stack.

pub mod ast;
mod parser;
pub mod print;

pub use parser::{parse, MAX_DEPTH, MAX_QUERY_BYTES};
pub use print::to_kql;
