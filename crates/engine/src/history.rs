//! new_terms history: when each term combination was seen, per rule.
//!
//! The engine only needs "when was this tuple first and last seen in matching events"; where that
//! is kept (memory, the SQLite store of `imdsguard-store`) is the caller's choice.

use std::collections::HashMap;

/// First and last time (epoch ms) a term tuple was seen in events matching a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub first: i64,
    pub last: i64,
}

/// Storage for new_terms history.
pub trait TermsHistory {
    /// What is known about `tuple` (a canonical JSON array of the values) for `rule_id`.
    fn get(&mut self, rule_id: &str, tuple: &str) -> Result<Option<Seen>, HistoryError>;
    /// Record that `tuple` was seen at `at`.
    fn record(&mut self, rule_id: &str, tuple: &str, at: i64) -> Result<(), HistoryError>;
}

/// A storage failure (the message names the store and the cause).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryError(pub String);

impl std::fmt::Display for HistoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HistoryError {}

/// In-memory history (for tests and `--state` less runs).
#[derive(Debug, Default)]
pub struct MemoryHistory {
    seen: HashMap<(String, String), Seen>,
}

impl TermsHistory for MemoryHistory {
    fn get(&mut self, rule_id: &str, tuple: &str) -> Result<Option<Seen>, HistoryError> {
        Ok(self.seen.get(&(rule_id.to_string(), tuple.to_string())).copied())
    }
    fn record(&mut self, rule_id: &str, tuple: &str, at: i64) -> Result<(), HistoryError> {
        let e = self.seen.entry((rule_id.to_string(), tuple.to_string())).or_insert(Seen { first: at, last: at });
        e.first = e.first.min(at);
        e.last = e.last.max(at);
        Ok(())
    }
}

/// Whether an event at `at` is new given what history knows, with a window of `window_ms`:
/// new when no matching event with the tuple exists in `[at - window, at)`.
///
/// History keeps only first and last sightings. When `at` falls between them (a backfill of
/// older data), it is new only if the first sighting is not before `at`; otherwise the engine
/// cannot rule out an earlier sighting inside the window and answers "not new" (no duplicate alert).
pub fn is_new(seen: Option<Seen>, at: i64, window_ms: i64) -> bool {
    match seen {
        None => true,
        Some(s) if s.first >= at => true,
        Some(s) if s.last < at => s.last < at - window_ms,
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_rules() {
        let w = 100;
        assert!(is_new(None, 1000, w));
        assert!(!is_new(Some(Seen { first: 950, last: 950 }), 1000, w));
        assert!(is_new(Some(Seen { first: 850, last: 899 }), 1000, w));
        assert!(!is_new(Some(Seen { first: 900, last: 900 }), 1000, w), "window start is inclusive");
        assert!(is_new(Some(Seen { first: 1000, last: 2000 }), 1000, w), "same instant is not before");
        assert!(!is_new(Some(Seen { first: 10, last: 2000 }), 1000, w));
    }
}
