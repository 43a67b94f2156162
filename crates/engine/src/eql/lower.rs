//! Lowering the EQL syntax tree to [`EqlExpr`] with Elasticsearch's semantics and the field table.
//!
//! `field OP literal` comparisons become typed predicates (the same ones KQL uses), so that an
//! `ip` field compares addresses, a `long` field numbers, and a `keyword` field exact strings;
//! `==`, `!=`, `in`, `like`, `regex` are case-sensitive, `:`, `in~`, `like~`, `regex~` are not;
//! `in~` does not expand wildcards; `:` and `like` do (`*` and `?`). `f == null` / `f != null`
//! test absence / presence. Other comparisons (function results, field to field) are evaluated
//! as values at run time.

use super::expr::{ArithOp, CmpOp, EqlExpr};
use super::functions::Func;
use super::value::Scalar;
use crate::lower_kql::{range_pred, term_pred};
use imdsguard_ecs::{FieldPath, FieldTable, FieldType};
use imdsguard_eql::ast;
use imdsguard_ir::{Glob, Pred};
use imdsguard_kql::ast::RangeOp;
use imdsguard_syntax::{Diagnostic, Span};
use std::sync::Arc;

/// Settings of an EQL search (Elasticsearch's request parameters).
#[derive(Debug, Clone)]
pub struct EqlSettings {
    pub event_category_field: String,
    pub timestamp_field: String,
    pub tiebreaker_field: Option<String>,
}

impl Default for EqlSettings {
    fn default() -> Self {
        EqlSettings { event_category_field: "event.category".into(), timestamp_field: "@timestamp".into(), tiebreaker_field: None }
    }
}

pub struct EqlLowering<'a> {
    pub table: &'a Arc<FieldTable>,
    pub settings: &'a EqlSettings,
    pub warnings: Vec<Diagnostic>,
}

fn err(span: Span, msg: impl Into<String>) -> Diagnostic {
    Diagnostic::error("E020", msg).with_span(span)
}

fn scalar(v: &ast::Value) -> Scalar {
    match v {
        ast::Value::Null => Scalar::Null,
        ast::Value::Bool(b) => Scalar::Bool(*b),
        ast::Value::Int(i) => Scalar::Int(*i),
        ast::Value::Float(f) => Scalar::Float(*f),
        ast::Value::Str(s) => Scalar::Str(s.clone()),
    }
}

fn text(v: &ast::Value) -> String {
    match v {
        ast::Value::Null => "null".into(),
        ast::Value::Bool(b) => b.to_string(),
        ast::Value::Int(i) => i.to_string(),
        ast::Value::Float(f) => f.to_string(),
        ast::Value::Str(s) => s.clone(),
    }
}

fn flip(op: ast::CmpOp) -> ast::CmpOp {
    use ast::CmpOp::*;
    match op {
        Lt => Gt,
        Lte => Gte,
        Gt => Lt,
        Gte => Lte,
        other => other,
    }
}

fn is_stringish(ty: Option<FieldType>) -> bool {
    matches!(
        ty,
        None | Some(FieldType::Keyword | FieldType::ConstantKeyword | FieldType::Wildcard | FieldType::Text | FieldType::MatchOnlyText | FieldType::Other)
    )
}

impl<'a> EqlLowering<'a> {
    pub fn new(table: &'a Arc<FieldTable>, settings: &'a EqlSettings) -> Self {
        EqlLowering { table, settings, warnings: Vec::new() }
    }

    /// Resolve a field name: aliases, and multi-fields read from their parent.
    fn field(&self, name: &str) -> (FieldPath, Option<FieldType>) {
        let resolved = self.table.resolve_alias(name);
        let ty = self.table.get(resolved);
        (FieldPath::new(self.table.multi_field_parent(resolved).unwrap_or(resolved)), ty)
    }

