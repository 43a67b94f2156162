//! Load test for the metadata-service mock, loopback only and bounded in time and count.
//!
//! ```text
//! imdsguard imds-mock --listen 127.0.0.1:1338 --log /dev/null &
//! cargo run --release -p imdsguard-mock --example imds_mock_load -- --addr 127.0.0.1:1338
//! ```
//!
//! Without `--addr` the mock is started in this process. Each worker repeats a realistic mix, one
//! connection per request as real clients of a `Connection: close` service do: an IMDSv2 token PUT,
//! then GETs with the token (instance-id, the role listing, the role credentials), an IMDSv1 GET, a
//! GCP token and an Azure instance document. Any unexpected status or I/O error counts as an error.
//! Prints requests/s, latency percentiles and the error count (exit code 1 on errors).

use imdsguard_mock::{Background, Limits, MockConfig, Providers, RequestLog, Secrets, Settings, State, SystemClock};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX_REQUESTS: u64 = 2_000_000;
const MAX_SECONDS: u64 = 120;

struct Opts {
    addr: Option<SocketAddr>,
    requests: u64,
    seconds: u64,
    concurrency: usize,
    threads: usize,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts { addr: None, requests: 200_000, seconds: 10, concurrency: 32, threads: 2 };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--addr" => o.addr = Some(val()?.parse().map_err(|e| format!("--addr: {e}"))?),
            "--requests" => o.requests = val()?.parse().map_err(|e| format!("--requests: {e}"))?,
            "--seconds" => o.seconds = val()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--concurrency" => o.concurrency = val()?.parse().map_err(|e| format!("--concurrency: {e}"))?,
            "--threads" => o.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "-h" | "--help" => {
                return Err("usage: imds_mock_load [--addr 127.0.0.1:PORT] [--requests N] [--seconds S] [--concurrency C] [--threads T]".into())
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if let Some(a) = o.addr {
        if !a.ip().is_loopback() {
            return Err(format!("--addr {a}: the load test only targets loopback addresses"));
        }
    }
    o.requests = o.requests.clamp(1, MAX_REQUESTS);
    o.seconds = o.seconds.clamp(1, MAX_SECONDS);
    o.concurrency = o.concurrency.clamp(1, 256);
    Ok(o)
}

async fn request(addr: SocketAddr, req: &[u8], buf: &mut Vec<u8>) -> std::io::Result<u16> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(req).await?;
    buf.clear();
    s.read_to_end(buf).await?;
    let status = buf.get(9..12).and_then(|b| std::str::from_utf8(b).ok()).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(status)
}

fn body(buf: &[u8]) -> &[u8] {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| &buf[i + 4..]).unwrap_or(&[])
}

struct Totals {
    sent: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
}

async fn worker(addr: SocketAddr, totals: Arc<Totals>, budget: u64, deadline: Instant) -> Vec<u32> {
    let mut lat = Vec::with_capacity(4096);
    let mut buf = Vec::with_capacity(4096);
    let put = format!("PUT /latest/api/token HTTP/1.1\r\nHost: {addr}\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\n").into_bytes();
    let mut token = String::new();
    let mut step = 0usize;
    loop {
        if totals.stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            break;
        }
        if totals.sent.fetch_add(1, Ordering::Relaxed) >= budget {
            totals.stop.store(true, Ordering::Relaxed);
            break;
        }
        let kind = step % 7;
        let (req, want) = match kind {
            0 => (put.clone(), 200),
            1 => (format!("GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: {addr}\r\nX-aws-ec2-metadata-token: {token}\r\n\r\n").into_bytes(), 200),
            2 => (format!("GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: {addr}\r\nX-aws-ec2-metadata-token: {token}\r\n\r\n").into_bytes(), 200),
            3 => (
                format!("GET /latest/meta-data/iam/security-credentials/imdsguard-demo-role HTTP/1.1\r\nHost: {addr}\r\nX-aws-ec2-metadata-token: {token}\r\n\r\n")
                    .into_bytes(),
                200,
            ),
            4 => (format!("GET /latest/meta-data/local-ipv4 HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes(), 200),
            5 => (
                format!("GET /computeMetadata/v1/instance/service-accounts/default/token HTTP/1.1\r\nHost: {addr}\r\nMetadata-Flavor: Google\r\n\r\n").into_bytes(),
                200,
            ),
            _ => (format!("GET /metadata/instance?api-version=2021-02-01 HTTP/1.1\r\nHost: {addr}\r\nMetadata: true\r\n\r\n").into_bytes(), 200),
        };
        let t = Instant::now();
        match request(addr, &req, &mut buf).await {
            Ok(status) if status == want => {
                if kind == 0 {
                    token = String::from_utf8_lossy(body(&buf)).into_owned();
                }
            }
            Ok(status) => {
                if totals.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("unexpected status {status} for {}", String::from_utf8_lossy(&req).lines().next().unwrap_or(""));
                }
            }
            Err(e) => {
                if totals.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("I/O error: {e}");
                }
            }
        }
        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
        step += 1;
    }
    lat
}

fn main() -> std::process::ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let _in_process: Option<Background>;
    let addr = match o.addr {
        Some(a) => {
            _in_process = None;
            a
        }
        None => {
            let secrets = match Secrets::generate() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("no randomness: {e}");
                    return std::process::ExitCode::from(2);
                }
            };
            let state = Arc::new(State::new(MockConfig::default(), Settings::default(), Providers::ALL, secrets, Box::new(SystemClock)));
            let limits = Limits { max_connections: 1024, ..Limits::default() };
            match Background::start(&["127.0.0.1:0".parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))], state, RequestLog::sink(), limits, 1) {
                Ok(b) => {
                    let a = b.addr();
                    _in_process = Some(b);
                    a
                }
                Err(e) => {
                    eprintln!("cannot start the mock: {e}");
                    return std::process::ExitCode::from(2);
                }
            }
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(o.threads.max(1)).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let totals = Arc::new(Totals { sent: AtomicU64::new(0), errors: AtomicU64::new(0), stop: AtomicBool::new(false) });
    let start = Instant::now();
    let deadline = start + Duration::from_secs(o.seconds);
    let mut lat: Vec<u32> = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..o.concurrency {
            set.spawn(worker(addr, totals.clone(), o.requests, deadline));
        }
        let mut all = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(v) = r {
                all.extend(v);
            }
        }
        all
    });
    let elapsed = start.elapsed().as_secs_f64();
    let done = lat.len() as u64;
    let errors = totals.errors.load(Ordering::Relaxed);
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "imds-mock load: target {addr}{} · {done} requests in {elapsed:.2} s = {:.0} requests/s · concurrency {} · errors {errors} · latency p50 {} µs, p99 {} µs, max {} µs",
        if o.addr.is_none() { " (in-process)" } else { "" },
        done as f64 / elapsed,
        o.concurrency,
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(0)
    );
    if errors > 0 {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    }
}
