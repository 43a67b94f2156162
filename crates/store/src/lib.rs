//! The embedded store: SQLite (bundled, no server) holding state that must outlive one run.
//!
//! It keeps new_terms history (first and last sighting of each term tuple per rule) and
//! threshold signal history, so a hunt over tomorrow's file knows what today's file showed.
//! Writes are batched in one transaction per hunt ([`SqliteHistory::commit`]); a hunt that fails
//! leaves the previous state. [`alerts`] keeps alert documents (`serve`, `sensor`) with their
//! workflow status, written durably before they are acknowledged.

pub mod alerts;
pub use alerts::{AlertQuery, AlertStore};

use imdsguard_engine::history::{HistoryError, Seen, TermsHistory};
use imdsguard_engine::StreamState;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// Schema version written to `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

pub struct SqliteHistory {
    conn: Connection,
    in_tx: bool,
}

fn err(context: &str, e: rusqlite::Error) -> HistoryError {
    HistoryError(format!("state store: {context}: {e}"))
}

impl SqliteHistory {
    /// Open (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteHistory, HistoryError> {
        let conn = Connection::open(path).map_err(|e| err(&format!("cannot open {}", path.display()), e))?;
        Self::init(conn)
    }

    /// A store in memory (nothing persists).
    pub fn in_memory() -> Result<SqliteHistory, HistoryError> {
        let conn = Connection::open_in_memory().map_err(|e| err("cannot open in-memory database", e))?;
        Self::init(conn)
    }

    fn init(conn: Connection) -> Result<SqliteHistory, HistoryError> {
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| err("busy_timeout", e))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| err("read schema version", e))?;
        if version > SCHEMA_VERSION {
            return Err(HistoryError(format!(
                "state store: schema version {version} is newer than this imdsguard understands ({SCHEMA_VERSION})"
            )));
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS new_terms_history (
                rule_id TEXT NOT NULL,
                tuple TEXT NOT NULL,
                first_seen INTEGER NOT NULL,
                last_seen INTEGER NOT NULL,
                PRIMARY KEY (rule_id, tuple)
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS stream_state (
                name TEXT PRIMARY KEY,
                state TEXT NOT NULL
            ) WITHOUT ROWID;
            PRAGMA user_version = 1;",
        )
        .map_err(|e| err("create schema", e))?;
        Ok(SqliteHistory { conn, in_tx: false })
    }

    fn begin(&mut self) -> Result<(), HistoryError> {
        if !self.in_tx {
            self.conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| err("begin transaction", e))?;
            self.in_tx = true;
        }
        Ok(())
    }

    /// Make the writes of this run durable.
    pub fn commit(&mut self) -> Result<(), HistoryError> {
        if self.in_tx {
            self.conn.execute_batch("COMMIT").map_err(|e| err("commit", e))?;
            self.in_tx = false;
        }
        Ok(())
    }

    /// Keep a stream's state (what sequences, thresholds and suppression carry between batches)
    /// under `name`, in the current transaction: it becomes durable with [`SqliteHistory::commit`],
    /// together with the history the same batch wrote.
    pub fn save_stream_state(&mut self, name: &str, state: &StreamState) -> Result<(), HistoryError> {
        self.begin()?;
        let text = state.to_json().to_string();
        self.conn
            .execute(
                "INSERT INTO stream_state (name, state) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET state = excluded.state",
                params![name, text],
            )
            .map_err(|e| err("write stream state", e))?;
        Ok(())
    }

    /// The stream state saved under `name`, if any. A state that cannot be read is an error naming
    /// the store and the reason (the caller decides whether to start afresh).
    pub fn load_stream_state(&mut self, name: &str) -> Result<Option<StreamState>, HistoryError> {
        let text: Option<String> = self
            .conn
            .query_row("SELECT state FROM stream_state WHERE name = ?1", params![name], |r| r.get(0))
            .optional()
            .map_err(|e| err("read stream state", e))?;
        let Some(text) = text else { return Ok(None) };
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| HistoryError(format!("state store: stream state {name:?} is not JSON: {e}")))?;
        StreamState::from_json(&v).map(Some).map_err(|e| HistoryError(format!("state store: stream state {name:?}: {e}")))
    }

    /// Number of tuples known for a rule.
    pub fn count(&self, rule_id: &str) -> Result<u64, HistoryError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM new_terms_history WHERE rule_id = ?1", params![rule_id], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| err("count", e))
    }
}

impl TermsHistory for SqliteHistory {
    fn get(&mut self, rule_id: &str, tuple: &str) -> Result<Option<Seen>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT first_seen, last_seen FROM new_terms_history WHERE rule_id = ?1 AND tuple = ?2")
            .map_err(|e| err("prepare", e))?;
        stmt.query_row(params![rule_id, tuple], |r| Ok(Seen { first: r.get(0)?, last: r.get(1)? }))
            .optional()
            .map_err(|e| err("read history", e))
    }

    fn record(&mut self, rule_id: &str, tuple: &str, at: i64) -> Result<(), HistoryError> {
        self.begin()?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO new_terms_history (rule_id, tuple, first_seen, last_seen) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT(rule_id, tuple) DO UPDATE SET
                   first_seen = MIN(first_seen, excluded.first_seen),
                   last_seen = MAX(last_seen, excluded.last_seen)",
            )
            .map_err(|e| err("prepare", e))?;
        stmt.execute(params![rule_id, tuple, at]).map_err(|e| err("write history", e))?;
        Ok(())
    }
}

impl Drop for SqliteHistory {
    fn drop(&mut self) {
        if self.in_tx {
            // Not committed: roll back so a failed run leaves the previous state.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_across_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("state.db");
        {
            let mut h = SqliteHistory::open(&p).expect("open");
            assert_eq!(h.get("r", "[\"a\"]").expect("get"), None);
            h.record("r", "[\"a\"]", 100).expect("record");
            h.record("r", "[\"a\"]", 50).expect("record");
            h.commit().expect("commit");
        }
        let mut h = SqliteHistory::open(&p).expect("reopen");
        assert_eq!(h.get("r", "[\"a\"]").expect("get"), Some(Seen { first: 50, last: 100 }));
        assert_eq!(h.count("r").expect("count"), 1);
    }

    #[test]
    fn stream_state_round_trips_with_the_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("state.db");
        let mut st = StreamState::new();
        st.advance_clock(42);
        {
            let mut h = SqliteHistory::open(&p).expect("open");
            assert!(h.load_stream_state("serve").expect("load").is_none());
            h.save_stream_state("serve", &st).expect("save");
            h.commit().expect("commit");
            h.save_stream_state("serve", &StreamState::new()).expect("save");
            // dropped without commit: rolled back
        }
        let mut h = SqliteHistory::open(&p).expect("reopen");
        let back = h.load_stream_state("serve").expect("load").expect("saved");
        assert_eq!(back.to_json(), st.to_json());
    }

    #[test]
    fn uncommitted_writes_roll_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("state.db");
        {
            let mut h = SqliteHistory::open(&p).expect("open");
            h.record("r", "t", 1).expect("record");
        }
        let mut h = SqliteHistory::open(&p).expect("reopen");
        assert_eq!(h.get("r", "t").expect("get"), None);
    }
}
