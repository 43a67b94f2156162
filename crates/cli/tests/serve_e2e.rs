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

/// The official Elasticsearch Python client (8.x) against the real binary: product check,
/// start-up index management, `helpers.bulk`, single documents; the alert is then in the API.
#[test]
fn the_official_python_client_talks_to_serve() {
    let probe = Command::new("python3").args(["-c", "import elasticsearch, sys; sys.exit(0 if elasticsearch.__version__[0] == 8 else 1)"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        let reason = "missing prerequisite: python3 with the `elasticsearch` 8.x client (run scripts/test-prereqs.sh)";
        if std::env::var("IMDSGUARD_ALLOW_SKIP").as_deref() == Ok("1") {
            eprintln!("SKIPPED the_official_python_client_talks_to_serve: {reason}");
            return;
        }
        panic!("{reason}");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_imdsguard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--no-auth", "--alerts-db", ":memory:", "--state", ":memory:"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
    let addr: SocketAddr = line.trim().trim_start_matches("listening on http://").parse().expect("address line");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/es_client_check.py");
    let out = Command::new("timeout").arg("60").arg("python3").arg(&script).arg(format!("http://{addr}")).output().expect("python3");
    let (st, alerts) = http(addr, "GET", "/api/alerts?rule_id=4e1e6d2a-9b1c-4c2e-8a7b-1d52a005e001", b"");
    let _ = child.kill();
    let _ = child.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "client failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(seen["version"], "8.17.0");
    assert_eq!(seen["template_before"], false);
    assert_eq!(seen["template_put"], true);
    assert_eq!(seen["template_after"], true);
    assert_eq!(seen["ilm_put"], true);
    assert_eq!(seen["pipeline_put"], true);
    assert_eq!(seen["bulk_ok"], 2, "{seen}");
    assert_eq!(seen["bulk_errors"], serde_json::json!([]));
    assert_eq!(seen["index_result"], "created");
    assert_eq!(st, 200);
    assert!(alerts.contains("\"total\":1") && alerts.contains("py-client-host"), "{alerts}");
}
