//! Helpers shared by the engine's integration tests.

use serde_json::{json, Value};

/// Set a dotted field in a nested document (creating objects), or remove it with `Value::Null`.
pub fn with(mut doc: Value, field: &str, v: Value) -> Value {
    let parts: Vec<&str> = field.split('.').collect();
    let mut cur = &mut doc;
    for p in &parts[..parts.len() - 1] {
        if !cur.get(*p).is_some_and(Value::is_object) {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
    let last = parts[parts.len() - 1];
    if v.is_null() {
        if let Some(o) = cur.as_object_mut() {
            o.remove(last);
        }
    } else {
        cur[last] = v;
    }
    doc
}
