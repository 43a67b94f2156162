//! The consumer-group loop behind `imdsguard consume`.
//!
//! A batch (up to `batch_max` messages or `batch_ms` of waiting) is evaluated partition by
//! partition: one [`Hunt`] per partition, with that partition's [`PartitionState`] as its history.
//! Then, in this order: the alerts go to every sink durably; the partitions' changed state goes to
//! the changelog topic (acknowledged by all replicas); only then are the batch's offsets committed,
//! synchronously. A crash anywhere before the commit makes the group redeliver the batch, and
//! since event keys (`topic/partition/offset`, or a hash of the bytes) and so alert ids are the
//! same, the sinks that can refuse a duplicate (the store, Elasticsearch `create`) keep one copy.
//!
//! Each partition's [`imdsguard_engine::StreamState`] (sequences assembled across batches,
//! threshold windows run once closed by event time, suppression and `max_signals` windows) is
//! carried from batch to batch and written to the changelog with the history, so the result does
//! not depend on where batches are cut, nor on which member processed which batch.
//!
//! Rebalances: partitions revoked from this member lose their uncommitted messages (the next
//! owner gets them again from the committed offset); partitions assigned to it get their state
//! read back from the changelog before any of their messages is evaluated.

use crate::kafka::{client_config, create_topic, partition_count, read_to_end, Producer};
use crate::sinks::{AlertSink, Written};
use crate::state::{changelog_key, changelog_value, decode, stream_key, PartitionState, Record, Tp};
use imdsguard_ecs::{Event, FieldPath, Provenance};
use imdsguard_engine::{CompiledRule, Hunt};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How an event's stable key (and so its alerts' ids) is derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventId {
    /// `topic/partition/offset`: exact, survives redelivery of the same record.
    Offset,
    /// A hash of the message bytes: the same event produced twice also makes the same alerts.
    Hash,
}

/// Everything `consume` needs.
pub struct ConsumeConfig {
    pub brokers: String,
    pub topics: Vec<String>,
    pub group: String,
    /// librdkafka properties for every client (`-X key=value`).
    pub overrides: Vec<(String, String)>,
    /// The field producers key messages by (default `host.id`); state is kept per partition.
    pub key_field: String,
    pub batch_max: usize,
    pub batch_ms: u64,
    /// Stop after this many messages (the batch holding the last one is finished and committed).
    pub max_messages: Option<u64>,
    /// Stop when no message arrived for this long (counted from the first assignment).
    pub idle_exit_ms: Option<u64>,
    /// The compacted changelog topic holding per-partition rule state; `None` keeps state in
    /// memory only (it is then lost when partitions move).
    pub changelog: Option<String>,
    pub event_id: EventId,
    pub rules: Vec<CompiledRule>,
    pub builtin: Vec<bool>,
    pub max_sequence_events: usize,
    /// Timeout of each produce flush, changelog restore and commit.
    pub io_timeout: Duration,
    /// Set by a signal handler: finish the batch, commit, return.
    pub stop: Arc<AtomicBool>,
}

impl ConsumeConfig {
    /// Default changelog topic name of a group.
    pub fn default_changelog(group: &str) -> String {
        format!("{group}-imdsguard-state")
    }
}

/// A message that could not be evaluated (its offset is still committed).
#[derive(Debug, Clone, Serialize)]
pub struct Malformed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}: {}", self.topic, self.partition, self.offset, self.reason)
    }
}

/// Things worth telling the operator while the loop runs.
#[derive(Debug, Clone)]
pub enum Notice {
    Malformed(Malformed),
    Assigned(Vec<Tp>),
    Revoked(Vec<Tp>),
    Restored { partitions: usize, records: u64, millis: u64 },
    /// A partition's fetch started beyond its committed offset; the consumer sought back.
    StartGap { tp: Tp, committed: i64, fetched: i64 },
    /// A recoverable client error (the loop continues).
    ClientError(String),
    /// An offset commit failed (the batch will be redelivered; its alerts are idempotent).
    CommitFailed(String),
    /// Messages whose key is not the event's `key_field` value (their state may sit in another
    /// partition than the key's other events).
    KeyMismatch { topic: String, partition: i32, offset: i64, key: String, field: String },
}

