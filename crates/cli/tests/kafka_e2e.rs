//! `imdsguard consume` against a real Kafka-protocol broker (tansu 0.6.0, installed by
//! `scripts/kafka-broker.sh install`), started by each test on a free loopback port and ended by
//! its PID. Every wait is bounded; a broker that misbehaves fails the test with a message.
//!
//! - two members of one group split four partitions; one is killed with SIGKILL mid-stream and
//!   started again; the final alert set equals a single member's run (no loss, no duplicate, and
//!   new_terms state survives through the changelog topic);
//! - a malformed message is counted and reported with topic/partition/offset, and skipped;
//! - every sink: the embedded store, NDJSON, a Kafka topic, Elasticsearch `_bulk` (a loopback
//!   test server that refuses duplicate ids with 409, as Elasticsearch's `create` does).

use imdsguard_kafka::kafka::{create_topic, Producer};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NEW_TERMS_RULE: &str = "ad02da2f-443d-454c-a12e-d9e6c65831ff";
const DETECT_RULE: &str = "4e1e6d2a-9b1c-4c2e-8a7b-1d52a005e001";
const HOP_LIMIT_RULE: &str = "ad50e678-c172-4f9e-b012-5b6c7d8e9fa4";
const IMDSV1_RULE: &str = "6f1c2a34-8d3e-4b5a-9c7e-1d2f3a4b5c60";

fn tansu() -> Option<PathBuf> {
    let cache = std::env::var_os("IMDSGUARD_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/imdsguard")))?;
    let bin = cache.join("tansu-0.6.0/bin/tansu");
    bin.is_file().then_some(bin)
}

/// The tansu binary, or `None` after printing SKIPPED (only with IMDSGUARD_ALLOW_SKIP=1).
fn require_tansu(test: &str) -> Option<PathBuf> {
    match tansu() {
        Some(b) => Some(b),
        None => {
            let reason = "the Kafka test broker tansu 0.6.0 is not installed: run scripts/kafka-broker.sh install (or scripts/test-prereqs.sh)";
            if std::env::var("IMDSGUARD_ALLOW_SKIP").as_deref() == Ok("1") {
                eprintln!("SKIPPED {test}: {reason}");
                None
            } else {
                panic!("{test}: {reason}");
            }
        }
    }
}

/// A child process ended by its PID when dropped.
struct Proc {
    child: Child,
    name: String,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command) -> Proc {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let buf = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if let Ok(mut b) = buf.lock() {
                        b.push_str(&line);
                        b.push('\n');
                    }
                }
            });
        }
        Proc { child, name: name.to_string(), stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.pid().to_string()]).status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "kill {sig} {} ({}) failed", self.pid(), self.name);
    }

    /// Wait for the process to exit by itself; its stdout and status.
    fn wait(&mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    let mut out = String::new();
                    if let Some(mut o) = self.child.stdout.take() {
                        let _ = o.read_to_string(&mut out);
                    }
                    // Let the stderr reader drain.
                    std::thread::sleep(Duration::from_millis(100));
                    return (status, out);
                }
                Ok(None) => {}
                Err(e) => panic!("waiting for {}: {e}", self.name),
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not finish within {limit:?}; stderr:\n{}", self.name, self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Broker {
    _proc: Proc,
    addr: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

fn start_broker(bin: &Path) -> Broker {
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let mut p = Proc::spawn(
        "tansu",
        Command::new(bin).args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "memory://tansu/"]),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(s)) = p.child.try_wait() {
            panic!("tansu exited ({s}) before accepting connections on {url}: {}", p.stderr());
        }
        if TcpStream::connect_timeout(&format!("127.0.0.1:{port}").parse().expect("addr"), Duration::from_millis(200)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "tansu did not accept connections on {url} within 30 s: {}", p.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    Broker { _proc: p, addr: format!("127.0.0.1:{port}") }
}