    /// `category where condition`.
    pub fn event_query(&mut self, q: &ast::EventQuery) -> Result<EqlExpr, Diagnostic> {
        let cond = self.expr(&q.condition)?;
        Ok(match &q.category.kind {
            ast::CategoryKind::Any => cond,
            ast::CategoryKind::Name(cat) => {
                let (path, ty) = self.field(&self.settings.event_category_field.clone());
                let pred = term_pred(ty, cat, false, 0).map_err(|m| err(q.category.span, m))?;
                let cat_expr = match pred {
                    Some(p) => EqlExpr::FieldPred { path, pred: p, negated: false },
                    None => EqlExpr::Lit(Scalar::Bool(false)),
                };
                EqlExpr::And(vec![cat_expr, cond])
            }
        })
    }

    /// A `sequence` query: steps expanded for `runs`, keys from the sequence's and each step's `by`.
    pub fn sequence(&mut self, s: &ast::Sequence) -> Result<super::sequence::SequenceSpec, Diagnostic> {
        use super::sequence::{SequenceSpec, StepSpec};
        let seq_keys: Vec<EqlExpr> = s.by.iter().map(|k| self.expr(k)).collect::<Result<_, _>>()?;
        let step_spec = |this: &mut Self, st: &ast::Step| -> Result<StepSpec, Diagnostic> {
            let mut keys = seq_keys.clone();
            for k in &st.by {
                keys.push(this.expr(k)?);
            }
            Ok(StepSpec { filter: this.event_query(&st.query)?, keys, missing: st.missing })
        };
        let mut steps = Vec::new();
        for st in &s.steps {
            let spec = step_spec(self, st)?;
            for _ in 0..st.runs.unwrap_or(1).max(1) {
                steps.push(spec.clone());
            }
        }
        let until = match &s.until {
            Some(u) => Some(step_spec(self, u)?),
            None => None,
        };
        let maxspan_ms = s.maxspan.map(|m| i64::try_from(m.millis()).unwrap_or(i64::MAX));
        Ok(SequenceSpec { steps, until, maxspan_ms })
    }

    /// A `sample` query: one filter per step, keys from the sample's and each step's `by`, each
    /// with its field's mapped type (join keys compare indexed values: dates as instants, addresses
    /// as addresses).
    pub fn sample(&mut self, s: &ast::Sample) -> Result<super::sample::SampleSpec, Diagnostic> {
        use super::sample::{SampleKey, SampleSpec, SampleStep};
        let key = |this: &mut Self, k: &ast::Expr| -> Result<SampleKey, Diagnostic> {
            let ty = match k {
                ast::Expr::Field(f) => this.field(&f.name).1,
                _ => None,
            };
            Ok(SampleKey { expr: this.expr(k)?, ty })
        };
        let mut shared = Vec::new();
        for k in &s.by {
            shared.push(key(self, k)?);
        }
        let mut steps = Vec::new();
        for st in &s.steps {
            let mut keys = shared.clone();
            for k in &st.by {
                keys.push(key(self, k)?);
            }
            steps.push(SampleStep { filter: self.event_query(&st.query)?, keys });
        }
        Ok(SampleSpec { steps })
    }

