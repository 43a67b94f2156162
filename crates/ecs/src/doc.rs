//! Read-only access to events, as the rule engine sees them.
//!
//! Elasticsearch indexes a field's values, not the JSON shape that carried them: arrays are
//! flattened (a document matches when any element matches), `null` is not indexed, and nested
//! objects and literal dotted keys name the same field. [`Document`] exposes exactly that view.

use crate::path::FieldPath;
use serde_json::Value;

/// One indexed value of a field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(&'a str),
}

impl<'a> ValueRef<'a> {
    /// The value as Elasticsearch would index it into a `keyword` field (numbers and booleans are
    /// indexed as their JSON text).
    pub fn as_keyword(&self) -> std::borrow::Cow<'a, str> {
        use std::borrow::Cow;
        match *self {
            ValueRef::Str(s) => Cow::Borrowed(s),
            ValueRef::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
            ValueRef::I64(n) => Cow::Owned(n.to_string()),
            ValueRef::U64(n) => Cow::Owned(n.to_string()),
            ValueRef::F64(f) => Cow::Owned(serde_json::Number::from_f64(f).map(|n| n.to_string()).unwrap_or_default()),
        }
    }

    /// The value as a number, coercing numeric strings as Elasticsearch does for numeric fields.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            ValueRef::I64(n) => Some(n as f64),
            ValueRef::U64(n) => Some(n as f64),
            ValueRef::F64(f) => Some(f),
            ValueRef::Str(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
            ValueRef::Bool(_) => None,
        }
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            ValueRef::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// An event the rule engine can evaluate.
pub trait Document {
    /// Calls `f` with every indexed value of `path` (each array element on its own, `null` and
    /// objects skipped) until `f` returns `true`; returns whether it did.
    fn any_value(&self, path: &FieldPath, f: &mut dyn FnMut(ValueRef<'_>) -> bool) -> bool;

    /// Calls `f` with each object found at `path` (each element of an array of objects on its own)
    /// until `f` returns `true`. Used for `nested` queries, which match within one object.
    fn any_object(&self, path: &FieldPath, f: &mut dyn FnMut(&dyn Document) -> bool) -> bool;

    /// Calls `f` with the full dotted name and each value of every leaf field. Used for wildcard
    /// field names and for queries without a field.
    fn for_each_leaf(&self, f: &mut dyn FnMut(&str, ValueRef<'_>));

    /// Whether the field has at least one indexed value (Elasticsearch `exists`).
    fn exists(&self, path: &FieldPath) -> bool {
        self.any_value(path, &mut |_| true)
    }
}

fn leaf(v: &Value) -> Option<ValueRef<'_>> {
    match v {
        Value::Bool(b) => Some(ValueRef::Bool(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(ValueRef::I64(i))
            } else if let Some(u) = n.as_u64() {
                Some(ValueRef::U64(u))
            } else {
                n.as_f64().map(ValueRef::F64)
            }
        }
        Value::String(s) => Some(ValueRef::Str(s)),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Visit values of `v` once the whole path has been consumed: flatten arrays, skip nulls.
fn visit_leaf_values(v: &Value, f: &mut dyn FnMut(ValueRef<'_>) -> bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|item| visit_leaf_values(item, f)),
        other => match leaf(other) {
            Some(l) => f(l),
            None => false,
        },
    }
}

fn resolve<'v>(
    v: &'v Value,
    path: &FieldPath,
    i: usize,
    on_end: &mut dyn FnMut(&'v Value) -> bool,
) -> bool {
    if i == path.depth() {
        return on_end(v);
    }
    match v {
        Value::Object(map) => {
            for (k, key) in path.keys_from(i).iter().enumerate() {
                if let Some(child) = map.get(key.as_str()) {
                    if resolve(child, path, i + k + 1, on_end) {
                        return true;
                    }
                }
            }
            false
        }
        Value::Array(items) => items.iter().any(|item| resolve(item, path, i, on_end)),
        _ => false,
    }
}

fn visit_objects<'v>(v: &'v Value, f: &mut dyn FnMut(&dyn Document) -> bool) -> bool {
    match v {
        Value::Object(_) => f(v),
        Value::Array(items) => items.iter().any(|item| visit_objects(item, f)),
        _ => false,
    }
}

fn walk_leaves(v: &Value, prefix: &mut String, f: &mut dyn FnMut(&str, ValueRef<'_>)) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let len = prefix.len();
                if !prefix.is_empty() {
                    prefix.push('.');
                }
                prefix.push_str(k);
                walk_leaves(child, prefix, f);
                prefix.truncate(len);
            }
        }
        Value::Array(items) => {
            for item in items {
                walk_leaves(item, prefix, f);
            }
        }
        other => {
            if let Some(l) = leaf(other) {
                if !prefix.is_empty() {
                    f(prefix, l);
                }
            }
        }
    }
}

impl Document for Value {
    fn any_value(&self, path: &FieldPath, f: &mut dyn FnMut(ValueRef<'_>) -> bool) -> bool {
        resolve(self, path, 0, &mut |v| visit_leaf_values(v, f))
    }

    fn any_object(&self, path: &FieldPath, f: &mut dyn FnMut(&dyn Document) -> bool) -> bool {
        resolve(self, path, 0, &mut |v| visit_objects(v, f))
    }

    fn for_each_leaf(&self, f: &mut dyn FnMut(&str, ValueRef<'_>)) {
        let mut prefix = String::new();
        walk_leaves(self, &mut prefix, f);
    }
}

/// Collect the keyword form of every value of `path` (helper for new_terms and for tests).
/// The text of a JSON scalar as a query value (`"a"` -> `a`, `80` -> `80`, `true` -> `true`);
/// `None` for null, arrays and objects. Used where query DSL and exception items carry values.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn keyword_values(doc: &dyn Document, path: &FieldPath) -> Vec<String> {
    let mut out = Vec::new();
    doc.any_value(path, &mut |v| {
        out.push(v.as_keyword().into_owned());
        false
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vals(doc: &Value, name: &str) -> Vec<String> {
        keyword_values(doc, &FieldPath::new(name))
    }

    #[test]
    fn nested_dotted_and_mixed_resolve_alike() {
        let nested = json!({"process": {"code_signature": {"trusted": true}}});
        let dotted = json!({"process.code_signature.trusted": true});
        let mixed = json!({"process": {"code_signature.trusted": true}});
        let mixed2 = json!({"process.code_signature": {"trusted": true}});
        for d in [&nested, &dotted, &mixed, &mixed2] {
            assert_eq!(vals(d, "process.code_signature.trusted"), vec!["true"], "{d}");
        }
    }

    #[test]
    fn both_shapes_in_one_document_contribute() {
        let d = json!({"process": {"name": "a"}, "process.name": "b"});
        let mut v = vals(&d, "process.name");
        v.sort();
        assert_eq!(v, vec!["a", "b"]);
    }

    #[test]
    fn arrays_flatten_and_nulls_are_skipped() {
        let d = json!({"a": [{"b": [1, null, [2]]}, {"b": "x"}, null]});
        assert_eq!(vals(&d, "a.b"), vec!["1", "2", "x"]);
        assert!(!json!({"a": null}).exists(&FieldPath::new("a")));
        assert!(!json!({"a": []}).exists(&FieldPath::new("a")));
        assert!(!json!({"a": {"b": 1}}).exists(&FieldPath::new("a")), "objects are not values");
    }

    #[test]
    fn leaves_walk_full_names() {
        let d = json!({"a": {"b": 1, "c.d": ["x", "y"]}, "e": null});
        let mut seen = Vec::new();
        d.for_each_leaf(&mut |name, v| seen.push(format!("{name}={}", v.as_keyword())));
        seen.sort();
        assert_eq!(seen, vec!["a.b=1", "a.c.d=x", "a.c.d=y"]);
    }

    #[test]
    fn objects_for_nested_queries() {
        let d = json!({"users": [{"name": "a", "age": 1}, {"name": "b", "age": 2}]});
        let mut n = 0;
        d.any_object(&FieldPath::new("users"), &mut |o| {
            n += 1;
            o.exists(&FieldPath::new("name")) && !o.exists(&FieldPath::new("nope"))
        });
        assert_eq!(n, 1);
    }
}

mod sonic {
    //! [`Document`] for `sonic_rs::Value`, the representation events are parsed into on the hot
    //! path (several times faster to build than `serde_json::Value`).
    use super::{Document, ValueRef};
    use crate::path::FieldPath;
    use sonic_rs::{JsonContainerTrait, JsonType, JsonValueTrait, Value};

    fn leaf(v: &Value) -> Option<ValueRef<'_>> {
        match v.get_type() {
            JsonType::Boolean => v.as_bool().map(ValueRef::Bool),
            JsonType::Number => {
                if let Some(i) = v.as_i64() {
                    Some(ValueRef::I64(i))
                } else if let Some(u) = v.as_u64() {
                    Some(ValueRef::U64(u))
                } else {
                    v.as_f64().map(ValueRef::F64)
                }
            }
            JsonType::String => v.as_str().map(ValueRef::Str),
            _ => None,
        }
    }

    fn visit_leaf_values(v: &Value, f: &mut dyn FnMut(ValueRef<'_>) -> bool) -> bool {
        match v.as_array() {
            Some(items) => items.iter().any(|item| visit_leaf_values(item, f)),
            None => match leaf(v) {
                Some(l) => f(l),
                None => false,
            },
        }
    }

    fn resolve<'v>(v: &'v Value, path: &FieldPath, i: usize, on_end: &mut dyn FnMut(&'v Value) -> bool) -> bool {
        if i == path.depth() {
            return on_end(v);
        }
        if let Some(map) = v.as_object() {
            for (k, key) in path.keys_from(i).iter().enumerate() {
                if let Some(child) = map.get(key) {
                    if resolve(child, path, i + k + 1, on_end) {
                        return true;
                    }
                }
            }
            return false;
        }
        match v.as_array() {
            Some(items) => items.iter().any(|item| resolve(item, path, i, on_end)),
            None => false,
        }
    }

    fn visit_objects(v: &Value, f: &mut dyn FnMut(&dyn Document) -> bool) -> bool {
        if v.is_object() {
            return f(v);
        }
        match v.as_array() {
            Some(items) => items.iter().any(|item| visit_objects(item, f)),
            None => false,
        }
    }

    fn walk_leaves(v: &Value, prefix: &mut String, f: &mut dyn FnMut(&str, ValueRef<'_>)) {
        if let Some(map) = v.as_object() {
            for (k, child) in map.iter() {
                let len = prefix.len();
                if !prefix.is_empty() {
                    prefix.push('.');
                }
                prefix.push_str(k);
                walk_leaves(child, prefix, f);
                prefix.truncate(len);
            }
        } else if let Some(items) = v.as_array() {
            for item in items.iter() {
                walk_leaves(item, prefix, f);
            }
        } else if let Some(l) = leaf(v) {
            if !prefix.is_empty() {
                f(prefix, l);
            }
        }
    }

    impl Document for Value {
        fn any_value(&self, path: &FieldPath, f: &mut dyn FnMut(ValueRef<'_>) -> bool) -> bool {
            resolve(self, path, 0, &mut |v| visit_leaf_values(v, f))
        }

        fn any_object(&self, path: &FieldPath, f: &mut dyn FnMut(&dyn Document) -> bool) -> bool {
            resolve(self, path, 0, &mut |v| visit_objects(v, f))
        }

        fn for_each_leaf(&self, f: &mut dyn FnMut(&str, ValueRef<'_>)) {
            let mut prefix = String::new();
            walk_leaves(self, &mut prefix, f);
        }
    }

    #[cfg(test)]
    mod tests {
        use crate::doc::keyword_values;
        use crate::{Document, FieldPath};

        /// The sonic-rs and serde_json documents answer every lookup alike.
        #[test]
        fn same_answers_as_serde_json() {
            let text = r#"{"process":{"code_signature.trusted":true,"name":["a",null,["b"]],"pid":42,"f":1.5},
                "process.name":"c","a":[{"b":1},{"b":"x"}],"n":null,"u":18446744073709551615}"#;
            let s: sonic_rs::Value = sonic_rs::from_str(text).expect("sonic");
            let j: serde_json::Value = serde_json::from_str(text).expect("serde");
            for f in ["process.code_signature.trusted", "process.name", "process.pid", "process.f", "a.b", "n", "u", "nope"] {
                let p = FieldPath::new(f);
                assert_eq!(keyword_values(&s, &p), keyword_values(&j, &p), "{f}");
            }
            let leaves = |d: &dyn Document| {
                let mut v = Vec::new();
                d.for_each_leaf(&mut |n, x| v.push(format!("{n}={}", x.as_keyword())));
                v.sort();
                v
            };
            assert_eq!(leaves(&s), leaves(&j));
        }
    }
}
