//! A small owned YAML tree with line numbers, converted from `saphyr`'s marked nodes, so the rest of
//! the crate never sees the YAML library and every error can name a line.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

/// Deepest nesting accepted (Sigma rules are shallow; this bounds recursion on hostile input).
pub const MAX_DEPTH: usize = 64;

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in source order (non-string keys are written as their YAML text).
    Map(Vec<(String, Node)>),
}

/// A YAML value and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: usize,
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// A scalar as text (`true`, `42`, ...); `None` for null and collections.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            _ => None,
        }
    }
    /// A string or a list of strings (scalars written as text).
    pub fn str_list(&self) -> Vec<String> {
        match &self.value {
            Value::Seq(items) => items.iter().filter_map(Node::scalar_text).collect(),
            _ => self.scalar_text().into_iter().collect(),
        }
    }
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

/// A YAML syntax problem: message and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub message: String,
    pub line: usize,
}

/// Parse every document of a YAML stream.
pub fn parse(text: &str) -> Result<Vec<Node>, YamlError> {
    let docs = MarkedYaml::load_from_str(text)
        .map_err(|e| YamlError { message: e.info().to_string(), line: e.marker().line() })?;
    docs.iter().map(|d| convert(d, 0)).collect()
}

fn convert(n: &MarkedYaml<'_>, depth: usize) -> Result<Node, YamlError> {
    let line = n.span.start.line();
    if depth > MAX_DEPTH {
        return Err(YamlError { message: format!("nesting deeper than {MAX_DEPTH} levels"), line });
    }
    let value = match &n.data {
        YamlData::Value(s) => match s {
            Scalar::Null => Value::Null,
            Scalar::Boolean(b) => Value::Bool(*b),
            Scalar::Integer(i) => Value::Int(*i),
            Scalar::FloatingPoint(f) => Value::Float(f.0),
            Scalar::String(s) => Value::Str(s.to_string()),
        },
        YamlData::Representation(s, _, _) => Value::Str(s.to_string()),
        YamlData::Sequence(items) => Value::Seq(items.iter().map(|i| convert(i, depth + 1)).collect::<Result<_, _>>()?),
        YamlData::Mapping(m) => {
            let mut out = Vec::with_capacity(m.len());
            for (k, v) in m.iter() {
                let key = convert(k, depth + 1)?;
                let key = match key.value {
                    Value::Null => String::new(),
                    _ => key.scalar_text().ok_or_else(|| YamlError { message: "a map key must be a scalar".into(), line: key.line })?,
                };
                out.push((key, convert(v, depth + 1)?));
            }
            Value::Map(out)
        }
        YamlData::Tagged(_, inner) => return convert(inner, depth + 1),
        YamlData::Alias(_) => return Err(YamlError { message: "YAML aliases are not supported in Sigma rules".into(), line }),
        YamlData::BadValue => return Err(YamlError { message: "invalid YAML value".into(), line }),
    };
    Ok(Node { value, line })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_types() {
        let docs = parse("a: 1\nb:\n  - x\n  - true\nc: ~\n").unwrap_or_default();
        let d = &docs[0];
        assert_eq!(d.get("a").map(|n| n.value.clone()), Some(Value::Int(1)));
        let b = d.get("b").map(|n| n.str_list()).unwrap_or_default();
        assert_eq!(b, vec!["x".to_string(), "true".to_string()]);
        assert_eq!(d.get("b").map(|n| n.line), Some(3));
        assert_eq!(d.get("c").map(|n| n.value.clone()), Some(Value::Null));
    }

    #[test]
    fn syntax_error_has_line() {
        let e = parse("a: 1\nb: [\n").err();
        assert!(e.is_some_and(|e| e.line >= 2));
    }
}
