//! End-to-end: the real `imdsguard simulate` (issue 8): seed 002's Atomic Red Team tests and the
//! benign look-alikes, run in the simulation's own network namespaces against the mock with the
//! live sensor watching.
//!
//! - every test passes and the JSON report has its documented shape (per test: the alerts with
//!   their rule ids, the telemetry, the checks); credentials never appear in it; the namespaces
//!   are gone afterwards;
//! - removing a built-in rule (a copy of the pack without seed 001) makes the simulation report
//!   the missing detection and exit 1; replacing seed 002 by a version without its allow-list
//!   makes a benign test report the unexpected detection and exit 1;
//! - SIGINT in the middle of a test tears everything down (namespaces, /etc/netns, the sensor and
//!   the web service, the run directory, the agent copies) and exits 130;
//! - `--keep` leaves the namespaces, the hosts file and the run directory (sensor outputs);
//! - `--list` works without privileges; the refusals (not root; root in a user namespace that
//!   cannot create network namespaces) exit 2 with a clear message and create nothing.
//!
//! Needs root, `ip`, `curl`, `python3` (scripts/test-prereqs.sh) for the simulation runs.

mod common;
use common::{have, is_root};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SEED_000: &str = "ad02da2f-443d-454c-a12e-d9e6c65831ff";
const SEED_001: &str = "73dd1f2c-3c24-4e13-a64b-dfd510e9fd98";
const SEED_002: &str = "4e1e6d2a-9b1c-4c2e-8a7b-1d52a005e001";
const IMDSV1: &str = "6f1c2a34-8d3e-4b5a-9c7e-1d2f3a4b5c60";

const TESTS: &[&str] = &[
    "aws-imdsv1",
    "aws-imdsv2",
    "azure-managed-identity",
    "gcp-service-account",
    "ssrf-web-service",
    "benign-allowlisted-agent",
    "benign-non-metadata-address",
    "benign-imdsv2-allowed-process",
];

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_imdsguard")
}



/// Fail (or, with IMDSGUARD_ALLOW_SKIP=1, skip) when a prerequisite of a simulation run is missing.
fn prerequisite(test: &str) -> bool {
    common::prerequisites(test, true, &["ip", "curl", "python3"])
}

/// Run a command, bounded in time (killed past the limit, which fails the test).
fn run_bounded(cmd: Command, limit: Duration) -> Output {
    run_bounded_pid(cmd, limit).0
}

/// [`run_bounded`], also returning the child's pid.
fn run_bounded_pid(mut cmd: Command, limit: Duration) -> (Output, u32) {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn imdsguard");
    let pid = child.id();
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                // SIGINT first: the simulation tears its lab down on it.
                let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
                std::thread::sleep(Duration::from_secs(5));
                let _ = child.kill();
                let _ = child.wait();
                panic!("imdsguard did not finish within {} s", limit.as_secs());
            }
        }
    };
    (Output { status, stdout: t_out.join().unwrap_or_default(), stderr: t_err.join().unwrap_or_default() }, pid)
}

/// Whether a namespace made by the process `pid` exists (lab names start with the pid in hex).
fn namespace_of(pid: u32) -> bool {
    let prefix = format!("imdsguard-sim-{:06x}", pid & 0xff_ffff);
    netns_list().lines().any(|l| l.starts_with(&prefix))
}

fn simulate(args: &[&str]) -> (Output, Value) {
    let mut c = Command::new(bin());
    c.arg("simulate").args(args);
    let out = run_bounded(c, Duration::from_secs(180));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("simulate output is not JSON ({e}): {text}\nstderr: {}", String::from_utf8_lossy(&out.stderr)));
    (out, v)
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

fn test_named<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["tests"].as_array().and_then(|a| a.iter().find(|t| t["name"] == name)).unwrap_or_else(|| panic!("no test {name} in {doc}"))
}

fn netns_list() -> String {
    Command::new("ip").args(["netns", "list"]).output().map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default()
}

