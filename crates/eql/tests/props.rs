//! Property tests: the parser never panics, and printing then parsing gives the same tree.

use imdsguard_eql::ast::{
    ArithOp, Call, Category, CategoryKind, CmpOp, EventQuery, Expr, Field, Literal, MatchOp, MaxSpan, Pipe, PipeKind,
    Query, QueryBody, Sample, Sequence, Step, TimeUnit, UnaryOp, Value,
};
use imdsguard_syntax::Span;
use proptest::prelude::*;

fn z() -> Span {
    Span::default()
}

const KEYWORDS: &[&str] = &[
    "and", "any", "by", "false", "in", "join", "like", "maxspan", "not", "null", "of", "or", "regex", "sample",
    "sequence", "true", "until", "where", "with",
];

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0i64..=i64::MAX).prop_map(Value::Int),
        (0.0f64..1e30).prop_map(Value::Float),
        Just(Value::Float(1e300)),
        "\\PC{0,8}".prop_map(Value::Str),
        "[\"\\\\\n\r\t a*?]{0,6}".prop_map(Value::Str),
    ]
    .prop_map(|value| Literal { value, span: z() })
}

fn field() -> impl Strategy<Value = Field> {
    let name = prop_oneof![
        4 => "[a-z@_][a-z0-9_]{0,5}(\\.[a-zA-Z_][a-zA-Z0-9_]{0,4}){0,2}",
        1 => "[^`]{1,6}",
        1 => "[a-z`. -]{1,6}",
        1 => prop::sample::select(KEYWORDS).prop_map(str::to_string),
    ];
    (name, any::<bool>()).prop_map(|(name, optional)| Field { name, optional, span: z() })
}

fn fn_name() -> impl Strategy<Value = (String, bool)> {
    ("[a-zA-Z][a-zA-Z0-9_]{0,7}", any::<bool>()).prop_filter("not a keyword", |(n, tilde)| {
        let with = format!("{n}~");
        let tilde_keyword = *tilde && matches!(with.as_str(), "in~" | "like~" | "regex~");
        !(KEYWORDS.contains(&n.as_str()) || tilde_keyword)
    })
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![literal().prop_map(Expr::Literal), field().prop_map(Expr::Field)];
    leaf.prop_recursive(5, 40, 4, |inner| {
        let cmp = prop_oneof![
            Just(CmpOp::Eq),
            Just(CmpOp::Neq),
            Just(CmpOp::Lt),
            Just(CmpOp::Lte),
            Just(CmpOp::Gt),
            Just(CmpOp::Gte)
        ];
        let arith = prop_oneof![
            Just(ArithOp::Add),
            Just(ArithOp::Sub),
            Just(ArithOp::Mul),
            Just(ArithOp::Div),
            Just(ArithOp::Mod)
        ];
        let mop = prop_oneof![
            Just(MatchOp::Seq),
            Just(MatchOp::Like),
            Just(MatchOp::LikeInsensitive),
            Just(MatchOp::Regex),
            Just(MatchOp::RegexInsensitive)
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| Expr::Or(v, z())),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| Expr::And(v, z())),
            inner.clone().prop_map(|e| Expr::Not(Box::new(e), z())),
            (cmp, inner.clone(), inner.clone()).prop_map(|(op, l, r)| Expr::Compare {
                op,
                left: Box::new(l),
                right: Box::new(r),
                span: z()
            }),
            (inner.clone(), any::<bool>(), any::<bool>(), prop::collection::vec(inner.clone(), 1..4)).prop_map(
                |(e, negated, insensitive, list)| Expr::In { expr: Box::new(e), negated, insensitive, list, span: z() }
            ),
            (inner.clone(), mop, prop::collection::vec(literal(), 1..4)).prop_map(|(e, op, patterns)| Expr::Match {
                expr: Box::new(e),
                op,
                patterns,
                span: z()
            }),
            (arith, inner.clone(), inner.clone()).prop_map(|(op, l, r)| Expr::Arith {
                op,
                left: Box::new(l),
                right: Box::new(r),
                span: z()
            }),
            (prop_oneof![Just(UnaryOp::Neg), Just(UnaryOp::Plus)], inner.clone()).prop_map(|(op, e)| Expr::Unary {
                op,
                expr: Box::new(e),
                span: z()
            }),
            (fn_name(), prop::collection::vec(inner, 0..3)).prop_map(|((name, insensitive), args)| Expr::Call(Call {
                name,
                insensitive,
                args,
                name_span: z(),
                span: z()
            })),
        ]
    })
}

fn category() -> impl Strategy<Value = Category> {
    prop_oneof![
        Just(CategoryKind::Any),
        "[a-z_][a-z0-9_]{0,6}".prop_map(CategoryKind::Name),
        "[^\r\n]{0,6}".prop_map(CategoryKind::Name),
    ]
    .prop_map(|kind| Category { kind, span: z() })
}

