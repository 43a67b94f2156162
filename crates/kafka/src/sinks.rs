//! Alert sinks. Each [`AlertSink::write`] returns only once the alerts are durable in that sink
//! (a committed SQLite transaction, an fsynced file, produce requests acknowledged by all in-sync
//! replicas, every `_bulk` item created or refused as a duplicate), so the consumer can commit the
//! offsets of the events that raised them. Alert ids are deterministic: a sink that is handed the
//! same alert again (after a redelivery) keeps one copy where the target can refuse duplicates
//! (the store, Elasticsearch's `create`), and the Kafka topic keys each alert by its id.

use crate::kafka::Producer;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a sink did with one batch of alerts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Alerts new to the sink.
    pub new: u64,
    /// Alerts the sink already had (refused as duplicates), when it can tell.
    pub duplicates: u64,
}

/// A durable destination for alert documents.
pub trait AlertSink: Send {
    /// A short name for reports (`store`, `ndjson`, `kafka`, `es`).
    fn name(&self) -> &'static str;
    /// Write the alerts durably; `Err` names the sink and the cause (the batch is then not committed).
    fn write(&mut self, alerts: &[Value]) -> Result<Written, String>;
}

fn alert_id(a: &Value) -> &str {
    a.get("kibana.alert.uuid").and_then(Value::as_str).unwrap_or("")
}

/// The embedded store (SQLite, WAL, `synchronous = FULL`): one transaction per batch,
/// `INSERT OR IGNORE` by alert id. `imdsguard serve --alerts-db FILE` serves the same file.
pub struct StoreSink {
    store: imdsguard_store::AlertStore,
    path: PathBuf,
}

impl StoreSink {
    pub fn open(path: &Path) -> Result<StoreSink, String> {
        let store = imdsguard_store::AlertStore::open(path).map_err(|e| format!("alerts store {}: {e}", path.display()))?;
        Ok(StoreSink { store, path: path.to_path_buf() })
    }
}

impl AlertSink for StoreSink {
    fn name(&self) -> &'static str {
        "store"
    }
    fn write(&mut self, alerts: &[Value]) -> Result<Written, String> {
        let new = self.store.insert(alerts).map_err(|e| format!("alerts store {}: {e}", self.path.display()))? as u64;
        Ok(Written { new, duplicates: alerts.len() as u64 - new })
    }
}

/// An NDJSON file: one alert per line, appended, `fsync`ed before the batch counts as written.
/// A redelivered batch appends its alerts again (same ids): readers de-duplicate by
/// `kibana.alert.uuid`.
pub struct NdjsonSink {
    file: std::fs::File,
    path: PathBuf,
}

impl NdjsonSink {
    pub fn open(path: &Path) -> Result<NdjsonSink, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("alerts file {}: {e}", path.display()))?;
        Ok(NdjsonSink { file, path: path.to_path_buf() })
    }
}

impl AlertSink for NdjsonSink {
    fn name(&self) -> &'static str {
        "ndjson"
    }
    fn write(&mut self, alerts: &[Value]) -> Result<Written, String> {
        if alerts.is_empty() {
            return Ok(Written::default());
        }
        let mut buf = Vec::with_capacity(alerts.len() * 2048);
        for a in alerts {
            serde_json::to_writer(&mut buf, a).map_err(|e| format!("alerts file {}: {e}", self.path.display()))?;
            buf.push(b'\n');
        }
        let io = |e: std::io::Error| format!("alerts file {}: {e}", self.path.display());
        self.file.write_all(&buf).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        Ok(Written { new: alerts.len() as u64, duplicates: 0 })
    }
}

/// A Kafka topic: each alert a message keyed by its id (so a compacted topic keeps one copy),
/// produced with `acks=all` and flushed; every delivery report must be a success.
pub struct KafkaSink {
    producer: std::sync::Arc<Producer>,
    topic: String,
    timeout: Duration,
}

impl KafkaSink {
    pub fn new(producer: std::sync::Arc<Producer>, topic: &str, timeout: Duration) -> KafkaSink {
        KafkaSink { producer, topic: topic.to_string(), timeout }
    }
}

