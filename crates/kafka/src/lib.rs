//! Kafka edge of imdsguard (`imdsguard consume`): a consumer group that splits the partitions of
//! the event topics between its members, evaluates each batch with the engine (`Hunt`, the same
//! path `hunt` and `serve` use), writes the alerts durably to every sink and only then commits
//! the offsets (at-least-once; deterministic alert ids make a redelivery create no duplicate).
//!
//! - [`consume`]: the loop, batching, rebalance handling, the durable-then-commit order;
//! - [`state`]: per-partition new_terms and threshold signal history (through the engine's
//!   `TermsHistory`), its changelog records (a compacted topic, as Kafka Streams keeps state);
//! - [`sinks`]: the embedded store (SQLite), NDJSON file, Kafka topic, Elasticsearch/OpenSearch
//!   `_bulk` (`create` with `_id` = alert id);
//! - [`kafka`]: rdkafka wrappers (checked produce, topic creation, reading a topic to its end).
//!
//! librdkafka is built from rdkafka's bundled source: Debian's 2.0.2 cannot parse the handshake
//! reply of some Kafka-protocol brokers (tansu). The core crates never depend on this one.

pub mod consume;
pub mod kafka;
pub mod sinks;
pub mod state;

pub use consume::{run, ConsumeConfig, ConsumeStats, EventId, Malformed, Notice};