fn event_query() -> impl Strategy<Value = EventQuery> {
    (category(), expr()).prop_map(|(category, condition)| EventQuery { category, condition, span: z() })
}

fn step(keys: usize, missing: bool, runs: Option<u32>) -> impl Strategy<Value = Step> {
    (event_query(), prop::collection::vec(expr(), keys..=keys)).prop_map(move |(query, by)| Step {
        missing,
        query,
        by,
        runs,
        span: z(),
    })
}

fn unit() -> impl Strategy<Value = TimeUnit> {
    prop_oneof![
        Just(TimeUnit::Millis),
        Just(TimeUnit::Seconds),
        Just(TimeUnit::Minutes),
        Just(TimeUnit::Hours),
        Just(TimeUnit::Days)
    ]
}

fn sequence() -> impl Strategy<Value = Sequence> {
    (
        prop::collection::vec(expr(), 0..3),
        0usize..3,
        prop::option::of((1u64..100_000, unit())),
        prop::collection::vec((any::<bool>(), prop::option::of(1u32..=100)), 1..4),
        any::<bool>(),
    )
        .prop_flat_map(|(by, keys, maxspan, shapes, has_until)| {
            let maxspan = maxspan.map(|(value, unit)| MaxSpan { value, unit, span: z() });
            // Missing events need a maxspan and at least one present event; two events in all.
            let mut shapes: Vec<(bool, Option<u32>)> =
                shapes.into_iter().map(|(m, r)| (m && maxspan.is_some(), r)).collect();
            if shapes.iter().all(|(m, _)| *m) {
                shapes[0].0 = false;
            }
            let total: u32 = shapes.iter().map(|(_, r)| r.unwrap_or(1)).sum();
            if total < 2 {
                shapes.push((false, None));
            }
            let steps: Vec<_> = shapes.into_iter().map(|(m, r)| step(keys, m, r)).collect();
            let n = usize::from(has_until);
            let until = prop::collection::vec(step(keys, false, None), n..=n);
            (Just(by), Just(maxspan), steps, until)
        })
        .prop_map(|(by, maxspan, steps, mut until)| Sequence { by, maxspan, steps, until: until.pop(), span: z() })
}

fn sample() -> impl Strategy<Value = Sample> {
    (prop::collection::vec(expr(), 0..3), 0usize..3, 2usize..=5)
        .prop_flat_map(|(by, keys, n)| (Just(by), prop::collection::vec(step(keys, false, None), n..=n)))
        .prop_map(|(by, steps)| Sample { by, steps, span: z() })
}

fn query() -> impl Strategy<Value = Query> {
    let body = prop_oneof![
        3 => event_query().prop_map(QueryBody::Event),
        2 => sequence().prop_map(QueryBody::Sequence),
        1 => sample().prop_map(QueryBody::Sample),
    ];
    let pipe = (prop_oneof![Just(PipeKind::Head), Just(PipeKind::Tail)], 0u64..1000).prop_map(|(kind, count)| Pipe {
        kind,
        count,
        span: z(),
    });
    (body, prop::collection::vec(pipe, 0..3)).prop_map(|(body, pipes)| Query { body, pipes, span: z() })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn never_panics(s in "\\PC{0,80}") {
        let _ = imdsguard_eql::parse(&s);
    }

    #[test]
    fn never_panics_on_eql_like_text(s in "([a-z@_.`\"'()\\[\\]!?:=<>+*/%|~,\\\\ -]|any |where |sequence |sample |by |with |maxspan=|runs=|until |not |and |or |in~ |like~ |\"\"\"|/\\*|\\*/|//|\n|[0-9]|\\\\u\\{){0,40}") {
        let _ = imdsguard_eql::parse(&s);
    }

    /// Whatever parses prints to text that parses to the same tree (the fuzz target's invariant).
    #[test]
    fn parsed_queries_print_and_parse_back(s in "(any where |process where |sequence by a with maxspan=1s |sample by a )([a-z]|\\[a where |\\]|!\\[a where |\\] by b |with runs=2 |until |not |and |or |in |in~ |like |: |== |< |-|\\+|\\*|\\(|\\)|, |\"x\"|1|2\\.5|null|true|f\\(|g~\\(|\\?|`a b`|\\.| \\| head 1){0,24}") {
        if let Ok(q) = imdsguard_eql::parse(&s) {
            let text = imdsguard_eql::to_eql(&q);
            let back = imdsguard_eql::parse(&text).map_err(|d| TestCaseError::fail(format!("{s:?} printed as {text:?}: {}", d.render(&text, "q"))))?;
            prop_assert_eq!(back.without_spans(), q.without_spans(), "{:?} printed as {:?}", s, text);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn print_parse_round_trip(q in query()) {
        let text = imdsguard_eql::to_eql(&q);
        let back = imdsguard_eql::parse(&text).map_err(|d| TestCaseError::fail(format!("{text:?}: {}", d.render(&text, "q"))))?;
        prop_assert_eq!(back.without_spans(), q, "printed as {:?}", text);
    }
}
