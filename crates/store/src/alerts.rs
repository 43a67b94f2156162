//! Alerts in SQLite (WAL mode): written in one transaction per batch before the batch is
//! acknowledged (a `serve` request, a sensor micro-batch); read back with filters and keyset
//! paging; with their workflow status. Alert ids are deterministic, so writing the same alert
//! twice keeps one row.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use std::path::Path;

pub struct AlertStore {
    conn: Connection,
}

/// Workflow statuses Kibana uses.
pub const STATUSES: &[&str] = &["open", "acknowledged", "closed"];

/// Filters of `GET /api/alerts`.
#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    pub rule_id: Option<String>,
    pub severity: Option<String>,
    pub host: Option<String>,
    /// Detection time bounds (epoch ms, inclusive).
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub status: Option<String>,
    pub size: usize,
    /// Keyset cursor: (detected_ms, id) of the last alert of the previous page.
    pub search_after: Option<(i64, String)>,
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

impl AlertStore {
    pub fn open(path: &Path) -> rusqlite::Result<AlertStore> {
        Self::init(Connection::open(path)?)
    }

    pub fn in_memory() -> rusqlite::Result<AlertStore> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> rusqlite::Result<AlertStore> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // WAL: readers do not block the writer; `synchronous = FULL` makes a committed batch
        // survive a power loss, which is what "acknowledged" promises.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS alerts (
                id TEXT PRIMARY KEY,
                rule_id TEXT NOT NULL,
                severity TEXT,
                host TEXT,
                detected_ms INTEGER NOT NULL,
                status TEXT NOT NULL DEFAULT 'open',
                doc TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS alerts_time ON alerts (detected_ms, id);
             CREATE INDEX IF NOT EXISTS alerts_rule ON alerts (rule_id, detected_ms);",
        )?;
        Ok(AlertStore { conn })
    }

    /// Write alerts in one transaction; returns how many were new.
    pub fn insert(&mut self, alerts: &[Value]) -> rusqlite::Result<usize> {
        let tx = self.conn.transaction()?;
        let mut new = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO alerts (id, rule_id, severity, host, detected_ms, status, doc) VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6)",
            )?;
            for a in alerts {
                let id = s(a, "kibana.alert.uuid").unwrap_or_default();
                let detected = s(a, "@timestamp").and_then(|t| imdsguard_ecs::time::parse_date(&t)).unwrap_or(0);
                let host = a.get("host").and_then(|h| h.get("name")).and_then(Value::as_str).map(str::to_string);
                new += stmt.execute(params![
                    id,
                    s(a, "kibana.alert.rule.rule_id").unwrap_or_default(),
                    s(a, "kibana.alert.severity"),
                    host,
                    detected,
                    a.to_string()
                ])?;
            }
        }
        tx.commit()?;
        Ok(new)
    }

    fn doc_with_status(doc: &str, status: &str) -> Value {
        let mut v: Value = serde_json::from_str(doc).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("kibana.alert.workflow_status".into(), Value::String(status.to_string()));
        }
        v
    }

    /// Alerts matching `q`, newest first, and the total number matching.
    pub fn query(&self, q: &AlertQuery) -> rusqlite::Result<(u64, Vec<Value>)> {
        let mut clauses: Vec<String> = Vec::new();
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut add = |c: &str, v: rusqlite::types::Value| {
            clauses.push(c.to_string());
            args.push(v);
        };
        if let Some(r) = &q.rule_id {
            add("rule_id = ?", r.clone().into());
        }
        if let Some(x) = &q.severity {
            add("severity = ?", x.clone().into());
        }
        if let Some(x) = &q.host {
            add("host = ?", x.clone().into());
        }
        if let Some(x) = q.since {
            add("detected_ms >= ?", x.into());
        }
        if let Some(x) = q.until {
            add("detected_ms <= ?", x.into());
        }
        if let Some(x) = &q.status {
            add("status = ?", x.clone().into());
        }
        let filter = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        let total: u64 = self.conn.query_row(&format!("SELECT COUNT(*) FROM alerts {filter}"), rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
        let mut page_clauses = clauses.clone();
        let mut page_args = args.clone();
        if let Some((t, id)) = &q.search_after {
            page_clauses.push("(detected_ms < ? OR (detected_ms = ? AND id < ?))".into());
            page_args.push((*t).into());
            page_args.push((*t).into());
            page_args.push(id.clone().into());
        }
        let page_filter = if page_clauses.is_empty() { String::new() } else { format!("WHERE {}", page_clauses.join(" AND ")) };
        let sql = format!("SELECT doc, status FROM alerts {page_filter} ORDER BY detected_ms DESC, id DESC LIMIT {}", q.size.clamp(1, 10_000));
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(page_args.iter()), |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (doc, status) = row?;
            out.push(Self::doc_with_status(&doc, &status));
        }
        Ok((total, out))
    }

    pub fn get(&self, id: &str) -> rusqlite::Result<Option<Value>> {
        self.conn
            .query_row("SELECT doc, status FROM alerts WHERE id = ?1", params![id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .optional()
            .map(|o| o.map(|(d, s)| Self::doc_with_status(&d, &s)))
    }

    /// Change the workflow status; `Ok(false)` when there is no such alert.
    pub fn set_status(&self, id: &str, status: &str) -> rusqlite::Result<bool> {
        Ok(self.conn.execute("UPDATE alerts SET status = ?2 WHERE id = ?1", params![id, status])? > 0)
    }

    pub fn count(&self) -> rusqlite::Result<u64> {
        self.conn.query_row("SELECT COUNT(*) FROM alerts", [], |r| r.get(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(id: &str, rule: &str, ts: &str, host: &str) -> Value {
        json!({"kibana.alert.uuid": id, "kibana.alert.rule.rule_id": rule, "@timestamp": ts, "kibana.alert.severity": "high", "host": {"name": host}})
    }

    #[test]
    fn insert_query_page_and_status() {
        let mut st = AlertStore::in_memory().expect("store");
        let a = [
            alert("a", "r1", "2026-05-01T10:00:00Z", "h1"),
            alert("b", "r1", "2026-05-01T10:01:00Z", "h2"),
            alert("c", "r2", "2026-05-01T10:02:00Z", "h1"),
        ];
        assert_eq!(st.insert(&a).expect("insert"), 3);
        assert_eq!(st.insert(&a[..1]).expect("insert"), 0, "the same alert id is kept once");
        let q = |f: fn(&mut AlertQuery)| {
            let mut q = AlertQuery { size: 10, ..AlertQuery::default() };
            f(&mut q);
            let (total, docs) = st.query(&q).expect("query");
            (total, docs.iter().map(|d| d["kibana.alert.uuid"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>())
        };
        assert_eq!(q(|_| {}), (3, vec!["c".into(), "b".into(), "a".into()]));
        assert_eq!(q(|q| q.rule_id = Some("r1".into())), (2, vec!["b".into(), "a".into()]));
        assert_eq!(q(|q| q.host = Some("h1".into())), (2, vec!["c".into(), "a".into()]));
        assert_eq!(q(|q| q.since = imdsguard_ecs::time::parse_date("2026-05-01T10:01:00Z")), (2, vec!["c".into(), "b".into()]));
        assert_eq!(q(|q| { q.size = 1; q.search_after = Some((imdsguard_ecs::time::parse_date("2026-05-01T10:01:00Z").unwrap_or(0), "b".into())) }), (3, vec!["a".into()]));
        assert!(st.set_status("b", "acknowledged").expect("update"));
        assert!(!st.set_status("zz", "closed").expect("update"));
        assert_eq!(q(|q| q.status = Some("acknowledged".into())), (1, vec!["b".into()]));
        assert_eq!(st.get("b").expect("get").map(|d| d["kibana.alert.workflow_status"].clone()), Some(json!("acknowledged")));
    }
}
