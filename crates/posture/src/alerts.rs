//! Alerts from `imdsguard hunt` (Kibana alert documents, NDJSON or a JSON array): the hosts where
//! the IMDSv1 rule saw IMDSv1 requests, to join with the audited instances.
//!
//! Fields are read whether written nested (`{"host":{"name":...}}`) or as literal dotted keys
//! (`"kibana.alert.rule.rule_id"`), as Kibana writes them.

use crate::model::InputError;
use serde_json::Value;

/// `rule_id` of the built-in rule for seed 004 ("AWS Instance Metadata Service v1 (IMDSv1)
/// should not be used").
pub const IMDSV1_RULE_ID: &str = "6f1c2a34-8d3e-4b5a-9c7e-1d2f3a4b5c60";

/// The alert fields that identify the host, in the order they are trusted.
pub const HOST_FIELDS: [&str; 6] = ["cloud.instance.id", "host.id", "host.name", "host.hostname", "host.ip", "source.ip"];

/// One host on which IMDSv1 use was observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// (field, value) pairs identifying the host.
    pub keys: Vec<(String, String)>,
    /// Alerts plus the events they suppressed.
    pub count: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
}

/// A field's values, nested or dotted, arrays flattened.
pub fn get_all(doc: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    collect(doc, path, &mut out, 0);
    out
}

fn collect(v: &Value, path: &str, out: &mut Vec<String>, depth: usize) {
    if depth > 16 {
        return;
    }
    match v {
        Value::Array(a) => {
            for x in a {
                collect(x, path, out, depth + 1);
            }
        }
        Value::Object(o) => {
            if path.is_empty() {
                return;
            }
            if let Some(x) = o.get(path) {
                leaf(x, out);
            }
            // Every split of the path into an object key and the rest.
            for (i, _) in path.match_indices('.') {
                if let Some(x) = o.get(&path[..i]) {
                    collect(x, &path[i + 1..], out, depth + 1);
                }
            }
        }
        _ => {}
    }
}

fn leaf(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(a) => a.iter().for_each(|x| leaf(x, out)),
        _ => {}
    }
}

/// Reads alerts and groups the IMDSv1 rule's by host. Malformed lines are reported, not fatal;
/// alerts of other rules are counted in the second value.
pub fn read_alerts(file: &str, bytes: &[u8]) -> (Vec<Observation>, usize, Vec<InputError>) {
    let mut errors = Vec::new();
    let mut docs = Vec::new();
    let trimmed = bytes.iter().position(|b| !b.is_ascii_whitespace()).map(|p| &bytes[p..]).unwrap_or(&[]);
    if trimmed.first() == Some(&b'[') {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Array(a)) => docs.extend(a),
            Ok(_) => {}
            Err(e) => errors.push(InputError { file: file.into(), line: Some(e.line()), message: format!("invalid JSON: {e}") }),
        }
    } else {
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Value>(line) {
                Ok(v) if v.is_object() => docs.push(v),
                Ok(_) => errors.push(InputError { file: file.into(), line: Some(i + 1), message: "not a JSON object: skipped".into() }),
                Err(e) => errors.push(InputError { file: file.into(), line: Some(i + 1), message: format!("invalid JSON: {e}: skipped") }),
            }
        }
    }
    let mut obs: Vec<Observation> = Vec::new();
    let mut other = 0;
    for d in &docs {
        if !get_all(d, "kibana.alert.rule.rule_id").iter().any(|r| r == IMDSV1_RULE_ID) {
            other += 1;
            continue;
        }
        let mut keys = Vec::new();
        for f in HOST_FIELDS {
            for v in get_all(d, f) {
                if !v.is_empty() && !keys.iter().any(|(kf, kv): &(String, String)| kf == f && *kv == v) {
                    keys.push((f.to_string(), v));
                }
            }
        }
        let count = 1 + get_all(d, "kibana.alert.suppression.docs_count").first().and_then(|c| c.parse::<u64>().ok()).unwrap_or(0);
        let time = get_all(d, "kibana.alert.original_time").into_iter().next().or_else(|| get_all(d, "@timestamp").into_iter().next());
        // The same host (same identifying keys) is one observation.
        match obs.iter_mut().find(|o| o.keys == keys) {
            Some(o) => {
                o.count += count;
                if let Some(t) = time {
                    if o.first_seen.as_ref().is_none_or(|f| t < *f) {
                        o.first_seen = Some(t.clone());
                    }
                    if o.last_seen.as_ref().is_none_or(|l| t > *l) {
                        o.last_seen = Some(t);
                    }
                }
            }
            None => obs.push(Observation { keys, count, first_seen: time.clone(), last_seen: time }),
        }
    }
    (obs, other, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_nested_dotted_and_mixed() {
        let doc = json!({"host": {"name": "a", "ip": ["10.0.0.1", "10.0.0.2"]}, "cloud.instance.id": "i-1", "cloud": {"instance.name": "n"}, "kibana.alert.rule.rule_id": "r"});
        let table: &[(&str, &[&str])] = &[
            ("host.name", &["a"]),
            ("host.ip", &["10.0.0.1", "10.0.0.2"]),
            ("cloud.instance.id", &["i-1"]),
            ("cloud.instance.name", &["n"]),
            ("kibana.alert.rule.rule_id", &["r"]),
            ("host.missing", &[]),
        ];
        for (path, want) in table {
            assert_eq!(get_all(&doc, path), want.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{path}");
        }
    }

    #[test]
    fn groups_imdsv1_alerts_by_host_and_reports_bad_lines() {
        let lines = [
            json!({"kibana.alert.rule.rule_id": IMDSV1_RULE_ID, "host": {"name": "h1"}, "kibana.alert.original_time": "2026-01-02T00:00:00Z"}).to_string(),
            "{not json".to_string(),
            json!({"kibana.alert.rule.rule_id": IMDSV1_RULE_ID, "host": {"name": "h1"}, "kibana.alert.suppression.docs_count": 3, "kibana.alert.original_time": "2026-01-01T00:00:00Z"}).to_string(),
            json!({"kibana": {"alert": {"rule": {"rule_id": "other"}}}, "host": {"name": "h2"}}).to_string(),
            "[1]".to_string(),
            String::new(),
        ];
        let (obs, other, errors) = read_alerts("a.ndjson", lines.join("\n").as_bytes());
        assert_eq!(other, 1);
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![Some(2), Some(5)]);
        assert_eq!(obs.len(), 1);
        assert_eq!(obs[0].count, 5);
        assert_eq!(obs[0].first_seen.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(obs[0].last_seen.as_deref(), Some("2026-01-02T00:00:00Z"));
        // A JSON array of alerts (Kibana export) is read too.
        let arr = json!([{"kibana.alert.rule.rule_id": IMDSV1_RULE_ID, "cloud": {"instance": {"id": "i-9"}}}]).to_string();
        let (obs, _, errors) = read_alerts("a.json", arr.as_bytes());
        assert!(errors.is_empty());
        assert_eq!(obs[0].keys, vec![("cloud.instance.id".to_string(), "i-9".to_string())]);
    }
}
