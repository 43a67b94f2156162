//! The Elasticsearch `_bulk` body: NDJSON action lines, each `index`/`create` followed by its
//! source document, `delete` alone, `update` followed by a partial document. Parsed without
//! allocation of the sources (they stay slices of the body) and without failing the whole
//! request on one bad item: every item gets its own result, as Elasticsearch answers.

use serde_json::{json, Value};

/// One item of a bulk request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkItem<'a> {
    /// `index`, `create`, `update` or `delete` (as written; anything else is an error item).
    pub action: String,
    pub index: Option<String>,
    pub id: Option<String>,
    /// The source line (for index/create), or why the item cannot be processed.
    pub source: Result<&'a [u8], String>,
}

/// Split a bulk body into items. `default_index` is the index of the URL (`/<index>/_bulk`).
/// A malformed action line ends the request (Elasticsearch rejects the whole request with 400
/// then): returns `Err` with the line number and reason.
pub fn parse<'a>(body: &'a [u8], default_index: Option<&str>) -> Result<Vec<BulkItem<'a>>, String> {
    let mut lines = body.split(|b| *b == b'\n').enumerate().filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace));
    let mut items = Vec::new();
    while let Some((n, line)) = lines.next() {
        let action: Value = serde_json::from_slice(line).map_err(|e| format!("line {}: malformed action/metadata line: {e}", n + 1))?;
        let obj = action.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
            format!("line {}: malformed action/metadata line, expected an object with one key such as \"index\"", n + 1)
        })?;
        let (name, meta) = obj.iter().next().ok_or_else(|| format!("line {}: empty action", n + 1))?;
        let index = meta.get("_index").and_then(Value::as_str).map(str::to_string).or_else(|| default_index.map(str::to_string));
        let id = meta.get("_id").and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_u64().map(|n| n.to_string())));
        match name.as_str() {
            "index" | "create" | "update" => {
                let Some((_, src)) = lines.next() else {
                    return Err(format!("line {}: the {name} action is not followed by a source line", n + 1));
                };
                let source = if name == "update" { Err("update is not supported: imdsguard evaluates new documents only".to_string()) } else { Ok(src) };
                items.push(BulkItem { action: name.clone(), index, id, source });
            }
            "delete" => items.push(BulkItem { action: name.clone(), index, id, source: Err("delete is not supported: imdsguard keeps no documents".into()) }),
            other => return Err(format!("line {}: unknown action [{other}]", n + 1)),
        }
    }
    Ok(items)
}

/// The response entry of one item: `status` 201 created, or an error with its type and reason.
pub fn item_response(item: &BulkItem<'_>, id: &str, seq_no: u64, error: Option<(u16, &str, &str)>) -> Value {
    let index = item.index.clone().unwrap_or_default();
    let body = match error {
        None => json!({
            "_index": index, "_id": id, "_version": 1, "result": "created",
            "_shards": {"total": 1, "successful": 1, "failed": 0},
            "_seq_no": seq_no, "_primary_term": 1, "status": 201
        }),
        Some((status, kind, reason)) => json!({
            "_index": index, "_id": id, "status": status,
            "error": {"type": kind, "reason": reason}
        }),
    };
    json!({ item.action.clone(): body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filebeat_shaped_body() {
        let body = b"{\"create\":{\"_index\":\"filebeat-8.15.3\"}}\n{\"@timestamp\":\"2026-05-01T10:00:00Z\",\"message\":\"x\"}\n{\"index\":{}}\n{\"a\":1}\n{\"delete\":{\"_id\":\"7\"}}\n";
        let items = parse(body, Some("logs")).expect("parses");
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].action, "create");
        assert_eq!(items[0].index.as_deref(), Some("filebeat-8.15.3"));
        assert_eq!(items[0].source.as_deref(), Ok(&b"{\"@timestamp\":\"2026-05-01T10:00:00Z\",\"message\":\"x\"}"[..]));
        assert_eq!(items[1].index.as_deref(), Some("logs"), "the URL's index is the default");
        assert!(items[2].source.is_err());
        assert_eq!(items[2].id.as_deref(), Some("7"));
    }

    #[test]
    fn malformed_requests_name_the_line() {
        let cases: &[(&[u8], &str)] = &[
            (b"not json\n", "line 1: malformed action/metadata line"),
            (b"{\"index\":{}}\n", "line 1: the index action is not followed by a source line"),
            (b"{\"index\":{}}\n{}\n{\"frobnicate\":{}}\n{}\n", "line 3: unknown action [frobnicate]"),
            (b"{\"index\":{},\"create\":{}}\n{}\n", "line 1: malformed action/metadata line, expected an object with one key"),
        ];
        for (body, want) in cases {
            let e = parse(body, None).expect_err("malformed");
            assert!(e.contains(want), "{e}");
        }
    }
}

#[cfg(test)]
mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        /// Any bytes: a parse result or an error naming a line, never a panic; every item built
        /// gets a response entry.
        #[test]
        fn arbitrary_bodies(body in prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'{'), Just(b'}'), Just(b'"'), any::<u8>()], 0..400),
                            prefix in prop::sample::select(vec!["", "{\"index\":{}}\n", "{\"create\":{\"_id\":1}}\n{}\n", "{\"delete\":{}}\n"])) {
            let mut all = prefix.as_bytes().to_vec();
            all.extend_from_slice(&body);
            match parse(&all, Some("i")) {
                Ok(items) => {
                    for (n, it) in items.iter().enumerate() {
                        let r = item_response(it, "x", n as u64, it.source.as_ref().err().map(|e| (400, "t", e.as_str())));
                        prop_assert!(r.is_object());
                    }
                }
                Err(e) => prop_assert!(e.starts_with("line ")),
            }
        }
    }
}
