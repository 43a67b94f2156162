//! The server over real HTTP on loopback: a Filebeat-shaped `_bulk` body raises the seed rule's
//! alert, read back through the alerts API; authentication, size limits, per-item errors, the
//! workflow status, rules enable/disable, durability across a restart, and the OpenAPI document
//! against the routes actually served.

use imdsguard_ecs::FieldTable;
use imdsguard_server::{hash_key, start, ServerConfig};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "test-key-5f1c";
const SEED_002: &str = "4e1e6d2a-9b1c-4c2e-8a7b-1d52a005e001";

/// One HTTP/1.1 request (Connection: close); returns status and body. Bounded by timeouts.
fn http(addr: SocketAddr, method: &str, path: &str, key: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let auth = key.map(|k| format!("Authorization: ApiKey {k}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body_start = out.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(out.len());
    let mut body = out[body_start..].to_vec();
    if text.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        let (Some(chunk), Some(rest)) = (b.get(nl + 2..nl + 2 + n), b.get(nl + 4 + n..)) else { break };
        if n == 0 {
            break;
        }
        out.extend_from_slice(chunk);
        b = rest;
    }
    out
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

fn config(alerts_db: Option<std::path::PathBuf>) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        api_key_hashes: vec![hash_key(KEY)],
        no_auth: false,
        max_body_bytes: 64 * 1024,
        max_inflight: 4,
        table: Arc::new(FieldTable::ecs()),
        rules: imdsguard_rules::builtin().rules.into_iter().map(|r| (r, true)).collect(),
        reload: None,
        alerts_db,
        state_db: None,
        tls: None,
    }
}

/// Two events as Filebeat's Elasticsearch output sends them: `create` actions into a data stream.
fn filebeat_body() -> Vec<u8> {
    let ev = json!({"@timestamp": "2026-05-01T10:00:00.000Z", "agent": {"type": "filebeat", "version": "8.15.3"},
        "ecs": {"version": "8.0.0"}, "host": {"name": "web-1", "os": {"type": "linux"}},
        "event": {"category": ["process"], "type": ["start"]},
        "process": {"name": "curl", "pid": 4242, "command_line": "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                    "args": ["curl", "-s", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"]}});
    let benign = json!({"@timestamp": "2026-05-01T10:00:01.000Z", "host": {"name": "web-1"}, "message": "hello"});
    format!("{{\"create\":{{\"_index\":\"logs-generic-default\"}}}}\n{ev}\n{{\"create\":{{\"_index\":\"logs-generic-default\"}}}}\n{benign}\n").into_bytes()
}

