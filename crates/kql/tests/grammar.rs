//! The KQL grammar as a table: query -> tree (S-expression), and invalid query -> error position.
//!
//! Tree notation: `(or ..)`, `(and ..)`, `(not ..)`, `(is FIELD VALUE)` for `field:value` (lists
//! keep their structure: `(is f (or a b))`), `(value V)` for a field-less value,
//! `(range FIELD OP V)`, `(nested FIELD Q)`. Values: `"q"` quoted, `u"t"` unquoted text, `u"a*b"`
//! with `*` for a wildcard and `\*` for an escaped star, `null`, `true`, `false`.

use imdsguard_kql::ast::{Literal, LiteralValue, Node, PatternPart, RangeOp, ValueTree};

fn lit(l: &Literal) -> String {
    match &l.value {
        LiteralValue::Quoted(s) => format!("{s:?}"),
        LiteralValue::Unquoted(p) => {
            let mut out = String::new();
            for part in &p.parts {
                match part {
                    PatternPart::Wildcard => out.push('*'),
                    PatternPart::Text(t) => {
                        for c in t.chars() {
                            match c {
                                '\\' => out.push_str("\\\\"),
                                '*' => out.push_str("\\*"),
                                '"' => out.push_str("\\\""),
                                '\t' => out.push_str("\\t"),
                                '\n' => out.push_str("\\n"),
                                '\r' => out.push_str("\\r"),
                                c => out.push(c),
                            }
                        }
                    }
                }
            }
            format!("u\"{out}\"")
        }
        LiteralValue::Null => "null".into(),
        LiteralValue::Bool(b) => b.to_string(),
    }
}

fn tree(t: &ValueTree) -> String {
    match t {
        ValueTree::Or(items, _) => format!("(or {})", items.iter().map(tree).collect::<Vec<_>>().join(" ")),
        ValueTree::And(items, _) => format!("(and {})", items.iter().map(tree).collect::<Vec<_>>().join(" ")),
        ValueTree::Not(inner, _) => format!("(not {})", tree(inner)),
        ValueTree::Value(v) => lit(v),
    }
}

fn sexpr(n: &Node) -> String {
    match n {
        Node::Or(items, _) => format!("(or {})", items.iter().map(sexpr).collect::<Vec<_>>().join(" ")),
        Node::And(items, _) => format!("(and {})", items.iter().map(sexpr).collect::<Vec<_>>().join(" ")),
        Node::Not(inner, _) => format!("(not {})", sexpr(inner)),
        Node::Nested { field, query, .. } => format!("(nested {} {})", lit(field), sexpr(query)),
        Node::Range { field, op, value, .. } => {
            let op = match op {
                RangeOp::Lt => "<",
                RangeOp::Lte => "<=",
                RangeOp::Gt => ">",
                RangeOp::Gte => ">=",
            };
            format!("(range {} {op} {})", lit(field), lit(value))
        }
        Node::Field { field, values, .. } => format!("(is {} {})", lit(field), tree(values)),
        Node::Value(v) => format!("(value {})", lit(v)),
    }
}

fn render(q: &str) -> Result<String, String> {
    match imdsguard_kql::parse(q) {
        Ok(ast) => Ok(ast.root.as_ref().map(sexpr).unwrap_or_else(|| "(all)".into())),
        Err(d) => Err(d.render(q, "q")),
    }
}

