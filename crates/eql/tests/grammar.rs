//! The EQL grammar as a table: query -> tree (S-expression), and invalid query -> error position.
//!
//! Tree notation: `(event CAT COND)` with CAT `any` or a quoted name; `(sequence (by ..) (maxspan 5m)
//! STEP.. (until STEP))`; `(sample (by ..) STEP..)`; a step is `(step CAT COND (by ..) (runs N))`
//! or `(missing ...)`; pipes wrap the body: `(| BODY (head 5))`. Conditions: `(or ..)`, `(and ..)`,
//! `(not ..)`, `(== a b)` and the other comparisons, `(in a ..)`, `(in~ a ..)`, `(not-in a ..)`,
//! `(not-in~ a ..)`, `(: a ..)`, `(like a ..)`, `(like~ a ..)`, `(regex a ..)`, `(regex~ a ..)`,
//! `(+ a b)` and the other arithmetic, `(neg a)`, `(pos a)`, `(call f ..)`, `(call~ f ..)`. Fields
//! are `$name` (`?$name` when optional, `${a b}` when the name has other characters), literals
//! `null`, `true`, `false`, `1`, `1.5` (a double always has a `.` or an exponent), `"str"`.

use imdsguard_eql::ast::{CategoryKind, EventQuery, Expr, PipeKind, QueryBody, Step, UnaryOp, Value};

fn list(items: &[Expr]) -> String {
    items.iter().map(sexpr).collect::<Vec<_>>().join(" ")
}

fn value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Str(s) => format!("{s:?}"),
    }
}

fn sexpr(e: &Expr) -> String {
    match e {
        Expr::Or(items, _) => format!("(or {})", list(items)),
        Expr::And(items, _) => format!("(and {})", list(items)),
        Expr::Not(inner, _) => format!("(not {})", sexpr(inner)),
        Expr::Compare { op, left, right, .. } => format!("({} {} {})", op.as_str(), sexpr(left), sexpr(right)),
        Expr::In { expr, negated, insensitive, list: items, .. } => format!(
            "({}in{} {} {})",
            if *negated { "not-" } else { "" },
            if *insensitive { "~" } else { "" },
            sexpr(expr),
            list(items)
        ),
        Expr::Match { expr, op, patterns, .. } => format!(
            "({} {} {})",
            op.as_str(),
            sexpr(expr),
            patterns.iter().map(|p| value(&p.value)).collect::<Vec<_>>().join(" ")
        ),
        Expr::Arith { op, left, right, .. } => format!("({} {} {})", op.as_str(), sexpr(left), sexpr(right)),
        Expr::Unary { op, expr, .. } => {
            format!("({} {})", if *op == UnaryOp::Neg { "neg" } else { "pos" }, sexpr(expr))
        }
        Expr::Call(c) => {
            let head = if c.insensitive { "call~" } else { "call" };
            if c.args.is_empty() {
                format!("({head} {})", c.name)
            } else {
                format!("({head} {} {})", c.name, list(&c.args))
            }
        }
        Expr::Field(f) => {
            let plain = f.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '@' | '.'));
            let name = if plain { f.name.clone() } else { format!("{{{}}}", f.name) };
            format!("{}${name}", if f.optional { "?" } else { "" })
        }
        Expr::Literal(l) => value(&l.value),
    }
}

fn category(q: &EventQuery) -> String {
    match &q.category.kind {
        CategoryKind::Any => "any".into(),
        CategoryKind::Name(n) => format!("{n:?}"),
    }
}

fn step(s: &Step) -> String {
    let mut out =
        format!("({} {} {}", if s.missing { "missing" } else { "step" }, category(&s.query), sexpr(&s.query.condition));
    if !s.by.is_empty() {
        out.push_str(&format!(" (by {})", list(&s.by)));
    }
    if let Some(n) = s.runs {
        out.push_str(&format!(" (runs {n})"));
    }
    out.push(')');
    out
}

