//! The request log: one JSON object per line for every request (time, peer, method, path,
//! provider, IMDS version, status, outcome, user agent), so tests and attack simulations can check
//! what a client did. Token values never appear in it (they travel in headers, which are not
//! logged; paths and queries carry none).

use crate::http::{ImdsVersion, Provider, Request, Response};
use serde::Serialize;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Longest path written to a log line (longer ones are cut, with `…`).
const MAX_LOGGED_PATH: usize = 2048;

/// One log line.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct LogLine {
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    pub method: String,
    pub path: String,
    pub provider: Provider,
    pub imds_version: ImdsVersion,
    pub status: u16,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The IP TTL / hop limit the response was sent with, when it was set (token PUTs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hop_limit: Option<u8>,
}

impl LogLine {
    pub fn new(now: chrono::DateTime<chrono::Utc>, req: Option<&Request>, resp: &Response, local: Option<SocketAddr>) -> LogLine {
        let cut = |s: &str| {
            if s.len() <= MAX_LOGGED_PATH {
                s.to_string()
            } else {
                let mut end = MAX_LOGGED_PATH;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}…", &s[..end])
            }
        };
        LogLine {
            timestamp: now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            peer: req.and_then(|r| r.peer).map(|p| p.to_string()),
            local: local.map(|l| l.to_string()),
            method: req.map(|r| cut(&r.method)).unwrap_or_default(),
            path: req.map(|r| cut(&r.target)).unwrap_or_default(),
            provider: resp.meta.provider,
            imds_version: resp.meta.imds_version,
            status: resp.status,
            outcome: resp.meta.outcome.to_string(),
            user_agent: req.and_then(|r| r.header("User-Agent")).map(cut),
            hop_limit: resp.hop_limit,
        }
    }
}

/// Where log lines go (stderr, a file, memory in tests). Each line is written and flushed whole.
#[derive(Clone)]
pub struct RequestLog {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestLog(..)")
    }
}

impl RequestLog {
    pub fn new(out: Box<dyn Write + Send>) -> RequestLog {
        RequestLog { out: Arc::new(Mutex::new(out)) }
    }

    pub fn stderr() -> RequestLog {
        RequestLog::new(Box::new(std::io::stderr()))
    }

    /// Discards every line (benchmarks).
    pub fn sink() -> RequestLog {
        RequestLog::new(Box::new(std::io::sink()))
    }

    /// Lines kept in memory; the returned buffer can be read while the server runs (tests).
    pub fn memory() -> (RequestLog, MemoryLog) {
        let buf = MemoryLog::default();
        (RequestLog::new(Box::new(buf.clone())), buf)
    }

    /// Writes one line; a failing log destination does not stop the server.
    pub fn write(&self, line: &LogLine) {
        let Ok(mut text) = serde_json::to_string(line) else { return };
        text.push('\n');
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
}

/// An in-memory log destination.
#[derive(Clone, Default, Debug)]
pub struct MemoryLog(Arc<Mutex<Vec<u8>>>);

impl MemoryLog {
    /// The lines written so far, parsed.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

impl Write for MemoryLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::handle;
    use crate::core::testutil::*;

    #[test]
    fn log_lines_carry_the_contract_fields_and_no_token() {
        let (st, _) = state();
        let (log, mem) = RequestLog::memory();
        let mut req = Request::new("PUT", "/latest/api/token").with_header("X-aws-ec2-metadata-token-ttl-seconds", "60").with_header("User-Agent", "curl/8");
        req.peer = "127.0.0.1:40000".parse().ok();
        let resp = handle(&st, &req);
        log.write(&LogLine::new(st.now(), Some(&req), &resp, None));
        let req2 = get("/latest/meta-data/").with_header("X-aws-ec2-metadata-token", &resp.body_str());
        log.write(&LogLine::new(st.now(), Some(&req2), &handle(&st, &req2), None));
        let lines = mem.lines();
        assert_eq!(lines.len(), 2);
        let l = &lines[0];
        assert_eq!(
            (l["method"].as_str(), l["path"].as_str(), l["provider"].as_str(), l["imds_version"].as_str(), l["status"].as_u64(), l["outcome"].as_str()),
            (Some("PUT"), Some("/latest/api/token"), Some("aws"), Some("v2"), Some(200), Some("token_issued"))
        );
        assert_eq!((l["peer"].as_str(), l["user_agent"].as_str(), l["hop_limit"].as_u64()), (Some("127.0.0.1:40000"), Some("curl/8"), Some(1)));
        assert_eq!(l["@timestamp"], "2026-01-01T00:00:00.000Z");
        assert_eq!((lines[1]["imds_version"].as_str(), lines[1]["status"].as_u64()), (Some("v2"), Some(200)));
        let raw = serde_json::to_string(&lines).unwrap_or_default();
        assert!(!raw.contains(&resp.body_str()), "the token is never logged");
    }
}