const T0: i64 = 1_777_629_600_000; // 2026-05-01T10:00:00Z

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).expect("time").to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A deterministic stream: `hosts` hosts (message key = host.id), `per_host` steps each, in time
/// order per host: metadata requests from curl, a /tmp binary, python and wget (seed 002 alerts on
/// each; new_terms alerts once per host and executable, however often it repeats), agent traffic
/// and unrelated connections that raise nothing; every sixth step also a Packetbeat IMDSv2 token
/// request followed 2 s later by a tokenless request from the same source (a hop-limit fallback
/// sequence, whose two steps a batch boundary may split; and an IMDSv1 finding, suppressed per
/// host for 24 h across batches).
fn stream(hosts: usize, per_host: usize) -> Vec<(String, String)> {
    let exes = [
        ("curl", "/usr/bin/curl"),
        ("x", "/tmp/x"),
        ("python3", "/usr/bin/python3"),
        ("amazon-ssm-agent", "/usr/bin/amazon-ssm-agent"),
        ("wget", "/usr/bin/wget"),
    ];
    let mut out = Vec::new();
    for i in 0..per_host {
        for h in 0..hosts {
            let host = format!("h-{h}");
            let (name, exe) = exes[(i * 7 + h * 3) % exes.len()];
            let dest = if i % 9 == 4 { "10.0.0.1" } else { "169.254.169.254" };
            let t = T0 + (i as i64) * 60_000 + h as i64;
            let host_obj = json!({"name": format!("web-{h}"), "id": host, "os": {"type": "linux"}});
            let ev = json!({
                "@timestamp": iso(t),
                "host": host_obj,
                "event": {"category": ["network"], "type": ["connection", "start"]},
                "destination": {"ip": dest, "port": 80},
                "source": {"ip": format!("10.0.1.{}", h + 1), "port": 40000 + i},
                "process": {"name": name, "executable": exe, "pid": 1000 + i}
            });
            out.push((host.clone(), ev.to_string()));
            if i % 6 == 2 {
                for (dt, path, token) in [(1_000, "/latest/api/token", true), (3_000, "/latest/meta-data/instance-id", false)] {
                    let ev = json!({
                        "@timestamp": iso(t + dt),
                        "host": host_obj,
                        "event": {"module": "network_traffic", "dataset": "network_traffic.http", "category": ["network"], "type": ["connection", "protocol"]},
                        "source": {"ip": format!("172.17.{h}.2"), "port": 41000 + i},
                        "destination": {"ip": "169.254.169.254", "port": 80},
                        "http": {"request": {"method": "GET"}},
                        "url": {"path": path},
                        "imds": {"cloud_provider": "aws", "credentials_request": false, "forwarded": false, "aws": {"is_imds_v2": false, "token_request": token}}
                    });
                    out.push((host.clone(), ev.to_string()));
                }
            }
        }
    }
    out
}

/// Alerts per rule when `imdsguard hunt` reads the whole stream at once (no batches, no
/// partitions): what the consumers must reproduce.
fn hunt_counts(dir: &Path, records: &[(String, String)]) -> BTreeMap<String, usize> {
    let f = dir.join("stream.ndjson");
    let text: String = records.iter().map(|(_, v)| format!("{v}\n")).collect();
    std::fs::write(&f, text).expect("write stream");
    let out = Command::new(env!("CARGO_BIN_EXE_imdsguard"))
        .args(["hunt", "--state", ":memory:", "--format", "ndjson", "--quiet"])
        .arg(&f)
        .env_remove("IMDSGUARD_STATE")
        .output()
        .expect("run hunt");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut n = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(l).expect("alert JSON");
        *n.entry(v["kibana.alert.rule.rule_id"].as_str().unwrap_or("").to_string()).or_insert(0) += 1;
    }
    n
}

fn counts(alerts: &BTreeMap<String, Value>) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for a in alerts.values() {
        *n.entry(a["kibana.alert.rule.rule_id"].as_str().unwrap_or("").to_string()).or_insert(0) += 1;
    }
    n
}