fn render(q: &str) -> Result<String, String> {
    let ast = imdsguard_eql::parse(q).map_err(|d| d.render(q, "q"))?;
    let body = match &ast.body {
        QueryBody::Event(e) => format!("(event {} {})", category(e), sexpr(&e.condition)),
        QueryBody::Sequence(s) => {
            let mut out = String::from("(sequence");
            if !s.by.is_empty() {
                out.push_str(&format!(" (by {})", list(&s.by)));
            }
            if let Some(m) = &s.maxspan {
                out.push_str(&format!(" (maxspan {}{})", m.value, m.unit.as_str()));
            }
            for st in &s.steps {
                out.push(' ');
                out.push_str(&step(st));
            }
            if let Some(u) = &s.until {
                out.push_str(&format!(" (until {})", step(u)));
            }
            out.push(')');
            out
        }
        QueryBody::Sample(s) => {
            let mut out = String::from("(sample");
            if !s.by.is_empty() {
                out.push_str(&format!(" (by {})", list(&s.by)));
            }
            for st in &s.steps {
                out.push(' ');
                out.push_str(&step(st));
            }
            out.push(')');
            out
        }
    };
    if ast.pipes.is_empty() {
        return Ok(body);
    }
    let pipes = ast
        .pipes
        .iter()
        .map(|p| format!("({} {})", if p.kind == PipeKind::Head { "head" } else { "tail" }, p.count))
        .collect::<Vec<_>>()
        .join(" ");
    Ok(format!("(| {body} {pipes})"))
}