/// The lab of a finished run is gone: namespaces, /etc/netns files.
fn assert_torn_down(doc: &Value) {
    let list = netns_list();
    for k in ["mock_namespace", "attacker_namespace"] {
        let ns = doc["lab"][k].as_str().unwrap_or_else(|| panic!("lab.{k} in {}", doc["lab"]));
        assert!(ns.starts_with("imdsguard-sim-"), "{ns}");
        assert!(!list.lines().any(|l| l.split_whitespace().next() == Some(ns)), "namespace {ns} left behind: {list}");
        assert!(!Path::new("/etc/netns").join(ns).exists(), "/etc/netns/{ns} left behind");
    }
}

#[test]
fn simulate_runs_every_test_and_every_one_passes() {
    let test = "simulate_runs_every_test_and_every_one_passes";
    if !prerequisite(test) {
        return;
    }
    let (out, doc) = simulate(&["--format", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "exit {}: {stdout}\nstderr: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert_eq!(doc["verdict"], "pass", "{doc}");
    assert_eq!(doc["summary"]["tests"], 8);
    assert_eq!(doc["summary"]["passed"], 8);
    assert_eq!(doc["summary"]["failed"], 0);
    let names: Vec<&str> = doc["tests"].as_array().expect("tests").iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, TESTS);
    for t in doc["tests"].as_array().expect("tests") {
        let name = t["name"].as_str().unwrap_or("");
        assert_eq!(t["verdict"], "pass", "{name}: {t:#}");
        assert!(t["error"].is_null(), "{name}: {}", t["error"]);
        for k in ["kind", "title", "did", "source", "sensor_status"] {
            assert!(t[k].as_str().is_some_and(|s| !s.is_empty()), "{name}: {k}");
        }
        let expected = strings(&t["expected_rule_ids"]);
        let fired = strings(&t["fired_rule_ids"]);
        assert_eq!(expected, fired, "{name}: expected = fired");
        assert!(strings(&t["missing_rule_ids"]).is_empty() && strings(&t["unexpected_rule_ids"]).is_empty(), "{name}");
        // The alerts, each with its rule id; together they are exactly the rules that fired.
        let alerts = t["alerts"].as_array().expect("alerts");
        let alert_rules: BTreeSet<String> = alerts.iter().map(|a| a["rule_id"].as_str().expect("alert rule_id").to_string()).collect();
        assert_eq!(alert_rules, fired, "{name}: alerts' rule ids");
        for a in alerts {
            assert!(a["rule_name"].as_str().is_some_and(|s| !s.is_empty()), "{a}");
            assert!(["network", "process"].contains(&a["source_event"].as_str().unwrap_or("")), "{a}");
        }
        // Every command ran, and every telemetry check held (the benign tests' silence means
        // something: the sensor saw their requests and attributed them).
        for c in t["commands"].as_array().expect("commands") {
            assert_eq!(c["ok"], true, "{name}: {c}");
            assert!(c["pid"].as_u64().is_some_and(|p| p > 0), "{c}");
        }
        let checks = t["checks"].as_array().expect("checks");
        assert!(!checks.is_empty(), "{name}: checks");
        assert!(checks.iter().all(|c| c["ok"] == true), "{name}: {checks:?}");
        assert!(!t["telemetry"].as_array().expect("telemetry").is_empty(), "{name}: telemetry");
        assert!(t["sensor_status"].as_str().unwrap_or("").contains("path="), "{name}");
    }
    // Attack tests alert; benign ones do not.
    for n in &TESTS[..5] {
        assert!(!test_named(&doc, n)["alerts"].as_array().expect("alerts").is_empty(), "{n}");
    }
    for n in &TESTS[5..] {
        assert!(test_named(&doc, n)["alerts"].as_array().expect("alerts").is_empty(), "{n}");
    }
    // IMDSv1 vs IMDSv2.
    assert!(strings(&test_named(&doc, "aws-imdsv1")["fired_rule_ids"]).contains(IMDSV1));
    assert!(!strings(&test_named(&doc, "aws-imdsv2")["fired_rule_ids"]).contains(IMDSV1));
    // SSRF: the metadata requests came from the web service (python), never from the attacker's curl.
    let ssrf = test_named(&doc, "ssrf-web-service");
    let net: Vec<&Value> = ssrf["alerts"].as_array().expect("alerts").iter().filter(|a| a["source_event"] == "network").collect();
    assert!(!net.is_empty());
    for a in &net {
        assert!(a["process"]["name"].as_str().unwrap_or("").starts_with("python"), "{a}");
    }
    let web_pid = ssrf["commands"][0]["pid"].as_u64().expect("web service pid");
    assert!(net.iter().all(|a| a["process"]["pid"].as_u64() == Some(web_pid)), "{net:?}");
    let http: Vec<&Value> = ssrf["telemetry"].as_array().expect("telemetry").iter().filter(|x| x["type"] == "http").collect();
    assert!(http.len() >= 2 && http.iter().all(|x| x["process"]["pid"].as_u64() == Some(web_pid)), "{http:?}");
    // GCP was reached by name.
    let gcp = test_named(&doc, "gcp-service-account");
    assert!(gcp["telemetry"].as_array().expect("telemetry").iter().any(|x| x["type"] == "http" && x["host"] == "metadata.google.internal"), "{gcp}");
    // Seed 000 (new_terms) fired in each attack test: one fresh sensor per test.
    for n in &TESTS[..5] {
        assert!(strings(&test_named(&doc, n)["fired_rule_ids"]).contains(SEED_000), "{n}");
    }
    // No credential leaves the simulation: no AWS key id, no unredacted IMDSv2 token header.
    let has_key_id = stdout.as_bytes().windows(20).any(|w| (w.starts_with(b"ASIA") || w.starts_with(b"AKIA")) && w[4..].iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
    assert!(!has_key_id, "an AWS access key id in the report");
    for (i, _) in stdout.match_indices("X-aws-ec2-metadata-token: ") {
        let rest = &stdout[i + "X-aws-ec2-metadata-token: ".len()..];
        assert!(rest.starts_with("[REDACTED]"), "unredacted token: {}", &rest[..rest.len().min(40)]);
    }
    assert!(!stdout.contains("ya29.EXAMPLE"), "a GCP token in the report");
    assert_torn_down(&doc);
}

fn builtin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/builtin")
}

#[test]
fn simulate_reports_a_removed_builtin_rule_and_fails() {
    let test = "simulate_reports_a_removed_builtin_rule_and_fails";
    if !prerequisite(test) {
        return;
    }
    // A copy of the built-in pack without seed 001 (rule files only, not the test sidecars).
    let dir = tempfile::tempdir().expect("tempdir");
    let mut copied = 0;
    for e in std::fs::read_dir(builtin_dir()).expect("builtin rules") {
        let p = e.expect("entry").path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        if !name.ends_with(".toml") || name.ends_with(".test.toml") {
            continue;
        }
        let text = std::fs::read_to_string(&p).expect("read rule");
        if text.contains(SEED_001) {
            continue;
        }
        std::fs::write(dir.path().join(&name), text).expect("copy rule");
        copied += 1;
    }
    assert!(copied >= 5, "{copied} rules copied");
    let rules = dir.path().display().to_string();
    let (out, doc) = simulate(&["--format", "json", "--no-builtin", "--rules", &rules, "--test", "aws-imdsv1", "--test", "benign-non-metadata-address"]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(doc["verdict"], "fail");
    assert_eq!(doc["summary"]["failed"], 1);
    let t = test_named(&doc, "aws-imdsv1");
    assert_eq!(t["verdict"], "fail");
    assert_eq!(strings(&t["missing_rule_ids"]), [SEED_001.to_string()].into_iter().collect());
    assert_eq!(strings(&t["missing_not_loaded"]), [SEED_001.to_string()].into_iter().collect());
    assert!(strings(&t["unexpected_rule_ids"]).is_empty());
    // The rest of the pack still fired.
    let fired = strings(&t["fired_rule_ids"]);
    for r in [SEED_000, SEED_002, IMDSV1] {
        assert!(fired.contains(r), "{r} still fires: {fired:?}");
    }
    assert_eq!(test_named(&doc, "benign-non-metadata-address")["verdict"], "pass");
    assert_torn_down(&doc);

    // The other direction: seed 002 replaced (same rule_id) by a version without its allow-list
    // fires on the allow-listed agent, an unexpected detection.
    let seed002 = std::fs::read_to_string(builtin_dir().join("credential_access_detect_cloud_instance_metadata_api.toml")).expect("seed 002");
    let start = seed002.find("query = '''").expect("query");
    let end = start + 11 + seed002[start + 11..].find("'''").expect("query end") + 3;
    let broad = format!("{}query = '''\nnetwork where destination.ip == \"169.254.169.254\"\n'''{}", &seed002[..start], &seed002[end..]);
    let dir2 = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir2.path().join("seed002_without_allow_list.toml"), broad).expect("write rule");
    let rules2 = dir2.path().display().to_string();
    let (out, doc) = simulate(&["--format", "json", "--rules", &rules2, "--test", "benign-allowlisted-agent"]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let t = test_named(&doc, "benign-allowlisted-agent");
    assert_eq!(t["verdict"], "fail");
    assert_eq!(strings(&t["unexpected_rule_ids"]), [SEED_002.to_string()].into_iter().collect());
    assert!(t["alerts"].as_array().expect("alerts").iter().any(|a| a["process"]["name"] == "google_guest_agent"), "{t}");
    assert_torn_down(&doc);
}

#[test]
fn simulate_lists_its_tests() {
    let mut c = Command::new(bin());
    c.args(["simulate", "--list", "--format", "json"]);
    let out = run_bounded(c, Duration::from_secs(30));
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON list");
    let tests = v["tests"].as_array().expect("tests");
    assert_eq!(tests.iter().filter_map(|t| t["name"].as_str()).collect::<Vec<_>>(), TESTS);
    for t in tests {
        let benign = t["kind"] == "benign";
        assert_eq!(strings(&t["expected_rule_ids"]).is_empty(), benign, "{t}");
    }
    assert!(strings(&tests[0]["expected_rule_ids"]).contains(SEED_001));
    let mut c = Command::new(bin());
    c.args(["simulate", "--list"]);
    let out = run_bounded(c, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.starts_with("TEST") && text.contains("EXPECTED DETECTIONS") && text.contains("ssrf-web-service"), "{text}");
    // An unknown test name is an error naming the tests.
    let mut c = Command::new(bin());
    c.args(["simulate", "--test", "no-such-test"]);
    let out = run_bounded(c, Duration::from_secs(30));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("aws-imdsv1"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn simulate_refuses_without_the_privileges_to_build_its_lab() {
    let test = "simulate_refuses_without_the_privileges_to_build_its_lab";
    // Not root: run as nobody (from root with setpriv; otherwise we already are not root).
    let mut c = if is_root() {
        if !have("setpriv") {
            let reason = "missing prerequisite: `setpriv` (util-linux) to drop root";
            if std::env::var("IMDSGUARD_ALLOW_SKIP").as_deref() == Ok("1") {
                eprintln!("SKIPPED {test}: {reason}");
                return;
            }
            panic!("{test}: {reason}");
        }
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()]);
        c
    } else {
        Command::new(bin())
    };
    c.args(["simulate", "--test", "aws-imdsv1"]);
    let (out, pid) = run_bounded_pid(c, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("refusing to run: not root"), "{err}");
    assert!(out.stdout.is_empty(), "no report when refused");
    assert!(!namespace_of(pid), "a refused run creates no namespace");
    // Root inside a user namespace: uid 0, but network namespaces cannot be made for real.
    if is_root() && have("unshare") && have("ip") {
        let mut c = Command::new("unshare");
        c.args(["--user", "--map-root-user", bin(), "simulate", "--test", "aws-imdsv1"]);
        let (out, pid) = run_bounded_pid(c, Duration::from_secs(60));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("refusing to run: cannot create the lab's network namespaces"), "{err}");
        // The half-made lab (if any) was removed.
        assert!(!namespace_of(pid), "a refused run leaves no namespace");
    }
}

/// Processes whose command line names `needle` (e.g. a sensor started with `--netns <ns>`).
fn processes_naming(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            out.push(format!("{name}: {cmd}"));
        }
    }
    out
}

