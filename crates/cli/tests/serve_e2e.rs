//! `imdsguard serve` as a process: it prints its address, ingests a `_bulk` body, answers the
//! alerts API, and stops cleanly on SIGTERM (sent to its own PID).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

#[test]
fn serve_ingests_answers_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_imdsguard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--no-auth", "--alerts-db", ":memory:", "--state", ":memory:"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
    let addr: SocketAddr = line.trim().trim_start_matches("listening on http://").parse().expect("address line");
    let ev = r#"{"@timestamp":"2026-05-01T10:00:00Z","event":{"category":["process"],"type":["start"]},"process":{"name":"curl","command_line":"curl http://169.254.169.254/latest/meta-data/iam/security-credentials/"}}"#;
    let (st, _) = http(addr, "POST", "/_bulk", format!("{{\"create\":{{\"_index\":\"logs\"}}}}\n{ev}\n").as_bytes());
    assert_eq!(st, 200);
    let (st, body) = http(addr, "GET", "/api/alerts?size=5", b"");
    assert_eq!(st, 200);
    assert!(body.contains("\"total\":1"), "{body}");
    let killed = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    let _ = child.stderr.take().expect("stderr").read_to_string(&mut err);
    assert!(status.success(), "{status:?}: {err}");
    assert!(err.contains("stopped (in-flight batches finished)"), "{err}");
}
