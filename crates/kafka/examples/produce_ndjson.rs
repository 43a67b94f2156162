//! Produce an NDJSON file to a topic, one message per line, keyed by a field (default `host.id`),
//! creating the topic with the given partition count if it does not exist. For trying
//! `imdsguard consume` by hand:
//!
//! `cargo run -p imdsguard-kafka --example produce_ndjson -- BROKER TOPIC PARTITIONS FILE [KEY_FIELD]`

use imdsguard_kafka::kafka::{create_topic, Producer};
use std::time::Duration;

fn main() -> Result<(), String> {
    let a: Vec<String> = std::env::args().collect();
    let usage = "usage: produce_ndjson BROKER TOPIC PARTITIONS FILE [KEY_FIELD]";
    let (broker, topic, parts, file) = match &a[..] {
        [_, b, t, p, f, ..] => (b, t, p.parse::<i32>().map_err(|_| usage.to_string())?, f),
        _ => return Err(usage.into()),
    };
    let key_field = a.get(5).map(String::as_str).unwrap_or("host.id");
    if let Err(e) = create_topic(broker, &[], topic, parts, &[], Duration::from_secs(10)) {
        eprintln!("{e} (producing anyway: the topic may exist)");
    }
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    let mut records = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // The key: the field's value when the line is a JSON object that has it, else no key.
        let key = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| key_field.split('.').try_fold(v, |v, k| v.get(k).cloned()))
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        records.push((key.into_bytes(), line.as_bytes().to_vec()));
    }
    Producer::new(broker, &[])?.send_all(topic, None, &records, Duration::from_secs(120))?;
    println!("produced {} message(s) to {topic}", records.len());
    Ok(())
}