impl AlertSink for KafkaSink {
    fn name(&self) -> &'static str {
        "kafka"
    }
    fn write(&mut self, alerts: &[Value]) -> Result<Written, String> {
        if alerts.is_empty() {
            return Ok(Written::default());
        }
        let records: Vec<(Vec<u8>, Vec<u8>)> =
            alerts.iter().map(|a| (alert_id(a).as_bytes().to_vec(), serde_json::to_vec(a).unwrap_or_default())).collect();
        self.producer
            .send_all(&self.topic, None, &records, self.timeout)
            .map_err(|e| format!("alerts topic {}: {e}", self.topic))?;
        Ok(Written { new: alerts.len() as u64, duplicates: 0 })
    }
}

/// Elasticsearch or OpenSearch `_bulk`: `create` actions with `_id` = the alert id into an index
/// compatible with `.alerts-security.alerts-default`, so the target refuses a redelivered alert
/// with 409 (counted as a duplicate, not an error). Items refused with 429 or 5xx are retried
/// (bounded); any other per-item error fails the batch.
pub struct EsSink {
    agent: ureq::Agent,
    url: String,
    index: String,
    auth: Option<String>,
    /// Alerts per `_bulk` request.
    pub chunk: usize,
    /// Attempts for items refused with 429/5xx (and for transport errors).
    pub attempts: u32,
}

/// Elasticsearch's default index for security alerts (an alias of the default space's alerts).
pub const DEFAULT_ES_INDEX: &str = ".alerts-security.alerts-default";

impl EsSink {
    /// `url` is the cluster's base URL (`http://127.0.0.1:9200`); `api_key` is sent as
    /// `Authorization: ApiKey <key>`.
    pub fn new(url: &str, index: &str, api_key: Option<&str>) -> Result<EsSink, String> {
        let url = url.trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("--alerts-es {url:?}: use an http:// or https:// URL"));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(EsSink { agent, url, index: index.to_string(), auth: api_key.map(|k| format!("ApiKey {k}")), chunk: 1000, attempts: 5 })
    }

    fn post(&self, body: Vec<u8>) -> Result<(u16, String), String> {
        let mut req = self.agent.post(format!("{}/_bulk", self.url)).header("content-type", "application/x-ndjson");
        if let Some(a) = &self.auth {
            req = req.header("authorization", a);
        }
        let resp = req.send(&body[..]).map_err(|e| format!("POST {}/_bulk: {e}", self.url))?;
        let status = resp.status().as_u16();
        let text = resp
            .into_body()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| format!("POST {}/_bulk: reading the response: {e}", self.url))?;
        Ok((status, text))
    }
}

/// The `_bulk` body creating `alerts` in `index` with their ids.
pub fn bulk_body(index: &str, alerts: &[&Value]) -> Vec<u8> {
    let mut body = Vec::with_capacity(alerts.len() * 2048);
    for a in alerts {
        let action = serde_json::json!({"create": {"_index": index, "_id": alert_id(a)}});
        let _ = serde_json::to_writer(&mut body, &action);
        body.push(b'\n');
        let _ = serde_json::to_writer(&mut body, a);
        body.push(b'\n');
    }
    body
}

/// The outcome of each item of a `_bulk` response, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Created,
    Duplicate,
    /// Worth retrying (429, 5xx).
    Retry(String),
    Failed(String),
}

/// Read a `_bulk` response with `n` items; `Err` when it is not one.
pub fn bulk_outcomes(status: u16, text: &str, n: usize) -> Result<Vec<ItemOutcome>, String> {
    if status == 429 || status >= 500 {
        return Ok(vec![ItemOutcome::Retry(format!("HTTP {status}")); n]);
    }
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}: {}", text.chars().take(500).collect::<String>()));
    }
    let v: Value = serde_json::from_str(text).map_err(|e| format!("the response is not JSON: {e}"))?;
    let items = v.get("items").and_then(Value::as_array).ok_or("the response has no \"items\" array")?;
    if items.len() != n {
        return Err(format!("the response has {} items for {n} actions", items.len()));
    }
    Ok(items
        .iter()
        .map(|it| {
            let r = it.as_object().and_then(|o| o.values().next()).cloned().unwrap_or(Value::Null);
            let st = r.get("status").and_then(Value::as_u64).unwrap_or(0);
            let reason = || {
                let e = r.get("error").cloned().unwrap_or(Value::Null);
                let kind = e.get("type").and_then(Value::as_str).unwrap_or("");
                let why = e.get("reason").and_then(Value::as_str).unwrap_or("");
                format!("item status {st} {kind}: {why}")
            };
            match st {
                200..=299 => ItemOutcome::Created,
                409 => ItemOutcome::Duplicate,
                429 | 500..=599 => ItemOutcome::Retry(reason()),
                _ => ItemOutcome::Failed(reason()),
            }
        })
        .collect())
}

