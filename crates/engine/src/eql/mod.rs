//! EQL with Elasticsearch's semantics: lowering of the `imdsguard-eql` syntax tree, the
//! three-valued runtime, the function library, and (later) sequences and samples.

pub mod explain;
pub mod expr;
pub mod functions;
pub mod lower;
pub mod sample;
pub mod sequence;
pub mod value;

/// Apply `| head N` / `| tail N` pipes, in order, to results already in EQL order.
pub fn apply_pipes<T>(items: &mut Vec<T>, pipes: &[imdsguard_eql::ast::Pipe]) {
    for pipe in pipes {
        let n = usize::try_from(pipe.count).unwrap_or(usize::MAX);
        keep(items, n, pipe.kind == imdsguard_eql::ast::PipeKind::Tail);
    }
}

/// Keep the first `n` items, or the last `n` when `from_end` (Elasticsearch's `size` with
/// `result_position`).
pub fn keep<T>(items: &mut Vec<T>, n: usize, from_end: bool) {
    if from_end {
        let start = items.len().saturating_sub(n);
        items.drain(..start);
    } else {
        items.truncate(n);
    }
}
