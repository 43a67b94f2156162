//! `imdsguard consume`: a Kafka consumer-group member running the rules over event topics (see
//! `imdsguard-kafka`). Alerts go to the sinks given (embedded store, NDJSON file, Kafka topic,
//! Elasticsearch/OpenSearch `_bulk`), durably, before the offsets are committed.

use crate::cmd_hunt::compile_all;
use crate::load::{field_table, now_millis, render_load_error};
use crate::FieldOpts;
use anyhow::Context;
use imdsguard_kafka::sinks::{AlertSink, EsSink, KafkaSink, NdjsonSink, StoreSink, DEFAULT_ES_INDEX};
use imdsguard_kafka::{ConsumeConfig, ConsumeStats, EventId, Notice};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EventIdArg {
    /// `topic/partition/offset` of the message.
    Offset,
    /// A hash of the message bytes (the same event produced twice makes the same alert ids).
    Hash,
}

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    /// Kafka bootstrap servers (`host:port[,host:port]`).
    #[arg(long, value_name = "HOSTS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic of ECS events (JSON object per message). Repeatable.
    #[arg(long = "topic", value_name = "TOPIC", required = true)]
    pub topics: Vec<String>,
    /// Consumer group: members of one group split the topics' partitions between them.
    #[arg(long, value_name = "GROUP", default_value = "imdsguard")]
    pub group: String,
    #[command(flatten)]
    pub rule_opts: crate::load::RuleOpts,
    #[command(flatten)]
    pub exceptions: crate::exceptions::ExceptionOpts,
    #[command(flatten)]
    pub fields: FieldOpts,
    /// The embedded store (SQLite, WAL) to write alerts to; `imdsguard serve --alerts-db FILE`
    /// serves the same file.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// The event field producers use as the message key (so one key's events, and its rule
    /// state, stay in one partition). Messages whose key differs are counted.
    #[arg(long, value_name = "FIELD", default_value = "host.id")]
    pub key_field: String,
    /// Also produce each alert (keyed by its id) to this Kafka topic, acks=all.
    #[arg(long, value_name = "TOPIC")]
    pub alerts_topic: Option<String>,
    /// Also write alerts to this Elasticsearch/OpenSearch cluster with `_bulk` `create` (id = alert id).
    #[arg(long, value_name = "URL")]
    pub alerts_es: Option<String>,
    /// Index (or alias) for --alerts-es.
    #[arg(long, value_name = "INDEX", default_value = DEFAULT_ES_INDEX)]
    pub alerts_es_index: String,
    /// File holding the API key for --alerts-es (sent as `Authorization: ApiKey <key>`).
    #[arg(long, value_name = "FILE")]
    pub alerts_es_api_key_file: Option<PathBuf>,
    /// Also append alerts to this NDJSON file (fsynced per batch).
    #[arg(long, value_name = "FILE")]
    pub alerts_ndjson: Option<PathBuf>,
    /// Most messages in one batch.
    #[arg(long, value_name = "N", default_value_t = 5000)]
    pub batch_max: usize,
    /// Longest wait for a batch to fill, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub batch_ms: u64,
    /// Stop after this many messages (their batch is finished and committed).
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Stop when no message arrived for this many milliseconds after partitions were assigned.
    #[arg(long, value_name = "MS")]
    pub idle_exit_ms: Option<u64>,
    /// Compacted topic holding the per-partition rule state (default `<group>-imdsguard-state`).
    #[arg(long, value_name = "TOPIC")]
    pub changelog: Option<String>,
    /// Keep rule state in memory only (lost when partitions move to another member).
    #[arg(long, conflicts_with = "changelog")]
    pub no_changelog: bool,
    /// How each event's key, and so its alerts' ids, is made.
    #[arg(long, value_enum, default_value = "offset")]
    pub event_id: EventIdArg,
    /// librdkafka property for every Kafka client, e.g. `-X session.timeout.ms=10000`. Repeatable.
    #[arg(short = 'X', long = "kafka-option", value_name = "KEY=VALUE")]
    pub kafka_options: Vec<String>,
    /// Timeout of each produce flush, changelog restore and offset commit, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub io_timeout_ms: u64,
    /// Cap on the events a sequence rule keeps per batch and partition.
    #[arg(long, value_name = "N", default_value_t = imdsguard_engine::hunt::DEFAULT_MAX_SEQUENCE_EVENTS)]
    pub max_sequence_events: usize,
    /// Print the final counters as one JSON object on stdout.
    #[arg(long)]
    pub stats_json: bool,
    /// Malformed messages reported one by one (the rest are counted).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub report_max: u64,
}

