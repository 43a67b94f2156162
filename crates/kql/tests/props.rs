//! Property tests: the parser never panics, and printing then parsing gives the same tree.

use imdsguard_kql::ast::{Literal, LiteralValue, Node, Pattern, PatternPart, Query, RangeOp, ValueTree};
use imdsguard_syntax::Span;
use proptest::prelude::*;

fn z() -> Span {
    Span::default()
}

fn lit(value: LiteralValue) -> Literal {
    Literal { value, span: z() }
}

/// Text that the parser can produce for an unquoted literal: non-empty, not starting or ending
/// with whitespace, not one of the literal words.
fn unquoted_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_./@?(){}:<>\"\\\\ -]{1,8}".prop_filter("trimmed, not a literal word", |s| {
        s.trim() == s && !matches!(s.as_str(), "null" | "true" | "false")
    })
}

fn pattern() -> impl Strategy<Value = Pattern> {
    prop::collection::vec(
        prop_oneof![3 => unquoted_text().prop_map(PatternPart::Text), 1 => Just(PatternPart::Wildcard)],
        1..4,
    )
    .prop_map(|parts| {
        // Merge adjacent texts and wildcards the way the parser does.
        let mut out: Vec<PatternPart> = Vec::new();
        for p in parts {
            match (out.last_mut(), p) {
                (Some(PatternPart::Text(a)), PatternPart::Text(b)) => a.push_str(&b),
                (_, p) => out.push(p),
            }
        }
        Pattern { parts: out }
    })
    .prop_filter("parser invariants", |p| {
        let first_ok = !matches!(p.parts.first(), Some(PatternPart::Text(t)) if t.starts_with(char::is_whitespace));
        let last_ok = !matches!(p.parts.last(), Some(PatternPart::Text(t)) if t.ends_with(char::is_whitespace));
        first_ok && last_ok && !matches!(p.as_text().as_deref(), Some("null" | "true" | "false"))
    })
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        "[^\\x00]{0,8}".prop_map(|s| lit(LiteralValue::Quoted(s))),
        pattern().prop_map(|p| lit(LiteralValue::Unquoted(p))),
        Just(lit(LiteralValue::Null)),
        any::<bool>().prop_map(|b| lit(LiteralValue::Bool(b))),
    ]
}

fn field() -> impl Strategy<Value = Literal> {
    prop_oneof![
        "[a-z][a-z0-9_.]{0,10}"
            .prop_map(|s| lit(LiteralValue::Unquoted(Pattern { parts: vec![PatternPart::Text(s)] }))),
        literal()
    ]
    .prop_filter("field names are not literal words", |l| {
        matches!(l.value, LiteralValue::Quoted(_) | LiteralValue::Unquoted(_))
    })
}

fn value_tree() -> impl Strategy<Value = ValueTree> {
    let leaf = literal().prop_map(ValueTree::Value);
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| ValueTree::Or(v, z())),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| ValueTree::And(v, z())),
            inner.prop_map(|v| ValueTree::Not(Box::new(v), z())),
        ]
    })
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        (field(), value_tree()).prop_map(|(f, v)| Node::Field { field: f, values: v, span: z() }),
        (field(), prop_oneof![Just(RangeOp::Lt), Just(RangeOp::Lte), Just(RangeOp::Gt), Just(RangeOp::Gte)], literal())
            .prop_map(|(f, op, v)| Node::Range { field: f, op, value: v, span: z() }),
        literal().prop_map(Node::Value),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| Node::Or(v, z())),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| Node::And(v, z())),
            inner.clone().prop_map(|v| Node::Not(Box::new(v), z())),
            (field(), inner).prop_map(|(f, q)| Node::Nested { field: f, query: Box::new(q), span: z() }),
        ]
    })
}

/// Flatten nested same-operator groups, which printing cannot distinguish from one group.
fn canon(n: Node) -> Node {
    match n {
        Node::Or(items, s) => {
            let mut out = Vec::new();
            for i in items.into_iter().map(canon) {
                out.push(i);
            }
            Node::Or(out, s)
        }
        Node::And(items, s) => Node::And(items.into_iter().map(canon).collect(), s),
        Node::Not(i, s) => Node::Not(Box::new(canon(*i)), s),
        Node::Nested { field, query, span } => Node::Nested { field, query: Box::new(canon(*query)), span },
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics(s in "\\PC{0,64}") {
        let _ = imdsguard_kql::parse(&s);
    }

    #[test]
    fn never_panics_on_kql_like_text(s in "[a-z:()*\"\\\\ {}<>=.]{0,40}|(not |and |or )+") {
        let _ = imdsguard_kql::parse(&s);
    }

    /// Whatever parses prints to text that parses to the same tree (the fuzz target's invariant,
    /// on text built from KQL's own alphabet so that most inputs parse).
    #[test]
    fn parsed_queries_print_and_parse_back(s in "([a-zA-Z0-9.:*\"\\\\(){}<> ]|not |and |or |\\\\t|\\\\u0041|\\\\or|null|true){0,16}") {
        if let Ok(q) = imdsguard_kql::parse(&s) {
            let text = imdsguard_kql::to_kql(&q);
            let back = imdsguard_kql::parse(&text).map_err(|d| TestCaseError::fail(format!("{s:?} printed as {text:?}: {}", d.render(&text, "q"))))?;
            prop_assert_eq!(back.without_spans(), q.without_spans(), "{:?} printed as {:?}", s, text);
        }
    }

    #[test]
    fn print_parse_round_trip(n in node()) {
        let q = Query { root: Some(canon(n)) };
        let text = imdsguard_kql::to_kql(&q);
        let back = imdsguard_kql::parse(&text).map_err(|d| TestCaseError::fail(format!("{text:?}: {}", d.render(&text, "q"))))?;
        prop_assert_eq!(back.without_spans(), q, "printed as {:?}", text);
    }
}

/// Every sequence of up to four tokens from KQL's alphabet: no panic, and whatever parses prints
/// and parses back to the same tree.
#[test]
fn exhaustive_short_token_sequences_round_trip() {
    const TOKENS: &[&str] = &[
        "a", ":", "(", ")", "{", "}", "*", "\"", "\\", " ", "not ", " or ", " and ", "<", ">=", "\\t", "\\u0041", "n",
        "or", "null", "\u{a0}",
    ];
    let mut stack = vec![(String::new(), 0)];
    let (mut parsed, mut total) = (0, 0);
    while let Some((s, n)) = stack.pop() {
        total += 1;
        if let Ok(q) = imdsguard_kql::parse(&s) {
            parsed += 1;
            let text = imdsguard_kql::to_kql(&q);
            match imdsguard_kql::parse(&text) {
                Ok(back) => assert_eq!(back.without_spans(), q.without_spans(), "{s:?} printed as {text:?}"),
                Err(d) => panic!("{s:?} printed as {text:?}: {}", d.render(&text, "q")),
            }
        }
        if n < 4 {
            for t in TOKENS {
                stack.push((format!("{s}{t}"), n + 1));
            }
        }
    }
    assert!(parsed > 1000, "{parsed} of {total} parsed");
}
