//! Processing pipelines (a subset of pySigma's YAML format) that map Sigma log sources and field
//! names to ECS. Supported transformation types: `field_name_mapping` (one or several target
//! fields; several = any of them), `add_condition` (field: value or list = any), `map_string`
//! (value mapping, optionally limited by `field_name_conditions` of type `include_fields`),
//! `value_placeholders` (the `expand` modifier, from the pipeline's `vars`) and `rule_failure`.
//! Each may have `rule_conditions` of type `logsource` (combined with `rule_cond_op`, default
//! `and`). Pipelines run in `priority` order, transformations in file order.

use crate::query::{parse_wildcards, Leaf, Position, Query, Test, Tok};
use crate::rule::{LogSource, SigmaRule};
use crate::yaml::{self, Node, Value};

/// The pipelines shipped with the binary: `(name, YAML)`.
pub const BUILTIN_PIPELINES: &[(&str, &str)] = &[
    ("ecs-windows.yml", include_str!("../pipelines/ecs-windows.yml")),
    ("ecs-linux.yml", include_str!("../pipelines/ecs-linux.yml")),
    ("ecs-network.yml", include_str!("../pipelines/ecs-network.yml")),
    ("ecs-webserver.yml", include_str!("../pipelines/ecs-webserver.yml")),
    ("ecs-auditd.yml", include_str!("../pipelines/ecs-auditd.yml")),
    ("imds.yml", include_str!("../pipelines/imds.yml")),
    ("ecs.yml", include_str!("../pipelines/ecs.yml")),
];

#[derive(Debug, Clone, PartialEq)]
struct LogsourceCond {
    category: Option<String>,
    product: Option<String>,
    service: Option<String>,
}

