//! The KQL syntax tree. It mirrors Kibana's grammar (`kbn-es-query` `grammar.peggy`) and carries a
//! span on every node; it knows nothing about field types (that is lowering's job).

use imdsguard_syntax::Span;

/// A parsed query. `root == None` is the empty query, which Kibana turns into match-all.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub root: Option<Node>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `a or b or c` (two or more children).
    Or(Vec<Node>, Span),
    /// `a and b and c` (two or more children).
    And(Vec<Node>, Span),
    /// `not a`.
    Not(Box<Node>, Span),
    /// `field:{ query }`: the inner query must match within one object of the nested field.
    Nested { field: Literal, query: Box<Node>, span: Span },
    /// `field < value` and friends.
    Range { field: Literal, op: RangeOp, value: Literal, span: Span },
    /// `field: values`, where values is a single value or a parenthesised list with and/or/not.
    Field { field: Literal, values: ValueTree, span: Span },
    /// A bare value with no field: searches every field.
    Value(Literal),
}

impl Node {
    pub fn span(&self) -> Span {
        match self {
            Node::Or(_, s) | Node::And(_, s) | Node::Not(_, s) => *s,
            Node::Nested { span, .. } | Node::Range { span, .. } | Node::Field { span, .. } => *span,
            Node::Value(l) => l.span,
        }
    }
}

/// The right-hand side of `field:`: `(a or b and not c)`.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueTree {
    Or(Vec<ValueTree>, Span),
    And(Vec<ValueTree>, Span),
    Not(Box<ValueTree>, Span),
    Value(Literal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    Lt,
    Lte,
    Gt,
    Gte,
}

/// A field name or a value, with its source span.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    pub value: LiteralValue,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LiteralValue {
    /// `"..."` with escapes resolved. Quoted values are phrases (`match_phrase`) and never wildcards.
    Quoted(String),
    /// Unquoted text, trimmed of surrounding whitespace, escapes resolved, with unescaped `*`
    /// kept as [`PatternPart::Wildcard`]. The words `null`, `true` and `false` become the variants below.
    Unquoted(Pattern),
    Null,
    Bool(bool),
}

/// Unquoted text split at its unescaped `*` wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pattern {
    pub parts: Vec<PatternPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternPart {
    Text(String),
    Wildcard,
}

impl Pattern {
    pub fn has_wildcard(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, PatternPart::Wildcard))
    }
    /// `*` alone: an exists query (or match-all as a field name).
    pub fn is_lone_wildcard(&self) -> bool {
        self.parts.len() == 1 && matches!(self.parts[0], PatternPart::Wildcard)
    }
    /// The text when there is no wildcard.
    pub fn as_text(&self) -> Option<String> {
        if self.has_wildcard() {
            return None;
        }
        Some(self.parts.iter().map(|p| if let PatternPart::Text(t) = p { t.as_str() } else { "" }).collect())
    }
    /// The text with wildcards written as `*` (lossy: escaped stars look the same).
    pub fn display(&self) -> String {
        self.parts.iter().map(|p| if let PatternPart::Text(t) = p { t.as_str() } else { "*" }).collect()
    }
}

impl Literal {
    /// The literal as a plain string, when it has no wildcard (`null`/`true`/`false` as their words).
    pub fn as_text(&self) -> Option<String> {
        match &self.value {
            LiteralValue::Quoted(s) => Some(s.clone()),
            LiteralValue::Unquoted(p) => p.as_text(),
            LiteralValue::Null => Some("null".into()),
            LiteralValue::Bool(b) => Some(b.to_string()),
        }
    }
}

impl Query {
    /// The same tree with every span zeroed: for comparing trees that came from different text
    /// (the print/parse round trip).
    pub fn without_spans(&self) -> Query {
        Query { root: self.root.as_ref().map(Node::without_spans) }
    }
}

impl Node {
    /// The same node with every span zeroed.
    pub fn without_spans(&self) -> Node {
        let z = Span::default();
        match self {
            Node::Or(items, _) => Node::Or(items.iter().map(Node::without_spans).collect(), z),
            Node::And(items, _) => Node::And(items.iter().map(Node::without_spans).collect(), z),
            Node::Not(inner, _) => Node::Not(Box::new(inner.without_spans()), z),
            Node::Nested { field, query, .. } => {
                Node::Nested { field: field.without_span(), query: Box::new(query.without_spans()), span: z }
            }
            Node::Range { field, op, value, .. } => {
                Node::Range { field: field.without_span(), op: *op, value: value.without_span(), span: z }
            }
            Node::Field { field, values, .. } => {
                Node::Field { field: field.without_span(), values: values.without_spans(), span: z }
            }
            Node::Value(v) => Node::Value(v.without_span()),
        }
    }
}

impl ValueTree {
    /// The same tree with every span zeroed.
    pub fn without_spans(&self) -> ValueTree {
        let z = Span::default();
        match self {
            ValueTree::Or(items, _) => ValueTree::Or(items.iter().map(ValueTree::without_spans).collect(), z),
            ValueTree::And(items, _) => ValueTree::And(items.iter().map(ValueTree::without_spans).collect(), z),
            ValueTree::Not(inner, _) => ValueTree::Not(Box::new(inner.without_spans()), z),
            ValueTree::Value(v) => ValueTree::Value(v.without_span()),
        }
    }

    pub fn span(&self) -> Span {
        match self {
            ValueTree::Or(_, s) | ValueTree::And(_, s) | ValueTree::Not(_, s) => *s,
            ValueTree::Value(l) => l.span,
        }
    }
}

impl Literal {
    /// The same literal with its span zeroed.
    pub fn without_span(&self) -> Literal {
        Literal { value: self.value.clone(), span: Span::default() }
    }
}
