//! The EQL syntax tree. It mirrors Elasticsearch's `EqlBase.g4` and carries a span on every node;
//! it knows nothing about field types or which functions exist (that is lowering's job).
//!
//! Lists that the grammar writes as chains (`a and b and c`, `a or b or c`) are flat vectors;
//! parentheses are not kept (the printer adds them where precedence needs them).

use imdsguard_syntax::Span;

/// A whole statement: a query and its pipes.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub body: QueryBody,
    pub pipes: Vec<Pipe>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QueryBody {
    /// `category where condition`
    Event(EventQuery),
    Sequence(Sequence),
    Sample(Sample),
}

/// `category where condition`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    pub category: Category,
    pub condition: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    pub kind: CategoryKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CategoryKind {
    /// The `any` keyword: every event, whatever its category.
    Any,
    /// An identifier or a string (`process`, `"my-category"`, `"""raw"""`): the value of the event
    /// category field.
    Name(String),
}

/// `sequence [by k1, k2] [with maxspan=N<unit>] step step+ [until step]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    /// Join keys shared by every step (`sequence by ...`).
    pub by: Vec<Expr>,
    pub maxspan: Option<MaxSpan>,
    /// One or more steps; with `runs` expanded, two or more.
    pub steps: Vec<Step>,
    pub until: Option<Step>,
    pub span: Span,
}

/// `sample [by k1, k2] step step+` (two to five steps).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub by: Vec<Expr>,
    pub steps: Vec<Step>,
    pub span: Span,
}

/// One bracketed query of a sequence or sample: `[query] [by k1, k2] [with runs=N]`, or a missing
/// event `![query] ...` (sequences only).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Written `![...]`: the sequence matches when no such event occurs.
    pub missing: bool,
    pub query: EventQuery,
    /// The step's own join keys (after the sequence's shared ones).
    pub by: Vec<Expr>,
    /// `with runs=N` (1..=100): the step repeated N times.
    pub runs: Option<u32>,
    pub span: Span,
}

/// `with maxspan=<value><unit>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxSpan {
    /// Positive.
    pub value: u64,
    pub unit: TimeUnit,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Millis,
    Seconds,
    Minutes,
    Hours,
    Days,
}

impl TimeUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeUnit::Millis => "ms",
            TimeUnit::Seconds => "s",
            TimeUnit::Minutes => "m",
            TimeUnit::Hours => "h",
            TimeUnit::Days => "d",
        }
    }

    /// Milliseconds in one unit.
    pub fn millis(self) -> u64 {
        match self {
            TimeUnit::Millis => 1,
            TimeUnit::Seconds => 1_000,
            TimeUnit::Minutes => 60_000,
            TimeUnit::Hours => 3_600_000,
            TimeUnit::Days => 86_400_000,
        }
    }
}

impl MaxSpan {
    /// The span in milliseconds (saturating).
    pub fn millis(&self) -> u64 {
        self.value.saturating_mul(self.unit.millis())
    }
}

/// `| head N` or `| tail N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pipe {
    pub kind: PipeKind,
    pub count: u64,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeKind {
    Head,
    Tail,
}

/// A condition or value expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a or b or c` (two or more children).
    Or(Vec<Expr>, Span),
    /// `a and b and c` (two or more children).
    And(Vec<Expr>, Span),
    /// `not a`.
    Not(Box<Expr>, Span),
    /// `a == b`, `a != b`, `a < b`, `a <= b`, `a > b`, `a >= b` (never chained).
    Compare {
        op: CmpOp,
        left: Box<Expr>,
        right: Box<Expr>,
        span: Span,
    },
    /// `a in (x, y)`, `a in~ (...)`, `a not in (...)`, `a not in~ (...)`. `expr` is a primary
    /// expression (a field, call, literal or parenthesised expression), as in the grammar.
    In {
        expr: Box<Expr>,
        negated: bool,
        insensitive: bool,
        list: Vec<Expr>,
        span: Span,
    },
    /// `a : "x*"`, `a like ("x", "y")`, `a regex~ "..."`: the right side is one constant or a
    /// parenthesised list of constants (a one-element list and a single constant are the same).
    Match {
        expr: Box<Expr>,
        op: MatchOp,
        patterns: Vec<Literal>,
        span: Span,
    },
    /// `a + b`, `a - b`, `a * b`, `a / b`, `a % b` (left-associative).
    Arith {
        op: ArithOp,
        left: Box<Expr>,
        right: Box<Expr>,
        span: Span,
    },
    /// `-a` or `+a`.
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
        span: Span,
    },
    Call(Call),
    Field(Field),
    Literal(Literal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Neq => "!=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `:` — case-insensitive equality with `*` and `?` wildcards (same as `like~`).
    Seq,
    Like,
    LikeInsensitive,
    Regex,
    RegexInsensitive,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Seq => ":",
            MatchOp::Like => "like",
            MatchOp::LikeInsensitive => "like~",
            MatchOp::Regex => "regex",
            MatchOp::RegexInsensitive => "regex~",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl ArithOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Plus,
}

