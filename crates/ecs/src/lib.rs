//! The ECS event model: what an event is and how rules read it.
//!
//! This crate owns
//! - [`FieldType`] and [`FieldTable`]: the Elasticsearch type of every field, generated from the
//!   Elastic Common Schema (`scripts/gen_ecs_fields.py` writes `src/generated.rs` from
//!   `../shared/ecs/fields.csv`) and extensible with a user's `GET _mapping` JSON;
//! - [`FieldPath`]: a field name compiled once per rule into the lookups needed to resolve it in
//!   documents that mix nested objects and literal dotted keys (`{"process": {"name": ..}}`,
//!   `{"process.name": ..}`, `{"process": {"code_signature.trusted": ..}}` all resolve);
//! - [`Document`]: the read-only accessor the engine evaluates rules against, implemented here for
//!   `serde_json::Value` (other producers plug in by implementing it);
//! - [`time`]: Elasticsearch date parsing and date math (`now-7d/d`);
//! - [`redact`]: removal of cloud credentials from events before they leave the process.
//!
//! It does no I/O and holds no global state.

pub mod doc;
pub mod event;
pub mod field_table;
mod generated;
pub mod path;
pub mod redact;
pub mod time;

pub use doc::{Document, ValueRef};
pub use event::{Event, Provenance};
pub use field_table::{FieldTable, FieldType, MappingError, ECS_VERSION};
pub use redact::{redact, REDACTED};
pub use path::FieldPath;
