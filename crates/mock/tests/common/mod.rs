//! A minimal HTTP/1.1 client over `std::net::TcpStream` (the mock closes every connection after one
//! response, so a response is everything read until EOF), and a loopback mock per test.

#![allow(dead_code)]

use imdsguard_mock::{Background, Limits, ManualClock, MemoryLog, MockConfig, Providers, RequestLog, Secrets, Settings, State, SystemClock};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends raw bytes, reads until the server closes (bounded by a 5 s timeout).
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to the mock");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(bytes).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

pub fn parse(bytes: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no complete response: {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next();
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let reason = parts.next().unwrap_or("").to_string();
    let headers = lines.filter_map(|l| l.split_once(": ")).map(|(n, v)| (n.to_string(), v.to_string())).collect();
    Resp { status, reason, headers, body: body.to_string() }
}

pub fn send(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: imdsguard-test\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    parse(&raw(addr, req.as_bytes()))
}

pub fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Resp {
    send(addr, "GET", target, headers)
}

pub fn token(addr: SocketAddr, ttl: &str) -> String {
    let r = send(addr, "PUT", "/latest/api/token", &[("X-aws-ec2-metadata-token-ttl-seconds", ttl)]);
    assert_eq!(r.status, 200, "token PUT: {r:?}");
    r.body
}

pub struct Mock {
    pub server: Background,
    pub log: MemoryLog,
    pub clock: Option<ManualClock>,
}

impl Mock {
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn state(&self) -> &Arc<State> {
        self.server.state()
    }
}

/// A mock on an ephemeral loopback port with the real clock.
pub fn start(settings: Settings) -> Mock {
    start_with(settings, false, &["127.0.0.1:0"], Limits::default())
}

/// A mock whose clock only moves when the test says so.
pub fn start_manual(settings: Settings) -> Mock {
    start_with(settings, true, &["127.0.0.1:0"], Limits::default())
}

pub fn start_with(settings: Settings, manual: bool, listen: &[&str], limits: Limits) -> Mock {
    let secrets = Secrets::generate().expect("random secrets");
    let (clock, boxed): (Option<ManualClock>, Box<dyn imdsguard_mock::Clock>) = if manual {
        let c = ManualClock::at(chrono::Utc::now());
        (Some(c.clone()), Box::new(c))
    } else {
        (None, Box::new(SystemClock))
    };
    let state = Arc::new(State::new(MockConfig::default(), settings, Providers::ALL, secrets, boxed));
    let (log, mem) = RequestLog::memory();
    let addrs: Vec<SocketAddr> = listen.iter().map(|a| a.parse().expect("address")).collect();
    let server = Background::start(&addrs, state, log, limits, 2).expect("start the mock");
    Mock { server, log: mem, clock }
}

/// The brief's rule for missing prerequisites: fail with a clear message, or print SKIPPED and
/// return when IMDSGUARD_ALLOW_SKIP=1.
pub fn prerequisite_missing(test: &str, reason: &str) -> bool {
    if std::env::var("IMDSGUARD_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("SKIPPED {test}: {reason}");
        true
    } else {
        panic!("{test}: prerequisite missing: {reason} (set IMDSGUARD_ALLOW_SKIP=1 to skip)");
    }
}
