//! The Sigma rule model and its parser: metadata, `logsource`, and `detection` (search
//! identifiers + condition) resolved into a [`Query`].

use crate::condition::{self, Cond, Quant};
use crate::modifiers::item_query;
use crate::query::Query;
use crate::yaml::{self, Node, Value};

/// What kind of problem stops a rule from loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not YAML.
    Syntax,
    /// Not a valid Sigma rule.
    Invalid,
    /// Valid Sigma this engine does not run (correlation rules, filters, v1 aggregations, ...).
    Unsupported,
}

/// Why a rule did not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigmaError {
    pub kind: ErrorKind,
    pub message: String,
    /// 1-based line in the rule file.
    pub line: Option<usize>,
    /// For condition errors: byte span inside the condition text, and that text.
    pub condition_span: Option<(usize, usize, String)>,
}

impl SigmaError {
    pub fn new(kind: ErrorKind, message: impl Into<String>, line: Option<usize>) -> Self {
        SigmaError { kind, message: message.into(), line, condition_span: None }
    }
}

impl std::fmt::Display for SigmaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The `logsource` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSource {
    pub category: Option<String>,
    pub product: Option<String>,
    pub service: Option<String>,
}

impl std::fmt::Display for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = [("product", &self.product), ("category", &self.category), ("service", &self.service)]
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        f.write_str(&parts.join(" "))
    }
}

/// A parsed Sigma detection rule.
#[derive(Debug, Clone, PartialEq)]
pub struct SigmaRule {
    pub title: String,
    pub id: Option<String>,
    /// `name`: what correlation rules may reference instead of the id.
    pub name: Option<String>,
    pub status: Option<String>,
    pub description: Option<String>,
    pub author: Option<String>,
    pub license: Option<String>,
    pub references: Vec<String>,
    pub tags: Vec<String>,
    pub level: Option<String>,
    pub falsepositives: Vec<String>,
    pub date: Option<String>,
    pub modified: Option<String>,
    pub fields: Vec<String>,
    /// SigmaHQ's `regression_tests_path` (an `info.yml`, see [`crate::regression`]).
    pub regression_tests_path: Option<String>,
    pub logsource: LogSource,
    /// The condition as written.
    pub condition: String,
    /// The detection, before processing pipelines.
    pub query: Query,
}

/// Whether a text looks like a Sigma rule (a `detection:` and a `logsource:` top-level key, or
/// a correlation / filter rule), so loaders can recognise Sigma by content.
pub fn looks_like_sigma(text: &str) -> bool {
    let has = |k: &str| text.lines().any(|l| l.starts_with(k) && l[k.len()..].trim_start().starts_with(':'));
    (has("detection") && has("logsource")) || (has("correlation") && has("title")) || (has("filter") && has("logsource"))
}

fn opt_str(doc: &Node, key: &str) -> Option<String> {
    doc.get(key).and_then(Node::scalar_text)
}

/// One document of a Sigma file: a detection rule or a correlation rule.
#[derive(Debug, Clone, PartialEq)]
pub enum SigmaDocument {
    Rule(Box<SigmaRule>),
    Correlation(Box<crate::correlation::Correlation>),
}

impl SigmaDocument {
    /// The rule's title.
    pub fn title(&self) -> &str {
        match self {
            SigmaDocument::Rule(r) => &r.title,
            SigmaDocument::Correlation(c) => &c.title,
        }
    }
}

/// A document of a file: its first line and what it parsed into.
pub type ParsedDocument = (usize, Result<SigmaDocument, SigmaError>);

/// Parse every document of a Sigma file (a correlation rule and the rules it references may
/// share one file, separated by `---`). The outer error stops the whole file (YAML syntax, a
/// rule collection with `action: global`); each document then parses or fails on its own.
pub fn parse_documents(text: &str) -> Result<Vec<ParsedDocument>, SigmaError> {
    let docs = yaml::parse(text).map_err(|e| SigmaError::new(ErrorKind::Syntax, e.message, Some(e.line)))?;
    let docs: Vec<&Node> = docs.iter().filter(|d| !matches!(d.value, Value::Null)).collect();
    if docs.is_empty() {
        return Err(SigmaError::new(ErrorKind::Invalid, "empty file", None));
    }
    if docs.len() > 1 {
        if let Some(d) = docs.iter().find(|d| d.get("action").is_some()) {
            return Err(SigmaError::new(
                ErrorKind::Unsupported,
                "rule collections (`action: global` / `reset` / `repeat` across YAML documents) are not supported",
                Some(d.line),
            ));
        }
    }
    Ok(docs.into_iter().map(|d| (d.line, parse_document(d))).collect())
}