    pub fn expr(&mut self, e: &ast::Expr) -> Result<EqlExpr, Diagnostic> {
        Ok(match e {
            ast::Expr::Or(items, _) => EqlExpr::Or(items.iter().map(|i| self.expr(i)).collect::<Result<_, _>>()?),
            ast::Expr::And(items, _) => EqlExpr::And(items.iter().map(|i| self.expr(i)).collect::<Result<_, _>>()?),
            ast::Expr::Not(inner, _) => EqlExpr::Not(Box::new(self.expr(inner)?)),
            ast::Expr::Compare { op, left, right, span } => self.compare(*op, left, right, *span)?,
            ast::Expr::In { expr, negated, insensitive, list, span } => self.in_list(expr, *negated, *insensitive, list, *span)?,
            ast::Expr::Match { expr, op, patterns, span } => self.matching(expr, *op, patterns, *span)?,
            ast::Expr::Arith { op, left, right, .. } => EqlExpr::Arith {
                op: match op {
                    ast::ArithOp::Add => ArithOp::Add,
                    ast::ArithOp::Sub => ArithOp::Sub,
                    ast::ArithOp::Mul => ArithOp::Mul,
                    ast::ArithOp::Div => ArithOp::Div,
                    ast::ArithOp::Mod => ArithOp::Mod,
                },
                lhs: Box::new(self.expr(left)?),
                rhs: Box::new(self.expr(right)?),
            },
            ast::Expr::Unary { op: ast::UnaryOp::Neg, expr, .. } => EqlExpr::Neg(Box::new(self.expr(expr)?)),
            ast::Expr::Unary { op: ast::UnaryOp::Plus, expr, .. } => self.expr(expr)?,
            ast::Expr::Call(c) => {
                let Some((func, ci_form)) = Func::resolve(&format!("{}{}", c.name, if c.insensitive { "~" } else { "" })) else {
                    return Err(Diagnostic::error("E021", format!("unknown function `{}{}`", c.name, if c.insensitive { "~" } else { "" }))
                        .with_span(c.name_span)
                        .with_help("EQL functions: add, between, cidrMatch, concat, divide, endsWith, indexOf, length, modulo, multiply, number, startsWith, string, stringContains, substring, subtract"));
                };
                let (min, max) = func.arity();
                if c.args.len() < min || max.is_some_and(|m| c.args.len() > m) {
                    let expect = match max {
                        Some(m) if m == min => format!("{min}"),
                        Some(m) => format!("{min} to {m}"),
                        None => format!("at least {min}"),
                    };
                    return Err(Diagnostic::error("E022", format!("`{}` takes {expect} argument(s), {} given", func.name(), c.args.len()))
                        .with_span(c.span));
                }
                EqlExpr::Call { func, case_insensitive: ci_form, args: c.args.iter().map(|a| self.expr(a)).collect::<Result<_, _>>()? }
            }
            ast::Expr::Field(f) => {
                let (path, _) = self.field(&f.name);
                EqlExpr::Field { path, optional: f.optional }
            }
            ast::Expr::Literal(l) => EqlExpr::Lit(scalar(&l.value)),
        })
    }

    fn compare(&mut self, op: ast::CmpOp, left: &ast::Expr, right: &ast::Expr, span: Span) -> Result<EqlExpr, Diagnostic> {
        // `x == null` / `x != null` (either side) test whether x is null, for any expression x.
        let null_side = |e: &ast::Expr| matches!(e, ast::Expr::Literal(ast::Literal { value: ast::Value::Null, .. }));
        if null_side(left) || null_side(right) {
            let other = if null_side(left) { right } else { left };
            if null_side(other) {
                return Ok(EqlExpr::Lit(Scalar::Bool(op == ast::CmpOp::Eq)));
            }
            let present = match other {
                ast::Expr::Field(f) => EqlExpr::IsPresent(self.field(&f.name).0),
                e => EqlExpr::IsNotNull(Box::new(self.expr(e)?)),
            };
            return Ok(match op {
                ast::CmpOp::Eq => EqlExpr::Not(Box::new(present)),
                ast::CmpOp::Neq => present,
                _ => EqlExpr::Lit(Scalar::Null),
            });
        }
        // Normalise `literal OP field` to `field OP' literal`.
        let (field, lit, op) = match (left, right) {
            (ast::Expr::Field(f), ast::Expr::Literal(l)) => (Some(f), Some(l), op),
            (ast::Expr::Literal(l), ast::Expr::Field(f)) => (Some(f), Some(l), flip(op)),
            _ => (None, None, op),
        };
        if let (Some(f), Some(l)) = (field, lit) {
            let (path, ty) = self.field(&f.name);
            if matches!(l.value, ast::Value::Null) {
                // `f == null` is true when the field has no value; `f != null` when it has one.
                return match op {
                    ast::CmpOp::Eq => Ok(EqlExpr::Not(Box::new(EqlExpr::IsPresent(path)))),
                    ast::CmpOp::Neq => Ok(EqlExpr::IsPresent(path)),
                    _ => Ok(EqlExpr::Lit(Scalar::Null)),
                };
            }
            let value = text(&l.value);
            if matches!(l.value, ast::Value::Str(_)) && ty.is_some_and(|t| t.is_numeric()) {
                return Err(err(span, format!("cannot compare the numeric field `{}` with the string {:?}", f.name, value)));
            }
            let pred = match op {
                ast::CmpOp::Eq | ast::CmpOp::Neq => match term_pred(ty, &value, false, 0).map_err(|m| err(l.span, m))? {
                    Some(p) => p,
                    None => return Ok(EqlExpr::Lit(Scalar::Bool(op == ast::CmpOp::Neq))),
                },
                other => {
                    let rop = match other {
                        ast::CmpOp::Lt => RangeOp::Lt,
                        ast::CmpOp::Lte => RangeOp::Lte,
                        ast::CmpOp::Gt => RangeOp::Gt,
                        _ => RangeOp::Gte,
                    };
                    // Numbers compare as numbers even on untyped fields.
                    let ty = match (ty, &l.value) {
                        (None, ast::Value::Int(_) | ast::Value::Float(_)) => Some(FieldType::Double),
                        (t, _) => t,
                    };
                    range_pred(ty, rop, &value, 0).map_err(|m| err(l.span, m))?
                }
            };
            // Numeric literal against an untyped field: compare as numbers too.
            let pred = match (&pred, &l.value, ty) {
                (Pred::StrEq { .. }, ast::Value::Int(_) | ast::Value::Float(_), None) => {
                    Pred::AnyOf(vec![pred.clone(), term_pred(Some(FieldType::Double), &value, false, 0).ok().flatten().unwrap_or(pred.clone())])
                }
                _ => pred,
            };
            return Ok(EqlExpr::FieldPred { path, pred, negated: op == ast::CmpOp::Neq });
        }
        let op = match op {
            ast::CmpOp::Eq => CmpOp::Eq,
            ast::CmpOp::Neq => CmpOp::Ne,
            ast::CmpOp::Lt => CmpOp::Lt,
            ast::CmpOp::Lte => CmpOp::Le,
            ast::CmpOp::Gt => CmpOp::Gt,
            ast::CmpOp::Gte => CmpOp::Ge,
        };
        Ok(EqlExpr::Cmp { op, lhs: Box::new(self.expr(left)?), rhs: Box::new(self.expr(right)?) })
    }