impl AlertSink for EsSink {
    fn name(&self) -> &'static str {
        "es"
    }
    fn write(&mut self, alerts: &[Value]) -> Result<Written, String> {
        let mut out = Written::default();
        for chunk in alerts.chunks(self.chunk.max(1)) {
            let mut todo: Vec<&Value> = chunk.iter().collect();
            let mut attempt = 0;
            while !todo.is_empty() {
                attempt += 1;
                let last_try = attempt >= self.attempts;
                let outcomes = match self.post(bulk_body(&self.index, &todo)) {
                    Ok((status, text)) => bulk_outcomes(status, &text, todo.len()).map_err(|e| format!("{}/_bulk: {e}", self.url))?,
                    Err(e) if !last_try => vec![ItemOutcome::Retry(e); todo.len()],
                    Err(e) => return Err(e),
                };
                let mut retry = Vec::new();
                for (a, o) in todo.iter().zip(outcomes) {
                    match o {
                        ItemOutcome::Created => out.new += 1,
                        ItemOutcome::Duplicate => out.duplicates += 1,
                        ItemOutcome::Retry(why) if !last_try => {
                            let _ = why;
                            retry.push(*a);
                        }
                        ItemOutcome::Retry(why) | ItemOutcome::Failed(why) => {
                            return Err(format!("{}/_bulk: alert {}: {why} (attempt {attempt})", self.url, alert_id(a)));
                        }
                    }
                }
                if !retry.is_empty() {
                    std::thread::sleep(Duration::from_millis(100 << attempt.min(6)));
                }
                todo = retry;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bulk_body_creates_with_ids() {
        let a = json!({"kibana.alert.uuid": "abc", "x": 1});
        let body = String::from_utf8(bulk_body(DEFAULT_ES_INDEX, &[&a])).expect("utf8");
        assert_eq!(body, "{\"create\":{\"_id\":\"abc\",\"_index\":\".alerts-security.alerts-default\"}}\n{\"kibana.alert.uuid\":\"abc\",\"x\":1}\n");
    }

    #[test]
    fn bulk_outcomes_table() {
        use ItemOutcome::*;
        let resp = json!({"errors": true, "items": [
            {"create": {"status": 201}},
            {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "exists"}}},
            {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue"}}},
            {"create": {"status": 400, "error": {"type": "document_parsing_exception", "reason": "bad"}}},
        ]})
        .to_string();
        let got = bulk_outcomes(200, &resp, 4).expect("outcomes");
        assert_eq!(got[0], Created);
        assert_eq!(got[1], Duplicate);
        assert!(matches!(&got[2], Retry(r) if r.contains("es_rejected_execution_exception")));
        assert!(matches!(&got[3], Failed(r) if r.contains("document_parsing_exception: bad")));
        assert_eq!(bulk_outcomes(503, "", 2).expect("retry"), vec![Retry("HTTP 503".into()); 2]);
        for (status, text, n, want) in [
            (401, "{\"error\":\"nope\"}", 1, "HTTP 401"),
            (200, "not json", 1, "not JSON"),
            (200, "{}", 1, "no \"items\""),
            (200, "{\"items\":[]}", 1, "0 items for 1"),
        ] {
            let e = bulk_outcomes(status, text, n).expect_err("error");
            assert!(e.contains(want), "{e} should contain {want}");
        }
    }

    #[test]
    fn ndjson_and_store_sinks_write_durably() {
        let dir = tempfile::tempdir().expect("tempdir");
        let alerts = vec![json!({"kibana.alert.uuid": "a", "kibana.alert.rule.rule_id": "r", "@timestamp": "2026-01-01T00:00:00Z"})];
        let mut n = NdjsonSink::open(&dir.path().join("a.ndjson")).expect("open");
        assert_eq!(n.write(&alerts).expect("write").new, 1);
        assert_eq!(n.write(&alerts).expect("write").new, 1);
        let text = std::fs::read_to_string(dir.path().join("a.ndjson")).expect("read");
        assert_eq!(text.lines().count(), 2, "a file sink appends every delivery");
        let mut s = StoreSink::open(&dir.path().join("s.db")).expect("open");
        assert_eq!(s.write(&alerts).expect("write"), Written { new: 1, duplicates: 0 });
        assert_eq!(s.write(&alerts).expect("write"), Written { new: 0, duplicates: 1 }, "the store keeps one per id");
    }
}