#[test]
fn simulate_tears_its_lab_down_on_sigint() {
    let test = "simulate_tears_its_lab_down_on_sigint";
    if !prerequisite(test) {
        return;
    }
    let mut child = Command::new(bin())
        .args(["simulate", "--test", "aws-imdsv1", "--test", "ssrf-web-service"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn simulate");
    let pid = child.id();
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Interrupt in the middle of the second test (its sensor and web service running).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("running ssrf-web-service")) {
        assert!(Instant::now() < deadline, "simulate did not reach the second test: {seen:?}");
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    std::thread::sleep(Duration::from_millis(800));
    let prefix = format!("imdsguard-sim-{:06x}", pid & 0xff_ffff);
    assert!(namespace_of(pid), "the lab exists while the simulation runs");
    let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            _ if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("simulate did not stop within 30 s of SIGINT");
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        seen.push(l);
    }
    assert_eq!(status.code(), Some(130), "{seen:?}");
    assert!(seen.iter().any(|l| l.contains("interrupted") && l.contains("tearing the lab down")), "{seen:?}");
    assert!(!namespace_of(pid), "namespaces removed after SIGINT");
    assert!(!std::fs::read_dir("/etc/netns").into_iter().flatten().flatten().any(|e| e.file_name().to_string_lossy().starts_with(&prefix)), "/etc/netns cleaned");
    // Its sensor (started with --netns <lab>) and the web service are gone too.
    let left = processes_naming(&prefix);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    assert!(processes_naming("vulnerable_app.py").iter().all(|p| !p.contains(&format!("imdsguard-simulate-{pid}-"))), "web service left behind");
    // The run directory and the agent copies are removed.
    for parent in [std::env::temp_dir(), PathBuf::from("/opt")] {
        let left: Vec<String> = std::fs::read_dir(&parent)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with(&format!("imdsguard-simulate-{pid}-")))
            .collect();
        assert!(left.is_empty(), "{} holds {left:?}", parent.display());
    }
}

