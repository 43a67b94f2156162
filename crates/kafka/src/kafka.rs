//! Thin wrappers over rdkafka: a producer whose sends are checked delivery by delivery, topic
//! creation through the admin API, reading a topic's partitions to their end (the changelog
//! restore), and the client configuration shared by all of them.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Client settings: `bootstrap.servers` plus any `KEY=VALUE` overrides (`-X`).
pub fn client_config(brokers: &str, overrides: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in overrides {
        c.set(k, v);
    }
    c
}

/// Parse `KEY=VALUE`.
pub fn parse_override(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE (a librdkafka property)")),
    }
}

/// Counts delivery reports of one producer.
#[derive(Default)]
pub struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, m)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut f) = self.first_error.lock() {
                    f.get_or_insert_with(|| format!("{}/{}: {e}", m.topic(), m.partition()));
                }
            }
        }
    }
}

/// A producer with `acks=all`; [`Producer::send_all`] returns once every record is acknowledged.
pub struct Producer {
    inner: BaseProducer<Deliveries>,
    lock: Mutex<()>,
}

impl Producer {
    pub fn new(brokers: &str, overrides: &[(String, String)]) -> Result<Producer, String> {
        let mut c = client_config(brokers, &[]);
        c.set("acks", "all").set("linger.ms", "5").set("message.timeout.ms", "30000").set("enable.idempotence", "false");
        for (k, v) in overrides {
            c.set(k, v);
        }
        let inner: BaseProducer<Deliveries> =
            c.create_with_context(Deliveries::default()).map_err(|e| format!("cannot create a Kafka producer for {brokers}: {e}"))?;
        Ok(Producer { inner, lock: Mutex::new(()) })
    }

    /// Produce `(key, value)` records to `topic` (to `partition`, or by key) and wait until all
    /// are acknowledged (`acks=all`) or `timeout` passes. `Err` when any delivery failed.
    pub fn send_all(&self, topic: &str, partition: Option<i32>, records: &[(Vec<u8>, Vec<u8>)], timeout: Duration) -> Result<(), String> {
        let with: Vec<(Option<i32>, &[u8], &[u8])> = records.iter().map(|(k, v)| (partition, &k[..], &v[..])).collect();
        self.send_partitioned(topic, &with, timeout)
    }

    /// [`Producer::send_all`] with a partition per record (`None`: by key); one flush for all.
    pub fn send_partitioned(&self, topic: &str, records: &[(Option<i32>, &[u8], &[u8])], timeout: Duration) -> Result<(), String> {
        let _guard = self.lock.lock().map_err(|_| "producer lock poisoned".to_string())?;
        let ctx = self.inner.context();
        let failed0 = ctx.failed.load(Ordering::Relaxed);
        let ok0 = ctx.ok.load(Ordering::Relaxed);
        let deadline = Instant::now() + timeout;
        for (partition, k, v) in records {
            let mut rec = BaseRecord::to(topic).key(*k).payload(*v);
            if let Some(p) = *partition {
                rec = rec.partition(p);
            }
            loop {
                match self.inner.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        if Instant::now() > deadline {
                            return Err(format!("producer queue full for {timeout:?}"));
                        }
                        self.inner.poll(Duration::from_millis(50));
                        rec = r;
                    }
                    Err((e, _)) => return Err(format!("cannot produce to {topic}: {e}")),
                }
            }
        }
        // Wait for every delivery report. (rdkafka's `flush` polls in 100 ms slices that each run
        // to their end, which made every batch wait 100 ms; short polls return as soon as the
        // acknowledgements are in.)
        while self.inner.in_flight_count() > 0 {
            if Instant::now() > deadline {
                return Err(format!("{} record(s) to {topic} not acknowledged within {timeout:?}", self.inner.in_flight_count()));
            }
            self.inner.poll(Duration::from_millis(1));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.inner.flush(left).map_err(|e| format!("flush to {topic} did not finish within {timeout:?}: {e}"))?;
        let failed = ctx.failed.load(Ordering::Relaxed) - failed0;
        let ok = ctx.ok.load(Ordering::Relaxed) - ok0;
        if failed > 0 {
            let first = ctx.first_error.lock().ok().and_then(|mut f| f.take()).unwrap_or_default();
            return Err(format!("{failed} of {} records not delivered (first: {first})", records.len()));
        }
        if ok < records.len() as u64 {
            return Err(format!("only {ok} of {} records acknowledged", records.len()));
        }
        Ok(())
    }
}

/// Run a future to completion on this thread (rdkafka's admin futures are completed by its own
/// background thread, so no async runtime is needed). `None` when `timeout` passes first.
pub fn block_on<F: Future>(f: F, timeout: Duration) -> Option<F::Output> {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let deadline = Instant::now() + timeout;
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout((deadline - now).min(Duration::from_millis(100)));
    }
}