/// Produce one record per batch: tansu 0.6.0 answers a fetch that starts inside a stored record
/// batch with nothing (seen here: a member resuming at a committed offset in the middle of a
/// producer's batch never got the rest of it), so every offset must start a batch. Real Kafka
/// returns the enclosing batch and the client skips to the offset.
fn produce(brokers: &str, topic: &str, records: &[(String, String)]) {
    let p = Producer::new(brokers, &[("batch.num.messages".into(), "1".into()), ("linger.ms".into(), "0".into())]).expect("producer");
    let recs: Vec<(Vec<u8>, Vec<u8>)> = records.iter().map(|(k, v)| (k.clone().into_bytes(), v.clone().into_bytes())).collect();
    p.send_all(topic, None, &recs, Duration::from_secs(60)).expect("produce the test stream");
}

fn consume_cmd(brokers: &str, topic: &str, group: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imdsguard"));
    c.args(["consume", "--brokers", brokers, "--topic", topic, "--group", group, "--batch-max", "40", "--batch-ms", "50"])
        .args(["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"])
        .args(extra)
        .env("IMDSGUARD_LOG", "warn");
    c
}

/// Alert ids (and their rule) in a store file.
fn store_alerts(path: &Path) -> BTreeMap<String, Value> {
    let store = imdsguard_store::AlertStore::open(path).expect("open store");
    let q = imdsguard_store::AlertQuery { size: 10_000, ..Default::default() };
    let (total, docs) = store.query(&q).expect("query store");
    assert!(total < 10_000, "more alerts than one page");
    docs.into_iter().map(|d| (d["kibana.alert.uuid"].as_str().unwrap_or("").to_string(), d)).collect()
}

fn new_terms_tuples(alerts: &BTreeMap<String, Value>) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for a in alerts.values().filter(|a| a["kibana.alert.rule.rule_id"] == NEW_TERMS_RULE) {
        *n.entry(a["kibana.alert.new_terms"].to_string()).or_insert(0) += 1;
    }
    n
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}\n{}", context());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count_in_store(path: &Path) -> u64 {
    imdsguard_store::AlertStore::open(path).and_then(|s| s.count()).unwrap_or(0)
}

/// The kill-and-restart scenario, repeated (at most three times) only when the broker voided a
/// run: tansu 0.6.0 does not expire a SIGKILLed member, and now and then keeps assigning it a
/// partition, which then no live member reads (seen in CI: the survivor held events/3, the
/// restarted member events/0-1, nobody events/2). A run where every partition went to a live
/// member and an alert is still lost fails at once.
#[test]
fn group_of_two_killed_and_restarted_equals_a_single_run() {
    let Some(bin) = require_tansu("group_of_two_killed_and_restarted_equals_a_single_run") else { return };
    let mut voided = Vec::new();
    for attempt in 1..=3 {
        match kill_and_restart_once(&bin) {
            Ok(()) => return,
            Err(why) => {
                eprintln!("attempt {attempt} voided by the broker: {why}");
                voided.push(why);
            }
        }
    }
    panic!("the broker left a partition to the killed member in every attempt:\n{}", voided.join("\n"));
}