async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filebeat_bulk_then_alerts_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("alerts.db");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = start(config(Some(db.clone())), async move {
        let _ = rx.await;
    })
    .await
    .expect("start");
    let addr = running.addr;
    let checks = run_blocking(move || {
        // The banner clients check.
        let (st, body) = http(addr, "GET", "/", Some(KEY), b"");
        assert_eq!(st, 200);
        assert_eq!(json_of(&body)["version"]["number"], imdsguard_server::ES_VERSION);
        // No key, a wrong key: 401.
        assert_eq!(http(addr, "GET", "/", None, b"").0, 401);
        assert_eq!(http(addr, "GET", "/api/alerts", Some("nope"), b"").0, 401);
        assert_eq!(http(addr, "GET", "/healthz", None, b"").0, 200, "liveness needs no key");
        // Ingest.
        let (st, body) = http(addr, "POST", "/_bulk", Some(KEY), &filebeat_body());
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        let r = json_of(&body);
        assert_eq!(r["errors"], false);
        assert_eq!(r["items"][0]["create"]["status"], 201);
        assert_eq!(r["items"][1]["create"]["_index"], "logs-generic-default");
        // The alert, through the API.
        let (st, body) = http(addr, "GET", &format!("/api/alerts?rule_id={SEED_002}"), Some(KEY), b"");
        assert_eq!(st, 200);
        let page = json_of(&body);
        assert_eq!(page["total"], 1, "{page}");
        let alert = &page["alerts"][0];
        assert_eq!(alert["process"]["name"], "curl");
        assert_eq!(alert["kibana.alert.workflow_status"], "open");
        let id = alert["kibana.alert.uuid"].as_str().expect("uuid").to_string();
        let (st, body) = http(addr, "GET", &format!("/api/alerts/{id}"), Some(KEY), b"");
        assert_eq!((st, json_of(&body)["kibana.alert.uuid"].clone()), (200, json!(id)));
        // Workflow status.
        let (st, _) = http(addr, "POST", &format!("/api/alerts/{id}/status"), Some(KEY), br#"{"status":"acknowledged"}"#);
        assert_eq!(st, 200);
        assert_eq!(http(addr, "POST", &format!("/api/alerts/{id}/status"), Some(KEY), br#"{"status":"done"}"#).0, 400);
        let (_, body) = http(addr, "GET", "/api/alerts?status=acknowledged", Some(KEY), b"");
        assert_eq!(json_of(&body)["total"], 1);
        // Redelivery of the same documents: the same alert ids, no duplicate.
        assert_eq!(http(addr, "POST", "/_bulk", Some(KEY), &filebeat_body()).0, 200);
        let (_, body) = http(addr, "GET", "/api/alerts", Some(KEY), b"");
        let total_after_redelivery = json_of(&body)["total"].clone();
        // Per-item errors: a broken source and a delete, alongside a good item.
        let mixed = b"{\"index\":{\"_index\":\"x\"}}\n{not json}\n{\"delete\":{\"_id\":\"1\"}}\n{\"index\":{}}\n{\"a\":1}\n";
        let (st, body) = http(addr, "POST", "/x/_bulk", Some(KEY), mixed);
        let r = json_of(&body);
        assert_eq!((st, r["errors"].clone()), (200, json!(true)));
        assert_eq!(r["items"][0]["index"]["status"], 400);
        assert_eq!(r["items"][1]["delete"]["status"], 400);
        assert_eq!(r["items"][2]["index"]["status"], 201);
        // A malformed action line rejects the request; a body over the limit gets 413.
        assert_eq!(http(addr, "POST", "/_bulk", Some(KEY), b"nope\n").0, 400);
        assert_eq!(http(addr, "POST", "/_bulk", Some(KEY), &vec![b' '; 70 * 1024]).0, 413);
        // Single document.
        let (st, body) = http(addr, "POST", "/logs/_doc", Some(KEY), br#"{"@timestamp":"2026-05-01T10:00:00Z","message":"one"}"#);
        assert_eq!((st, json_of(&body)["result"].clone()), (201, json!("created")));
        // Rules: disable seed 002, the same kind of event no longer alerts.
        assert_eq!(http(addr, "POST", &format!("/api/rules/{SEED_002}/disable"), Some(KEY), b"").0, 200);
        let (_, body) = http(addr, "GET", "/api/rules", Some(KEY), b"");
        let rules = json_of(&body);
        assert!(rules["rules"].as_array().expect("rules").iter().any(|r| r["rule_id"] == SEED_002 && r["enabled"] == false));
        let other = String::from_utf8_lossy(&filebeat_body()).replace("4242", "4343").into_bytes();
        assert_eq!(http(addr, "POST", "/_bulk", Some(KEY), &other).0, 200);
        let (_, body) = http(addr, "GET", &format!("/api/alerts?rule_id={SEED_002}"), Some(KEY), b"");
        assert_eq!(json_of(&body)["total"], 1, "a disabled rule raises nothing");
        // Metrics.
        let (_, body) = http(addr, "GET", "/metrics", Some(KEY), b"");
        let text = String::from_utf8_lossy(&body).into_owned();
        assert!(text.contains(&format!("imdsguard_alerts_total{{rule_id=\"{SEED_002}\"}} ")), "{text}");
        assert!(text.contains("imdsguard_unauthorized_total 2"), "{text}");
        total_after_redelivery
    })
    .await;
    let _ = tx.send(());
    running.task.await.expect("join").expect("server");
    // The alerts outlive the server: a new one on the same database serves them.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let again = start(config(Some(db)), async move {
        let _ = rx.await;
    })
    .await
    .expect("restart");
    let addr = again.addr;
    let total = run_blocking(move || json_of(&http(addr, "GET", "/api/alerts", Some(KEY), b"").1)["total"].clone()).await;
    assert!(total.as_u64().unwrap_or(0) >= checks.as_u64().unwrap_or(1));
    let _ = tx.send(());
    again.task.await.expect("join").expect("server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_exactly_what_is_served() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = start(config(None), async move {
        let _ = rx.await;
    })
    .await
    .expect("start");
    let addr = running.addr;
    run_blocking(move || {
        let (st, body) = http(addr, "GET", "/api/openapi.json", Some(KEY), b"");
        assert_eq!(st, 200);
        let doc = json_of(&body);
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.len() >= 15);
        for (path, ops) in paths {
            for method in ops.as_object().expect("ops").keys() {
                let concrete = path
                    .replace("{index}", "logs")
                    .replace("{id}", "some-id")
                    .replace("{rule_id}", SEED_002)
                    .replace("{action}", "enable");
                let body: &[u8] = if concrete.contains("_bulk") { b"{\"index\":{}}\n{\"a\":1}\n" } else if concrete.contains("/status") { br#"{"status":"open"}"# } else { b"{}" };
                let (st, resp) = http(addr, &method.to_ascii_uppercase(), &concrete, Some(KEY), body);
                let not_routed = st == 404 && String::from_utf8_lossy(&resp).contains("no handler found");
                assert!(!not_routed && st != 405, "{method} {path} is documented but not served ({st})");
            }
        }
        // And nothing undocumented under /api.
        let (st, resp) = http(addr, "GET", "/api/nothing-here", Some(KEY), b"");
        assert_eq!(st, 404);
        assert!(String::from_utf8_lossy(&resp).contains("no handler found"));
    })
    .await;
    let _ = tx.send(());
    running.task.await.expect("join").expect("server");
}