/// Create `topic` with `partitions` partitions and the given topic configs; an existing topic is
/// fine (`Ok(false)`).
pub fn create_topic(
    brokers: &str,
    overrides: &[(String, String)],
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
    timeout: Duration,
) -> Result<bool, String> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(brokers, overrides).create().map_err(|e| format!("cannot create a Kafka admin client for {brokers}: {e}"))?;
    let mut nt = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        nt = nt.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));
    let res = block_on(admin.create_topics([&nt], &opts), timeout + Duration::from_secs(5))
        .ok_or_else(|| format!("creating topic {topic} at {brokers}: no answer within {timeout:?}"))?
        .map_err(|e| format!("creating topic {topic} at {brokers}: {e}"))?;
    match res.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((t, e))) => Err(format!("creating topic {t} at {brokers}: {e}")),
        None => Err(format!("creating topic {topic} at {brokers}: empty answer")),
    }
}

/// Number of partitions of `topic` (`None` when the broker does not know it).
pub fn partition_count<C: rdkafka::consumer::ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, timeout: Duration) -> Result<Option<i32>, String> {
    let md = consumer.fetch_metadata(Some(topic), timeout).map_err(|e| format!("metadata of {topic}: {e}"))?;
    Ok(md.topics().iter().find(|t| t.name() == topic).filter(|t| t.error().is_none() && !t.partitions().is_empty()).map(|t| t.partitions().len() as i32))
}

/// Read `partitions` of `topic` from the beginning to their end, calling `each(partition, key,
/// value)` for every record. The end is where the fetches report end-of-partition (some brokers'
/// ListOffsets answers lag behind the log, so the watermarks alone are not trusted). Fails when
/// the end is not reached within `timeout`.
pub fn read_to_end(
    brokers: &str,
    overrides: &[(String, String)],
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
    mut each: impl FnMut(i32, Option<&[u8]>, Option<&[u8]>),
) -> Result<u64, String> {
    if partitions.is_empty() {
        return Ok(0);
    }
    let mut c = client_config(brokers, overrides);
    // A reader without a group: nothing is committed.
    c.set("enable.auto.commit", "false")
        .set("group.id", "imdsguard-changelog-reader")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10");
    let consumer: BaseConsumer<EofQuiet> = c.create_with_context(EofQuiet).map_err(|e| format!("cannot create a changelog reader: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).map_err(|e| e.to_string())?;
    }
    consumer.assign(&tpl).map_err(|e| format!("changelog {topic}: cannot assign: {e}"))?;
    let mut open: std::collections::BTreeSet<i32> = partitions.iter().copied().collect();
    let mut n = 0u64;
    // After every partition reported its end, keep reading until nothing more arrives for a
    // moment: a broker whose high watermark lags (tansu 0.6.0) reports the end too early and
    // still serves the records after it.
    let quiet = Duration::from_millis(500);
    let mut last_record = Instant::now();
    while !open.is_empty() || last_record.elapsed() < quiet {
        if Instant::now() > deadline {
            let left: Vec<String> = open.iter().map(|p| format!("{topic}/{p}")).collect();
            return Err(format!("changelog restore did not reach the end of {} within {timeout:?}", left.join(", ")));
        }
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => return Err(format!("changelog {topic}: {e}")),
            Some(Ok(m)) => {
                n += 1;
                last_record = Instant::now();
                each(m.partition(), m.key(), m.payload());
            }
        }
    }
    Ok(n)
}

/// The changelog reader's context: end-of-partition is what it waits for, not an error to log.
struct EofQuiet;

impl ClientContext for EofQuiet {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::PartitionEOF(_)) && !matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::PartitionEOF)) {
            tracing::warn!(target: "imdsguard_kafka", "changelog reader: {error}: {reason}");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EofQuiet {}

/// A partition (topic, number) and its committed offset, if any.
pub type Committed = ((String, i32), Option<i64>);

/// Committed offsets of `group` for `tps` (`None` for a partition without one).
pub fn committed<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tps: &[(String, i32)],
    timeout: Duration,
) -> Result<Vec<Committed>, String> {
    let mut tpl = TopicPartitionList::new();
    for (t, p) in tps {
        tpl.add_partition_offset(t, *p, Offset::Invalid).map_err(|e| e.to_string())?;
    }
    let r = consumer.committed_offsets(tpl, timeout).map_err(|e| format!("committed offsets: {e}"))?;
    Ok(r.elements()
        .iter()
        .map(|e| ((e.topic().to_string(), e.partition()), match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        }))
        .collect())
}