/// Per-sink counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SinkStats {
    pub name: String,
    pub new: u64,
    pub duplicates: u64,
}

/// Counters of a run (printed on stderr at exit).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConsumeStats {
    pub messages: u64,
    pub bytes: u64,
    pub events_evaluated: u64,
    pub events_prefiltered: u64,
    pub malformed: u64,
    /// Errors the client reported while polling (it retries by itself).
    pub client_errors: u64,
    pub key_missing: u64,
    pub key_mismatch: u64,
    pub alerts: u64,
    pub batches: u64,
    pub commits: u64,
    pub commit_failures: u64,
    pub assignments: u64,
    pub revocations: u64,
    pub messages_dropped_on_revoke: u64,
    /// Assigned partitions whose first fetched message lay beyond the committed offset (a broker
    /// answering with a wrong start position); the consumer seeks back to the committed offset.
    pub start_gaps_repaired: u64,
    pub state_restored_records: u64,
    pub changelog_records: u64,
    pub sinks: Vec<SinkStats>,
    /// Time spent evaluating rules (parse, match, finish, alert documents), writing the sinks,
    /// writing the changelog and committing offsets, in milliseconds.
    pub eval_ms: u64,
    pub sinks_ms: u64,
    pub changelog_ms: u64,
    pub commit_ms: u64,
    /// Wall time of the run (including joining the group).
    pub elapsed_ms: u64,
    /// From the first message received to the last batch committed.
    pub consume_ms: u64,
}

impl ConsumeStats {
    /// Messages per second from the first message to the last commit.
    pub fn events_per_sec(&self) -> f64 {
        if self.consume_ms == 0 {
            0.0
        } else {
            self.messages as f64 * 1000.0 / self.consume_ms as f64
        }
    }
}

enum RebalanceEvent {
    Assign(Vec<Tp>),
    Revoke(Vec<Tp>),
}

/// Records rebalances (they run inside `poll`); the loop acts on them right after.
struct GroupContext {
    events: Mutex<Vec<RebalanceEvent>>,
}

fn tps(list: &TopicPartitionList) -> Vec<Tp> {
    list.elements().iter().map(|e| Tp { topic: e.topic().to_string(), partition: e.partition() }).collect()
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            if let Ok(mut ev) = self.events.lock() {
                ev.push(RebalanceEvent::Revoke(tps(list)));
            }
        }
    }
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            if let Ok(mut ev) = self.events.lock() {
                ev.push(RebalanceEvent::Assign(tps(list)));
            }
        }
    }
}

/// Changelog records (key, value) bound for one changelog partition.
type Records = Vec<(Vec<u8>, Vec<u8>)>;

struct Msg {
    tp: Tp,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
}

/// Whether raw bytes look like one JSON object (such lines may be prefiltered; anything else is
/// always parsed, so that a malformed message is always reported).
fn looks_like_object(raw: &[u8]) -> bool {
    let t = raw.trim_ascii();
    t.first() == Some(&b'{') && t.last() == Some(&b'}')
}

struct Runner<'a> {
    cfg: &'a ConsumeConfig,
    notify: &'a mut dyn FnMut(Notice),
    sinks: Vec<Box<dyn AlertSink>>,
    producer: Option<Arc<Producer>>,
    changelog_partitions: i32,
    states: HashMap<Tp, PartitionState>,
    stats: ConsumeStats,
    key_path: FieldPath,
    now: fn() -> i64,
}

