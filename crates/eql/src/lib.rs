//! Elastic Event Query Language (EQL), syntax only.
//!
//! [`parse`] turns query text into an [`ast::Query`] as Elasticsearch's EQL grammar (`EqlBase.g4`)
//! and its parse-time checks do: event queries (`process where ...`, `any where ...`), sequences
//! (`sequence by f with maxspan=5m [..] by g ![..] [..] with runs=2 until [..]`), samples
//! (`sample by f [..] [..]`), the `head` and `tail` pipes, and the whole condition language
//! (`and`/`or`/`not`, comparisons, `:`, `like`, `like~`, `regex`, `regex~`, `in`, `in~`, `not in`,
//! arithmetic, function calls including `name~(...)`, optional `?fields`, back-quoted field names,
//! strings with escapes and `"""raw"""` strings, numbers, `true`/`false`/`null`, `//` and nested
//! `/* */` comments). Keywords are lower-case and case-sensitive, as in Elasticsearch.
//!
//! Every node carries a [`Span`](imdsguard_syntax::Span). Field types, function arity and
//! semantics are not checked here: a later step lowers the tree (and rejects unknown functions
//! with the call's span).
//!
//! Errors are [`Diagnostic`](imdsguard_syntax::Diagnostic)s: `Q001` syntax (what was expected and
//! what was found), `Q002` input longer than [`MAX_QUERY_BYTES`], `Q003` nesting deeper than
//! [`MAX_DEPTH`], `Q004` a Python-EQL (Endgame) feature that Elasticsearch does not support
//! (single-quoted and `?"` strings, `=` as equality, `join`, `child of`/`descendant of`/`event of`,
//! array indexes, the `count`/`unique`/`unique_count`/`filter`/`sort`/`window` pipes).
//!
//! Limits: input longer than [`MAX_QUERY_BYTES`] bytes, or sub-expressions nested more than
//! [`MAX_DEPTH`] levels deep (parentheses, `not`, unary signs, call arguments, lists, and each
//! operator of an arithmetic chain, which nests to the left), are rejected with a diagnostic, so
//! the parser, the printer and dropping a tree never overflow the stack. The parser never panics.
//!
//! [`to_eql`] prints a tree back to EQL text; `parse(&to_eql(&q))` gives `q` again up to spans
//! (compare with [`ast::Query::without_spans`]).

pub mod ast;
mod lexer;
mod parser;
pub mod print;

pub use parser::{parse, MAX_DEPTH, MAX_QUERY_BYTES};
pub use print::to_eql;
