//! librdkafka's in-process mock cluster, for trying `imdsguard consume` when no broker is at hand
//! (the tests use tansu, a real broker). Prints the bootstrap address and serves for SECONDS
//! (default 600), with the given topics created (`NAME:PARTITIONS`).
//!
//! `cargo run -p imdsguard-kafka --example mock_broker -- [SECONDS] [TOPIC:PARTITIONS...]`

fn main() -> Result<(), String> {
    let secs: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(600).min(3600);
    let cluster = rdkafka::mocking::MockCluster::new(1).map_err(|e| format!("mock cluster: {e}"))?;
    for spec in std::env::args().skip(2) {
        let (name, parts) = spec.split_once(':').ok_or(format!("{spec}: use TOPIC:PARTITIONS"))?;
        let parts: i32 = parts.parse().map_err(|_| format!("{spec}: PARTITIONS is a number"))?;
        cluster.create_topic(name, parts, 1).map_err(|e| format!("create {name}: {e}"))?;
    }
    println!("{}", cluster.bootstrap_servers());
    std::thread::sleep(std::time::Duration::from_secs(secs));
    Ok(())
}
