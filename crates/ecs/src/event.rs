//! An event as it travels from a source to the engine: the document plus where it came from.

use std::sync::Arc;

/// Where an event was read: a file (or `-` for stdin) and a line, or an element index for
/// whole-document formats.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Provenance {
    pub origin: Arc<str>,
    /// 1-based line for line-oriented input, 1-based element index otherwise.
    pub line: u64,
}

impl std::fmt::Display for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.origin, self.line)
    }
}

/// A parsed event. Documents are `sonic_rs::Value` (fast to build); they may hold credentials,
/// which are redacted when an event leaves the process (alert documents, search output).
#[derive(Debug, Clone)]
pub struct Event {
    pub doc: Arc<sonic_rs::Value>,
    pub provenance: Provenance,
    /// A stable identity: the Elasticsearch `_id` when the export has one, otherwise a hash of the
    /// event's bytes. Alert ids derive from it, so re-running the same input gives the same ids.
    pub key: String,
    /// The `_index` the event came from, when known.
    pub index: Option<String>,
}
