//! The rule engine: compiles rules into matchers and runs them over events.
//!
//! - [`lower_kql`]: KQL syntax tree -> IR, applying Kibana's query building and Elasticsearch's
//!   per-type semantics (the one place that sees the field table);
//! - [`compile`]: an Elastic rule -> [`CompiledRule`] (matcher, timestamps, new_terms fields,
//!   execution window), with diagnostics for what cannot run;
//! - [`prefilter`]: the literals every rule needs, scanned in raw event bytes so that events that
//!   cannot match any rule are never parsed;
//! - [`correlate`]: Sigma correlation rules, evaluated over the matches of the rules they
//!   reference when a hunt finishes;
//! - [`exceptions`]: Elastic exception items -> the filter Kibana adds to a rule's search;
//! - [`hunt`]: evaluation of `query`, `eql`, `new_terms` and `threshold` rules over a stream of
//!   events with Kibana's semantics (history window, threshold executions and signal history,
//!   `max_signals` per execution window), state behind the [`history::TermsHistory`] trait so the
//!   embedded store lives at the edge;
//! - [`stream`]: what sequences, thresholds, suppression and `max_signals` carry from one batch of
//!   a stream to the next (serve, the sensor, Kafka).
//!
//! Pure: no I/O, no clock (callers pass `now`), no async.

pub mod compile;
pub mod correlate;
pub mod eql;
pub mod exceptions;
pub mod explain;
pub mod history;
pub mod hunt;
pub mod lower_dsl;
pub mod lower_kql;
pub mod prefilter;
pub mod sigma_export;
pub mod stream;

pub use compile::{compile_matcher, compile_rule, CompiledRule, Matcher, RuleKind, Suppression, ThresholdSpec};
pub use hunt::{Hunt, HuntStats, Match, ThresholdResult};
pub use stream::StreamState;
