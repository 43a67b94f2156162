//! A recursive-descent parser that follows `EqlBase.g4` rule by rule, plus the checks
//! Elasticsearch makes while building its plan (`LogicalPlanBuilder`, `ExpressionBuilder`): maxspan
//! units, `runs` bounds, join key counts, the supported pipes, and the Python-EQL features it
//! rejects. It never backtracks; on failure it reports what it could have accepted at the
//! failing token, and what it found there.

use crate::ast::{
    ArithOp, Call, Category, CategoryKind, CmpOp, EventQuery, Expr, Field, Literal, MatchOp, MaxSpan, Pipe, PipeKind,
    Query, QueryBody, Sample, Sequence, Step, TimeUnit, UnaryOp, Value,
};
use crate::lexer::{q001, q004, tokenize, Kw, Punct, Tok, Token};
use imdsguard_syntax::{Diagnostic, Span};

/// Deepest nesting of sub-expressions accepted (parentheses, `not`, unary signs, call arguments,
/// list items, and each operator of an arithmetic chain).
pub const MAX_DEPTH: usize = 64;
/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 1 << 20;

/// Most steps a sample may have (Elasticsearch's limit).
const MAX_SAMPLE_STEPS: usize = 5;
/// `with runs=N` bounds.
const MAX_RUNS: u64 = 100;

/// Pipes of Python (Endgame) EQL that Elasticsearch does not run.
const PYTHON_PIPES: &[&str] = &["count", "unique", "unique_count", "filter", "sort", "window"];

type R<T> = Result<T, Diagnostic>;

/// Parse an EQL statement (a query and its pipes).
pub fn parse(src: &str) -> Result<Query, Diagnostic> {
    if src.len() > MAX_QUERY_BYTES {
        return Err(Diagnostic::error(
            "Q002",
            format!("query is {} bytes long; the limit is {MAX_QUERY_BYTES}", src.len()),
        )
        .with_span(Span::new(MAX_QUERY_BYTES, src.len())));
    }
    let toks = tokenize(src)?;
    let mut p = Parser { src, toks, pos: 0, depth: 0, exp_pos: 0, exp: Vec::new() };
    p.statement()
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    /// Token index at which `exp` was recorded.
    exp_pos: usize,
    /// What could have been accepted at `exp_pos`.
    exp: Vec<&'static str>,
}

fn kw_name(k: Kw) -> &'static str {
    match k {
        Kw::And => "\"and\"",
        Kw::Any => "\"any\"",
        Kw::By => "\"by\"",
        Kw::False => "\"false\"",
        Kw::In => "\"in\"",
        Kw::InInsensitive => "\"in~\"",
        Kw::Join => "\"join\"",
        Kw::Like => "\"like\"",
        Kw::LikeInsensitive => "\"like~\"",
        Kw::Maxspan => "\"maxspan\"",
        Kw::Not => "\"not\"",
        Kw::Null => "\"null\"",
        Kw::Of => "\"of\"",
        Kw::Or => "\"or\"",
        Kw::Regex => "\"regex\"",
        Kw::RegexInsensitive => "\"regex~\"",
        Kw::Sample => "\"sample\"",
        Kw::Sequence => "\"sequence\"",
        Kw::True => "\"true\"",
        Kw::Until => "\"until\"",
        Kw::Where => "\"where\"",
        Kw::With => "\"with\"",
    }
}

fn punct_name(p: Punct) -> &'static str {
    match p {
        Punct::Seq => "\":\"",
        Punct::Asgn => "\"=\"",
        Punct::Eq => "\"==\"",
        Punct::Neq => "\"!=\"",
        Punct::Lt => "\"<\"",
        Punct::Lte => "\"<=\"",
        Punct::Gt => "\">\"",
        Punct::Gte => "\">=\"",
        Punct::Plus => "\"+\"",
        Punct::Minus => "\"-\"",
        Punct::Star => "\"*\"",
        Punct::Slash => "\"/\"",
        Punct::Percent => "\"%\"",
        Punct::Dot => "\".\"",
        Punct::Comma => "\",\"",
        Punct::LBracket => "\"[\"",
        Punct::RBracket => "\"]\"",
        Punct::LParen => "\"(\"",
        Punct::RParen => "\")\"",
        Punct::Pipe => "\"|\"",
        Punct::Question => "\"?\"",
        Punct::MissingOpen => "\"![\"",
    }
}

