//! Export to Sigma: a detection written in EQL (single-event queries) or already lowered to the
//! IR (KQL, Kibana filters) becomes a Sigma rule in YAML, with ECS field names
//! (`logsource: {product: ecs}`, which the built-in `ecs.yml` pipeline leaves unmapped). What
//! Sigma cannot express (sequences, new terms, thresholds, date ranges, analysed-text matching,
//! most EQL functions) is refused with a clear reason.

use crate::query::{pattern_text, CmpOp, Query, Test, Tok};
use imdsguard_eql::ast as eql;
use imdsguard_ir::glob::GlobToken;
use imdsguard_ir::{Bound, Expr, IpPred, Pred};

/// The rule metadata written into the Sigma file.
#[derive(Debug, Clone, Default)]
pub struct ExportMeta {
    pub title: String,
    pub id: String,
    pub description: String,
    /// Kibana severity (`low`, `medium`, `high`, `critical`): the Sigma level.
    pub severity: String,
    /// Sigma tags (`attack.credential-access`, `attack.t1552.005`).
    pub tags: Vec<String>,
    pub references: Vec<String>,
    pub falsepositives: Vec<String>,
    pub author: String,
}

fn lit_pattern(s: &str) -> Vec<Tok> {
    vec![Tok::Lit(s.to_string())]
}

