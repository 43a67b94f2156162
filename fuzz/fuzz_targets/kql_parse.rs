//! Fuzz the KQL parser: it never panics, and whatever parses prints and re-parses to the same tree.
#![no_main]

use imdsguard_kql::ast::{Literal, Node, ValueTree};
use libfuzzer_sys::fuzz_target;

fn strip_lit(l: &Literal) -> Literal {
    Literal { value: l.value.clone(), span: Default::default() }
}

fn strip_tree(t: &ValueTree) -> ValueTree {
    match t {
        ValueTree::Or(i, _) => ValueTree::Or(i.iter().map(strip_tree).collect(), Default::default()),
        ValueTree::And(i, _) => ValueTree::And(i.iter().map(strip_tree).collect(), Default::default()),
        ValueTree::Not(i, _) => ValueTree::Not(Box::new(strip_tree(i)), Default::default()),
        ValueTree::Value(v) => ValueTree::Value(strip_lit(v)),
    }
}

fn strip(n: &Node) -> Node {
    let z = Default::default();
    match n {
        Node::Or(i, _) => Node::Or(i.iter().map(strip).collect(), z),
        Node::And(i, _) => Node::And(i.iter().map(strip).collect(), z),
        Node::Not(i, _) => Node::Not(Box::new(strip(i)), z),
        Node::Nested { field, query, .. } => Node::Nested { field: strip_lit(field), query: Box::new(strip(query)), span: z },
        Node::Range { field, op, value, .. } => Node::Range { field: strip_lit(field), op: *op, value: strip_lit(value), span: z },
        Node::Field { field, values, .. } => Node::Field { field: strip_lit(field), values: strip_tree(values), span: z },
        Node::Value(v) => Node::Value(strip_lit(v)),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(q) = imdsguard_kql::parse(text) else { return };
    let printed = imdsguard_kql::to_kql(&q);
    let again = imdsguard_kql::parse(&printed).expect("printed query parses");
    assert_eq!(q.root.as_ref().map(strip), again.root.as_ref().map(strip), "{text:?} printed as {printed:?}");
});