#[tokio::test]
async fn no_auth_only_on_loopback() {
    let mut c = config(None);
    c.no_auth = true;
    c.listen = "0.0.0.0:0".parse().expect("addr");
    let e = start(c, async {}).await.err().expect("refused");
    assert!(e.contains("--no-auth is only allowed on a loopback address"), "{e}");
    let mut c = config(None);
    c.api_key_hashes.clear();
    let e = start(c, async {}).await.err().expect("refused");
    assert!(e.contains("no API key configured"), "{e}");
}

/// With one batch allowed in flight, a request arriving while a large batch is being evaluated
/// is refused with 429 and `Retry-After` (bounded: the large batch is sent once, the probes stop
/// when it finishes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_gets_429_with_retry_after() {
    let mut c = config(None);
    c.max_inflight = 1;
    c.max_body_bytes = 256 * 1024 * 1024;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = start(c, async move {
        let _ = rx.await;
    })
    .await
    .expect("start");
    let addr = running.addr;
    let (throttled, retry_after, big_status) = run_blocking(move || {
        let mut big = Vec::new();
        for i in 0..60_000 {
            big.extend_from_slice(format!("{{\"index\":{{}}}}\n{{\"@timestamp\":\"2026-05-01T10:00:00Z\",\"event\":{{\"category\":\"network\"}},\"destination\":{{\"ip\":\"169.254.169.254\"}},\"n\":{i}}}\n").as_bytes());
        }
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d2 = done.clone();
        let big_thread = std::thread::spawn(move || {
            let st = http(addr, "POST", "/_bulk", Some(KEY), &big).0;
            d2.store(true, std::sync::atomic::Ordering::SeqCst);
            st
        });
        let (mut throttled, mut retry_after) = (0, false);
        let started = std::time::Instant::now();
        while !done.load(std::sync::atomic::Ordering::SeqCst) && started.elapsed() < Duration::from_secs(120) {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
            let body = b"{\"index\":{}}\n{\"a\":1}\n";
            let head = format!("POST /_bulk HTTP/1.1\r\nHost: x\r\nAuthorization: ApiKey {KEY}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            s.write_all(head.as_bytes()).expect("write");
            s.write_all(body).expect("write");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.starts_with("HTTP/1.1 429") {
                throttled += 1;
                retry_after |= out.to_ascii_lowercase().contains("retry-after: 1");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (throttled, retry_after, big_thread.join().expect("join"))
    })
    .await;
    let _ = tx.send(());
    running.task.await.expect("join").expect("server");
    assert_eq!(big_status, 200);
    assert!(throttled > 0, "no request was refused while the large batch ran");
    assert!(retry_after);
}

/// HTTPS with rustls: a self-signed certificate made here; curl reaches /healthz and the banner
/// over TLS (with the key), and plain HTTP to the TLS port gets no HTTP answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_rustls() {
    let curl_ok = std::process::Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success());
    if !curl_ok {
        if std::env::var("IMDSGUARD_ALLOW_SKIP").as_deref() == Ok("1") {
            eprintln!("SKIPPED tls_with_rustls: curl is missing");
            return;
        }
        panic!("tls_with_rustls: prerequisite missing: curl (scripts/test-prereqs.sh installs it; IMDSGUARD_ALLOW_SKIP=1 skips)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("cert");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).expect("write key");
    let mut c = config(None);
    c.tls = Some(imdsguard_server::TlsFiles { cert: cert_path.clone(), key: key_path });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = start(c, async move {
        let _ = rx.await;
    })
    .await
    .expect("start");
    let addr = running.addr;
    let (health, banner, plain) = run_blocking(move || {
        let curl = |path: &str, key: bool| {
            let mut cmd = std::process::Command::new("curl");
            cmd.args(["-s", "--max-time", "10", "--cacert"]).arg(&cert_path).arg(format!("https://localhost:{}{path}", addr.port()));
            cmd.args(["--resolve", &format!("localhost:{}:127.0.0.1", addr.port())]);
            if key {
                cmd.args(["-H", &format!("Authorization: ApiKey {KEY}")]);
            }
            String::from_utf8_lossy(&cmd.output().expect("curl").stdout).into_owned()
        };
        let plain = std::process::Command::new("curl")
            .args(["-s", "--max-time", "10", &format!("http://127.0.0.1:{}/healthz", addr.port())])
            .output()
            .expect("curl");
        (curl("/healthz", false), curl("/", true), String::from_utf8_lossy(&plain.stdout).into_owned())
    })
    .await;
    let _ = tx.send(());
    running.task.await.expect("join").expect("server");
    assert_eq!(health, "{\"status\":\"ok\"}");
    assert!(banner.contains("You Know, for Search"), "{banner}");
    assert!(!plain.contains("status"), "plain HTTP must not be answered: {plain}");
}

/// A sequence whose steps arrive in two `_bulk` requests (and, the second time, across a restart
/// of the server on the same state store) raises its alerts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_spanning_requests_and_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rule = imdsguard_rules::parse_json_rule(
        &json!({"rule_id": "seq-across", "name": "curl then metadata", "description": "d", "severity": "high", "risk_score": 73,
                "type": "eql", "language": "eql", "from": "now-9m", "interval": "5m",
                "query": "sequence by host.name with maxspan=5m [process where process.name == \"curl\"] [network where destination.ip == \"169.254.169.254\"]"}),
        "test",
    )
    .expect("rule");
    let cfg = || ServerConfig {
        rules: vec![(rule.clone(), false)],
        alerts_db: Some(dir.path().join("alerts.db")),
        state_db: Some(dir.path().join("state.db")),
        ..config(None)
    };
    let step = |host: &str, sec: u32, network: bool| -> Vec<u8> {
        let ev = if network {
            json!({"@timestamp": format!("2026-05-01T10:00:{sec:02}Z"), "host": {"name": host}, "event": {"category": ["network"]},
                   "destination": {"ip": "169.254.169.254"}, "process": {"name": "curl"}})
        } else {
            json!({"@timestamp": format!("2026-05-01T10:00:{sec:02}Z"), "host": {"name": host}, "event": {"category": ["process"], "type": ["start"]},
                   "process": {"name": "curl"}})
        };
        format!("{}\n{ev}\n", json!({"create": {"_index": "logs-endpoint.events-default"}})).into_bytes()
    };
    let count = |addr: SocketAddr| -> u64 {
        let (st, body) = http(addr, "GET", "/api/alerts?rule_id=seq-across", Some(KEY), b"");
        assert_eq!(st, 200);
        json_of(&body)["total"].as_u64().unwrap_or(u64::MAX)
    };
    // First server: h1's first step, then its second step in another request; h2's first step.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = start(cfg(), async move {
        let _ = rx.await;
    })
    .await
    .expect("start");
    let addr = running.addr;
    let (a, b, c) = (step("h1", 1, false), step("h1", 2, true), step("h2", 3, false));
    run_blocking(move || {
        assert_eq!(http(addr, "POST", "/_bulk", Some(KEY), &a).0, 200);
        assert_eq!(count(addr), 0);
        assert_eq!(http(addr, "POST", "/_bulk", Some(KEY), &b).0, 200);
        assert_eq!(count(addr), 3, "two step alerts and the sequence's shell alert");
        // The same step again: the sequence is not raised twice.
        assert_eq!(http(addr, "POST", "/_bulk", Some(KEY), &b).0, 200);
        assert_eq!(count(addr), 3);
        assert_eq!(http(addr, "POST", "/_bulk", Some(KEY), &c).0, 200);
    })
    .await;
    let _ = tx.send(());
    let _ = running.task.await;
    // Second server on the same stores: h2's second step completes the sequence begun before.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = start(cfg(), async move {
        let _ = rx.await;
    })
    .await
    .expect("restart");
    let addr = running.addr;
    let d = step("h2", 4, true);
    run_blocking(move || {
        assert_eq!(count(addr), 3);
        assert_eq!(http(addr, "POST", "/_bulk", Some(KEY), &d).0, 200);
        assert_eq!(count(addr), 6);
    })
    .await;
    let _ = tx.send(());
    let _ = running.task.await;
}