/// `name(args)` or `name~(args)`. Any name parses; lowering decides whether it exists.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// As written, without the `~`.
    pub name: String,
    /// Written `name~(...)`: the case-insensitive variant.
    pub insensitive: bool,
    pub args: Vec<Expr>,
    pub name_span: Span,
    pub span: Span,
}

/// A field reference: `process.name`, `?user.id`, `` `my field`.x ``, `@timestamp`.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The dotted name with back-quotes resolved (`` a.`b c` `` is `a.b c`), as Elasticsearch
    /// joins it.
    pub name: String,
    /// Written `?name`: a field that may be missing from the mapping (then `null`).
    pub optional: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    pub value: Value,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// An integer that fits in `i64` (literals are never negative: `-1` is a unary minus).
    Int(i64),
    /// A decimal (`1.5`, `.5`, `1.`, `1e3`), or an integer too large for `i64`.
    Float(f64),
    /// A string with escapes resolved (raw `"""..."""` strings are taken as written).
    Str(String),
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Or(_, s) | Expr::And(_, s) | Expr::Not(_, s) => *s,
            Expr::Compare { span, .. }
            | Expr::In { span, .. }
            | Expr::Match { span, .. }
            | Expr::Arith { span, .. }
            | Expr::Unary { span, .. } => *span,
            Expr::Call(c) => c.span,
            Expr::Field(f) => f.span,
            Expr::Literal(l) => l.span,
        }
    }

    /// The same expression with every span zeroed.
    pub fn without_spans(&self) -> Expr {
        let mut e = self.clone();
        e.clear_spans();
        e
    }

    fn clear_spans(&mut self) {
        let z = Span::default();
        match self {
            Expr::Or(items, s) | Expr::And(items, s) => {
                *s = z;
                items.iter_mut().for_each(Expr::clear_spans);
            }
            Expr::Not(inner, s) => {
                *s = z;
                inner.clear_spans();
            }
            Expr::Compare { left, right, span, .. } | Expr::Arith { left, right, span, .. } => {
                *span = z;
                left.clear_spans();
                right.clear_spans();
            }
            Expr::In { expr, list, span, .. } => {
                *span = z;
                expr.clear_spans();
                list.iter_mut().for_each(Expr::clear_spans);
            }
            Expr::Match { expr, patterns, span, .. } => {
                *span = z;
                expr.clear_spans();
                patterns.iter_mut().for_each(|p| p.span = z);
            }
            Expr::Unary { expr, span, .. } => {
                *span = z;
                expr.clear_spans();
            }
            Expr::Call(c) => {
                c.span = z;
                c.name_span = z;
                c.args.iter_mut().for_each(Expr::clear_spans);
            }
            Expr::Field(f) => f.span = z,
            Expr::Literal(l) => l.span = z,
        }
    }
}

impl Step {
    fn clear_spans(&mut self) {
        self.span = Span::default();
        self.query.clear_spans();
        self.by.iter_mut().for_each(Expr::clear_spans);
    }
}

impl EventQuery {
    fn clear_spans(&mut self) {
        self.span = Span::default();
        self.category.span = Span::default();
        self.condition.clear_spans();
    }
}

impl Query {
    /// The same tree with every span zeroed: for comparing trees that came from different text
    /// (the print/parse round trip).
    pub fn without_spans(&self) -> Query {
        let mut q = self.clone();
        let z = Span::default();
        q.span = z;
        q.pipes.iter_mut().for_each(|p| p.span = z);
        match &mut q.body {
            QueryBody::Event(e) => e.clear_spans(),
            QueryBody::Sequence(s) => {
                s.span = z;
                s.by.iter_mut().for_each(Expr::clear_spans);
                if let Some(m) = &mut s.maxspan {
                    m.span = z;
                }
                s.steps.iter_mut().for_each(Step::clear_spans);
                if let Some(u) = &mut s.until {
                    u.clear_spans();
                }
            }
            QueryBody::Sample(s) => {
                s.span = z;
                s.by.iter_mut().for_each(Expr::clear_spans);
                s.steps.iter_mut().for_each(Step::clear_spans);
            }
        }
        q
    }
}
