//! Load test of `_bulk` ingest on loopback (bounded in time and count): an in-process server
//! with the built-in rules and in-memory stores, C client threads each posting batches of B
//! events (1% metadata-service requests that alert) until T seconds or N requests have passed.
//! Prints sustained events/s and the p50/p99 request latency.
//!
//! `cargo run --release -p imdsguard-server --example ingest_load -- [CLIENTS] [BATCH] [SECONDS]`

use imdsguard_ecs::FieldTable;
use imdsguard_server::{start, ServerConfig};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn post(addr: SocketAddr, body: &[u8]) -> Result<u16, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    let head = format!("POST /_bulk HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out[..out.len().min(32)]);
    text.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| "no status".to_string())
}

fn batch(client: usize, n: usize, seq: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for i in 0..n {
        let k = seq * n + i;
        let (dst, name) = if k.is_multiple_of(100) { ("169.254.169.254", "curl") } else { ("10.1.2.3", "java") };
        b.extend_from_slice(
            format!(
                "{{\"create\":{{\"_index\":\"logs-endpoint.events.network-default\"}}}}\n{{\"@timestamp\":\"2026-05-01T10:00:{:02}Z\",\"host\":{{\"name\":\"web-{client}\",\"id\":\"h{client}\",\"os\":{{\"type\":\"linux\"}}}},\"event\":{{\"category\":[\"network\"],\"type\":[\"start\"]}},\"source\":{{\"ip\":\"10.0.0.{client}\",\"port\":{}}},\"destination\":{{\"ip\":\"{dst}\",\"port\":80}},\"process\":{{\"name\":\"{name}\",\"executable\":\"/usr/bin/{name}\",\"pid\":{}}}}}\n",
                k % 60,
                30000 + (k % 30000),
                1000 + k % 5000
            )
            .as_bytes(),
        );
    }
    b
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let clients = args.first().copied().unwrap_or(4);
    let batch_size = args.get(1).copied().unwrap_or(1000);
    let seconds = args.get(2).copied().unwrap_or(10).min(120);
    let max_requests = 100_000;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = rt
        .block_on(start(
            ServerConfig {
                listen: "127.0.0.1:0".parse().expect("addr"),
                api_key_hashes: vec![],
                no_auth: true,
                max_body_bytes: 256 * 1024 * 1024,
                max_inflight: clients.max(1),
                table: Arc::new(FieldTable::ecs()),
                rules: imdsguard_rules::builtin().rules.into_iter().map(|r| (r, true)).collect(),
                reload: None,
                alerts_db: None,
                state_db: None,
                tls: None,
            },
            async move {
                let _ = rx.await;
            },
        ))
        .expect("start");
    let addr = running.addr;
    let deadline = Instant::now() + Duration::from_secs(seconds as u64);
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let (mut ok, mut throttled, mut failed) = (0usize, 0usize, 0usize);
                let mut seq = 0;
                while Instant::now() < deadline && seq < max_requests / clients.max(1) {
                    let body = batch(c, batch_size, seq);
                    let t = Instant::now();
                    match post(addr, &body) {
                        Ok(200) => ok += 1,
                        Ok(429) => throttled += 1,
                        _ => failed += 1,
                    }
                    lat.push(t.elapsed().as_secs_f64());
                    seq += 1;
                }
                (lat, ok, throttled, failed)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let (mut ok, mut throttled, mut failed) = (0, 0, 0);
    for h in handles {
        let (l, o, t, f) = h.join().expect("client");
        lat.extend(l);
        ok += o;
        throttled += t;
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0.0) * 1000.0;
    println!(
        "{clients} clients x {batch_size}-event batches for {elapsed:.1} s: {ok} batches accepted ({} events, {:.0} events/s), {throttled} throttled (429), {failed} failed; latency p50 {:.1} ms, p99 {:.1} ms",
        ok * batch_size,
        (ok * batch_size) as f64 / elapsed,
        pct(0.5),
        pct(0.99)
    );
    let _ = tx.send(());
    let _ = rt.block_on(running.task);
}