    fn in_list(&mut self, expr: &ast::Expr, negated: bool, insensitive: bool, list: &[ast::Expr], span: Span) -> Result<EqlExpr, Diagnostic> {
        let literals: Option<Vec<&ast::Literal>> =
            list.iter().map(|e| if let ast::Expr::Literal(l) = e { Some(l) } else { None }).collect();
        if let (ast::Expr::Field(f), Some(lits)) = (expr, literals) {
            let (path, ty) = self.field(&f.name);
            let mut preds = Vec::new();
            for l in lits {
                if matches!(l.value, ast::Value::Null) {
                    continue;
                }
                let value = text(&l.value);
                if insensitive && is_stringish(ty) {
                    preds.push(Pred::StrEq { value, case_insensitive: true });
                } else if let Some(p) = term_pred(ty, &value, false, 0).map_err(|m| err(l.span, m))? {
                    preds.push(p);
                }
            }
            return Ok(EqlExpr::FieldPred { path, pred: Pred::AnyOf(preds), negated });
        }
        // General form: any element equal (case-insensitively for `in~`, literals only).
        let lhs = self.expr(expr)?;
        let mut alts = Vec::new();
        for item in list {
            alts.push(match (insensitive, item) {
                (true, ast::Expr::Literal(l)) => {
                    EqlExpr::ValuePred { expr: Box::new(lhs.clone()), pred: Pred::StrEq { value: text(&l.value), case_insensitive: true } }
                }
                (true, other) => return Err(err(other.span(), "`in~` needs literal values").with_help(format!("at {span:?}"))),
                (false, item) => EqlExpr::Cmp { op: CmpOp::Eq, lhs: Box::new(lhs.clone()), rhs: Box::new(self.expr(item)?) },
            });
        }
        let any = EqlExpr::Or(alts);
        Ok(if negated { EqlExpr::Not(Box::new(any)) } else { any })
    }