#[test]
fn simulate_keep_leaves_the_lab_for_inspection() {
    let test = "simulate_keep_leaves_the_lab_for_inspection";
    if !prerequisite(test) {
        return;
    }
    let (out, doc) = simulate(&["--format", "json", "--keep", "--test", "benign-non-metadata-address"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let ns: Vec<String> = ["mock_namespace", "attacker_namespace"].iter().map(|k| doc["lab"][*k].as_str().unwrap_or("").to_string()).collect();
    let run_dir = PathBuf::from(doc["lab"]["run_directory"].as_str().unwrap_or(""));
    // Remove what was kept whatever the assertions say.
    struct Cleanup(Vec<String>, PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for n in &self.0 {
                let _ = Command::new("ip").args(["netns", "del", n]).stderr(Stdio::null()).status();
                let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(n));
            }
            if self.1.starts_with(std::env::temp_dir()) && self.1.file_name().is_some() {
                let _ = std::fs::remove_dir_all(&self.1);
            }
        }
    }
    let _cleanup = Cleanup(ns.clone(), run_dir.clone());
    assert!(out.status.success(), "{err}");
    assert_eq!(doc["lab"]["kept"], true);
    let list = netns_list();
    for n in &ns {
        assert!(list.lines().any(|l| l.split_whitespace().next() == Some(n.as_str())), "{n} kept: {list}");
        assert!(err.contains(&format!("ip netns del {n}")), "removal command printed: {err}");
    }
    assert!(Path::new("/etc/netns").join(&ns[1]).join("hosts").exists());
    // The sensor's outputs of the test are there to read.
    let test_dir = run_dir.join("benign-non-metadata-address");
    assert!(test_dir.join("events.ndjson").exists() && test_dir.join("alerts.ndjson").exists(), "{}", test_dir.display());
    assert!(run_dir.join("mock-requests.ndjson").exists());
}