fn wall_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Run the loop until `stop`, `max_messages` or `idle_exit_ms`; `Err` on a failure that must not
/// be committed past (a sink, the changelog), after which the group redelivers the batch.
pub fn run(
    cfg: &ConsumeConfig,
    sinks: Vec<Box<dyn AlertSink>>,
    producer: Option<Arc<Producer>>,
    notify: &mut dyn FnMut(Notice),
) -> Result<ConsumeStats, String> {
    let started = Instant::now();
    let mut c = client_config(&cfg.brokers, &[]);
    c.set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Default fetch settings read ~20k messages/s from some brokers; 10 ms keeps batches full.
        .set("fetch.wait.max.ms", "10");
    for (k, v) in &cfg.overrides {
        c.set(k, v);
    }
    let consumer: BaseConsumer<GroupContext> = c
        .create_with_context(GroupContext { events: Mutex::new(Vec::new()) })
        .map_err(|e| format!("cannot create a Kafka consumer for {}: {e}", cfg.brokers))?;
    let mut changelog_partitions = 1;
    if let Some(topic) = &cfg.changelog {
        let mut n = 1;
        for t in &cfg.topics {
            if let Ok(Some(p)) = partition_count(&consumer, t, cfg.io_timeout) {
                n = n.max(p);
            }
        }
        changelog_partitions = match partition_count(&consumer, topic, cfg.io_timeout)? {
            Some(p) => p,
            None => {
                create_topic(&cfg.brokers, &cfg.overrides, topic, n, &[("cleanup.policy", "compact")], cfg.io_timeout)?;
                partition_count(&consumer, topic, cfg.io_timeout)?.unwrap_or(n)
            }
        }
        .max(1);
    }
    let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(|e| format!("cannot subscribe to {}: {e}", cfg.topics.join(", ")))?;
    let mut r = Runner {
        cfg,
        notify,
        stats: ConsumeStats { sinks: sinks.iter().map(|s| SinkStats { name: s.name().to_string(), ..SinkStats::default() }).collect(), ..ConsumeStats::default() },
        sinks,
        producer,
        changelog_partitions,
        states: HashMap::new(),
        key_path: FieldPath::new(&cfg.key_field),
        now: wall_millis,
    };
    let mut batch: Vec<Msg> = Vec::new();
    let mut batch_started = Instant::now();
    let mut last_activity: Option<Instant> = None;
    let mut first_message: Option<Instant> = None;
    // Where each newly assigned partition must start: its committed offset (or its first offset).
    let mut expected_start: HashMap<Tp, i64> = HashMap::new();
    loop {
        let stopping = cfg.stop.load(Ordering::Relaxed);
        let limit_reached = cfg.max_messages.is_some_and(|m| r.stats.messages >= m);
        let wait = if batch.is_empty() {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(cfg.batch_ms).saturating_sub(batch_started.elapsed()).min(Duration::from_millis(100))
        };
        // A message a poll returns comes after the rebalances that poll ran (their callbacks run
        // inside it): apply those first, then add the message, so a revocation never drops a
        // message of the new assignment.
        let mut received = None;
        if !stopping && !limit_reached {
            match consumer.poll(wait) {
                None => {}
                Some(Err(e)) => {
                    r.stats.client_errors += 1;
                    if r.stats.client_errors <= 20 || r.stats.client_errors.is_multiple_of(1000) {
                        (r.notify)(Notice::ClientError(format!("{e} ({} so far)", r.stats.client_errors)));
                    }
                }
                Some(Ok(m)) => {
                    r.stats.messages += 1;
                    r.stats.bytes += m.payload_len() as u64;
                    received = Some(Msg {
                        tp: Tp { topic: m.topic().to_string(), partition: m.partition() },
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec),
                    });
                }
            }
        }
        // Rebalances seen during that poll.
        let events = consumer.context().events.lock().map(|mut e| std::mem::take(&mut *e)).unwrap_or_default();
        for ev in events {
            match ev {
                RebalanceEvent::Revoke(list) => {
                    r.stats.revocations += 1;
                    let before = batch.len();
                    batch.retain(|m| !list.contains(&m.tp));
                    r.stats.messages_dropped_on_revoke += (before - batch.len()) as u64;
                    for tp in &list {
                        r.states.remove(tp);
                    }
                    (r.notify)(Notice::Revoked(list));
                }
                RebalanceEvent::Assign(list) => {
                    r.stats.assignments += 1;
                    last_activity = Some(Instant::now());
                    // Every newly assigned partition's state is read back from the changelog, even
                    // one this member held before the rebalance: another member may have owned
                    // it in between (a broker can hand a partition out twice), and what this
                    // member committed is in the changelog anyway.
                    r.restore(&list)?;
                    expected_start.clear();
                    let pairs: Vec<(String, i32)> = list.iter().map(|tp| (tp.topic.clone(), tp.partition)).collect();
                    match crate::kafka::committed(&consumer, &pairs, cfg.io_timeout) {
                        Ok(c) => {
                            for ((topic, partition), off) in c {
                                let start = match off {
                                    Some(o) => Some(o),
                                    None => consumer.fetch_watermarks(&topic, partition, cfg.io_timeout).ok().map(|(lo, _)| lo),
                                };
                                tracing::debug!(target: "imdsguard_kafka", "assigned {topic}/{partition}: committed {off:?}, start {start:?}");
                                if let Some(o) = start {
                                    expected_start.insert(Tp { topic, partition }, o);
                                }
                            }
                        }
                        Err(e) => (r.notify)(Notice::ClientError(e)),
                    }
                    (r.notify)(Notice::Assigned(list));
                }
            }
        }
        // The first message of a newly assigned partition must not lie beyond its committed
        // offset: if it does, the messages in between would never be evaluated, so seek back.
        let received = match received {
            Some(m) => match expected_start.remove(&m.tp) {
                Some(exp) if m.offset > exp => {
                    r.stats.messages -= 1;
                    r.stats.start_gaps_repaired += 1;
                    (r.notify)(Notice::StartGap { tp: m.tp.clone(), committed: exp, fetched: m.offset });
                    consumer
                        .seek(&m.tp.topic, m.tp.partition, Offset::Offset(exp), cfg.io_timeout)
                        .map_err(|e| format!("cannot seek {} back to its committed offset {exp}: {e}", m.tp))?;
                    expected_start.insert(m.tp.clone(), exp);
                    None
                }
                _ => Some(m),
            },
            None => None,
        };
        if let Some(m) = received {
            if batch.is_empty() {
                batch_started = Instant::now();
            }
            first_message.get_or_insert(batch_started);
            last_activity = Some(Instant::now());
            batch.push(m);
        }
        let full = batch.len() >= cfg.batch_max.max(1);
        let due = !batch.is_empty() && batch_started.elapsed() >= Duration::from_millis(cfg.batch_ms);
        let finishing = stopping || cfg.max_messages.is_some_and(|m| r.stats.messages >= m);
        if full || due || (finishing && !batch.is_empty()) {
            let b = std::mem::take(&mut batch);
            r.process(&consumer, b)?;
            if let Some(f) = first_message {
                r.stats.consume_ms = f.elapsed().as_millis() as u64;
            }
        }
        if finishing && batch.is_empty() {
            break;
        }
        if let (Some(idle), Some(last)) = (cfg.idle_exit_ms, last_activity) {
            if batch.is_empty() && last.elapsed() >= Duration::from_millis(idle) {
                break;
            }
        }
    }
    drop(consumer);
    r.stats.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(r.stats)
}