/// EQL wildcards: `*` and `?`, everything else literal.
fn eql_wildcards(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut lit = String::new();
    for c in s.chars() {
        match c {
            '*' | '?' => {
                if !lit.is_empty() {
                    out.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                out.push(if c == '*' { Tok::Star } else { Tok::One });
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Tok::Lit(lit));
    }
    out
}

fn field_of(e: &eql::Expr) -> Option<&str> {
    match e {
        eql::Expr::Field(f) => Some(f.name.as_str()),
        _ => None,
    }
}

fn literal_test(v: &eql::Value, cased: bool) -> Result<Test, String> {
    Ok(match v {
        eql::Value::Null => Test::Null,
        eql::Value::Bool(b) => Test::Str { pattern: lit_pattern(&b.to_string()), cased: false },
        eql::Value::Int(i) => Test::Num { value: *i as f64 },
        eql::Value::Float(f) => Test::Num { value: *f },
        eql::Value::Str(s) => Test::Str { pattern: lit_pattern(s), cased },
    })
}

fn lit_of(e: &eql::Expr) -> Option<&eql::Value> {
    match e {
        eql::Expr::Literal(l) => Some(&l.value),
        _ => None,
    }
}

/// An EQL condition as a Sigma query tree that holds exactly when the condition is true under
/// EQL's three-valued logic: a comparison on a missing field is null, `not null` is null, and only
/// true selects an event. So a negation also requires the fields it tests to exist.
pub fn from_eql(e: &eql::Expr) -> Result<Query, String> {
    Ok(three_valued(e)?.0)
}

/// (holds when `e` is true, holds when `e` is false).
fn three_valued(e: &eql::Expr) -> Result<(Query, Query), String> {
    Ok(match e {
        eql::Expr::And(items, _) => {
            let parts = items.iter().map(three_valued).collect::<Result<Vec<_>, _>>()?;
            let (t, f): (Vec<Query>, Vec<Query>) = parts.into_iter().unzip();
            (Query::And(t), Query::Or(f))
        }
        eql::Expr::Or(items, _) => {
            let parts = items.iter().map(three_valued).collect::<Result<Vec<_>, _>>()?;
            let (t, f): (Vec<Query>, Vec<Query>) = parts.into_iter().unzip();
            (Query::Or(t), Query::And(f))
        }
        eql::Expr::Not(inner, _) => {
            let (t, f) = three_valued(inner)?;
            (f, t)
        }
        other => {
            let q = leaf_test(other)?;
            let mut fields = Vec::new();
            let mut leaves = Vec::new();
            q.leaves(&mut leaves);
            for l in leaves {
                if let Some(f) = l.field {
                    if !fields.contains(&f) {
                        fields.push(f);
                    }
                }
            }
            // Definitely false: every field tested has a value, and the test fails. A test of
            // `== null` (the field is missing) is false exactly when the field has a value.
            let negated = match &q {
                Query::Leaf(l) if l.test == Test::Null => Query::leaf(l.field.as_deref(), Test::Exists { value: true }),
                Query::Not(inner) => *inner.clone(),
                _ => {
                    let mut parts: Vec<Query> = fields.iter().map(|f| Query::leaf(Some(f), Test::Exists { value: true })).collect();
                    parts.push(Query::Not(Box::new(q.clone())));
                    Query::and(parts)
                }
            };
            let q = match q {
                // `!=` and `not in`: true only when the field has a value.
                Query::Not(inner) => {
                    let mut parts: Vec<Query> = fields.iter().map(|f| Query::leaf(Some(f), Test::Exists { value: true })).collect();
                    parts.push(Query::Not(inner));
                    Query::and(parts)
                }
                q => q,
            };
            (q, negated)
        }
    })
}

/// One EQL comparison, membership, pattern match or function call as a Sigma test (two-valued).
fn leaf_test(e: &eql::Expr) -> Result<Query, String> {
    Ok(match e {
        eql::Expr::And(..) | eql::Expr::Or(..) | eql::Expr::Not(..) => from_eql(e)?,
        eql::Expr::Compare { op, left, right, .. } => {
            let (field, value, op) = match (field_of(left), lit_of(right), field_of(right), lit_of(left)) {
                (Some(f), Some(v), _, _) => (f, v, *op),
                (_, _, Some(f), Some(v)) => (
                    f,
                    v,
                    match op {
                        eql::CmpOp::Lt => eql::CmpOp::Gt,
                        eql::CmpOp::Lte => eql::CmpOp::Gte,
                        eql::CmpOp::Gt => eql::CmpOp::Lt,
                        eql::CmpOp::Gte => eql::CmpOp::Lte,
                        o => *o,
                    },
                ),
                _ => return Err("only comparisons of a field with a constant can be written in Sigma".into()),
            };
            match op {
                // EQL `==` on keywords is case-sensitive.
                eql::CmpOp::Eq => Query::leaf(Some(field), literal_test(value, true)?),
                eql::CmpOp::Neq => Query::Not(Box::new(Query::leaf(Some(field), literal_test(value, true)?))),
                o => {
                    let n = match value {
                        eql::Value::Int(i) => *i as f64,
                        eql::Value::Float(f) => *f,
                        _ => return Err(format!("`{}` against a non-number has no Sigma form", o.as_str())),
                    };
                    let cmp = match o {
                        eql::CmpOp::Lt => CmpOp::Lt,
                        eql::CmpOp::Lte => CmpOp::Lte,
                        eql::CmpOp::Gt => CmpOp::Gt,
                        _ => CmpOp::Gte,
                    };
                    Query::leaf(Some(field), Test::Cmp { cmp, value: n })
                }
            }
        }
        eql::Expr::In { expr, negated, insensitive, list, .. } => {
            let f = field_of(expr).ok_or("`in` on something other than a field has no Sigma form")?;
            let items = list
                .iter()
                .map(|x| lit_of(x).ok_or_else(|| "`in` lists must be constants".to_string()).and_then(|v| literal_test(v, !insensitive)))
                .map(|t| t.map(|t| Query::leaf(Some(f), t)))
                .collect::<Result<Vec<_>, _>>()?;
            let q = Query::or(items);
            if *negated {
                Query::Not(Box::new(q))
            } else {
                q
            }
        }
        eql::Expr::Match { expr, op, patterns, .. } => {
            let f = field_of(expr).ok_or("pattern matching on something other than a field has no Sigma form")?;
            let items = patterns
                .iter()
                .map(|p| {
                    let eql::Value::Str(s) = &p.value else { return Err("patterns must be strings".to_string()) };
                    Ok(Query::leaf(
                        Some(f),
                        match op {
                            eql::MatchOp::Seq | eql::MatchOp::LikeInsensitive => Test::Str { pattern: eql_wildcards(s), cased: false },
                            eql::MatchOp::Like => Test::Str { pattern: eql_wildcards(s), cased: true },
                            // EQL regular expressions match the whole value.
                            eql::MatchOp::Regex => Test::Re { pattern: format!("^(?:{s})$"), i: false, m: false, s: false },
                            eql::MatchOp::RegexInsensitive => Test::Re { pattern: format!("^(?:{s})$"), i: true, m: false, s: false },
                        },
                    ))
                })
                .collect::<Result<Vec<_>, String>>()?;
            Query::or(items)
        }
        eql::Expr::Call(c) => {
            let name = c.name.to_ascii_lowercase();
            let f = c.args.first().and_then(field_of).ok_or_else(|| format!("{}() on something other than a field has no Sigma form", c.name))?;
            let consts = c.args[1..]
                .iter()
                .map(|a| match lit_of(a) {
                    Some(eql::Value::Str(s)) => Ok(s.clone()),
                    _ => Err(format!("{}() with non-string arguments has no Sigma form", c.name)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let cased = !c.insensitive;
            let shape = |s: &str| -> Option<Vec<Tok>> {
                let l = Tok::Lit(s.to_string());
                Some(match name.as_str() {
                    "startswith" => vec![l, Tok::Star],
                    "endswith" => vec![Tok::Star, l],
                    "stringcontains" => vec![Tok::Star, l, Tok::Star],
                    _ => return None,
                })
            };
            if name == "cidrmatch" {
                Query::or(consts.iter().map(|n| Query::leaf(Some(f), Test::Cidr { net: n.clone() })).collect())
            } else if shape("").is_some() {
                Query::or(consts.iter().filter_map(|s| shape(s)).map(|pattern| Query::leaf(Some(f), Test::Str { pattern, cased })).collect())
            } else {
                return Err(format!("the EQL function {}() has no Sigma equivalent", c.name));
            }
        }
        eql::Expr::Field(f) => return Err(format!("a bare field (`{}`) as a condition has no Sigma form", f.name)),
        eql::Expr::Literal(_) | eql::Expr::Arith { .. } | eql::Expr::Unary { .. } => {
            return Err("arithmetic and constant conditions have no Sigma form".into())
        }
    })
}

/// An EQL single-event query (`category where condition`) as a Sigma query tree: the category
/// becomes an `event.category` condition.
pub fn from_eql_query(q: &eql::Query) -> Result<Query, String> {
    if !q.pipes.is_empty() {
        return Err("EQL pipes have no Sigma form".into());
    }
    match &q.body {
        eql::QueryBody::Event(ev) => {
            let cond = from_eql(&ev.condition)?;
            Ok(match &ev.category.kind {
                eql::CategoryKind::Any => cond,
                eql::CategoryKind::Name(c) => {
                    Query::And(vec![Query::leaf(Some("event.category"), Test::Str { pattern: lit_pattern(c), cased: true }), cond])
                }
            })
        }
        eql::QueryBody::Sequence(_) => Err("EQL sequences cannot be written as one Sigma rule (a temporal_ordered correlation would lose the join keys and `until`)".into()),
        eql::QueryBody::Sample(_) => Err("EQL samples have no Sigma form".into()),
    }
}

fn glob_tokens(t: &[GlobToken]) -> Vec<Tok> {
    t.iter()
        .map(|t| match t {
            GlobToken::Lit(s) => Tok::Lit(s.clone()),
            GlobToken::Star => Tok::Star,
            GlobToken::One => Tok::One,
        })
        .collect()
}

fn pred_query(field: &str, p: &Pred) -> Result<Query, String> {
    let leaf = |t: Test| Ok(Query::leaf(Some(field), t));
    match p {
        Pred::StrEq { value, case_insensitive } => leaf(Test::Str { pattern: lit_pattern(value), cased: !case_insensitive }),
        Pred::StrGlob(g) => leaf(Test::Str { pattern: glob_tokens(g.tokens()), cased: !g.is_case_insensitive() }),
        Pred::NumEq { value, .. } => leaf(Test::Num { value: *value }),
        Pred::NumRange(b) => {
            let mut parts = Vec::new();
            match b.lower {
                Bound::Included(v) => parts.push(Query::leaf(Some(field), Test::Cmp { cmp: CmpOp::Gte, value: v })),
                Bound::Excluded(v) => parts.push(Query::leaf(Some(field), Test::Cmp { cmp: CmpOp::Gt, value: v })),
                Bound::Unbounded => {}
            }
            match b.upper {
                Bound::Included(v) => parts.push(Query::leaf(Some(field), Test::Cmp { cmp: CmpOp::Lte, value: v })),
                Bound::Excluded(v) => parts.push(Query::leaf(Some(field), Test::Cmp { cmp: CmpOp::Lt, value: v })),
                Bound::Unbounded => {}
            }
            Ok(Query::and(parts))
        }
        Pred::BoolEq(b) => leaf(Test::Str { pattern: lit_pattern(&b.to_string()), cased: false }),
        Pred::Ip(IpPred::Eq(ip)) => leaf(Test::Str { pattern: lit_pattern(&ip.to_string()), cased: false }),
        Pred::Ip(IpPred::Cidr(net)) => leaf(Test::Cidr { net: net.to_string() }),
        Pred::AnyOf(ps) => Ok(Query::or(ps.iter().map(|p| pred_query(field, p)).collect::<Result<_, _>>()?)),
        Pred::Ip(IpPred::Range { .. }) => Err(format!("an IP range on {field} has no Sigma form (use CIDR blocks)")),
        Pred::DateRange { .. } => Err(format!("a date range on {field} has no Sigma form")),
        Pred::StrRange(_) | Pred::VersionRange(_) => Err(format!("a string or version range on {field} has no Sigma form")),
        Pred::TextAny(_) | Pred::TextPhrase(_) | Pred::TextGlob(_) => {
            Err(format!("analysed-text matching on {field} has no exact Sigma form"))
        }
    }
}

/// A lowered IR expression (KQL, Kibana filters) as a Sigma query tree.
pub fn from_ir(e: &Expr) -> Result<Query, String> {
    Ok(match e {
        Expr::Const(b) => Query::Const(*b),
        Expr::And(items) => Query::And(items.iter().map(from_ir).collect::<Result<_, _>>()?),
        Expr::Or(items) => Query::Or(items.iter().map(from_ir).collect::<Result<_, _>>()?),
        Expr::Not(inner) => Query::Not(Box::new(from_ir(inner)?)),
        Expr::Exists(p) => Query::leaf(Some(p.name()), Test::Exists { value: true }),
        Expr::Match(p, pred) => pred_query(p.name(), pred)?,
        Expr::MatchGlob { .. } => return Err("wildcard field names have no Sigma form".into()),
        Expr::Nested(..) => return Err("nested queries have no Sigma form".into()),
        Expr::AnyField(_) => return Err("field-less KQL terms have no exact Sigma form (Sigma keywords are substring searches)".into()),
    })
}

fn yaml_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}

/// `(key with modifiers, YAML value)` of a leaf.
fn item(l: &crate::query::Leaf) -> Result<(String, String), String> {
    let f = l.field.clone().ok_or("keyword searches are not exported")?;
    Ok(match &l.test {
        Test::Str { pattern, cased } => {
            let c = if *cased { "|cased" } else { "" };
            match pattern.as_slice() {
                [Tok::Star, Tok::Lit(s), Tok::Star] => (format!("{f}|contains{c}"), yaml_str(&pattern_text(&[Tok::Lit(s.clone())]))),
                [Tok::Lit(s), Tok::Star] => (format!("{f}|startswith{c}"), yaml_str(&pattern_text(&[Tok::Lit(s.clone())]))),
                [Tok::Star, Tok::Lit(s)] => (format!("{f}|endswith{c}"), yaml_str(&pattern_text(&[Tok::Lit(s.clone())]))),
                p => (format!("{f}{c}"), yaml_str(&pattern_text(p))),
            }
        }
        Test::Num { value } => (f, num(*value)),
        Test::Re { pattern, i, m, s } => (
            format!("{f}|re{}{}{}", if *i { "|i" } else { "" }, if *m { "|m" } else { "" }, if *s { "|s" } else { "" }),
            yaml_str(pattern),
        ),
        Test::Cidr { net } => (format!("{f}|cidr"), yaml_str(net)),
        Test::Cmp { cmp, value } => (
            format!(
                "{f}|{}",
                match cmp {
                    CmpOp::Gt => "gt",
                    CmpOp::Gte => "gte",
                    CmpOp::Lt => "lt",
                    CmpOp::Lte => "lte",
                    CmpOp::Eq => return Ok((f, num(*value))),
                }
            ),
            num(*value),
        ),
        Test::Exists { value } => (format!("{f}|exists"), value.to_string()),
        Test::Null => (f, "null".into()),
        other => return Err(format!("{other:?} is not exported")),
    })
}

/// A selection: its name and its `key: values` items.
type Selection = (String, Vec<(String, Vec<String>)>);

struct Writer {
    selections: Vec<Selection>,
}

impl Writer {
    fn add(&mut self, items: Vec<(String, Vec<String>)>) -> String {
        let name = format!("selection_{}", self.selections.len() + 1);
        self.selections.push((name.clone(), items));
        name
    }

    /// The condition text of `q`, adding selections as needed.
    fn cond(&mut self, q: &Query) -> Result<String, String> {
        Ok(match q {
            Query::Const(true) => return Err("a rule that matches every event is not exported".into()),
            Query::Const(false) => return Err("a rule that never matches is not exported".into()),
            Query::Leaf(l) => {
                let (k, v) = item(l)?;
                self.add(vec![(k, vec![v])])
            }
            Query::Or(items) => {
                // Alternatives on one key: one selection with a list of values.
                let leaves: Option<Vec<(String, String)>> =
                    items.iter().map(|i| if let Query::Leaf(l) = i { item(l).ok() } else { None }).collect();
                if let Some(leaves) = leaves {
                    if !leaves.is_empty() && leaves.iter().all(|(k, _)| *k == leaves[0].0) {
                        let key = leaves[0].0.clone();
                        return Ok(self.add(vec![(key, leaves.into_iter().map(|(_, v)| v).collect())]));
                    }
                }
                let parts = items.iter().map(|i| self.cond(i)).collect::<Result<Vec<_>, _>>()?;
                format!("({})", parts.join(" or "))
            }
            Query::And(items) => {
                let parts = items.iter().map(|i| self.cond(i)).collect::<Result<Vec<_>, _>>()?;
                format!("({})", parts.join(" and "))
            }
            Query::Not(inner) => format!("not {}", self.cond(inner)?),
        })
    }
}

fn level(severity: &str) -> &'static str {
    match severity {
        "critical" => "critical",
        "high" => "high",
        "medium" => "medium",
        _ => "low",
    }
}

/// The Sigma YAML of a rule with this detection.
pub fn to_yaml(meta: &ExportMeta, q: &Query) -> Result<String, String> {
    let mut w = Writer { selections: Vec::new() };
    let cond = w.cond(q)?;
    let cond = cond.strip_prefix('(').and_then(|c| c.strip_suffix(')')).filter(|c| !c.contains(['(', ')'])).unwrap_or(&cond).to_string();
    let mut out = String::new();
    out.push_str(&format!("title: {}\n", yaml_str(&meta.title)));
    out.push_str(&format!("id: {}\n", meta.id));
    out.push_str("status: experimental\n");
    let desc: String = meta.description.lines().map(|l| format!("    {l}\n")).collect();
    out.push_str(&format!("description: |\n{}", if desc.is_empty() { format!("    {}\n", meta.title) } else { desc }));
    if !meta.references.is_empty() {
        out.push_str("references:\n");
        for r in &meta.references {
            out.push_str(&format!("    - {}\n", yaml_str(r)));
        }
    }
    out.push_str(&format!("author: {}\n", yaml_str(if meta.author.is_empty() { "imdsguard export" } else { &meta.author })));
    if !meta.tags.is_empty() {
        out.push_str("tags:\n");
        for t in &meta.tags {
            out.push_str(&format!("    - {t}\n"));
        }
    }
    out.push_str("logsource:\n    product: ecs\n");
    out.push_str("detection:\n");
    for (name, items) in &w.selections {
        out.push_str(&format!("    {name}:\n"));
        for (k, vs) in items {
            if vs.len() == 1 {
                out.push_str(&format!("        {}: {}\n", yaml_str(k), vs[0]));
            } else {
                out.push_str(&format!("        {}:\n", yaml_str(k)));
                for v in vs {
                    out.push_str(&format!("            - {v}\n"));
                }
            }
        }
    }
    out.push_str(&format!("    condition: {cond}\n"));
    if !meta.falsepositives.is_empty() {
        out.push_str("falsepositives:\n");
        for f in &meta.falsepositives {
            out.push_str(&format!("    - {}\n", yaml_str(f)));
        }
    }
    out.push_str(&format!("level: {}\n", level(&meta.severity)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eql_query(s: &str) -> Query {
        let q = imdsguard_eql::parse(s).map_err(|d| d.message);
        match q.and_then(|q| from_eql_query(&q)) {
            Ok(q) => q,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn eql_round_trips_through_sigma_yaml() {
        let q = eql_query(r#"process where process.name : ("curl", "wget*") and not process.args == "-h" and destination.port >= 80 and cidrMatch(destination.ip, "169.254.0.0/16")"#);
        let meta = ExportMeta { title: "t".into(), id: "x".into(), severity: "high".into(), ..Default::default() };
        let yaml = to_yaml(&meta, &q).unwrap_or_else(|e| panic!("{e}"));
        let back = crate::parse_rule(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let m = crate::lower(&back.query, &imdsguard_ecs::FieldTable::ecs()).unwrap_or_else(|e| panic!("{e}"));
        let ev = |name: &str, args: &str, port: i64, ip: &str| {
            serde_json::json!({"event": {"category": "process"}, "process": {"name": name, "args": args}, "destination": {"port": port, "ip": ip}})
        };
        assert!(m.matches(&ev("CURL", "-s", 80, "169.254.169.254")));
        assert!(m.matches(&ev("wget2", "-s", 443, "169.254.1.1")));
        assert!(!m.matches(&ev("curl", "-h", 80, "169.254.169.254")));
        assert!(!m.matches(&ev("curl", "-H", 79, "169.254.169.254")));
        assert!(!m.matches(&ev("curl", "-s", 80, "10.0.0.1")));
        assert!(!m.matches(&ev("nc", "-s", 80, "169.254.169.254")));
    }

    #[test]
    fn refusals_have_reasons() {
        for (s, want) in [
            ("sequence [process where true] [network where true]", "sequences"),
            ("process where length(process.name) > 3", "field with a constant"),
            ("process where wildcard(process.name, \"x*\")", "no Sigma equivalent"),
            ("process where process.name == process.executable", "constant"),
            ("process where substring(process.name, 1) == \"x\"", "constant"),
        ] {
            let r = imdsguard_eql::parse(s).map_err(|d| d.message).and_then(|q| from_eql_query(&q));
            assert!(r.as_ref().err().is_some_and(|e| e.contains(want)), "{s}: {r:?}");
        }
    }
}