/// Parse one YAML document as a detection or correlation rule.
pub fn parse_document(doc: &Node) -> Result<SigmaDocument, SigmaError> {
    if !matches!(doc.value, Value::Map(_)) {
        return Err(SigmaError::new(ErrorKind::Invalid, format!("a Sigma rule is a map, not {}", doc.kind()), Some(doc.line)));
    }
    if doc.get("correlation").is_some() {
        return crate::correlation::parse_correlation(doc).map(|c| SigmaDocument::Correlation(Box::new(c)));
    }
    parse_rule_doc(doc).map(|r| SigmaDocument::Rule(Box::new(r)))
}

/// Parse a Sigma file holding exactly one detection rule.
pub fn parse_rule(text: &str) -> Result<SigmaRule, SigmaError> {
    let docs = parse_documents(text)?;
    match docs.len() {
        1 => {}
        _ => {
            return Err(SigmaError::new(
                ErrorKind::Unsupported,
                "several YAML documents in one file: load it with parse_documents (a correlation with its rules)",
                docs.get(1).map(|(l, _)| *l),
            ))
        }
    }
    match docs.into_iter().next().map(|(_, d)| d) {
        Some(Ok(SigmaDocument::Rule(r))) => Ok(*r),
        Some(Ok(SigmaDocument::Correlation(c))) => Err(SigmaError::new(
            ErrorKind::Unsupported,
            format!("`{}` is a correlation rule, not a detection rule", c.title),
            None,
        )),
        Some(Err(e)) => Err(e),
        None => Err(SigmaError::new(ErrorKind::Invalid, "empty file", None)),
    }
}

fn parse_rule_doc(doc: &Node) -> Result<SigmaRule, SigmaError> {
    if !matches!(doc.value, Value::Map(_)) {
        return Err(SigmaError::new(ErrorKind::Invalid, format!("a Sigma rule is a map, not {}", doc.kind()), Some(doc.line)));
    }
    if doc.get("filter").is_some() && doc.get("detection").is_none() {
        return Err(SigmaError::new(ErrorKind::Unsupported, "Sigma filters (meta filter rules) are not supported yet", Some(doc.line)));
    }
    let title = opt_str(doc, "title").ok_or_else(|| SigmaError::new(ErrorKind::Invalid, "missing `title`", Some(doc.line)))?;
    let ls = doc.get("logsource").ok_or_else(|| SigmaError::new(ErrorKind::Invalid, "missing `logsource`", Some(doc.line)))?;
    let logsource = LogSource { category: opt_str(ls, "category"), product: opt_str(ls, "product"), service: opt_str(ls, "service") };
    let det = doc.get("detection").ok_or_else(|| SigmaError::new(ErrorKind::Invalid, "missing `detection`", Some(doc.line)))?;
    let (condition, query) = detection(det)?;
    Ok(SigmaRule {
        title,
        id: opt_str(doc, "id"),
        name: opt_str(doc, "name"),
        status: opt_str(doc, "status"),
        description: opt_str(doc, "description"),
        author: opt_str(doc, "author"),
        license: opt_str(doc, "license"),
        references: doc.get("references").map(Node::str_list).unwrap_or_default(),
        tags: doc.get("tags").map(Node::str_list).unwrap_or_default(),
        level: opt_str(doc, "level"),
        falsepositives: doc.get("falsepositives").map(Node::str_list).unwrap_or_default(),
        date: opt_str(doc, "date"),
        modified: opt_str(doc, "modified"),
        fields: doc.get("fields").map(Node::str_list).unwrap_or_default(),
        regression_tests_path: opt_str(doc, "regression_tests_path"),
        logsource,
        condition,
        query,
    })
}

fn detection(det: &Node) -> Result<(String, Query), SigmaError> {
    let Value::Map(entries) = &det.value else {
        return Err(SigmaError::new(ErrorKind::Invalid, format!("`detection` must be a map, not {}", det.kind()), Some(det.line)));
    };
    let mut searches: Vec<(String, Query)> = Vec::new();
    let mut cond_node = None;
    for (name, node) in entries {
        match name.as_str() {
            "condition" => cond_node = Some(node),
            "timeframe" => {
                return Err(SigmaError::new(
                    ErrorKind::Unsupported,
                    "`timeframe` (Sigma v1 aggregation) is not supported: use a correlation rule",
                    Some(node.line),
                ))
            }
            _ => searches.push((name.clone(), search(node).map_err(|mut e| {
                e.message = format!("search `{name}`: {}", e.message);
                e
            })?)),
        }
    }
    let cond_node = cond_node.ok_or_else(|| SigmaError::new(ErrorKind::Invalid, "`detection` has no `condition`", Some(det.line)))?;
    let conditions: Vec<String> = match &cond_node.value {
        Value::Str(s) => vec![s.clone()],
        // A list of conditions (deprecated in v2) is their `or`.
        Value::Seq(items) => items.iter().filter_map(Node::as_str).map(str::to_string).collect(),
        _ => vec![],
    };
    if conditions.is_empty() {
        return Err(SigmaError::new(ErrorKind::Invalid, "`condition` must be a string", Some(cond_node.line)));
    }
    let mut parts = Vec::new();
    for c in &conditions {
        let cond = condition::parse(c).map_err(|e| SigmaError {
            kind: if e.unsupported { ErrorKind::Unsupported } else { ErrorKind::Invalid },
            message: format!("condition: {}", e.message),
            line: Some(cond_node.line),
            condition_span: Some((e.start, e.end, c.clone())),
        })?;
        parts.push(resolve(&cond, &searches, c, cond_node.line)?);
    }
    Ok((conditions.join(" | "), Query::or(parts)))
}