pub fn run(args: ConsumeArgs) -> anyhow::Result<ExitCode> {
    let now = now_millis(None)?;
    let table = field_table(&args.fields)?;
    let (rules, load_errors) = args.rule_opts.load()?;
    for e in &load_errors {
        eprint!("{}", render_load_error(e));
    }
    let (compiled, builtin, mut failed) = compile_all(rules, &table, now);
    let (exception_set, value_lists, problems) = crate::exceptions::load(&args.exceptions)?;
    for p in &problems {
        eprintln!("{p}");
    }
    let (compiled, builtin, _notes) = crate::exceptions::apply(compiled, builtin, &exception_set, &value_lists, &table, now, &mut failed);
    for (reason, ids) in &failed {
        eprintln!("{} rule(s) not run: {reason}", ids.len());
    }
    if compiled.is_empty() {
        anyhow::bail!("no runnable rules");
    }
    let overrides = args
        .kafka_options
        .iter()
        .map(|s| imdsguard_kafka::kafka::parse_override(s).map_err(|e| anyhow::anyhow!("-X {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let io_timeout = Duration::from_millis(args.io_timeout_ms.max(1));
    if let Some(t) = &args.alerts_topic {
        if args.topics.contains(t) {
            anyhow::bail!("--alerts-topic {t} is also an input --topic: alerts would be consumed as events");
        }
    }
    let changelog = (!args.no_changelog).then(|| args.changelog.clone().unwrap_or_else(|| ConsumeConfig::default_changelog(&args.group)));
    if let Some(c) = &changelog {
        if args.topics.contains(c) || args.alerts_topic.as_ref() == Some(c) {
            anyhow::bail!("the changelog topic {c} must be neither an input topic nor the alerts topic");
        }
    }

    // Producer settings: only the properties that make sense for a producer are passed on.
    let producer_overrides: Vec<(String, String)> =
        overrides.iter().filter(|(k, _)| !k.starts_with("fetch.") && !k.starts_with("session.") && !k.starts_with("group.") && !k.starts_with("auto.") && !k.starts_with("enable.auto") && !k.starts_with("partition.assignment") && !k.starts_with("max.poll") && !k.starts_with("heartbeat.")).cloned().collect();
    let producer = if changelog.is_some() || args.alerts_topic.is_some() {
        Some(Arc::new(imdsguard_kafka::kafka::Producer::new(&args.brokers, &producer_overrides).map_err(|e| anyhow::anyhow!(e))?))
    } else {
        None
    };
    let mut sinks: Vec<Box<dyn AlertSink>> = Vec::new();
    if let Some(p) = &args.state {
        sinks.push(Box::new(StoreSink::open(p).map_err(|e| anyhow::anyhow!(e))?));
    }
    if let Some(p) = &args.alerts_ndjson {
        sinks.push(Box::new(NdjsonSink::open(p).map_err(|e| anyhow::anyhow!(e))?));
    }
    if let (Some(t), Some(p)) = (&args.alerts_topic, &producer) {
        sinks.push(Box::new(KafkaSink::new(p.clone(), t, io_timeout)));
    }
    if let Some(url) = &args.alerts_es {
        let key = match &args.alerts_es_api_key_file {
            Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?.trim().to_string()),
            None => None,
        };
        sinks.push(Box::new(EsSink::new(url, &args.alerts_es_index, key.as_deref()).map_err(|e| anyhow::anyhow!(e))?));
    }
    if sinks.is_empty() {
        anyhow::bail!("no alert sink: give --state FILE, --alerts-ndjson FILE, --alerts-topic TOPIC and/or --alerts-es URL");
    }
    let stop = Arc::new(AtomicBool::new(false));
    crate::signals::spawn_signal_thread(stop.clone())?;
    let cfg = ConsumeConfig {
        brokers: args.brokers.clone(),
        topics: args.topics.clone(),
        group: args.group.clone(),
        overrides,
        key_field: args.key_field.clone(),
        batch_max: args.batch_max,
        batch_ms: args.batch_ms,
        max_messages: args.max_messages,
        idle_exit_ms: args.idle_exit_ms,
        changelog: changelog.clone(),
        event_id: match args.event_id {
            EventIdArg::Offset => EventId::Offset,
            EventIdArg::Hash => EventId::Hash,
        },
        rules: compiled,
        builtin,
        max_sequence_events: args.max_sequence_events,
        io_timeout,
        stop,
    };
    eprintln!(
        "imdsguard consume: group {} on {} at {}, {} rule(s), state changelog {}",
        args.group,
        args.topics.join(", "),
        args.brokers,
        cfg.rules.len(),
        changelog.as_deref().unwrap_or("(none: in memory)")
    );
    let mut malformed_shown = 0u64;
    let report_max = args.report_max;
    let mut notify = |n: Notice| match n {
        Notice::Malformed(m) => {
            malformed_shown += 1;
            if malformed_shown <= report_max {
                eprintln!("malformed message {m} (skipped; offset committed)");
            }
        }
        Notice::Assigned(tps) => eprintln!("assigned {}", tps.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")),
        Notice::Revoked(tps) => eprintln!("revoked {}", tps.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")),
        Notice::Restored { partitions, records, millis } => {
            eprintln!("restored the state of {partitions} partition(s) from {records} changelog record(s) in {millis} ms")
        }
        Notice::ClientError(e) => eprintln!("kafka: {e}"),
        Notice::StartGap { tp, committed, fetched } => {
            eprintln!("start gap on {tp}: the broker's fetch began at offset {fetched}, beyond the committed offset {committed}; seeking back")
        }
        Notice::CommitFailed(e) => eprintln!("offset commit failed: {e}"),
        Notice::KeyMismatch { topic, partition, offset, key, field } => eprintln!(
            "key mismatch {topic}/{partition}@{offset}: message key {key:?} but {} is {field:?} (state is kept per partition)",
            args.key_field
        ),
    };
    let result = imdsguard_kafka::run(&cfg, sinks, producer, &mut notify);
    match result {
        Ok(stats) => {
            if malformed_shown > report_max {
                eprintln!("... and {} more malformed message(s)", malformed_shown - report_max);
            }
            print_stats(&stats);
            if args.stats_json {
                println!("{}", serde_json::to_string(&stats)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(anyhow::anyhow!("{e} (offsets of the failed batch not committed: it will be consumed again)")),
    }
}

fn print_stats(s: &ConsumeStats) {
    let sinks: Vec<String> = s.sinks.iter().map(|k| format!("{}: {} new, {} duplicate", k.name, k.new, k.duplicates)).collect();
    eprintln!("---");
    eprintln!(
        "consumed {} message(s) ({} bytes) in {:.1} s; {:.0} msg/s from the first message to the last commit ({:.1} s): {} evaluated, {} skipped by the prefilter, {} malformed",
        s.messages,
        s.bytes,
        s.elapsed_ms as f64 / 1000.0,
        s.events_per_sec(),
        s.consume_ms as f64 / 1000.0,
        s.events_evaluated,
        s.events_prefiltered,
        s.malformed
    );
    eprintln!("{} alert(s) ({})", s.alerts, sinks.join("; "));
    eprintln!(
        "{} batch(es), {} offset commit(s), {} commit failure(s); {} assignment(s), {} revocation(s), {} uncommitted message(s) dropped on revocation, {} start gap(s) repaired",
        s.batches, s.commits, s.commit_failures, s.assignments, s.revocations, s.messages_dropped_on_revoke, s.start_gaps_repaired
    );
    eprintln!(
        "state: {} changelog record(s) restored, {} written; keys: {} message(s) without a key, {} whose key is not the key field",
        s.state_restored_records, s.changelog_records, s.key_missing, s.key_mismatch
    );
}