fn kill_and_restart_once(bin: &Path) -> Result<(), String> {
    let broker = start_broker(bin);
    let b = broker.addr.as_str();
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(create_topic(b, &[], "events", 4, &[], Duration::from_secs(30)).expect("create topic"), "topic is new");
    let all = stream(8, 150);
    let (first, second) = all.split_at(all.len() / 2);
    produce(b, "events", first);

    // Two members of group "pair" share one store (SQLite WAL); each has its own NDJSON file.
    let store = dir.path().join("pair.db");
    let st = store.to_str().expect("utf8");
    let nd = |n: &str| dir.path().join(format!("{n}.ndjson")).to_str().expect("utf8").to_string();
    let (nd_a, nd_b) = (nd("a"), nd("b"));
    let args_a = ["--state", st, "--alerts-ndjson", &nd_a, "--idle-exit-ms", "8000"];
    let args_b = ["--state", st, "--alerts-ndjson", &nd_b, "--idle-exit-ms", "8000"];
    let mut a = Proc::spawn("consume a", &mut consume_cmd(b, "events", "pair", &args_a));
    let b1 = Proc::spawn("consume b", &mut consume_cmd(b, "events", "pair", &args_b));
    let ctx = || format!("a:\n{}\nb:\n{}", a.stderr(), b1.stderr());
    // The current assignment of a member: its last `assigned` line, unless a revocation followed.
    let current = |err: &str| -> BTreeSet<String> {
        let last = err.lines().rev().find(|l| l.starts_with("assigned ") || l.starts_with("revoked ")).unwrap_or("");
        match last.strip_prefix("assigned ") {
            Some(list) => list.split(", ").filter(|s| !s.is_empty()).map(str::to_string).collect(),
            None => BTreeSet::new(),
        }
    };
    let split = || {
        let (pa, pb) = (current(&a.stderr()), current(&b1.stderr()));
        !pa.is_empty() && !pb.is_empty() && pa.is_disjoint(&pb) && pa.len() + pb.len() == 4
    };
    wait_until("the two members to split the four partitions", Duration::from_secs(90), split, ctx);
    let (pa, pb) = (current(&a.stderr()), current(&b1.stderr()));
    wait_until("alerts from the first half", Duration::from_secs(60), || count_in_store(&store) > 20, ctx);
    // The member to be killed must have made some state durable (a committed batch writes its
    // alerts to its NDJSON file), or there would be nothing for the others to restore.
    let lines = |p: &str| std::fs::read_to_string(p).map(|t| t.lines().count()).unwrap_or(0);
    wait_until("member b to commit a batch", Duration::from_secs(60), || lines(&nd_b) > 0, ctx);
    b1.signal("-KILL");
    let mut b1 = b1;
    let _ = b1.wait(Duration::from_secs(10));
    let before_restart = count_in_store(&store);
    produce(b, "events", second);
    let mut b2 = Proc::spawn("consume b (restarted)", &mut consume_cmd(b, "events", "pair", &args_b));
    let (st_a, out_a) = a.wait(Duration::from_secs(180));
    let (st_b, out_b) = b2.wait(Duration::from_secs(180));
    let (err_a, err_b, err_b1) = (a.stderr(), b2.stderr(), b1.stderr());
    assert!(st_a.success(), "member a failed: {err_a}");
    assert!(st_b.success(), "restarted member b failed: {err_b}");
    let _ = (out_a, out_b);
    assert_eq!(pa.len() + pb.len(), 4, "a: {pa:?} b: {pb:?}");
    // The killed member's partitions went to the restarted member or to the survivor (which
    // re-reads an assigned partition's state too): between them, the state b wrote was read back
    // from the changelog.
    let restored: u64 = err_b
        .lines()
        .chain(err_a.lines())
        .filter_map(|l| l.strip_prefix("restored the state of "))
        .filter_map(|l| l.split(" from ").nth(1)?.split(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(restored > 0, "no member restored state from the changelog:\n{err_b}\nsurvivor:\n{err_a}\nkilled member:\n{err_b1}");

    // A single member over the whole stream (its own group, store and changelog).
    let single_store = dir.path().join("single.db");
    let mut s = Proc::spawn(
        "consume single",
        &mut consume_cmd(b, "events", "single", &["--state", single_store.to_str().expect("utf8"), "--idle-exit-ms", "5000", "--stats-json"]),
    );
    let (st_s, out_s) = s.wait(Duration::from_secs(180));
    assert!(st_s.success(), "single member failed: {}", s.stderr());
    let stats: Value = serde_json::from_str(out_s.trim()).expect("--stats-json output");
    assert_eq!(stats["messages"], all.len(), "the single member read the whole stream: {}", s.stderr());

    let pair = store_alerts(&store);
    let single = store_alerts(&single_store);
    let ids = |m: &BTreeMap<String, Value>| m.keys().cloned().collect::<BTreeSet<_>>();
    let lost: Vec<_> = ids(&single).difference(&ids(&pair)).cloned().collect();
    let extra: Vec<_> = ids(&pair).difference(&ids(&single)).cloned().collect();
    // Precondition of the comparison: after the restart every partition went to a live member.
    // (A member's last assignment, ignoring the revocation printed when it closes.)
    let last_assigned = |err: &str| -> BTreeSet<String> {
        let line = err.lines().rev().find_map(|l| l.strip_prefix("assigned ")).unwrap_or("");
        line.split(", ").filter(|s| !s.is_empty()).map(str::to_string).collect()
    };
    let live: BTreeSet<String> = last_assigned(&err_a).union(&last_assigned(&err_b)).cloned().collect();
    if !lost.is_empty() && live.len() < 4 {
        return Err(format!("final assignments cover only {live:?}; {} alert(s) of the rest unread", lost.len()));
    }
    assert!(lost.is_empty() && extra.is_empty(), "{} lost, {} extra alerts (killed after {before_restart} alerts)\n{}\n{}", lost.len(), extra.len(), err_a, err_b);
    // Expected content: seed 002 on every metadata request but the agent's; new_terms once per
    // host and executable, never again for a repeat (across batches, members and the restart).
    let detect = single.values().filter(|a| a["kibana.alert.rule.rule_id"] == DETECT_RULE).count();
    let expected_detect = all.iter().filter(|(_, e)| e.contains("169.254.169.254") && e.contains("\"process\"") && !e.contains("amazon-ssm-agent")).count();
    assert_eq!(detect, expected_detect);
    // Per rule, the pair's alerts are exactly what one hunt over the whole stream raises: sequences
    // split by batch boundaries (and by the kill) were assembled once, suppression held across
    // batches, new_terms history survived the restart.
    let want = hunt_counts(dir.path(), &all);
    assert_eq!(counts(&pair), want);
    assert!(want.get(HOP_LIMIT_RULE).copied().unwrap_or(0) > 0 && want.get(IMDSV1_RULE) == Some(&8), "{want:?}");
    let tuples = new_terms_tuples(&pair);
    assert_eq!(tuples.len(), 8 * 4, "each of 8 hosts has 4 suspicious executables: {tuples:?}");
    assert!(tuples.values().all(|n| *n == 1), "a new term alerted twice: {tuples:?}");
    // Every alert is in the union of the members' NDJSON files; redelivery may repeat a line
    // there, never invent an id.
    let mut nd_ids = BTreeSet::new();
    for f in [&nd_a, &nd_b] {
        for l in std::fs::read_to_string(f).unwrap_or_default().lines() {
            let v: Value = serde_json::from_str(l).expect("NDJSON line");
            nd_ids.insert(v["kibana.alert.uuid"].as_str().unwrap_or("").to_string());
        }
    }
    assert_eq!(nd_ids, ids(&pair));
    Ok(())
}

/// A minimal Elasticsearch `_bulk` endpoint: `create` with `_id`, 201 for a new id and 409 for a
/// known one (as Elasticsearch answers), one request at a time, bounded by the test's lifetime.
struct EsServer {
    addr: String,
    docs: Arc<Mutex<BTreeMap<String, Value>>>,
    conflicts: Arc<Mutex<u64>>,
    requests: Arc<Mutex<Vec<String>>>,
}

fn read_request(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
        if buf.len() > 64 * 1024 {
            return None;
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((head, body))
}

fn es_server() -> EsServer {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = format!("http://{}", l.local_addr().expect("addr"));
    let docs = Arc::new(Mutex::new(BTreeMap::new()));
    let conflicts = Arc::new(Mutex::new(0u64));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (d, c, r) = (docs.clone(), conflicts.clone(), requests.clone());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
            while let Some((head, body)) = read_request(&mut s) {
                let line = head.lines().next().unwrap_or("").to_string();
                if let Ok(mut rq) = r.lock() {
                    rq.push(line.clone());
                }
                let mut items = Vec::new();
                let text = String::from_utf8_lossy(&body).to_string();
                let mut lines = text.lines().filter(|l| !l.trim().is_empty());
                while let (Some(action), Some(src)) = (lines.next(), lines.next()) {
                    let a: Value = serde_json::from_str(action).unwrap_or(Value::Null);
                    let id = a["create"]["_id"].as_str().unwrap_or("").to_string();
                    let index = a["create"]["_index"].as_str().unwrap_or("").to_string();
                    let doc: Value = serde_json::from_str(src).unwrap_or(Value::Null);
                    let mut docs = d.lock().expect("docs");
                    if docs.contains_key(&id) {
                        *c.lock().expect("conflicts") += 1;
                        items.push(json!({"create": {"_index": index, "_id": id, "status": 409, "error": {"type": "version_conflict_engine_exception", "reason": format!("[{id}]: version conflict, document already exists")}}}));
                    } else {
                        docs.insert(id.clone(), doc);
                        items.push(json!({"create": {"_index": index, "_id": id, "status": 201, "result": "created"}}));
                    }
                }
                let resp = json!({"took": 1, "errors": items.iter().any(|i| i["create"]["status"] != 201), "items": items}).to_string();
                let out = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{resp}", resp.len());
                if s.write_all(out.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    EsServer { addr, docs, conflicts, requests }
}

#[test]
fn sinks_malformed_messages_and_redelivery() {
    let Some(bin) = require_tansu("sinks_malformed_messages_and_redelivery") else { return };
    let broker = start_broker(&bin);
    let b = broker.addr.as_str();
    let dir = tempfile::tempdir().expect("tempdir");
    create_topic(b, &[], "ev", 2, &[], Duration::from_secs(30)).expect("create topic");
    create_topic(b, &[], "alerts", 1, &[], Duration::from_secs(30)).expect("create topic");
    let mut records = stream(3, 20);
    records.insert(5, ("h-1".into(), "{\"@timestamp\": broken".into()));
    records.insert(9, ("h-2".into(), "[1,2,3]".into()));
    produce(b, "ev", &records);
    let es = es_server();
    let store = dir.path().join("s.db");
    let nd = dir.path().join("a.ndjson");
    let run = |group: &str| {
        let mut p = Proc::spawn(
            "consume",
            &mut consume_cmd(
                b,
                "ev",
                group,
                &[
                    "--state",
                    store.to_str().expect("utf8"),
                    "--alerts-ndjson",
                    nd.to_str().expect("utf8"),
                    "--alerts-topic",
                    "alerts",
                    "--alerts-es",
                    &es.addr,
                    "--idle-exit-ms",
                    "4000",
                    "--stats-json",
                ],
            ),
        );
        let (st, out) = p.wait(Duration::from_secs(120));
        let err = p.stderr();
        assert!(st.success(), "{err}");
        let stats: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("stats JSON: {e}: {out:?}\n{err}"));
        (stats, err)
    };
    let (stats, err) = run("g1");
    assert_eq!(stats["messages"], records.len(), "{err}");
    assert_eq!(stats["malformed"], 2, "{err}");
    // Reported with topic/partition/offset and the reason, and the rest processed.
    let bad: Vec<&str> = err.lines().filter(|l| l.starts_with("malformed message ev/")).collect();
    assert_eq!(bad.len(), 2, "{err}");
    assert!(bad.iter().any(|l| l.contains("is not JSON")) && bad.iter().any(|l| l.contains("not an object")), "{bad:?}");
    assert!(bad.iter().all(|l| l.contains('@')), "{bad:?}");
    let alerts = store_alerts(&store);
    let n = alerts.len();
    assert!(n > 40, "{n} alerts\n{err}");
    assert_eq!(stats["alerts"], n);
    // Every sink has every alert.
    assert_eq!(es.docs.lock().expect("docs").keys().cloned().collect::<BTreeSet<_>>(), alerts.keys().cloned().collect::<BTreeSet<_>>());
    assert!(es.requests.lock().expect("requests").iter().all(|r| r.starts_with("POST /_bulk ")));
    let nd_lines = std::fs::read_to_string(&nd).expect("ndjson");
    assert_eq!(nd_lines.lines().count(), n);
    let topic_alerts = read_topic(b, "alerts");
    assert_eq!(topic_alerts.len(), n);
    for (k, v) in &topic_alerts {
        assert_eq!(v["kibana.alert.uuid"].as_str(), Some(k.as_str()), "each alert message is keyed by its id");
        assert!(alerts.contains_key(k));
    }
    // The offsets were committed: the same group reads nothing again.
    let (again, err2) = run("g1");
    assert_eq!(again["messages"], 0, "{err2}");
    // A new group re-reads everything (a redelivery, as after a crash): the store and the ES
    // index keep one copy of each alert (Elasticsearch refuses the duplicates with 409).
    let (third, err3) = run("g2");
    assert_eq!(third["messages"], records.len(), "{err3}");
    assert_eq!(store_alerts(&store).len(), n);
    assert_eq!(es.docs.lock().expect("docs").len(), n);
    assert_eq!(*es.conflicts.lock().expect("conflicts"), n as u64);
    let sinks = third["sinks"].as_array().expect("sinks");
    let by_name = |name: &str| sinks.iter().find(|s| s["name"] == name).cloned().unwrap_or(Value::Null);
    assert_eq!(by_name("store")["duplicates"], n);
    assert_eq!(by_name("es")["duplicates"], n);

    // SIGTERM (sent to its PID) mid-stream: the member finishes its batch, commits it, prints its
    // counters and exits 0; the next run of the group starts exactly where it stopped.
    let mut p = Proc::spawn(
        "consume (SIGTERM)",
        &mut consume_cmd(b, "ev", "g3", &["--state", store.to_str().expect("utf8"), "--stats-json"]),
    );
    wait_until("the member to get partitions", Duration::from_secs(60), || p.stderr().contains("assigned ev/"), || p.stderr());
    p.signal("-TERM");
    let (st, out) = p.wait(Duration::from_secs(30));
    assert!(st.success(), "{}", p.stderr());
    let first: Value = serde_json::from_str(out.trim()).expect("stats JSON after SIGTERM");
    assert_eq!(first["commits"], first["batches"], "every batch was committed: {first}");
    let (rest, err4) = run("g3");
    assert_eq!(
        first["messages"].as_u64().unwrap_or(0) + rest["messages"].as_u64().unwrap_or(0),
        records.len() as u64,
        "the run after SIGTERM reads exactly the rest: {first} {rest}\n{err4}"
    );

    // --max-messages bounds a run: it stops after that many messages, commits them, and the next
    // run of the group starts right after them.
    let mut p = Proc::spawn(
        "consume (--max-messages)",
        &mut consume_cmd(b, "ev", "g4", &["--state", store.to_str().expect("utf8"), "--stats-json", "--max-messages", "10"]),
    );
    let (st, out) = p.wait(Duration::from_secs(60));
    assert!(st.success(), "{}", p.stderr());
    let bounded: Value = serde_json::from_str(out.trim()).expect("stats JSON");
    assert_eq!(bounded["messages"], 10, "{}", p.stderr());
    let (rest, err5) = run("g4");
    assert_eq!(rest["messages"], records.len() - 10, "{err5}");
}

/// Every message of a topic (all partitions), as (key, JSON value).
fn read_topic(brokers: &str, topic: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let n = imdsguard_kafka::kafka::read_to_end(brokers, &[], topic, &[0], Duration::from_secs(30), |_, k, v| {
        let k = String::from_utf8_lossy(k.unwrap_or(b"")).to_string();
        out.push((k, serde_json::from_slice(v.unwrap_or(b"null")).unwrap_or(Value::Null)));
    });
    n.expect("read the alerts topic");
    out
}