impl Runner<'_> {
    /// Read the changelog back for partitions this member does not hold state for.
    fn restore(&mut self, need: &[Tp]) -> Result<(), String> {
        let need: Vec<Tp> = need.iter().filter(|tp| !self.states.contains_key(*tp)).cloned().collect();
        if need.is_empty() {
            return Ok(());
        }
        for tp in &need {
            self.states.insert(tp.clone(), PartitionState::default());
        }
        let Some(topic) = self.cfg.changelog.clone() else { return Ok(()) };
        let t0 = Instant::now();
        let parts: BTreeSet<i32> = need.iter().map(|tp| tp.partition.rem_euclid(self.changelog_partitions)).collect();
        let parts: Vec<i32> = parts.into_iter().collect();
        let wanted: BTreeSet<&Tp> = need.iter().collect();
        let states = &mut self.states;
        let mut damaged = Vec::new();
        let records = read_to_end(&self.cfg.brokers, &self.cfg.overrides, &topic, &parts, self.cfg.io_timeout, |p, k, v| {
            let Some(k) = k else { return };
            match decode(k, v) {
                Ok(Record::Entry { tp, namespace, tuple, seen }) => {
                    if wanted.contains(&tp) {
                        if let Some(s) = states.get_mut(&tp) {
                            s.restore(&namespace, &tuple, seen);
                        }
                    }
                }
                Ok(Record::Stream { tp, state }) => {
                    if wanted.contains(&tp) {
                        if let Some(s) = states.get_mut(&tp) {
                            if let Err(e) = s.restore_stream(&state) {
                                damaged.push(format!("changelog {topic}/{p}: {tp}: {e} (its sequences and windows start empty)"));
                            }
                        }
                    }
                }
                Err(e) => damaged.push(format!("changelog {topic}/{p}: {e}")),
            }
        })?;
        for d in damaged {
            (self.notify)(Notice::ClientError(d));
        }
        self.stats.state_restored_records += records;
        (self.notify)(Notice::Restored { partitions: need.len(), records, millis: t0.elapsed().as_millis() as u64 });
        Ok(())
    }

    fn event_key(&self, m: &Msg) -> String {
        match self.cfg.event_id {
            EventId::Offset => format!("{}/{}/{}", m.tp.topic, m.tp.partition, m.offset),
            EventId::Hash => {
                let raw = m.payload.as_deref().unwrap_or(b"");
                Sha256::digest(raw).iter().take(16).map(|b| format!("{b:02x}")).collect()
            }
        }
    }

    fn check_key(&mut self, m: &Msg, doc: &sonic_rs::Value) {
        use imdsguard_ecs::Document;
        let Some(key) = m.key.as_deref() else {
            self.stats.key_missing += 1;
            return;
        };
        let mut value = None;
        doc.any_value(&self.key_path, &mut |v| {
            value = Some(v.as_keyword().into_owned());
            true
        });
        if let Some(v) = value {
            if v.as_bytes() != key {
                self.stats.key_mismatch += 1;
                if self.stats.key_mismatch <= 10 {
                    (self.notify)(Notice::KeyMismatch {
                        topic: m.tp.topic.clone(),
                        partition: m.tp.partition,
                        offset: m.offset,
                        key: String::from_utf8_lossy(key).into_owned(),
                        field: v,
                    });
                }
            }
        }
    }

    fn malformed(&mut self, m: &Msg, reason: String) {
        self.stats.malformed += 1;
        (self.notify)(Notice::Malformed(Malformed { topic: m.tp.topic.clone(), partition: m.tp.partition, offset: m.offset, reason }));
    }

    fn process<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, batch: Vec<Msg>) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        self.stats.batches += 1;
        let mut by_tp: BTreeMap<Tp, Vec<Msg>> = BTreeMap::new();
        for m in batch {
            by_tp.entry(m.tp.clone()).or_default().push(m);
        }
        let missing: Vec<Tp> = by_tp.keys().filter(|tp| !self.states.contains_key(*tp)).cloned().collect();
        self.restore(&missing)?;
        let now = (self.now)();
        let t_eval = Instant::now();
        let mut alerts = Vec::new();
        let mut next_offsets: Vec<(Tp, i64)> = Vec::new();
        let mut failure = None;
        for (tp, msgs) in &by_tp {
            next_offsets.push((tp.clone(), msgs.iter().map(|m| m.offset).max().unwrap_or(0) + 1));
            if self.cfg.rules.is_empty() {
                continue;
            }
            let mut hunt = Hunt::new(self.cfg.rules.clone());
            hunt.set_max_sequence_events(self.cfg.max_sequence_events);
            let origin: Arc<str> = Arc::from(format!("kafka:{tp}"));
            for m in msgs {
                let Some(raw) = m.payload.as_deref() else {
                    self.malformed(m, "the message has no value".into());
                    continue;
                };
                if looks_like_object(raw) && !hunt.is_candidate(raw) {
                    continue;
                }
                match sonic_rs::from_slice::<sonic_rs::Value>(raw) {
                    Ok(doc) if sonic_rs::JsonValueTrait::is_object(&doc) => {
                        self.check_key(m, &doc);
                        let event = Event {
                            doc: Arc::new(doc),
                            provenance: Provenance { origin: origin.clone(), line: m.offset.max(0) as u64 + 1 },
                            key: self.event_key(m),
                            index: Some(tp.topic.clone()),
                        };
                        hunt.evaluate(&event);
                    }
                    Ok(_) => self.malformed(m, "the value is JSON but not an object".into()),
                    Err(e) => self.malformed(m, format!("the value is not JSON: {}", e.to_string().lines().next().unwrap_or(""))),
                }
            }
            let Some(state) = self.states.get_mut(tp) else { continue };
            // Sequences, threshold windows, suppression and max_signals continue from the last
            // committed batch; the new state is kept aside until this batch commits.
            let mut stream = state.stream.clone();
            let result = hunt.finish_stream(state, &mut stream);
            state.stream_pending = Some(stream);
            match result {
                Ok((matches, hstats, rules)) => {
                    self.stats.events_evaluated += hstats.evaluated;
                    self.stats.events_prefiltered += hstats.prefiltered;
                    for m in &matches {
                        let builtin = self.cfg.builtin.get(m.rule).copied().unwrap_or(false);
                        alerts.push(imdsguard_alerts::alert_for_match(m, &rules[m.rule].rule, builtin, now).0);
                    }
                }
                Err(e) => {
                    failure = Some(format!("rule state of {tp}: {e}"));
                    break;
                }
            }
        }
        self.stats.eval_ms += t_eval.elapsed().as_millis() as u64;
        let t_sinks = Instant::now();
        if failure.is_none() {
            // 1. Alerts, durable in every sink.
            for (i, sink) in self.sinks.iter_mut().enumerate() {
                match sink.write(&alerts) {
                    Ok(Written { new, duplicates }) => {
                        self.stats.sinks[i].new += new;
                        self.stats.sinks[i].duplicates += duplicates;
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        if let Some(e) = failure {
            for tp in by_tp.keys() {
                if let Some(s) = self.states.get_mut(tp) {
                    s.rollback();
                }
            }
            return Err(e);
        }
        self.stats.alerts += alerts.len() as u64;
        self.stats.sinks_ms += t_sinks.elapsed().as_millis() as u64;
        let t_changelog = Instant::now();
        // 2. The partitions' changed state, acknowledged by the changelog topic.
        let mut per_part: BTreeMap<i32, Records> = BTreeMap::new();
        for tp in by_tp.keys() {
            if let Some(s) = self.states.get_mut(tp) {
                let part = per_part.entry(tp.partition.rem_euclid(self.changelog_partitions)).or_default();
                for ch in s.commit() {
                    part.push((changelog_key(tp, &ch.namespace, &ch.tuple), changelog_value(ch.seen)));
                }
                if let Some(v) = s.commit_stream() {
                    part.push((stream_key(tp), v));
                }
            }
        }
        if let (Some(topic), Some(producer)) = (&self.cfg.changelog, &self.producer) {
            let records: Vec<(Option<i32>, &[u8], &[u8])> =
                per_part.iter().flat_map(|(p, recs)| recs.iter().map(move |(k, v)| (Some(*p), &k[..], &v[..]))).collect();
            if !records.is_empty() {
                self.stats.changelog_records += records.len() as u64;
                producer.send_partitioned(topic, &records, self.cfg.io_timeout).map_err(|e| format!("changelog {topic}: {e}"))?;
            }
        }
        self.stats.changelog_ms += t_changelog.elapsed().as_millis() as u64;
        let t_commit = Instant::now();
        // 3. Only now the offsets, synchronously.
        let mut tpl = TopicPartitionList::new();
        for (tp, next) in &next_offsets {
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*next)).map_err(|e| e.to_string())?;
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                self.stats.commits += 1;
                for (tp, msgs) in &by_tp {
                    let first = msgs.iter().map(|m| m.offset).min().unwrap_or(0);
                    let last = msgs.iter().map(|m| m.offset).max().unwrap_or(0);
                    tracing::debug!(target: "imdsguard_kafka", "committed {tp}: offsets {first}..={last} ({} messages)", msgs.len());
                }
            }
            Err(e) => {
                self.stats.commit_failures += 1;
                (self.notify)(Notice::CommitFailed(format!("{e} (the batch will be delivered again; its alerts keep their ids)")));
            }
        }
        self.stats.commit_ms += t_commit.elapsed().as_millis() as u64;
        Ok(())
    }
}