#[test]
fn grammar_table() {
    let cases: &[(&str, &str)] = &[
        // field:value, quoted and unquoted
        ("a:b", r#"(is u"a" u"b")"#),
        ("a : b", r#"(is u"a" u"b")"#),
        (r#"a:"b c""#, r#"(is u"a" "b c")"#),
        (r#""a.b":c"#, r#"(is "a.b" u"c")"#),
        ("message:hello world", r#"(is u"message" u"hello world")"#),
        ("a:b   ", r#"(is u"a" u"b")"#),
        ("   a:b", r#"(is u"a" u"b")"#),
        // empty query
        ("", "(all)"),
        ("   ", "(all)"),
        // boolean operators, precedence, case-insensitivity
        ("a:b or c:d", r#"(or (is u"a" u"b") (is u"c" u"d"))"#),
        ("a:b and c:d", r#"(and (is u"a" u"b") (is u"c" u"d"))"#),
        ("a:b OR c:d AND e:f", r#"(or (is u"a" u"b") (and (is u"c" u"d") (is u"e" u"f")))"#),
        ("a:b And c:d oR e:f", r#"(or (and (is u"a" u"b") (is u"c" u"d")) (is u"e" u"f"))"#),
        ("not a:b", r#"(not (is u"a" u"b"))"#),
        ("NOT a:b and c:d", r#"(and (not (is u"a" u"b")) (is u"c" u"d"))"#),
        ("not (not a:b)", r#"(not (not (is u"a" u"b")))"#),
        ("(a:b or c:d) and e:f", r#"(and (or (is u"a" u"b") (is u"c" u"d")) (is u"e" u"f"))"#),
        ("( a:b )", r#"(is u"a" u"b")"#),
        ("not (a:b)", r#"(not (is u"a" u"b"))"#),
        ("a:b or c:d or e:f", r#"(or (is u"a" u"b") (is u"c" u"d") (is u"e" u"f"))"#),
        // value lists
        ("a:(b or c)", r#"(is u"a" (or u"b" u"c"))"#),
        ("a:(b or c and not d)", r#"(is u"a" (or u"b" (and u"c" (not u"d"))))"#),
        (r#"a:("b" or c*)"#, r#"(is u"a" (or "b" u"c*"))"#),
        ("a:( b )", r#"(is u"a" u"b")"#),
        ("a:((b or c) and d)", r#"(is u"a" (and (or u"b" u"c") u"d"))"#),
        ("a:(not b)", r#"(is u"a" (not u"b"))"#),
        // wildcards
        ("a:*", r#"(is u"a" u"*")"#),
        ("a:b*", r#"(is u"a" u"b*")"#),
        ("a:*b*c", r#"(is u"a" u"*b*c")"#),
        (r#"a:"b*""#, r#"(is u"a" "b*")"#),
        (r"a:b\*", r#"(is u"a" u"b\*")"#),
        ("process.*:curl", r#"(is u"process.*" u"curl")"#),
        ("*:x", r#"(is u"*" u"x")"#),
        ("a:/tmp/*", r#"(is u"a" u"/tmp/*")"#),
        ("a:.*", r#"(is u"a" u".*")"#),
        // ? is a literal character
        ("a:b?c", r#"(is u"a" u"b?c")"#),
        // escapes in quoted strings
        (r#"a:"x\"y""#, r#"(is u"a" "x\"y")"#),
        (r#"a:"x\\y""#, r#"(is u"a" "x\\y")"#),
        (r#"a:"\u0041""#, r#"(is u"a" "A")"#),
        (r#"a:"tab\there""#, r#"(is u"a" "tab\there")"#),
        (r#"a:"x\ny\r""#, r#"(is u"a" "x\ny\r")"#),
        (r#"a:"C:\Users""#, r#"(is u"a" "C:\\Users")"#),
        (r#"a:"x\d""#, r#"(is u"a" "x\\d")"#),
        // escapes in unquoted literals
        (r"a:b\:c", r#"(is u"a" u"b:c")"#),
        (r"a:\(x\)", r#"(is u"a" u"(x)")"#),
        (r"a:C\:\\Windows", r#"(is u"a" u"C:\\Windows")"#),
        (r"a:\or", r#"(is u"a" u"or")"#),
        (r"a:x \and y", r#"(is u"a" u"x and y")"#),
        (r"a:\u0041b", r#"(is u"a" u"Ab")"#),
        (r"a:x\ty", r#"(is u"a" u"x\ty")"#),
        (r"a:\{\}\<\>", r#"(is u"a" u"{}<>")"#),
        // null/true/false
        ("a:null", r#"(is u"a" null)"#),
        ("a:true", r#"(is u"a" true)"#),
        ("a:false", r#"(is u"a" false)"#),
        (r#"a:"true""#, r#"(is u"a" "true")"#),
        ("a:trueish", r#"(is u"a" u"trueish")"#),
        // ranges
        ("a > 1", r#"(range u"a" > u"1")"#),
        ("a>=1", r#"(range u"a" >= u"1")"#),
        ("a<2", r#"(range u"a" < u"2")"#),
        ("a <= \"2\"", r#"(range u"a" <= "2")"#),
        ("@timestamp >= now-1d/d", r#"(range u"@timestamp" >= u"now-1d/d")"#),
        ("a > 1 and a < 5", r#"(and (range u"a" > u"1") (range u"a" < u"5"))"#),
        // nested
        ("a:{ b:c }", r#"(nested u"a" (is u"b" u"c"))"#),
        ("a:{b:c and d:e}", r#"(nested u"a" (and (is u"b" u"c") (is u"d" u"e")))"#),
        ("a:{ b:{ c:d } }", r#"(nested u"a" (nested u"b" (is u"c" u"d")))"#),
        // field-less values
        ("hello", r#"(value u"hello")"#),
        (r#""hello world""#, r#"(value "hello world")"#),
        ("hello or world", r#"(or (value u"hello") (value u"world"))"#),
        ("foo*", r#"(value u"foo*")"#),
        // keywords need whitespace around them
        ("a:b or", r#"(is u"a" u"b or")"#),
        ("a:band", r#"(is u"a" u"band")"#),
        ("a:nota", r#"(is u"a" u"nota")"#),
        // a keyword must be followed by whitespace, so a trailing `and` is part of the value
        ("a:b and", r#"(is u"a" u"b and")"#),
        ("a:b and and c:d", r#"(and (is u"a" u"b") (is u"and c" u"d"))"#),
        // the seed rule's shapes
        (r#"destination.address :"169.254.169.254""#, r#"(is u"destination.address" "169.254.169.254")"#),
        (r#"process.name:"Cursor Helper (Plugin)""#, r#"(is u"process.name" "Cursor Helper (Plugin)")"#),
        (
            "process.executable:/vscode/vscode-server/bin/linux-x64/*/node",
            r#"(is u"process.executable" u"/vscode/vscode-server/bin/linux-x64/*/node")"#,
        ),
        ("\u{a0}a:b\u{a0}", r#"(is u"a" u"b")"#),
        // more quirks and corners
        ("a:b or c", r#"(or (is u"a" u"b") (value u"c"))"#),
        ("a:b and not c:d", r#"(and (is u"a" u"b") (not (is u"c" u"d")))"#),
        ("a:b AND NOT c:d", r#"(and (is u"a" u"b") (not (is u"c" u"d")))"#),
        ("not   a:b", r#"(not (is u"a" u"b"))"#),
        ("a:b\tor\nc:d", r#"(or (is u"a" u"b") (is u"c" u"d"))"#),
        ("hello big world", r#"(value u"hello big world")"#),
        (r"a:\OR", r#"(is u"a" u"OR")"#),
        (r"a:\u006eull", r#"(is u"a" null)"#),
        (r"a:b\n", r#"(is u"a" u"b")"#),
        (r"a:x\not", r#"(is u"a" u"x\not")"#),
        (r#"a:"\*""#, r#"(is u"a" "\\*")"#),
        (r#"a:"""#, r#"(is u"a" "")"#),
        (r"a:\\", r#"(is u"a" u"\\")"#),
        ("a:b=c", r#"(is u"a" u"b=c")"#),
        ("a:-1", r#"(is u"a" u"-1")"#),
        ("a:10.0.0.0/8", r#"(is u"a" u"10.0.0.0/8")"#),
        ("a:{ b:c } or d:e", r#"(or (nested u"a" (is u"b" u"c")) (is u"d" u"e"))"#),
        (r#""a b" >= 3"#, r#"(range "a b" >= u"3")"#),
        ("a:(b) and c:(d)", r#"(and (is u"a" u"b") (is u"c" u"d"))"#),
        ("a:((b))", r#"(is u"a" u"b")"#),
        ("(((a:b)))", r#"(is u"a" u"b")"#),
        ("a:(not (b or c))", r#"(is u"a" (not (or u"b" u"c")))"#),
        ("a:(b and c or d and e)", r#"(is u"a" (or (and u"b" u"c") (and u"d" u"e")))"#),
        ("a:*b and *:*", r#"(and (is u"a" u"*b") (is u"*" u"*"))"#),
        ("a:nothing and b:knots", r#"(and (is u"a" u"nothing") (is u"b" u"knots"))"#),
        ("a:b or_c", r#"(is u"a" u"b or_c")"#),
        ("a:(b or)", r#"(is u"a" u"b or")"#),
        ("a:b ornate c", r#"(is u"a" u"b ornate c")"#),
        ("NOT", r#"(value u"NOT")"#),
        ("a:NULL", r#"(is u"a" u"NULL")"#),
        ("null:x", r#"(is null u"x")"#),
        ("a:null*", r#"(is u"a" u"null*")"#),
    ];
    let mut failures = Vec::new();
    for (q, want) in cases {
        match render(q) {
            Ok(got) if got == *want => {}
            Ok(got) => failures.push(format!("{q:?}\n   want {want}\n    got {got}")),
            Err(e) => failures.push(format!("{q:?}\n   want {want}\n    got error {e}")),
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn invalid_queries_point_at_the_problem() {
    // (query, byte offset of the caret, text expected in the message)
    let cases: &[(&str, usize, &str)] = &[
        ("a:(b", 4, "\")\""),
        ("a:", 2, "value"),
        ("(a:b", 4, "\")\""),
        ("a:{b:c", 6, "\"}\""),
        ("a:\"unterminated", 2, "value"),
        ("a:b)", 3, "end of input"),
        (")", 0, "value"),
        ("a < ", 4, "literal"),
        (r"a:b\", 3, "end of input"),
        // `not ` inside an unquoted value is a keyword: the value stops before it (Kibana quirk).
        ("message:cannot do", 11, "end of input"),
        ("not not a:b", 4, "value"),
        ("a:b orc:d", 7, "end of input"),
        ("not(a:b)", 3, "end of input"),
        ("\"unterminated", 0, "value"),
        ("a:b\"", 3, "end of input"),
        ("a:(b or c", 9, "\")\""),
        ("a:{}", 3, "field name"),
        ("a:b c:d", 5, "end of input"),
        ("a:x not y", 4, "end of input"),
        // A field value cannot start with `not `: only lists take `not`.
        ("a:not x", 2, "value"),
        ("a:b ornot c", 6, "end of input"),
        ("a >", 3, "literal"),
        ("a:(b))", 5, "end of input"),
        ("  (", 3, "value"),
    ];
    let mut failures = Vec::new();
    for (q, at, text) in cases {
        match imdsguard_kql::parse(q) {
            Ok(ast) => failures.push(format!("{q:?} parsed: {:?}", ast.root.as_ref().map(sexpr))),
            Err(d) => {
                let span = d.span.expect("span");
                if span.start != *at || !d.message.contains(text) {
                    failures.push(format!("{q:?}: want offset {at} with {text:?}, got {} {:?}", span.start, d.message));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn depth_and_size_limits() {
    let deep = format!("{}a:b{}", "(".repeat(10_000), ")".repeat(10_000));
    let e = imdsguard_kql::parse(&deep).expect_err("too deep");
    assert_eq!(e.code, "K003");
    let long = "a:b or ".repeat(200_000);
    assert_eq!(imdsguard_kql::parse(&long).expect_err("too long").code, "K002");
}

#[test]
fn spans_cover_the_source() {
    let q = r#"process.name : "curl" and x:y"#;
    let ast = imdsguard_kql::parse(q).expect("parses");
    let Some(Node::And(items, span)) = ast.root else { panic!("and") };
    assert_eq!((span.start, span.end), (0, q.len()));
    let Node::Field { field, values, span } = &items[0] else { panic!("field") };
    assert_eq!(&q[field.span.start..field.span.end], "process.name");
    let ValueTree::Value(v) = values else { panic!("value") };
    assert_eq!(&q[v.span.start..v.span.end], "\"curl\"");
    assert_eq!(&q[span.start..span.end], r#"process.name : "curl""#);
}