const OPERATOR: &str = "an operator";

impl Parser<'_> {
    // ---- token access -------------------------------------------------------------------------

    fn tok_at(&self, i: usize) -> &Token {
        // The token list always ends with Eof.
        let last = self.toks.len().saturating_sub(1);
        &self.toks[i.min(last)]
    }

    fn peek(&self) -> &Tok {
        &self.tok_at(self.pos).tok
    }

    fn peek_n(&self, n: usize) -> &Tok {
        &self.tok_at(self.pos + n).tok
    }

    fn span(&self) -> Span {
        self.tok_at(self.pos).span
    }

    /// End of the last consumed token.
    fn prev_end(&self) -> usize {
        if self.pos == 0 {
            0
        } else {
            self.tok_at(self.pos - 1).span.end
        }
    }

    fn bump(&mut self) -> Token {
        let t = self.tok_at(self.pos).clone();
        if !matches!(t.tok, Tok::Eof) {
            self.pos += 1;
        }
        t
    }

    fn is_kw(&self, k: Kw) -> bool {
        matches!(self.peek(), Tok::Kw(x) if *x == k)
    }

    fn is_punct(&self, p: Punct) -> bool {
        matches!(self.peek(), Tok::Punct(x) if *x == p)
    }

    /// Record that `what` would have been accepted at the current token.
    fn note(&mut self, what: &'static str) {
        if self.pos > self.exp_pos {
            self.exp_pos = self.pos;
            self.exp.clear();
        }
        if self.pos == self.exp_pos && !self.exp.contains(&what) {
            self.exp.push(what);
        }
    }

    fn eat_kw(&mut self, k: Kw) -> Option<Span> {
        if self.is_kw(k) {
            return Some(self.bump().span);
        }
        self.note(kw_name(k));
        None
    }

    fn eat_punct(&mut self, p: Punct) -> Option<Span> {
        if self.is_punct(p) {
            return Some(self.bump().span);
        }
        self.note(punct_name(p));
        None
    }

    fn expect_kw(&mut self, k: Kw) -> R<Span> {
        match self.eat_kw(k) {
            Some(s) => Ok(s),
            None => Err(self.fail(kw_name(k))),
        }
    }

    fn expect_punct(&mut self, p: Punct) -> R<Span> {
        match self.eat_punct(p) {
            Some(s) => Ok(s),
            None => Err(self.fail(punct_name(p))),
        }
    }

    fn found(&self) -> String {
        let t = self.tok_at(self.pos);
        if matches!(t.tok, Tok::Eof) {
            return "end of input".into();
        }
        let text = self.src.get(t.span.start..t.span.end).unwrap_or("");
        if text.chars().count() > 40 {
            let short: String = text.chars().take(37).collect();
            format!("{:?}", format!("{short}..."))
        } else {
            format!("{text:?}")
        }
    }

    /// A syntax error at the current token: everything that could have been accepted here.
    fn fail(&mut self, what: &'static str) -> Diagnostic {
        self.note(what);
        let list = self.exp.join(", ");
        let found = self.found();
        let d = q001(format!("expected {list} but found {found}"), self.span(), format!("expected {list}"));
        match self.peek() {
            Tok::Kw(k) if list.contains("field name") || list.contains("an expression") => {
                let k = k.as_str();
                d.with_help(format!("`{k}` is a keyword; a field with that name is written back-quoted: `{k}`"))
            }
            Tok::Punct(Punct::Asgn) => d.with_help("`=` is not an operator in Elasticsearch EQL; write `==` or `:`"),
            _ => d,
        }
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Diagnostic::error("Q003", format!("query is nested more than {MAX_DEPTH} levels deep"))
                .with_span(self.span())
                .with_label("too deep"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // ---- statements -------------------------------------------------------------------------

    // statement : query pipe* EOF
    fn statement(&mut self) -> R<Query> {
        let start = self.span().start;
        let body = match self.peek() {
            Tok::Kw(Kw::Sequence) => QueryBody::Sequence(self.sequence()?),
            Tok::Kw(Kw::Sample) => QueryBody::Sample(self.sample()?),
            Tok::Kw(Kw::Join) => {
                return Err(q004(
                    "`join` queries are not supported by Elasticsearch EQL (a Python-EQL feature)",
                    self.span(),
                    "use a `sequence` (ordered) or a `sample` (unordered) instead",
                ))
            }
            _ => QueryBody::Event(self.event_query()?),
        };
        let mut pipes = Vec::new();
        while let Some(bar) = self.eat_punct(Punct::Pipe) {
            pipes.push(self.pipe(bar)?);
        }
        if !matches!(self.peek(), Tok::Eof) {
            return Err(self.fail("end of input"));
        }
        Ok(Query { body, pipes, span: Span::new(start, self.prev_end().max(start)) })
    }

    // pipe : PIPE kind=IDENTIFIER (booleanExpression (COMMA booleanExpression)*)?
    fn pipe(&mut self, bar: Span) -> R<Pipe> {
        let name_span = self.span();
        let name = match self.peek() {
            Tok::Ident(n) => n.clone(),
            _ => return Err(self.fail("a pipe name (\"head\" or \"tail\")")),
        };
        let kind = match name.as_str() {
            "head" => PipeKind::Head,
            "tail" => PipeKind::Tail,
            n if PYTHON_PIPES.contains(&n) => {
                return Err(q004(
                    format!("the `{n}` pipe is not supported by Elasticsearch EQL (a Python-EQL feature)"),
                    name_span,
                    "Elasticsearch EQL supports only the `head` and `tail` pipes",
                ))
            }
            n => {
                return Err(q001(format!("unknown pipe `{n}`"), name_span, "unknown pipe")
                    .with_help("Elasticsearch EQL supports the `head` and `tail` pipes"))
            }
        };
        self.bump();
        let count = match self.peek().clone() {
            Tok::Int(digits) => {
                let s = self.bump().span;
                digits.parse::<u64>().map_err(|_| q001("pipe count is too large", s, "too large"))?
            }
            _ => {
                let d = self.fail("a non-negative integer");
                return Err(d.with_help(format!("write `| {name} 10`")));
            }
        };
        Ok(Pipe { kind, count, span: bar.to(Span::new(name_span.start, self.prev_end())) })
    }

    // eventFilter : (ANY | event=eventValue) WHERE expression
    fn event_query(&mut self) -> R<EventQuery> {
        let cat_span = self.span();
        let kind = match self.peek().clone() {
            Tok::Kw(Kw::Any) => CategoryKind::Any,
            Tok::Ident(s) | Tok::Str(s) => CategoryKind::Name(s),
            Tok::QuotedIdent(_) => {
                return Err(q001(
                    format!("expected an event category but found {}", self.found()),
                    cat_span,
                    "back-quotes are for field names",
                )
                .with_help("an event category that is not a plain name is written as a string: \"my-category\""))
            }
            Tok::Eof if self.pos == 0 => {
                return Err(self.fail("a query (an event category, \"any\", \"sequence\" or \"sample\")"))
            }
            _ => return Err(self.fail("an event category")),
        };
        self.bump();
        let category = Category { kind, span: cat_span };
        self.expect_kw(Kw::Where)?;
        let condition = self.expr()?;
        let span = cat_span.to(condition.span());
        Ok(EventQuery { category, condition, span })
    }

    // sequence : SEQUENCE (by=joinKeys sequenceParams? | sequenceParams disallowed=joinKeys?)?
    //            sequenceTerm+ (UNTIL until=sequenceTerm)?
    fn sequence(&mut self) -> R<Sequence> {
        let start = self.bump().span;
        let mut by = Vec::new();
        if self.eat_kw(Kw::By).is_some() {
            by = self.join_keys()?;
        }
        let mut maxspan = None;
        if self.eat_kw(Kw::With).is_some() {
            maxspan = Some(self.maxspan()?);
            if by.is_empty() && self.is_kw(Kw::By) {
                return Err(q001(
                    "`by` must come before `with maxspan` in a sequence header",
                    self.span(),
                    "move this before `with`",
                )
                .with_help("write `sequence by f with maxspan=1m`"));
            }
        }
        let mut steps = Vec::new();
        loop {
            if self.is_punct(Punct::LBracket) || self.is_punct(Punct::MissingOpen) {
                steps.push(self.step(true)?);
                continue;
            }
            self.note(punct_name(Punct::LBracket));
            self.note(punct_name(Punct::MissingOpen));
            break;
        }
        // `sequenceTerm+` in the grammar; Elasticsearch then requires two queries once
        // `with runs=N` is expanded.
        let expanded: u64 = steps.iter().map(|s| u64::from(s.runs.unwrap_or(1))).sum();
        if expanded < 2 {
            let d = self.fail("\"[\"");
            return Err(d.with_help(
                "a sequence needs at least two events: sequence [a where x] [b where y], or one step `with runs=2` or more",
            ));
        }
        let mut until = None;
        if self.eat_kw(Kw::Until).is_some() {
            if !(self.is_punct(Punct::LBracket) || self.is_punct(Punct::MissingOpen)) {
                return Err(self.fail("\"[\""));
            }
            until = Some(self.step(true)?);
        }
        check_key_counts(steps.iter().chain(until.iter()))?;
        if let Some(m) = steps.iter().find(|s| s.missing) {
            if maxspan.is_none() {
                return Err(q001(
                    "a sequence with a missing event (`![...]`) needs `with maxspan`",
                    m.span,
                    "missing event",
                )
                .with_help("write `sequence with maxspan=5m ...`"));
            }
            if steps.iter().all(|s| s.missing) {
                return Err(q001(
                    "a sequence needs at least one event that is not missing",
                    Span::new(start.start, self.prev_end()),
                    "only missing events",
                ));
            }
        }
        Ok(Sequence { by, maxspan, steps, until, span: Span::new(start.start, self.prev_end()) })
    }

    // sample : SAMPLE (by=joinKeys)? joinTerm+
    fn sample(&mut self) -> R<Sample> {
        let start = self.bump().span;
        let mut by = Vec::new();
        if self.eat_kw(Kw::By).is_some() {
            by = self.join_keys()?;
        }
        let mut steps = Vec::new();
        loop {
            if self.is_punct(Punct::LBracket) || self.is_punct(Punct::MissingOpen) {
                steps.push(self.step(false)?);
                continue;
            }
            self.note(punct_name(Punct::LBracket));
            break;
        }
        if steps.len() < 2 {
            let d = self.fail("\"[\"");
            return Err(
                d.with_help("a sample needs at least two bracketed events: sample by f [a where x] [b where y]")
            );
        }
        if steps.len() > MAX_SAMPLE_STEPS {
            return Err(q001(
                format!("a sample has at most {MAX_SAMPLE_STEPS} events, found {}", steps.len()),
                steps[MAX_SAMPLE_STEPS].span,
                "one too many",
            ));
        }
        check_key_counts(steps.iter())?;
        Ok(Sample { by, steps, span: Span::new(start.start, self.prev_end()) })
    }

    // sequenceTerm : subquery (by=joinKeys)? (WITH key=IDENTIFIER ASGN value=number)?
    // joinTerm     : subquery (by=joinKeys)?
    // subquery     : (LB | MISSING_EVENT_OPEN) eventFilter RB
    fn step(&mut self, in_sequence: bool) -> R<Step> {
        let open = self.bump();
        let missing = matches!(open.tok, Tok::Punct(Punct::MissingOpen));
        if missing && !in_sequence {
            return Err(q001("missing events (`![...]`) are only allowed in sequences", open.span, "not in a sample"));
        }
        let query = self.event_query()?;
        self.expect_punct(Punct::RBracket)?;
        let mut by = Vec::new();
        if self.eat_kw(Kw::By).is_some() {
            by = self.join_keys()?;
        }
        let mut runs = None;
        if in_sequence && self.eat_kw(Kw::With).is_some() {
            match self.peek() {
                Tok::Ident(k) if k == "runs" => {
                    self.bump();
                }
                _ => return Err(self.fail("\"runs\"")),
            }
            self.expect_punct(Punct::Asgn)?;
            let n_span = self.span();
            let n = match self.peek().clone() {
                Tok::Int(d) => d.parse::<u64>().unwrap_or(u64::MAX),
                Tok::Decimal(_) => {
                    return Err(q001("`runs` must be an integer", n_span, "not an integer"));
                }
                _ => return Err(self.fail("an integer")),
            };
            self.bump();
            if n == 0 || n > MAX_RUNS {
                return Err(q001(
                    format!("`runs` must be between 1 and {MAX_RUNS}, found {n}"),
                    n_span,
                    "out of range",
                ));
            }
            runs = Some(n as u32);
        }
        Ok(Step { missing, query, by, runs, span: Span::new(open.span.start, self.prev_end()) })
    }

    // joinKeys : BY expression (COMMA expression)*   (BY already consumed)
    fn join_keys(&mut self) -> R<Vec<Expr>> {
        let mut keys = vec![self.expr()?];
        while self.eat_punct(Punct::Comma).is_some() {
            keys.push(self.expr()?);
        }
        Ok(keys)
    }

    // sequenceParams : WITH (MAXSPAN ASGN timeUnit)    (WITH already consumed)
    // timeUnit : number unit=IDENTIFIER?
    fn maxspan(&mut self) -> R<MaxSpan> {
        let start = self.expect_kw(Kw::Maxspan)?;
        self.expect_punct(Punct::Asgn)?;
        let n_span = self.span();
        let value = match self.peek().clone() {
            Tok::Int(d) => d.parse::<u64>().map_err(|_| q001("maxspan value is too large", n_span, "too large"))?,
            Tok::Decimal(d) => {
                return Err(q001(
                    format!("decimal time interval `{d}` is not supported; use a positive integer"),
                    n_span,
                    "not an integer",
                ))
            }
            _ => return Err(self.fail("a positive integer with a time unit (ms, s, m, h, d)")),
        };
        self.bump();
        if value == 0 {
            return Err(q001("a positive maxspan value is required; found 0", n_span, "not positive"));
        }
        let unit_span = self.span();
        let unit = match self.peek() {
            Tok::Ident(u) => match u.as_str() {
                "ms" => TimeUnit::Millis,
                "s" => TimeUnit::Seconds,
                "m" => TimeUnit::Minutes,
                "h" => TimeUnit::Hours,
                "d" => TimeUnit::Days,
                other => {
                    return Err(q001(
                        format!("unrecognized time unit `{other}`; use one of ms, s, m, h, d"),
                        unit_span,
                        "unknown unit",
                    ))
                }
            },
            _ => {
                return Err(q001(
                    format!("no time unit after maxspan={value}; did you mean {value}s?"),
                    Span::new(n_span.start, n_span.end),
                    "time unit missing (ms, s, m, h, d)",
                ))
            }
        };
        self.bump();
        Ok(MaxSpan { value, unit, span: start.to(unit_span) })
    }

    // ---- expressions ----------------------------------------------------------------------

    // expression : booleanExpression
    fn expr(&mut self) -> R<Expr> {
        self.enter()?;
        let r = self.or_expr();
        self.leave();
        r
    }

    fn or_expr(&mut self) -> R<Expr> {
        let first = self.and_expr()?;
        if !self.is_kw(Kw::Or) {
            self.note(kw_name(Kw::Or));
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_kw(Kw::Or).is_some() {
            items.push(self.and_expr()?);
        }
        let span = items[0].span().to(items[items.len() - 1].span());
        Ok(Expr::Or(items, span))
    }

    fn and_expr(&mut self) -> R<Expr> {
        let first = self.not_expr()?;
        if !self.is_kw(Kw::And) {
            self.note(kw_name(Kw::And));
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_kw(Kw::And).is_some() {
            items.push(self.not_expr()?);
        }
        let span = items[0].span().to(items[items.len() - 1].span());
        Ok(Expr::And(items, span))
    }

    // NOT booleanExpression | relationship=IDENTIFIER OF subquery | valueExpression
    fn not_expr(&mut self) -> R<Expr> {
        if self.is_kw(Kw::Not) {
            let s = self.bump().span;
            self.enter()?;
            let inner = self.not_expr()?;
            self.leave();
            let span = s.to(inner.span());
            return Ok(Expr::Not(Box::new(inner), span));
        }
        if let (Tok::Ident(rel), Tok::Kw(Kw::Of)) = (self.peek(), self.peek_n(1)) {
            let rel = rel.clone();
            let span = self.span().to(self.tok_at(self.pos + 1).span);
            return Err(q004(
                format!("process relationships (`{rel} of [...]`) are not supported by Elasticsearch EQL (a Python-EQL feature)"),
                span,
                "`child of`, `descendant of` and `event of` are Python-EQL only; use a `sequence` joined `by` process ids",
            ));
        }
        self.value_expr()
    }

    fn cmp_op(&self) -> Option<CmpOp> {
        match self.peek() {
            Tok::Punct(Punct::Eq) => Some(CmpOp::Eq),
            Tok::Punct(Punct::Neq) => Some(CmpOp::Neq),
            Tok::Punct(Punct::Lt) => Some(CmpOp::Lt),
            Tok::Punct(Punct::Lte) => Some(CmpOp::Lte),
            Tok::Punct(Punct::Gt) => Some(CmpOp::Gt),
            Tok::Punct(Punct::Gte) => Some(CmpOp::Gte),
            _ => None,
        }
    }

    // valueExpression : operatorExpression (comparisonOperator operatorExpression)?
    fn value_expr(&mut self) -> R<Expr> {
        let left = self.additive()?;
        if self.is_punct(Punct::Asgn) {
            return Err(q004(
                "`=` as an equality operator is not supported by Elasticsearch EQL (a Python-EQL feature)",
                self.span(),
                "write `==` (case-sensitive) or `:` (case-insensitive)",
            ));
        }
        let Some(op) = self.cmp_op() else {
            self.note(OPERATOR);
            return Ok(left);
        };
        self.bump();
        let right = self.additive()?;
        if self.cmp_op().is_some() {
            return Err(q001(
                format!("comparisons cannot be chained: found {} after a comparison", self.found()),
                self.span(),
                "second comparison",
            )
            .with_help("write `a < b and b <= c`"));
        }
        let span = left.span().to(right.span());
        Ok(Expr::Compare { op, left: Box::new(left), right: Box::new(right), span })
    }

    fn additive(&mut self) -> R<Expr> {
        let mut left = self.multiplicative()?;
        let mut chain = 0;
        loop {
            let op = match self.peek() {
                Tok::Punct(Punct::Plus) => ArithOp::Add,
                Tok::Punct(Punct::Minus) => ArithOp::Sub,
                _ => {
                    self.note(OPERATOR);
                    break;
                }
            };
            self.bump();
            self.enter()?;
            chain += 1;
            let right = self.multiplicative()?;
            let span = left.span().to(right.span());
            left = Expr::Arith { op, left: Box::new(left), right: Box::new(right), span };
        }
        self.depth = self.depth.saturating_sub(chain);
        Ok(left)
    }

    fn multiplicative(&mut self) -> R<Expr> {
        let mut left = self.unary()?;
        let mut chain = 0;
        loop {
            let op = match self.peek() {
                Tok::Punct(Punct::Star) => ArithOp::Mul,
                Tok::Punct(Punct::Slash) => ArithOp::Div,
                Tok::Punct(Punct::Percent) => ArithOp::Mod,
                _ => {
                    self.note(OPERATOR);
                    break;
                }
            };
            self.bump();
            self.enter()?;
            chain += 1;
            let right = self.unary()?;
            let span = left.span().to(right.span());
            left = Expr::Arith { op, left: Box::new(left), right: Box::new(right), span };
        }
        self.depth = self.depth.saturating_sub(chain);
        Ok(left)
    }

    // operator=(MINUS | PLUS) operatorExpression
    fn unary(&mut self) -> R<Expr> {
        let op = match self.peek() {
            Tok::Punct(Punct::Minus) => UnaryOp::Neg,
            Tok::Punct(Punct::Plus) => UnaryOp::Plus,
            _ => return self.postfix(),
        };
        let s = self.bump().span;
        self.enter()?;
        let inner = self.unary()?;
        self.leave();
        let span = s.to(inner.span());
        Ok(Expr::Unary { op, expr: Box::new(inner), span })
    }

    // primaryExpression predicate?
    fn postfix(&mut self) -> R<Expr> {
        let prim = self.primary()?;
        let negated_in = self.is_kw(Kw::Not) && matches!(self.peek_n(1), Tok::Kw(Kw::In | Kw::InInsensitive));
        if negated_in {
            self.bump();
        }
        match self.peek() {
            Tok::Kw(k @ (Kw::In | Kw::InInsensitive)) => {
                let insensitive = *k == Kw::InInsensitive;
                self.bump();
                self.expect_punct(Punct::LParen)?;
                let mut list = vec![self.expr()?];
                while self.eat_punct(Punct::Comma).is_some() {
                    list.push(self.expr()?);
                }
                let close = self.expect_punct(Punct::RParen)?;
                let span = prim.span().to(close);
                Ok(Expr::In { expr: Box::new(prim), negated: negated_in, insensitive, list, span })
            }
            Tok::Punct(Punct::Seq) | Tok::Kw(Kw::Like | Kw::LikeInsensitive | Kw::Regex | Kw::RegexInsensitive) => {
                let op = match self.bump().tok {
                    Tok::Kw(Kw::Like) => MatchOp::Like,
                    Tok::Kw(Kw::LikeInsensitive) => MatchOp::LikeInsensitive,
                    Tok::Kw(Kw::Regex) => MatchOp::Regex,
                    Tok::Kw(Kw::RegexInsensitive) => MatchOp::RegexInsensitive,
                    _ => MatchOp::Seq,
                };
                let (patterns, end) = if let Some(_open) = self.eat_punct(Punct::LParen) {
                    let mut items = vec![self.constant(op)?];
                    while self.eat_punct(Punct::Comma).is_some() {
                        items.push(self.constant(op)?);
                    }
                    (items, self.expect_punct(Punct::RParen)?)
                } else {
                    let c = self.constant(op)?;
                    let s = c.span;
                    (vec![c], s)
                };
                let span = prim.span().to(end);
                Ok(Expr::Match { expr: Box::new(prim), op, patterns, span })
            }
            _ => {
                self.note(OPERATOR);
                Ok(prim)
            }
        }
    }

    /// `constant`: the right side of `:`, `like`, `regex`.
    fn constant(&mut self, op: MatchOp) -> R<Literal> {
        if let Some(l) = self.literal() {
            return Ok(l);
        }
        let d = self.fail("a literal (a string, number, boolean or null)");
        Err(d.with_help(format!(
            "the right side of `{}` is a constant or a parenthesised list of constants; fields cannot be compared \
             with fields",
            op.as_str()
        )))
    }

    fn literal(&mut self) -> Option<Literal> {
        let span = self.span();
        let value = match self.peek() {
            Tok::Kw(Kw::Null) => Value::Null,
            Tok::Kw(Kw::True) => Value::Bool(true),
            Tok::Kw(Kw::False) => Value::Bool(false),
            Tok::Str(s) => Value::Str(s.clone()),
            Tok::Int(d) => match d.parse::<i64>() {
                Ok(v) => Value::Int(v),
                // Too large for a long: Elasticsearch reads it as a double.
                Err(_) => Value::Float(d.parse::<f64>().unwrap_or(f64::INFINITY)),
            },
            Tok::Decimal(d) => Value::Float(parse_decimal(d)),
            _ => return None,
        };
        self.bump();
        Some(Literal { value, span })
    }

    // constant | functionExpression | qualifiedName | LP expression RP
    fn primary(&mut self) -> R<Expr> {
        if let Some(l) = self.literal() {
            return Ok(Expr::Literal(l));
        }
        match self.peek().clone() {
            Tok::TildeIdent(name) => self.call(name, true),
            Tok::Ident(name) if matches!(self.peek_n(1), Tok::Punct(Punct::LParen)) => self.call(name, false),
            Tok::Ident(_) | Tok::QuotedIdent(_) | Tok::Punct(Punct::Question) => Ok(Expr::Field(self.field()?)),
            Tok::Punct(Punct::LParen) => {
                self.bump();
                let inner = self.expr()?;
                self.expect_punct(Punct::RParen)?;
                Ok(inner)
            }
            _ => Err(self.fail("an expression")),
        }
    }

    // functionExpression : name=functionName LP (expression (COMMA expression)*)? RP
    fn call(&mut self, name: String, insensitive: bool) -> R<Expr> {
        let name_span = self.bump().span;
        self.expect_punct(Punct::LParen)?;
        let mut args = Vec::new();
        if self.eat_punct(Punct::RParen).is_none() {
            args.push(self.expr()?);
            while self.eat_punct(Punct::Comma).is_some() {
                args.push(self.expr()?);
            }
            self.expect_punct(Punct::RParen)?;
        }
        let span = Span::new(name_span.start, self.prev_end());
        Ok(Expr::Call(Call { name, insensitive, args, name_span, span }))
    }

    // qualifiedName : OPTIONAL? identifier (DOT identifier | LB INTEGER_VALUE+ RB)*
    fn field(&mut self) -> R<Field> {
        let start = self.span().start;
        let optional = self.eat_punct(Punct::Question).is_some();
        let mut name = self.identifier()?;
        loop {
            if self.eat_punct(Punct::Dot).is_some() {
                name.push('.');
                name.push_str(&self.identifier()?);
                continue;
            }
            if self.is_punct(Punct::LBracket) && matches!(self.peek_n(1), Tok::Int(_)) {
                let span = self.span().to(self.tok_at(self.pos + 1).span);
                return Err(q004(
                    "array indexes (`field[0]`) are not supported by Elasticsearch EQL (a Python-EQL feature)",
                    span,
                    "Elasticsearch EQL matches a field against every value of an array",
                ));
            }
            break;
        }
        Ok(Field { name, optional, span: Span::new(start, self.prev_end()) })
    }

    // identifier : IDENTIFIER | QUOTED_IDENTIFIER
    fn identifier(&mut self) -> R<String> {
        match self.peek().clone() {
            Tok::Ident(s) | Tok::QuotedIdent(s) => {
                self.bump();
                Ok(s)
            }
            _ => Err(self.fail("a field name")),
        }
    }
}

/// Elasticsearch: "Inconsistent number of join keys specified; expected [n] but found [m]".
fn check_key_counts<'s>(mut steps: impl Iterator<Item = &'s Step>) -> R<()> {
    let Some(first) = steps.next() else { return Ok(()) };
    let n = first.by.len();
    for s in steps {
        if s.by.len() != n {
            let span = match (s.by.first(), s.by.last()) {
                (Some(a), Some(b)) => a.span().to(b.span()),
                _ => s.span,
            };
            return Err(q001(
                format!("inconsistent number of join keys: expected {n} but found {}", s.by.len()),
                span,
                format!("{} join keys", s.by.len()),
            )
            .with_help("every event of a sequence or sample needs the same number of `by` keys"));
        }
    }
    Ok(())
}

/// A `DECIMAL_VALUE` as a double (`1.`, `.5`, `1.e3` included).
fn parse_decimal(text: &str) -> f64 {
    let mut t = text.to_string();
    if t.starts_with('.') {
        t.insert(0, '0');
    }
    if let Some(i) = t.find(".e").or_else(|| t.find(".E")) {
        t.insert(i + 1, '0');
    }
    if t.ends_with('.') {
        t.push('0');
    }
    t.parse::<f64>().unwrap_or(f64::INFINITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("1."), 1.0);
        assert_eq!(parse_decimal(".5"), 0.5);
        assert_eq!(parse_decimal("1.e3"), 1000.0);
        assert_eq!(parse_decimal("2E-1"), 0.2);
        assert_eq!(parse_decimal("1e999"), f64::INFINITY);
    }
}