    fn matching(&mut self, expr: &ast::Expr, op: ast::MatchOp, patterns: &[ast::Literal], span: Span) -> Result<EqlExpr, Diagnostic> {
        let (path, ty) = match expr {
            ast::Expr::Field(f) => self.field(&f.name),
            other => {
                // A computed value: match it as a string.
                if matches!(op, ast::MatchOp::Regex | ast::MatchOp::RegexInsensitive) {
                    return Err(err(span, "regular expressions need a field on their left"));
                }
                let ci = !matches!(op, ast::MatchOp::Like);
                let preds = patterns
                    .iter()
                    .map(|p| {
                        let v = text(&p.value);
                        if v.contains(['*', '?']) {
                            Pred::StrGlob(eql_glob(&v, ci))
                        } else {
                            Pred::StrEq { value: v, case_insensitive: ci }
                        }
                    })
                    .collect();
                return Ok(EqlExpr::ValuePred { expr: Box::new(self.expr(other)?), pred: Pred::AnyOf(preds) });
            }
        };
        let (ci, wildcards) = match op {
            ast::MatchOp::Seq => (true, true),
            ast::MatchOp::Like => (false, true),
            ast::MatchOp::LikeInsensitive => (true, true),
            ast::MatchOp::Regex => (false, false),
            ast::MatchOp::RegexInsensitive => (true, false),
        };
        if matches!(op, ast::MatchOp::Regex | ast::MatchOp::RegexInsensitive) {
            let mut res = Vec::new();
            for p in patterns {
                let ast::Value::Str(s) = &p.value else { return Err(err(p.span, "a regular expression must be a string")) };
                res.push(lucene_regex(s, ci).map_err(|m| err(p.span, m))?);
            }
            return Ok(EqlExpr::Regex { path, patterns: res });
        }
        let mut preds = Vec::new();
        for p in patterns {
            let value = text(&p.value);
            if is_stringish(ty) {
                let has_wild = wildcards && value.contains(['*', '?']);
                preds.push(if has_wild {
                    Pred::StrGlob(eql_glob(&value, ci))
                } else {
                    Pred::StrEq { value, case_insensitive: ci }
                });
            } else if let Some(pr) = term_pred(ty, &value, false, 0).map_err(|m| err(p.span, m))? {
                preds.push(pr);
            }
        }
        Ok(EqlExpr::FieldPred { path, pred: Pred::AnyOf(preds), negated: false })
    }
}

/// An EQL wildcard pattern: `*` and `?` are wildcards, every other character (backslashes
/// included) is literal.
pub fn eql_glob(pattern: &str, case_insensitive: bool) -> Glob {
    use imdsguard_ir::glob::GlobToken;
    let mut tokens = Vec::new();
    let mut lit = String::new();
    for c in pattern.chars() {
        match c {
            '*' | '?' => {
                if !lit.is_empty() {
                    tokens.push(GlobToken::Lit(std::mem::take(&mut lit)));
                }
                tokens.push(if c == '*' { GlobToken::Star } else { GlobToken::One });
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        tokens.push(GlobToken::Lit(lit));
    }
    Glob::new(tokens, case_insensitive)
}

/// Translate a Lucene regular expression (the syntax Elasticsearch's `regex` uses) into an
/// anchored `regex` crate expression. Lucene matches the whole value, has no anchors or
/// shorthand classes (`\d` is a literal `d`), and treats `"` literally; `@`, `&`, `~` and `<>`
/// are optional operators that Elasticsearch leaves off in EQL.
pub fn lucene_regex(pattern: &str, case_insensitive: bool) -> Result<regex::Regex, String> {
    let mut out = String::with_capacity(pattern.len() + 8);
    out.push_str(if case_insensitive { "(?si)^(?:" } else { "(?s)^(?:" });
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => out.push_str(&regex::escape(&n.to_string())),
                None => return Err("regular expression ends with a backslash".into()),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '^' | '$' if !in_class => out.push_str(&regex::escape(&c.to_string())),
            '"' => out.push('"'),
            c => out.push(c),
        }
    }
    out.push_str(")$");
    regex::Regex::new(&out).map_err(|e| format!("invalid regular expression: {e}"))
}
