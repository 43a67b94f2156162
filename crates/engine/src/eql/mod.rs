//! EQL with Elasticsearch's semantics: lowering of the `imdsguard-eql` syntax tree, the
//! three-valued runtime, the function library, and (later) sequences and samples.

pub mod expr;
pub mod functions;
pub mod lower;
pub mod sample;
pub mod sequence;
pub mod value;