#[test]
fn grammar_table() {
    let cases: &[(&str, &str)] = &[
        // event queries and categories
        ("process where true", r#"(event "process" true)"#),
        ("any where false", "(event any false)"),
        ("file where null", r#"(event "file" null)"#),
        (r#""my-category" where true"#, r#"(event "my-category" true)"#),
        (r#""""6event category""" where true"#, r#"(event "6event category" true)"#),
        ("OPTIONAL where true", r#"(event "OPTIONAL" true)"#),
        ("_cat where true", r#"(event "_cat" true)"#),
        (r#""any" where true"#, r#"(event "any" true)"#),
        // comparisons
        (r#"process where process.name == "cmd.exe""#, r#"(event "process" (== $process.name "cmd.exe"))"#),
        ("any where a != 1", "(event any (!= $a 1))"),
        ("any where a < 1", "(event any (< $a 1))"),
        ("any where a <= 1", "(event any (<= $a 1))"),
        ("any where a > 1", "(event any (> $a 1))"),
        ("any where a >= 1", "(event any (>= $a 1))"),
        ("any where a==1", "(event any (== $a 1))"),
        ("any where 1 == a", "(event any (== 1 $a))"),
        ("any where a == b", "(event any (== $a $b))"),
        // boolean operators and precedence: not > and > or
        ("any where a or b", "(event any (or $a $b))"),
        ("any where a and b", "(event any (and $a $b))"),
        ("any where a or b and c", "(event any (or $a (and $b $c)))"),
        ("any where a and b or c", "(event any (or (and $a $b) $c))"),
        ("any where not a and b", "(event any (and (not $a) $b))"),
        ("any where not a or not b", "(event any (or (not $a) (not $b)))"),
        ("any where not not a", "(event any (not (not $a)))"),
        ("any where not (a or b)", "(event any (not (or $a $b)))"),
        ("any where (a or b) and c", "(event any (and (or $a $b) $c))"),
        ("any where a or b or c", "(event any (or $a $b $c))"),
        ("any where a and b and c and d", "(event any (and $a $b $c $d))"),
        ("any where (a and b) and c", "(event any (and (and $a $b) $c))"),
        ("any where not a == 1", "(event any (not (== $a 1)))"),
        ("any where ((a))", "(event any $a)"),
        // `:` and lists
        (r#"any where a : "x*""#, r#"(event any (: $a "x*"))"#),
        (r#"any where a:"x?y""#, r#"(event any (: $a "x?y"))"#),
        (r#"any where a : ("x*", "b")"#, r#"(event any (: $a "x*" "b"))"#),
        (r#"any where a : ("x")"#, r#"(event any (: $a "x"))"#),
        ("any where a : 1", "(event any (: $a 1))"),
        ("any where a : null", "(event any (: $a null))"),
        // like / regex
        (r#"any where a like "X*""#, r#"(event any (like $a "X*"))"#),
        (r#"any where a like~ "x*""#, r#"(event any (like~ $a "x*"))"#),
        (r#"any where a like ("A*", "B?")"#, r#"(event any (like $a "A*" "B?"))"#),
        (r#"any where a like~ ("a*", "b")"#, r#"(event any (like~ $a "a*" "b"))"#),
        (r#"any where a regex "V[^Z].?""#, r#"(event any (regex $a "V[^Z].?"))"#),
        (r#"any where a regex~ "v[^z].?""#, r#"(event any (regex~ $a "v[^z].?"))"#),
        (r#"any where a regex ("[0-9]+", "x")"#, r#"(event any (regex $a "[0-9]+" "x"))"#),
        (r#"any where a regex~ ("x")"#, r#"(event any (regex~ $a "x"))"#),
        // in / in~ / not in / not in~
        (r#"any where a in ("x", "y")"#, r#"(event any (in $a "x" "y"))"#),
        (r#"any where a in~ ("x", "y")"#, r#"(event any (in~ $a "x" "y"))"#),
        (r#"any where a not in ("x", "y")"#, r#"(event any (not-in $a "x" "y"))"#),
        (r#"any where a not in~ ("x")"#, r#"(event any (not-in~ $a "x"))"#),
        ("any where a in (1, 2, b)", "(event any (in $a 1 2 $b))"),
        (r#"any where not a in ("x")"#, r#"(event any (not (in $a "x")))"#),
        ("any where a in (1 + 2, f(x))", "(event any (in $a (+ 1 2) (call f $x)))"),
        // predicates bind to the primary expression, as in the grammar
        ("any where a + b in (1)", "(event any (+ $a (in $b 1)))"),
        ("any where (a + b) in (1)", "(event any (in (+ $a $b) 1))"),
        (r#"any where length(a) : "x""#, r#"(event any (: (call length $a) "x"))"#),
        ("any where a in (1) == true", "(event any (== (in $a 1) true))"),
        // optional and quoted field names
        ("any where ?user.id != null", "(event any (!= ?$user.id null))"),
        ("any where ? user.id == 1", "(event any (== ?$user.id 1))"),
        ("any where `my field` == 1", "(event any (== ${my field} 1))"),
        ("any where `my-field`.x == 1", "(event any (== ${my-field.x} 1))"),
        ("any where `my``field` == 1", "(event any (== ${my`field} 1))"),
        ("any where a.`b c`.d == 1", "(event any (== ${a.b c.d} 1))"),
        ("any where `sequence` == 1", "(event any (== $sequence 1))"),
        ("any where ?`6x` == 1", "(event any (== ?$6x 1))"),
        ("any where @timestamp > 0", "(event any (> $@timestamp 0))"),
        ("any where _a.b_c.D9 == 1", "(event any (== $_a.b_c.D9 1))"),
        ("any where a . b == 1", "(event any (== $a.b 1))"),
        // arithmetic
        ("any where a + 1 == 2", "(event any (== (+ $a 1) 2))"),
        ("any where a - b - c == 0", "(event any (== (- (- $a $b) $c) 0))"),
        ("any where a + b * c == 0", "(event any (== (+ $a (* $b $c)) 0))"),
        ("any where (a + b) * c == 0", "(event any (== (* (+ $a $b) $c) 0))"),
        ("any where a * b / c % d == 0", "(event any (== (% (/ (* $a $b) $c) $d) 0))"),
        ("any where -a == 1", "(event any (== (neg $a) 1))"),
        ("any where a == -1", "(event any (== $a (neg 1)))"),
        ("any where a == +1", "(event any (== $a (pos 1)))"),
        ("any where a == - -1", "(event any (== $a (neg (neg 1))))"),
        ("any where -a * b == 1", "(event any (== (* (neg $a) $b) 1))"),
        ("any where a - -1 == 1", "(event any (== (- $a (neg 1)) 1))"),
        ("any where 4.0 / a == 1", "(event any (== (/ 4.0 $a) 1))"),
        // function calls
        (r#"any where endsWith(a, ".exe")"#, r#"(event any (call endsWith $a ".exe"))"#),
        (r#"any where endsWith~(a, ".EXE")"#, r#"(event any (call~ endsWith $a ".EXE"))"#),
        (r#"any where startsWith~(a, "x")"#, r#"(event any (call~ startsWith $a "x"))"#),
        (r#"any where stringContains~(a, "x")"#, r#"(event any (call~ stringContains $a "x"))"#),
        (r#"any where indexOf~(a, "x", 2) == 1"#, r#"(event any (== (call~ indexOf $a "x" 2) 1))"#),
        (r#"any where cidrMatch(ip, "10.0.0.0/8", "192.168.0.0/16")"#, r#"(event any (call cidrMatch $ip "10.0.0.0/8" "192.168.0.0/16"))"#),
        (r#"any where concat(a, "-", b) == "x""#, r#"(event any (== (call concat $a "-" $b) "x"))"#),
        ("any where length(a) > 3", "(event any (> (call length $a) 3))"),
        ("any where between(a, \"x\", \"y\") == \"z\"", r#"(event any (== (call between $a "x" "y") "z"))"#),
        ("any where substring(a, 1, 3) == \"x\"", r#"(event any (== (call substring $a 1 3) "x"))"#),
        ("any where add(a, 1) == multiply(b, 2)", "(event any (== (call add $a 1) (call multiply $b 2)))"),
        ("any where subtract(a, 1) == divide(b, modulo(c, 2))", "(event any (== (call subtract $a 1) (call divide $b (call modulo $c 2))))"),
        ("any where number(a, 16) == 1", "(event any (== (call number $a 16) 1))"),
        ("any where string(a) == \"1\"", r#"(event any (== (call string $a) "1"))"#),
        ("any where noSuchFunction()", "(event any (call noSuchFunction))"),
        ("any where f(g(h(x)))", "(event any (call f (call g (call h $x))))"),
        ("any where f (x)", "(event any (call f $x))"),
        // literals
        (r#"any where a == "tab\there""#, r#"(event any (== $a "tab\there"))"#),
        (r#"any where a == "q\"q\\b""#, r#"(event any (== $a "q\"q\\b"))"#),
        (r#"any where a == "\n\r""#, r#"(event any (== $a "\n\r"))"#),
        (r#"any where a == "\u{41}\u{0001F600}""#, r#"(event any (== $a "A😀"))"#),
        (r#"any where a == "\u{200f}""#, r#"(event any (== $a "\u{200f}"))"#),
        (r#"any where a == "it\'s""#, r#"(event any (== $a "it's"))"#),
        (r#"any where a == """C:\Windows\x""""#, r#"(event any (== $a "C:\\Windows\\x"))"#),
        (r#"any where a == """say "hi"""""#, r#"(event any (== $a "say \"hi\""))"#),
        (r#"any where a == """""""#, r#"(event any (== $a ""))"#),
        (r#"any where a == """#, r#"(event any (== $a ""))"#),
        ("any where a == 1.5", "(event any (== $a 1.5))"),
        ("any where a == .5", "(event any (== $a 0.5))"),
        ("any where a == 1.", "(event any (== $a 1.0))"),
        ("any where a == 1e3", "(event any (== $a 1000.0))"),
        ("any where a == 2.5E-1", "(event any (== $a 0.25))"),
        ("any where a == 0", "(event any (== $a 0))"),
        ("any where a == 99999999999999999999", "(event any (== $a 1e20))"),
        ("any where a == true or b == false", "(event any (or (== $a true) (== $b false)))"),
        // comments
        ("any where // a comment\n a == 1", "(event any (== $a 1))"),
        ("any where a == 1 // trailing", "(event any (== $a 1))"),
        ("any /* block */ where a == 1", "(event any (== $a 1))"),
        ("any where /* nested /* comment */ still */ a", "(event any $a)"),
        ("any where a == \"//not a comment\"", r#"(event any (== $a "//not a comment"))"#),
        ("\n\t any\r\nwhere\ta\n", "(event any $a)"),
        // pipes
        ("process where true | head 6", r#"(| (event "process" true) (head 6))"#),
        ("process where true | tail 2", r#"(| (event "process" true) (tail 2))"#),
        ("process where true | head 0 | tail 1", r#"(| (event "process" true) (head 0) (tail 1))"#),
        // sequences
        (
            "sequence [process where a] [file where b]",
            r#"(sequence (step "process" $a) (step "file" $b))"#,
        ),
        (
            "sequence by host.id [process where a] [file where b]",
            r#"(sequence (by $host.id) (step "process" $a) (step "file" $b))"#,
        ),
        (
            "sequence by host.id, user.name with maxspan=30s [process where a] [file where b]",
            r#"(sequence (by $host.id $user.name) (maxspan 30s) (step "process" $a) (step "file" $b))"#,
        ),
        (
            "sequence with maxspan=15m [a where x] [b where y]",
            r#"(sequence (maxspan 15m) (step "a" $x) (step "b" $y))"#,
        ),
        ("sequence with maxspan=500ms [a where x] [b where y]", r#"(sequence (maxspan 500ms) (step "a" $x) (step "b" $y))"#),
        ("sequence with maxspan=1h [a where x] [b where y]", r#"(sequence (maxspan 1h) (step "a" $x) (step "b" $y))"#),
        ("sequence with maxspan = 2 d [a where x] [b where y]", r#"(sequence (maxspan 2d) (step "a" $x) (step "b" $y))"#),
        (
            "sequence [file where x] by user.name, file.path [process where true] by user.name, process.executable",
            r#"(sequence (step "file" $x (by $user.name $file.path)) (step "process" true (by $user.name $process.executable)))"#,
        ),
        (
            "sequence by process.pid, ?process.entity_id [process where a] [network where true]",
            r#"(sequence (by $process.pid ?$process.entity_id) (step "process" $a) (step "network" true))"#,
        ),
        (
            "sequence by ID [a where x] [b where y] until [c where z]",
            r#"(sequence (by $ID) (step "a" $x) (step "b" $y) (until (step "c" $z)))"#,
        ),
        (
            "sequence [a where x] [b where y] with runs=3 [c where true]",
            r#"(sequence (step "a" $x) (step "b" $y (runs 3)) (step "c" true))"#,
        ),
        (
            "sequence [a where x] by p [b where y] by q with runs=3",
            r#"(sequence (step "a" $x (by $p)) (step "b" $y (by $q) (runs 3)))"#,
        ),
        ("sequence [a where x] with runs = 10", r#"(sequence (step "a" $x (runs 10)))"#),
        (
            "sequence by host.name, user.name with maxspan=5s [authentication where a : \"4624\"] ![authentication where a : \"4647\"]",
            r#"(sequence (by $host.name $user.name) (maxspan 5s) (step "authentication" (: $a "4624")) (missing "authentication" (: $a "4647")))"#,
        ),
        (
            "sequence with maxspan=1h ![a where x] [b where y] ![c where z]",
            r#"(sequence (maxspan 1h) (missing "a" $x) (step "b" $y) (missing "c" $z))"#,
        ),
        (
            "sequence [a where x] [b where y] | head 3",
            r#"(| (sequence (step "a" $x) (step "b" $y)) (head 3))"#,
        ),
        (
            "sequence [ any where x ][ any where y ]",
            "(sequence (step any $x) (step any $y))",
        ),
        (
            "sequence by a [x where b] by c[y where d] by e",
            r#"(sequence (by $a) (step "x" $b (by $c)) (step "y" $d (by $e)))"#,
        ),
        // samples
        (
            "sample by host [file where x] [process where true]",
            r#"(sample (by $host) (step "file" $x) (step "process" true))"#,
        ),
        (
            "sample by bool, host [any where uptime > 0] by os [any where port > 100] by op_sys",
            "(sample (by $bool $host) (step any (> $uptime 0) (by $os)) (step any (> $port 100) (by $op_sys)))",
        ),
        ("sample [a where x] [b where y] | head 2", r#"(| (sample (step "a" $x) (step "b" $y)) (head 2))"#),
        // words that are keywords only in lower case, and names that contain keywords
        ("any where AND == OR", "(event any (== $AND $OR))"),
        ("any where android and order", "(event any (and $android $order))"),
        ("any where runs == 1", "(event any (== $runs 1))"),
        ("any where a.inx == 1", "(event any (== $a.inx 1))"),
    ];
    let mut failures = Vec::new();
    for (q, want) in cases {
        match render(q) {
            Ok(got) if got == *want => {}
            Ok(got) => failures.push(format!("{q:?}\n   want {want}\n    got {got}")),
            Err(e) => failures.push(format!("{q:?}\n   want {want}\n    got error {e}")),
        }
    }
    assert!(cases.len() >= 80, "{}", cases.len());
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn invalid_queries_point_at_the_problem() {
    // (query, code, byte offset of the caret, text expected in the message)
    let cases: &[(&str, &str, usize, &str)] = &[
        // single quotes and other Python-EQL features
        ("any where a == 'x'", "Q004", 15, "single-quoted strings"),
        ("any where a == ?\"x\"", "Q004", 15, "raw strings"),
        ("process where true | count", "Q004", 21, "`count` pipe"),
        ("process where true | unique a", "Q004", 21, "`unique` pipe"),
        ("process where true | filter a == 1", "Q004", 21, "`filter` pipe"),
        ("process where true | sort a", "Q004", 21, "`sort` pipe"),
        ("process where true | unique_count a", "Q004", 21, "`unique_count` pipe"),
        ("any where a = 1", "Q004", 12, "`=` as an equality"),
        ("join [a where x] [b where y]", "Q004", 0, "`join` queries"),
        ("any where child of [process where true]", "Q004", 10, "process relationships"),
        ("any where descendant of [a where b]", "Q004", 10, "process relationships"),
        ("any where a[0] == 1", "Q004", 11, "array indexes"),
        // unterminated strings and comments
        ("any where a == \"abc", "Q001", 15, "unterminated string"),
        ("any where a == \"ab\nc\"", "Q001", 15, "cannot span lines"),
        ("any where a == \"\"\"abc", "Q001", 15, "unterminated raw string"),
        ("any where /* x", "Q001", 10, "unterminated block comment"),
        ("any where `abc == 1", "Q001", 10, "unterminated quoted field name"),
        // bad escapes
        (r#"any where a == "C:\Windows""#, "Q001", 18, "invalid escape"),
        (r#"any where a == "\u{1}""#, "Q001", 16, "2 to 8 hex digits"),
        (r#"any where a == "\u{d800}""#, "Q001", 16, "surrogate"),
        (r#"any where a == "\u{110000}""#, "Q001", 16, "beyond U+10FFFF"),
        // missing `where`, categories
        ("process a == 1", "Q001", 8, "expected \"where\" but found \"a\""),
        ("process", "Q001", 7, "expected \"where\" but found end of input"),
        ("", "Q001", 0, "expected a query"),
        ("`process` where true", "Q001", 0, "event category"),
        ("Process WHERE true", "Q001", 8, "expected \"where\""),
        // sequences
        ("sequence [a where x]", "Q001", 20, "\"[\""),
        ("sequence [a where x] until [b where y]", "Q001", 21, "found \"until\""),
        ("sequence", "Q001", 8, "\"[\""),
        ("sequence with maxspan=5 [a where x] [b where y]", "Q001", 22, "no time unit"),
        ("sequence with maxspan=5w [a where x] [b where y]", "Q001", 23, "unrecognized time unit `w`"),
        ("sequence with maxspan=1.5s [a where x] [b where y]", "Q001", 22, "decimal time interval"),
        ("sequence with maxspan=0s [a where x] [b where y]", "Q001", 22, "positive maxspan"),
        ("sequence with maxspan=5m by a [x where y] [z where w]", "Q001", 25, "`by` must come before"),
        ("sequence [a where x] [b where y] with runs=0", "Q001", 43, "between 1 and 100"),
        ("sequence [a where x] [b where y] with runs=101", "Q001", 43, "between 1 and 100"),
        ("sequence [a where x] [b where y] with repeats=2", "Q001", 38, "\"runs\""),
        ("sequence [a where x] by f [b where y]", "Q001", 26, "inconsistent number of join keys"),
        ("sequence [a where x] ![b where y]", "Q001", 21, "needs `with maxspan`"),
        ("sequence with maxspan=1m ![a where x] ![b where y]", "Q001", 0, "at least one event that is not missing"),
        ("sequence [a where x] [b where y", "Q001", 31, "\"]\""),
        // samples
        ("sample by h [a where x]", "Q001", 23, "\"[\""),
        ("sample by h [a where x] ![b where y]", "Q001", 24, "only allowed in sequences"),
        ("sample by h [a where x] [b where y] with runs=2", "Q001", 36, "end of input"),
        (
            "sample by h [a where 1] [b where 2] [c where 3] [d where 4] [e where 5] [f where 6]",
            "Q001",
            72,
            "at most 5",
        ),
        // pipes
        ("process where true | head", "Q001", 25, "non-negative integer"),
        ("process where true | head -1", "Q001", 26, "non-negative integer"),
        ("process where true | first 3", "Q001", 21, "unknown pipe `first`"),
        // expressions
        ("any where a ==", "Q001", 14, "an expression"),
        ("any where a == 1 b", "Q001", 17, "\"and\", \"or\""),
        ("any where (a == 1", "Q001", 17, "\")\""),
        ("any where a == 1)", "Q001", 16, "end of input"),
        ("any where a < b <= c", "Q001", 16, "cannot be chained"),
        ("any where a : b", "Q001", 14, "a literal"),
        ("any where a like (\"x\", b)", "Q001", 23, "a literal"),
        ("any where a in ()", "Q001", 16, "an expression"),
        ("any where a in \"x\"", "Q001", 15, "\"(\""),
        ("any where a not like \"x\"", "Q001", 12, "end of input"),
        ("any where a == sequence", "Q001", 15, "an expression"),
        ("any where a.where == 1", "Q001", 12, "a field name"),
        ("any where f~ == 1", "Q001", 13, "\"(\""),
        ("any where a ! = 1", "Q001", 12, "unexpected character \"!\""),
        ("any where a == 1 && b", "Q001", 17, "unexpected character \"&\""),
        ("any where a.1 == 1", "Q001", 11, "end of input"),
        ("any where a == 1 AND b == 2", "Q001", 17, "\"and\""),
    ];
    let mut failures = Vec::new();
    for (q, code, at, text) in cases {
        match imdsguard_eql::parse(q) {
            Ok(_) => failures.push(format!("{q:?} parsed: {:?}", render(q))),
            Err(d) => {
                let start = d.span.map(|s| s.start);
                if d.code != *code || start != Some(*at) || !d.message.contains(text) {
                    failures.push(format!(
                        "{q:?}: want {code} at {at} with {text:?}, got {} at {start:?}: {:?}",
                        d.code, d.message
                    ));
                }
            }
        }
    }
    assert!(cases.len() >= 20);
    assert!(failures.is_empty(), "{} of {}:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn depth_and_size_limits() {
    let deep = format!("any where {}a{}", "(".repeat(10_000), ")".repeat(10_000));
    assert_eq!(imdsguard_eql::parse(&deep).expect_err("too deep").code, "Q003");
    let nots = format!("any where {}a", "not ".repeat(10_000));
    assert_eq!(imdsguard_eql::parse(&nots).expect_err("too deep").code, "Q003");
    let minus = format!("any where {}a", "-".repeat(10_000));
    assert_eq!(imdsguard_eql::parse(&minus).expect_err("too deep").code, "Q003");
    let chain = format!("any where a{} == 1", " + a".repeat(10_000));
    assert_eq!(imdsguard_eql::parse(&chain).expect_err("too deep").code, "Q003");
    let calls = format!("any where {}x{}", "f(".repeat(10_000), ")".repeat(10_000));
    assert_eq!(imdsguard_eql::parse(&calls).expect_err("too deep").code, "Q003");
    // Flat chains of `and`/`or` are not nesting.
    let wide = format!("any where a{}", " or a".repeat(50_000));
    assert!(imdsguard_eql::parse(&wide).is_ok());
    let ok = format!("any where {}a{}", "(".repeat(60), ")".repeat(60));
    assert!(imdsguard_eql::parse(&ok).is_ok());
    let long = format!("any where a{}", " or a".repeat(300_000));
    assert_eq!(imdsguard_eql::parse(&long).expect_err("too long").code, "Q002");
}

#[test]
fn spans_cover_the_source() {
    let q = r#"process where ?process.name : "curl" and endsWith~(x, "y")"#;
    let ast = imdsguard_eql::parse(q).expect("parses");
    assert_eq!((ast.span.start, ast.span.end), (0, q.len()));
    let QueryBody::Event(e) = &ast.body else { panic!("event") };
    assert_eq!(&q[e.category.span.start..e.category.span.end], "process");
    let Expr::And(items, span) = &e.condition else { panic!("and") };
    assert_eq!(&q[span.start..span.end], &q[14..]);
    let Expr::Match { expr, patterns, span, .. } = &items[0] else { panic!("match") };
    assert_eq!(&q[span.start..span.end], r#"?process.name : "curl""#);
    assert_eq!(&q[expr.span().start..expr.span().end], "?process.name");
    assert_eq!(&q[patterns[0].span.start..patterns[0].span.end], "\"curl\"");
    let Expr::Call(c) = &items[1] else { panic!("call") };
    assert_eq!(&q[c.name_span.start..c.name_span.end], "endsWith~");
    assert_eq!(&q[c.span.start..c.span.end], r#"endsWith~(x, "y")"#);

    let q = "sequence by h with maxspan=5m\n  [a where x] by p with runs=2\n  ![b where y] by q\nuntil [c where z] by r | head 1";
    let ast = imdsguard_eql::parse(q).expect("parses");
    assert_eq!((ast.span.start, ast.span.end), (0, q.len()));
    let QueryBody::Sequence(s) = &ast.body else { panic!("sequence") };
    let m = s.maxspan.expect("maxspan");
    assert_eq!(&q[m.span.start..m.span.end], "maxspan=5m");
    assert_eq!(&q[s.steps[0].span.start..s.steps[0].span.end], "[a where x] by p with runs=2");
    assert_eq!(&q[s.steps[1].span.start..s.steps[1].span.end], "![b where y] by q");
    let u = s.until.as_ref().expect("until");
    assert_eq!(&q[u.span.start..u.span.end], "[c where z] by r");
    assert_eq!(&q[ast.pipes[0].span.start..ast.pipes[0].span.end], "| head 1");
}

#[test]
fn diagnostics_render_with_a_caret() {
    let q = "process where a == 'x'";
    let d = imdsguard_eql::parse(q).expect_err("single quotes");
    let r = d.render(q, "rule.toml");
    assert!(r.starts_with("error[Q004]: single-quoted strings"), "{r}");
    assert!(r.contains(" --> rule.toml:1:20"), "{r}");
    assert!(r.contains("^^^"), "{r}");
    assert!(r.contains("help: enclose strings in double quotes"), "{r}");
}