impl LogsourceCond {
    fn matches(&self, ls: &LogSource) -> bool {
        let ok = |want: &Option<String>, have: &Option<String>| match want {
            None => true,
            Some(w) => have.as_ref().is_some_and(|h| h.eq_ignore_ascii_case(w)),
        };
        ok(&self.category, &ls.category) && ok(&self.product, &ls.product) && ok(&self.service, &ls.service)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    FieldNameMapping(Vec<(String, Vec<String>)>),
    AddCondition(Vec<(String, Vec<String>)>),
    MapString(Vec<(String, Vec<String>)>),
    ValuePlaceholders,
    RuleFailure(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Transformation {
    id: String,
    kind: Kind,
    conditions: Vec<LogsourceCond>,
    cond_or: bool,
    include_fields: Option<Vec<String>>,
}

/// A processing pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub name: String,
    pub priority: i64,
    vars: Vec<(String, Vec<String>)>,
    transformations: Vec<Transformation>,
}

/// The result of running pipelines over a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub query: Query,
    /// `pipeline/transformation` ids that applied.
    pub applied: Vec<String>,
    pub warnings: Vec<String>,
    /// The field name mappings that applied to the rule's log source, in order (the first entry
    /// for a name wins): what a correlation's `group-by` and `field` names map to in this
    /// rule's events.
    pub field_map: Vec<(String, Vec<String>)>,
}

fn pairs(node: Option<&Node>, what: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let Some(node) = node else { return Err(format!("{what} is missing")) };
    let Value::Map(m) = &node.value else { return Err(format!("line {}: {what} must be a map", node.line)) };
    Ok(m.iter().map(|(k, v)| (k.clone(), v.str_list())).collect())
}

impl Pipeline {
    /// Parse a pipeline YAML text. Errors name the line.
    pub fn parse(text: &str, name: &str) -> Result<Pipeline, String> {
        let docs = yaml::parse(text).map_err(|e| format!("{name}:{}: {}", e.line, e.message))?;
        let doc = docs.first().ok_or_else(|| format!("{name}: empty pipeline"))?;
        let mut p = Pipeline {
            name: doc.get("name").and_then(Node::scalar_text).unwrap_or_else(|| name.to_string()),
            priority: match doc.get("priority").map(|n| &n.value) {
                Some(Value::Int(i)) => *i,
                _ => 0,
            },
            vars: match doc.get("vars").map(|n| &n.value) {
                Some(Value::Map(m)) => m.iter().map(|(k, v)| (k.clone(), v.str_list())).collect(),
                _ => Vec::new(),
            },
            transformations: Vec::new(),
        };
        let Some(Value::Seq(ts)) = doc.get("transformations").map(|n| &n.value) else {
            return Err(format!("{name}: `transformations` must be a list"));
        };
        for (i, t) in ts.iter().enumerate() {
            let at = |m: String| format!("{name}:{}: {m}", t.line);
            let ty = t.get("type").and_then(Node::scalar_text).ok_or_else(|| at("transformation without `type`".into()))?;
            let kind = match ty.as_str() {
                "field_name_mapping" => Kind::FieldNameMapping(pairs(t.get("mapping"), "mapping").map_err(at)?),
                "add_condition" => Kind::AddCondition(pairs(t.get("conditions"), "conditions").map_err(at)?),
                "map_string" => Kind::MapString(pairs(t.get("mapping"), "mapping").map_err(at)?),
                "value_placeholders" => Kind::ValuePlaceholders,
                "rule_failure" => Kind::RuleFailure(t.get("message").and_then(Node::scalar_text).unwrap_or_else(|| "rejected by a pipeline".into())),
                other => return Err(at(format!("transformation type `{other}` is not supported (supported: field_name_mapping, add_condition, map_string, value_placeholders, rule_failure)"))),
            };
            let mut conditions = Vec::new();
            if let Some(Value::Seq(cs)) = t.get("rule_conditions").map(|n| &n.value) {
                for c in cs {
                    let cty = c.get("type").and_then(Node::scalar_text).unwrap_or_default();
                    if cty != "logsource" {
                        return Err(format!("{name}:{}: rule condition type `{cty}` is not supported (supported: logsource)", c.line));
                    }
                    conditions.push(LogsourceCond {
                        category: c.get("category").and_then(Node::scalar_text),
                        product: c.get("product").and_then(Node::scalar_text),
                        service: c.get("service").and_then(Node::scalar_text),
                    });
                }
            }
            let mut include_fields = None;
            if let Some(Value::Seq(cs)) = t.get("field_name_conditions").map(|n| &n.value) {
                for c in cs {
                    let cty = c.get("type").and_then(Node::scalar_text).unwrap_or_default();
                    if cty != "include_fields" {
                        return Err(format!("{name}:{}: field name condition type `{cty}` is not supported (supported: include_fields)", c.line));
                    }
                    include_fields.get_or_insert_with(Vec::new).extend(c.get("fields").map(Node::str_list).unwrap_or_default());
                }
            }
            p.transformations.push(Transformation {
                id: t.get("id").and_then(Node::scalar_text).unwrap_or_else(|| format!("#{}", i + 1)),
                kind,
                conditions,
                cond_or: t.get("rule_cond_op").and_then(Node::scalar_text).is_some_and(|s| s == "or"),
                include_fields,
            });
        }
        Ok(p)
    }
}

/// The built-in pipelines, parsed.
pub fn builtin_pipelines() -> Vec<Pipeline> {
    BUILTIN_PIPELINES.iter().filter_map(|(n, t)| Pipeline::parse(t, n).ok()).collect()
}

fn lit(pattern: &[Tok]) -> Option<&str> {
    match pattern {
        [Tok::Lit(s)] => Some(s),
        [] => Some(""),
        _ => None,
    }
}

/// Run `pipelines` over a rule. Errors: a `rule_failure`, or a placeholder no pipeline fills.
pub fn apply(rule: &SigmaRule, pipelines: &[Pipeline]) -> Result<Resolved, String> {
    let mut order: Vec<&Pipeline> = pipelines.iter().collect();
    order.sort_by_key(|p| p.priority);
    let mut query = rule.query.clone();
    let mut applied = Vec::new();
    let mut mapped_any = false;
    let mut field_map: Vec<(String, Vec<String>)> = Vec::new();
    for p in order {
        for t in &p.transformations {
            let fires = t.conditions.is_empty()
                || if t.cond_or {
                    t.conditions.iter().any(|c| c.matches(&rule.logsource))
                } else {
                    t.conditions.iter().all(|c| c.matches(&rule.logsource))
                };
            if !fires {
                continue;
            }
            applied.push(format!("{}/{}", p.name, t.id));
            match &t.kind {
                Kind::RuleFailure(m) => return Err(m.clone()),
                Kind::FieldNameMapping(map) => {
                    mapped_any = true;
                    field_map.extend(map.iter().cloned());
                    query = query.map_leaves(&mut |mut l: Leaf| {
                        if let Test::FieldRef { other, .. } = &mut l.test {
                            if let Some((_, to)) = map.iter().find(|(k, _)| k == other) {
                                if let Some(first) = to.first() {
                                    *other = first.clone();
                                }
                            }
                        }
                        let Some(f) = &l.field else { return Ok(Query::Leaf(l)) };
                        match map.iter().find(|(k, _)| k == f) {
                            Some((_, to)) if !to.is_empty() => Ok(Query::or(
                                to.iter().map(|t| Query::Leaf(Leaf { field: Some(t.clone()), test: l.test.clone() })).collect(),
                            )),
                            _ => Ok(Query::Leaf(l)),
                        }
                    })?;
                }
                Kind::AddCondition(conds) => {
                    let mut parts: Vec<Query> = conds
                        .iter()
                        .map(|(f, vals)| {
                            Query::or(
                                vals.iter()
                                    .map(|v| Query::leaf(Some(f), Test::Str { pattern: parse_wildcards(v), cased: false }))
                                    .collect(),
                            )
                        })
                        .collect();
                    parts.push(query);
                    query = Query::And(parts);
                }
                Kind::MapString(map) => {
                    let include = t.include_fields.clone();
                    query = query.map_leaves(&mut |l: Leaf| {
                        let field_ok = match (&include, &l.field) {
                            (None, _) => true,
                            (Some(inc), Some(f)) => inc.iter().any(|x| x == f),
                            (Some(_), None) => false,
                        };
                        if let (true, Test::Str { pattern, cased }) = (field_ok, &l.test) {
                            if let Some(v) = lit(pattern) {
                                if let Some((_, to)) = map.iter().find(|(k, _)| k.eq_ignore_ascii_case(v)) {
                                    let cased = *cased;
                                    return Ok(Query::or(
                                        to.iter()
                                            .map(|t| Query::Leaf(Leaf { field: l.field.clone(), test: Test::Str { pattern: vec![Tok::Lit(t.clone())], cased } }))
                                            .collect(),
                                    ));
                                }
                            }
                        }
                        Ok(Query::Leaf(l))
                    })?;
                }
                Kind::ValuePlaceholders => {
                    let vars = &p.vars;
                    query = query.map_leaves(&mut |l: Leaf| match &l.test {
                        Test::Placeholder { value, position, cased } => expand(&l.field, value, *position, *cased, vars),
                        _ => Ok(Query::Leaf(l)),
                    })?;
                }
            }
        }
    }
    let mut leaves = Vec::new();
    query.leaves(&mut leaves);
    for l in &leaves {
        if let Test::Placeholder { value, .. } = &l.test {
            return Err(format!(
                "placeholder in {value:?} has no values: give them in a pipeline's `vars` with a value_placeholders transformation (--sigma-pipeline)"
            ));
        }
    }
    let mut warnings = Vec::new();
    if !mapped_any {
        warnings.push(format!(
            "no pipeline maps the field names of logsource `{}`: fields are used as written",
            rule.logsource
        ));
    }
    Ok(Resolved { query, applied, warnings, field_map })
}

fn expand(field: &Option<String>, value: &str, position: Position, cased: bool, vars: &[(String, Vec<String>)]) -> Result<Query, String> {
    // Split on %name% and take the product of the variables' values.
    let mut variants = vec![String::new()];
    let mut rest = value;
    while let Some(start) = rest.find('%') {
        let Some(len) = rest[start + 1..].find('%') else { break };
        let name = &rest[start + 1..start + 1 + len];
        let Some((_, vals)) = vars.iter().find(|(k, _)| k == name) else {
            return Ok(Query::leaf(field.as_deref(), Test::Placeholder { value: value.to_string(), position, cased }));
        };
        let prefix = &rest[..start];
        variants = variants.iter().flat_map(|v| vals.iter().map(move |x| format!("{v}{prefix}{x}"))).collect();
        rest = &rest[start + 2 + len..];
    }
    Ok(Query::or(
        variants
            .into_iter()
            .map(|v| {
                let mut pattern = parse_wildcards(&format!("{v}{rest}"));
                match position {
                    Position::Contains => {
                        pattern.insert(0, Tok::Star);
                        pattern.push(Tok::Star);
                    }
                    Position::StartsWith => pattern.push(Tok::Star),
                    Position::EndsWith => pattern.insert(0, Tok::Star),
                    Position::Equals => {}
                }
                Query::leaf(field.as_deref(), Test::Str { pattern, cased })
            })
            .collect(),
    ))
}