fn resolve(c: &Cond, searches: &[(String, Query)], text: &str, line: usize) -> Result<Query, SigmaError> {
    let err = |m: String, s: usize, e: usize| SigmaError {
        kind: ErrorKind::Invalid,
        message: format!("condition: {m}"),
        line: Some(line),
        condition_span: Some((s, e, text.to_string())),
    };
    Ok(match c {
        Cond::And(a, b) => Query::And(vec![resolve(a, searches, text, line)?, resolve(b, searches, text, line)?]),
        Cond::Or(a, b) => Query::Or(vec![resolve(a, searches, text, line)?, resolve(b, searches, text, line)?]),
        Cond::Not(a) => Query::Not(Box::new(resolve(a, searches, text, line)?)),
        Cond::Ident(name, s, e) => match searches.iter().find(|(n, _)| n == name) {
            Some((_, q)) => q.clone(),
            None => return Err(err(format!("no search identifier named `{name}`"), *s, *e)),
        },
        Cond::Of(quant, pattern, s, e) => {
            let picked: Vec<Query> = searches
                .iter()
                .filter(|(n, _)| match pattern {
                    None => !n.starts_with('_'),
                    Some(p) => condition::pattern_matches(p, n),
                })
                .map(|(_, q)| q.clone())
                .collect();
            if picked.is_empty() {
                return Err(err(format!("`{}` matches no search identifier", pattern.as_deref().unwrap_or("them")), *s, *e));
            }
            match quant {
                Quant::One => Query::or(picked),
                Quant::All => Query::and(picked),
            }
        }
    })
}

type ItemResult = Result<Query, SigmaError>;

/// One search identifier's value: a map (AND of items), a list of maps (OR), or a list of plain
/// values (keywords, OR).
fn search(node: &Node) -> ItemResult {
    match &node.value {
        Value::Map(items) => search_map(items, node.line),
        Value::Seq(list) => {
            if list.is_empty() {
                return Err(SigmaError::new(ErrorKind::Invalid, "an empty list matches nothing", Some(node.line)));
            }
            if list.iter().all(|n| matches!(n.value, Value::Map(_))) {
                let parts = list
                    .iter()
                    .map(|n| match &n.value {
                        Value::Map(items) => search_map(items, n.line),
                        _ => Ok(Query::Const(false)),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(Query::or(parts));
            }
            if list.iter().any(|n| matches!(n.value, Value::Map(_) | Value::Seq(_))) {
                return Err(SigmaError::new(ErrorKind::Invalid, "a list mixing maps and plain values", Some(node.line)));
            }
            item(None, &[], node, node.line)
        }
        Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_) => item(None, &[], node, node.line),
        Value::Null => Err(SigmaError::new(ErrorKind::Invalid, "a search identifier without a value", Some(node.line))),
    }
}

fn search_map(items: &[(String, Node)], line: usize) -> ItemResult {
    if items.is_empty() {
        return Err(SigmaError::new(ErrorKind::Invalid, "an empty map", Some(line)));
    }
    let mut parts = Vec::with_capacity(items.len());
    for (key, value) in items {
        let mut it = key.split('|');
        let field = it.next().unwrap_or("");
        let mods: Vec<&str> = it.collect();
        let field = if field.is_empty() { None } else { Some(field) };
        parts.push(item(field, &mods, value, value.line)?);
    }
    Ok(Query::and(parts))
}

fn item(field: Option<&str>, mods: &[&str], value: &Node, line: usize) -> ItemResult {
    item_query(field, mods, value).map_err(|e| {
        let what = match field {
            Some(f) if mods.is_empty() => format!("field `{f}`"),
            Some(f) => format!("field `{f}|{}`", mods.join("|")),
            None => "keywords".to_string(),
        };
        SigmaError::new(if e.unsupported { ErrorKind::Unsupported } else { ErrorKind::Invalid }, format!("{what}: {}", e.message), Some(line))
    })
}
