//! Consume throughput against a running broker (loopback), with the built-in rules and the
//! embedded store sink, against a consume-and-commit-only baseline in the same run.
//!
//! `cargo run --release -p imdsguard-kafka --example consume_bench -- BROKER [EVENTS] [BATCH]`
//! (`scripts/bench-kafka.sh` starts a tansu broker and runs it). Bounded: EVENTS messages
//! (default 200,000, at most 2,000,000) and an idle exit of 10 s per run.

use imdsguard_kafka::kafka::{create_topic, Producer};
use imdsguard_kafka::sinks::{AlertSink, StoreSink};
use imdsguard_kafka::{ConsumeConfig, EventId};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn events(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let exes = [("curl", "/usr/bin/curl"), ("amazon-ssm-agent", "/usr/bin/amazon-ssm-agent"), ("python3", "/usr/bin/python3"), ("nginx", "/usr/sbin/nginx")];
    (0..n)
        .map(|i| {
            let h = i % 64;
            let (name, exe) = exes[(i / 64 + h) % exes.len()];
            // One event in four goes to the metadata service; the rest is ordinary traffic.
            let dest = if i % 4 == 0 { "169.254.169.254" } else { "10.20.30.40" };
            let secs = i / 64;
            let ev = format!(
                "{{\"@timestamp\":\"2026-05-01T{:02}:{:02}:{:02}.{:03}Z\",\"host\":{{\"name\":\"web-{h}\",\"id\":\"h-{h}\",\"os\":{{\"type\":\"linux\"}}}},\"event\":{{\"category\":[\"network\"],\"type\":[\"connection\",\"start\"]}},\"destination\":{{\"ip\":\"{dest}\",\"port\":80}},\"source\":{{\"ip\":\"10.0.1.{h}\",\"port\":{}}},\"process\":{{\"name\":\"{name}\",\"executable\":\"{exe}\",\"pid\":{}}}}}",
                (secs / 3600) % 24,
                (secs / 60) % 60,
                secs % 60,
                i % 1000,
                30000 + i % 30000,
                1000 + i % 5000
            );
            (format!("h-{h}").into_bytes(), ev.into_bytes())
        })
        .collect()
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let brokers = args.get(1).cloned().ok_or("usage: consume_bench BROKER [EVENTS] [BATCH]")?;
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200_000).min(2_000_000);
    let batch: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let topic = format!("bench-{}", std::process::id());
    create_topic(&brokers, &[], &topic, 4, &[], Duration::from_secs(30))?;
    let recs = events(n);
    let bytes: usize = recs.iter().map(|(_, v)| v.len()).sum();
    let t = Instant::now();
    let producer = Producer::new(&brokers, &[("linger.ms".into(), "20".into()), ("batch.num.messages".into(), "10000".into())])?;
    for chunk in recs.chunks(50_000) {
        producer.send_all(&topic, None, chunk, Duration::from_secs(120))?;
    }
    let produce_s = t.elapsed().as_secs_f64();
    println!("produced {n} events ({:.1} MB) to {topic} (4 partitions) in {produce_s:.2} s: {:.0} events/s", bytes as f64 / 1e6, n as f64 / produce_s);

    let rules: Vec<_> = imdsguard_rules::builtin()
        .rules
        .into_iter()
        .filter_map(|r| imdsguard_engine::compile_rule(Arc::new(r), &Arc::new(imdsguard_ecs::FieldTable::ecs()), 0).ok())
        .collect();
    let dir = std::env::temp_dir().join(format!("imdsguard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    for (label, with_rules) in [("consume + commit only (baseline)", false), ("builtin rules + store sink + changelog", true)] {
        let group = format!("bench-{}-{with_rules}", std::process::id());
        let cfg = ConsumeConfig {
            brokers: brokers.clone(),
            topics: vec![topic.clone()],
            group: group.clone(),
            overrides: Vec::new(),
            key_field: "host.id".into(),
            batch_max: batch,
            batch_ms: 200,
            max_messages: Some(n as u64),
            idle_exit_ms: Some(10_000),
            changelog: with_rules.then(|| ConsumeConfig::default_changelog(&group)),
            event_id: EventId::Offset,
            rules: if with_rules { rules.clone() } else { Vec::new() },
            builtin: vec![true; rules.len()],
            max_sequence_events: imdsguard_engine::hunt::DEFAULT_MAX_SEQUENCE_EVENTS,
            io_timeout: Duration::from_secs(60),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let sinks: Vec<Box<dyn AlertSink>> = if with_rules { vec![Box::new(StoreSink::open(&dir.join("alerts.db"))?)] } else { Vec::new() };
        let producer = with_rules.then(|| Producer::new(&brokers, &[]).map(Arc::new)).transpose()?;
        let mut notes = 0u64;
        let stats = imdsguard_kafka::run(&cfg, sinks, producer, &mut |_| notes += 1)?;
        // Throughput from the first assignment is what matters; the join takes a few seconds.
        println!(
            "{label}: {} messages in {:.2} s (first message to last commit) = {:.0} events/s [eval {} ms, sinks {} ms, changelog {} ms, commit {} ms]; {} evaluated, {} prefiltered, {} alerts, {} batches, {} changelog records",
            stats.messages,
            stats.consume_ms as f64 / 1000.0,
            stats.events_per_sec(),
            stats.eval_ms,
            stats.sinks_ms,
            stats.changelog_ms,
            stats.commit_ms,
            stats.events_evaluated,
            stats.events_prefiltered,
            stats.alerts,
            stats.batches,
            stats.changelog_records
        );
        results.push(stats);
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let [base, rules] = &results[..] {
        println!("rules cost: {:.1}% of the baseline's throughput", 100.0 * rules.events_per_sec() / base.events_per_sec().max(1.0));
    }
    Ok(())
}
