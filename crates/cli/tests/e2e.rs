//! End-to-end tests: the real `imdsguard` binary on the bundled examples and on crafted input.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

fn hunt(args: &[&str]) -> (Vec<Value>, String, i32) {
    let out = bin().arg("hunt").args(args).args(["--format", "ndjson", "--now", "2026-05-03T00:00:00Z"]).output().expect("run");
    (ndjson(&out.stdout), String::from_utf8_lossy(&out.stderr).into_owned(), out.status.code().unwrap_or(-1))
}

#[test]
fn examples_raise_the_expected_alerts_with_kibana_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.db");
    let day1: Vec<String> = ["2026-05-01-attacks.ndjson", "2026-05-01-benign.ndjson", "2026-05-01-packetbeat.ndjson"]
        .iter()
        .map(|f| repo().join("examples/events").join(f).display().to_string())
        .collect();
    let mut args: Vec<&str> = day1.iter().map(String::as_str).collect();
    let state_s = state.display().to_string();
    args.extend(["--state", &state_s]);
    let (alerts, stderr, code) = hunt(&args);
    assert_eq!(code, 0, "{stderr}");
    // web-1 curl (once: the second request is not a new term), batch-7 python from /tmp, web-2 java (SSRF),
    // win-app-3 powershell, web-2 wget (dotted keys), web-2 curl (packetbeat).
    let seed000 = of_rule(&alerts, SEED_000);
    let mut got: Vec<(String, String)> = seed000
        .iter()
        .map(|a| {
            let nt = field(a, "kibana.alert.new_terms").as_array().cloned().unwrap_or_default();
            (nt[0].as_str().unwrap_or("").to_string(), nt[1].as_str().unwrap_or("").to_string())
        })
        .collect();
    got.sort();
    let hosts = |h: &str| match h {
        "0d1c5a3e-5f6b-4b7a-9a51-2f3c1d0e9a01" => "web-1",
        "8b2e3f41-7c6d-4e5f-8a9b-0c1d2e3f4a02" => "web-2",
        "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a803" => "batch-7",
        "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e04" => "win-app-3",
        _ => "?",
    };
    let mut named: Vec<(String, String)> = got.iter().map(|(h, e)| (hosts(h).to_string(), e.clone())).collect();
    named.sort();
    assert_eq!(
        named,
        vec![
            ("batch-7".to_string(), "/tmp/.cache/python3.11".to_string()),
            ("web-1".to_string(), "/usr/bin/curl".to_string()),
            ("web-2".to_string(), "/usr/bin/curl".to_string()),
            ("web-2".to_string(), "/usr/bin/wget".to_string()),
            ("web-2".to_string(), "/usr/lib/jvm/java-17-openjdk-amd64/bin/java".to_string()),
            ("win-app-3".to_string(), "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe".to_string()),
        ],
        "{stderr}"
    );
    // Seed 001 (EQL, Packetbeat HTTP): the credentials request in the packetbeat file.
    assert_eq!(of_rule(&alerts, SEED_001).len(), 1, "{stderr}");
    assert_eq!(of_rule(&alerts, SEED_001)[0]["url"]["path"], "/latest/meta-data/iam/security-credentials/web-app-role");
    // Seed 002 (EQL, any network connection to the metadata address or a process whose command line
    // names it, minus cloud agents): every attack, and the look-alikes of seed 000 that do reach the
    // metadata service (port 8080, macOS node, VS Code server, editor helper, nginx, the curl process
    // event), but not the SSM agent, the ECS task-metadata address or an ordinary destination.
    assert_eq!(of_rule(&alerts, SEED_002).len(), 13, "{stderr}");
    for a in of_rule(&alerts, SEED_002) {
        assert_ne!(a["process"]["name"], "amazon-ssm-agent");
        assert_eq!(field(a, "kibana.alert.severity"), "high");
        assert_eq!(field(a, "kibana.alert.risk_score"), 73);
    }
    for a in &seed000 {
        assert_eq!(field(a, "kibana.alert.rule.type"), "new_terms");
        assert_eq!(field(a, "kibana.alert.severity"), "medium");
        assert_eq!(field(a, "kibana.alert.risk_score"), 47);
        assert_eq!(field(a, "kibana.alert.workflow_status"), "open");
        assert!(field(a, "kibana.alert.reason").as_str().unwrap_or("").contains("created medium alert"), "{a}");
        assert!(field(a, "kibana.alert.rule.note").as_str().unwrap_or("").contains("Triage and analysis"));
        let threat = field(a, "kibana.alert.rule.threat").to_string();
        for id in ["TA0006", "TA0007", "T1552.005"] {
            assert!(threat.contains(id), "{threat}");
        }
        assert!(field(a, "kibana.alert.original_time").is_string());
        assert_eq!(field(a, "kibana.alert.ancestors")[0]["depth"], 0);
        assert_eq!(field(a, "event").get("kind").or(a.get("event.kind")), Some(&Value::from("signal")));
        let text = a.to_string();
        for secret in ["ASIAEXAMPLEEXAMPLE12", "wJalrXUtnFEMI", "IQoJb3JpZ2luX2Vj"] {
            assert!(!text.contains(secret), "secret {secret} leaked in {text}");
        }
    }
    assert!(stderr.contains("20 alert(s)"), "{stderr}");

    // Next day, same state: web-1's curl is known; batch-7's curl is new.
    let day2 = repo().join("examples/events/2026-05-02.ndjson").display().to_string();
    let (alerts2, stderr2, _) = hunt(&[&day2, "--state", &state_s]);
    let new2 = of_rule(&alerts2, SEED_000);
    assert_eq!(new2.len(), 1, "{stderr2}");
    assert_eq!(field(new2[0], "kibana.alert.new_terms")[1], "/usr/bin/curl");
    assert_eq!(field(new2[0], "host")["name"], "batch-7");
    assert_eq!(of_rule(&alerts2, SEED_002).len(), 2, "the query rule alerts on both requests");

    // Re-running day 1 with the same state gives the same alerts and ids.
    let (again, _, _) = hunt(&args);
    let ids = |v: &[Value]| {
        let mut x: Vec<String> = v.iter().map(|a| field(a, "kibana.alert.uuid").as_str().unwrap_or("").to_string()).collect();
        x.sort();
        x
    };
    assert_eq!(ids(&again), ids(&alerts));
}

#[test]
fn malformed_lines_are_reported_and_the_rest_is_processed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("mixed.ndjson");
    let good = std::fs::read_to_string(repo().join("examples/events/2026-05-01-attacks.ndjson")).expect("examples");
    let first = good.lines().next().expect("a line");
    std::fs::write(&f, format!("{{not json\n{first}\n42\n")).expect("write");
    let (alerts, stderr, code) = hunt(&[f.to_str().expect("utf8"), "--state", ":memory:"]);
    assert_eq!(code, 0);
    assert_eq!(of_rule(&alerts, SEED_000).len(), 1, "{stderr}");
    assert!(stderr.contains("mixed.ndjson:1: invalid JSON"), "{stderr}");
    assert!(stderr.contains("mixed.ndjson:3: not a JSON object"), "{stderr}");
    assert!(stderr.contains("2 unreadable") || stderr.contains(", 2 unreadable"), "{stderr}");
}

#[test]
fn stdin_and_formats() {
    let line = std::fs::read_to_string(repo().join("examples/events/2026-05-01-attacks.ndjson")).expect("examples");
    for format in ["json", "csv", "table", "ndjson"] {
        let out = bin()
            .args(["hunt", "-", "--state", ":memory:", "--format", format, "--quiet"])
            .write_stdin(line.clone())
            .output()
            .expect("run");
        assert!(out.status.success());
        let s = String::from_utf8_lossy(&out.stdout);
        match format {
            // 5 new_terms alerts (seed 000) + 6 query alerts (seed 002).
            "json" => assert_eq!(serde_json::from_str::<Value>(&s).expect("json array").as_array().map(Vec::len), Some(11)),
            "csv" => {
                assert!(s.starts_with("original_time,severity,risk_score,rule_name"), "{s}");
                assert_eq!(s.lines().count(), 12, "{s}");
            }
            "table" => assert!(s.contains("[MEDIUM 47] Suspicious Instance Metadata Service (IMDS) API Request"), "{s}"),
            _ => assert_eq!(ndjson(&out.stdout).len(), 11),
        }
    }
}

#[test]
fn search_prints_matches_and_ids() {
    let dir = repo().join("examples/events");
    let out = bin()
        .args(["search", "--language", "kql", "destination.ip:169.254.169.254 and process.name:(curl or wget)"])
        .arg(&dir)
        .args(["--ids", "process.pid"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    let mut pids: Vec<&str> = s.lines().collect();
    pids.sort();
    assert_eq!(pids, vec!["2222", "2400", "31337", "31390", "32001", "32002", "901"], "{s}");
}

#[test]
fn invalid_kql_gets_a_caret() {
    let out = bin().args(["search", "process.name:(curl or", "-"]).write_stdin("").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error[K001]"), "{err}");
    assert!(err.contains('^'), "{err}");
}

#[test]
fn rules_validate_reports_each_rule_as_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read_to_string(repo().join("crates/rules/builtin/credential_access_suspicious_instance_metadata_service_api_request.toml"))
        .expect("builtin");
    std::fs::write(dir.path().join("good.toml"), &good).expect("write");
    std::fs::write(dir.path().join("bad_query.toml"), good.replace("destination.port:\"80\" and (", "destination.port:\"80\" and ((")
            .replace("ad02da2f-443d-454c-a12e-d9e6c65831ff", "00000000-0000-4000-8000-000000000001")).expect("write");
    std::fs::write(dir.path().join("broken.toml"), "[rule\nname = ").expect("write");
    let out = bin().args(["rules", "validate", "--format", "json"]).arg(dir.path()).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let rows = ndjson(&out.stdout);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for r in &rows {
        for k in ["path", "rule_id", "type", "language", "ok", "error"] {
            assert!(r.get(k).is_some(), "missing {k} in {r}");
        }
    }
    let ok: Vec<bool> = rows.iter().map(|r| r["ok"].as_bool().unwrap_or(false)).collect();
    assert_eq!(ok.iter().filter(|x| **x).count(), 1, "{rows:?}");
}

#[test]
fn rules_list_and_show() {
    let out = bin().args(["rules", "list", "--format", "json"]).output().expect("run");
    assert!(out.status.success());
    let rows = ndjson(&out.stdout);
    assert!(rows.iter().any(|r| r["rule_id"] == "ad02da2f-443d-454c-a12e-d9e6c65831ff" && r["builtin"] == true));
    let out = bin().args(["rules", "show", "ad02da2f-443d-454c-a12e-d9e6c65831ff"]).output().expect("run");
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("T1552.005") && s.contains("Investigating Suspicious Instance Metadata"), "{s}");
}

#[test]
fn search_output_never_contains_credentials() {
    let dir = repo().join("examples/events");
    let out = bin().args(["search", "url.path:*security-credentials*"]).arg(&dir).output().expect("run");
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(s.lines().count(), 1, "{s}");
    assert!(s.contains("[REDACTED]") && s.contains("AccessKeyId"), "{s}");
    for secret in ["ASIAEXAMPLEEXAMPLE12", "wJalrXUtnFEMI", "IQoJb3JpZ2luX2Vj"] {
        assert!(!s.contains(secret), "secret {secret} leaked: {s}");
    }
}

/// `rules validate` accepts every one of the 729 active KQL rules of Elastic's corpus.
#[test]
fn rules_validate_accepts_all_729_active_kql_rules_of_the_corpus() {
    let corpus = repo().join("../shared/corpus/elastic-rules/rules.jsonl");
    let text = std::fs::read_to_string(&corpus).unwrap_or_else(|e| panic!("corpus required at {}: {e}", corpus.display()));
    let active_kql: std::collections::HashSet<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["language"] == "kuery" && r["deprecated"] == false)
        .filter_map(|r| r["rule_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(active_kql.len(), 729);
    let out = bin().args(["rules", "validate", "--format", "json"]).arg(&corpus).output().expect("run");
    let rows = ndjson(&out.stdout);
    let mut ok = 0;
    let mut failures = Vec::new();
    for r in &rows {
        let id = r["rule_id"].as_str().unwrap_or("");
        if !active_kql.contains(id) {
            continue;
        }
        if r["ok"] == true {
            ok += 1;
        } else {
            failures.push(format!("{id} {}: {}", r["path"], r["error"]));
        }
    }
    assert!(failures.is_empty(), "{} active KQL rules failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(ok, 729);
    // query, new_terms and threshold rules run; threat_match rules are valid but wait for their issue.
    let active: Vec<&Value> = rows.iter().filter(|r| active_kql.contains(r["rule_id"].as_str().unwrap_or(""))).collect();
    let of_type = |t: &str| active.iter().filter(|r| r["type"] == t).count();
    let runnable = active.iter().filter(|r| r["runnable"] == true).count();
    assert_eq!((of_type("query"), of_type("new_terms"), of_type("threat_match")), (454, 241, 6));
    let thresholds = of_type("threshold");
    assert_eq!(thresholds, 729 - 454 - 241 - 6);
    assert_eq!(runnable, 454 + 241 + thresholds, "query + new_terms + threshold");
}

/// Every rule of the built-in pack carries its true-positive and true-negative examples: hunting
/// the bundled attack file alerts, hunting the benign file does not.
#[test]
fn builtin_pack_alerts_on_attacks_and_not_on_benign_examples() {
    let benign = repo().join("examples/events/2026-05-01-benign.ndjson").display().to_string();
    let (alerts, stderr, _) = hunt(&[&benign, "--state", ":memory:"]);
    assert!(of_rule(&alerts, SEED_000).is_empty(), "look-alikes alerted the new_terms rule: {stderr}");
    assert!(of_rule(&alerts, SEED_001).is_empty(), "no HTTP credential request among the look-alikes: {stderr}");
    let attacks = repo().join("examples/events/2026-05-01-attacks.ndjson").display().to_string();
    let (alerts, _, _) = hunt(&[&attacks, "--state", ":memory:"]);
    assert_eq!(of_rule(&alerts, SEED_000).len(), 5);
    assert_eq!(of_rule(&alerts, SEED_002).len(), 6);
}

/// A checkout of Elastic's detection-rules loads unchanged; rules that cannot run yet are counted
/// by reason, deprecated ones are not run.
#[test]
fn hunt_with_the_detection_rules_repository() {
    let rules = repo().join("../shared/corpus/elastic-rules/toml/rules");
    assert!(rules.is_dir(), "corpus required at {}", rules.display());
    let events = repo().join("examples/events").display().to_string();
    let out = bin()
        .args(["hunt", &events, "--state", ":memory:", "--format", "ndjson", "--summary-json", "--rules"])
        .arg(&rules)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: Value = stderr.lines().rev().find_map(|l| serde_json::from_str(l).ok()).expect("summary json");
    assert_eq!(summary["rule_load_errors"], 0, "{stderr}");
    assert_eq!(summary["rules_not_run"]["deprecated (maturity = \"deprecated\")"], 124);
    assert!(summary["rules_loaded"].as_u64().unwrap_or(0) >= 600, "{summary}");
    // The seed rules from the repository replace the built-in copies and alert the same way.
    let alerts = ndjson(&out.stdout);
    assert_eq!(of_rule(&alerts, SEED_000).len(), 7);
    assert_eq!(of_rule(&alerts, SEED_001).len(), 1);
}

/// `--mapping` types fields the ECS table does not know.
#[test]
fn user_mapping_types_custom_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mapping = dir.path().join("mapping.json");
    std::fs::write(&mapping, r#"{"logs-custom": {"mappings": {"properties": {"custom": {"properties": {"peer": {"type": "ip"}}}}}}}"#)
        .expect("write");
    let events = dir.path().join("e.ndjson");
    std::fs::write(&events, "{\"custom\":{\"peer\":\"169.254.169.254\"}}\n{\"custom\":{\"peer\":\"10.0.0.1\"}}\n").expect("write");
    let run = |with_mapping: bool| {
        let mut c = bin();
        c.args(["search", "custom.peer:169.254.0.0/16", "--ids", "custom.peer"]).arg(&events);
        if with_mapping {
            c.arg("--mapping").arg(&mapping);
        }
        let out = c.output().expect("run");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(run(true).trim(), "169.254.169.254", "an ip field matches a CIDR");
    assert_eq!(run(false).trim(), "", "untyped, the value is a keyword and the CIDR text does not equal it");
}

/// `search --language eql` with Elasticsearch's request settings prints ids in timestamp and
/// tiebreaker order, applying pipes, size and result position.
#[test]
fn search_eql_on_the_conformance_data() {
    let data = repo().join("../shared/conformance/eql/test_data.json");
    let run = |query: &str, extra: &[&str]| {
        let out = bin()
            .args(["search", "--language", "eql", query])
            .arg(&data)
            .args(["--ids", "serial_event_id", "--timestamp-field", "timestamp", "--event-category-field", "event_type"])
            .args(["--tiebreaker-field", "serial_event_id"])
            .args(extra)
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(run("process where serial_event_id < 4", &[]), vec!["1", "2", "3"]);
    assert_eq!(run("process where true | head 6", &[]), vec!["1", "2", "3", "4", "5", "6"]);
    assert_eq!(run("process where true", &["--size", "2", "--result-position", "tail"]).len(), 2);
    assert_eq!(run("process where process_name : \"SYSTEM\"", &[]), vec!["2"]);
    assert!(run("process where process_name == \"SYSTEM\"", &[]).is_empty(), "== is case-sensitive");
}

/// An EQL sequence rule: one building-block alert per event of each sequence plus a shell alert,
/// all sharing `kibana.alert.group.id`; `maxspan` and join keys respected.
#[test]
fn eql_sequence_rule_alerts_like_kibana() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rule = dir.path().join("seq.ndjson");
    std::fs::write(
        &rule,
        serde_json::json!({"rule_id": "seq-1", "name": "curl then IMDS", "description": "d", "severity": "high", "risk_score": 73,
            "type": "eql", "language": "eql",
            "query": "sequence by host.id with maxspan=1m [process where process.name == \"curl\"] [network where destination.ip == \"169.254.169.254\"]"})
        .to_string()
            + "\n",
    )
    .expect("write");
    let ev = |t: &str, host: &str, doc: Value| {
        let mut d = doc;
        d["@timestamp"] = Value::from(t);
        d["host"] = serde_json::json!({"id": host});
        d.to_string()
    };
    let p = |name: &str| serde_json::json!({"event": {"category": ["process"], "type": ["start"]}, "process": {"name": name}});
    let n = || serde_json::json!({"event": {"category": ["network"]}, "destination": {"ip": "169.254.169.254", "port": 80}});
    let events = [
        ev("2026-05-01T10:00:00Z", "h1", p("curl")),
        ev("2026-05-01T10:00:10Z", "h2", n()),  // other host: no sequence
        ev("2026-05-01T10:00:20Z", "h1", n()),  // completes h1
        ev("2026-05-01T10:05:00Z", "h3", p("curl")),
        ev("2026-05-01T10:07:00Z", "h3", n()),  // beyond maxspan
    ]
    .join("\n");
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, events + "\n").expect("write");
    let (alerts, stderr, code) = hunt(&[file.to_str().expect("utf8"), "--no-builtin", "--rules", rule.to_str().expect("utf8"), "--state", ":memory:"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(alerts.len(), 3, "{stderr}");
    let group = field(&alerts[0], "kibana.alert.group.id").clone();
    assert!(group.is_string());
    assert!(alerts.iter().all(|a| field(a, "kibana.alert.group.id") == &group));
    let blocks: Vec<&Value> = alerts.iter().filter(|a| field(a, "kibana.alert.building_block_type") == "default").collect();
    assert_eq!(blocks.len(), 2);
    let shell = alerts.iter().find(|a| field(a, "kibana.alert.group.index").is_null()).expect("shell alert");
    assert_eq!(field(shell, "kibana.alert.ancestors").as_array().map(Vec::len), Some(2));
    assert_eq!(shell["host"]["id"], "h1", "the shell keeps the fields common to the sequence");
    assert_eq!(field(shell, "kibana.alert.original_time"), "2026-05-01T10:00:00Z");

    // The memory bound: beyond --max-sequence-events, events are dropped and counted.
    let (alerts, stderr, _) = hunt(&[
        file.to_str().expect("utf8"),
        "--no-builtin",
        "--rules",
        rule.to_str().expect("utf8"),
        "--state",
        ":memory:",
        "--max-sequence-events",
        "1",
        "--summary-json",
    ]);
    assert!(alerts.is_empty());
    let summary: Value = stderr.lines().rev().find_map(|l| serde_json::from_str(l).ok()).expect("summary");
    assert_eq!(summary["per_rule"][0]["sequence_events_dropped"], 4, "{summary}");
}

/// `search --language eql` prints one line per sequence, its ids separated by spaces.
#[test]
fn search_eql_sequences_print_one_line_per_sequence() {
    let data = repo().join("../shared/conformance/eql/test_data.json");
    let out = bin()
        .args(["search", "--language", "eql", "sequence [process where true] by unique_pid [process where opcode == 1] by unique_ppid | head 3"])
        .arg(&data)
        .args(["--ids", "serial_event_id", "--event-category-field", "event_type", "--tiebreaker-field", "serial_event_id"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(s.lines().collect::<Vec<_>>(), vec!["48 53", "53 54", "54 56"], "{s}");
}

/// Every active EQL rule of Elastic's corpus (single events, sequences, missing events, samples)
/// is valid and runs.
#[test]
fn all_1024_active_eql_rules_of_the_corpus_run() {
    let corpus = repo().join("../shared/corpus/elastic-rules/rules.jsonl");
    let text = std::fs::read_to_string(&corpus).unwrap_or_else(|e| panic!("corpus required at {}: {e}", corpus.display()));
    let active_eql: std::collections::HashSet<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["language"] == "eql" && r["deprecated"] == false)
        .filter_map(|r| r["rule_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(active_eql.len(), 1024);
    let out = bin().args(["rules", "validate", "--format", "json"]).arg(&corpus).output().expect("run");
    let rows = ndjson(&out.stdout);
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| active_eql.contains(r["rule_id"].as_str().unwrap_or("")))
        .filter(|r| r["ok"] != true || r["runnable"] != true)
        .map(|r| format!("{} {}: {} {}", r["rule_id"], r["path"], r["error"], r["note"]))
        .collect();
    assert!(bad.is_empty(), "{} active EQL rules do not run:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn search_eql_samples() {
    let data = repo().join("../shared/conformance/eql/data/sample1.data");
    let out = bin()
        .args(["search", "--language", "eql", "sample by host [any where uptime > 0] [any where port > 100]"])
        .arg(&data)
        .args(["--ids", "id"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(s.lines().collect::<Vec<_>>(), vec!["17 11", "13 110"], "{s}");
}

/// The raw IPv4 packets of one flow (10.0.0.5:40000 -> 169.254.169.254:80): handshake,
/// `request`, `response`.
fn flow_packets(request: &[u8], response: &[u8]) -> Vec<Vec<u8>> {
    flow_packets_to([169, 254, 169, 254], request, response)
}

fn flow_packets_to(imds: [u8; 4], request: &[u8], response: &[u8]) -> Vec<Vec<u8>> {
    use etherparse::PacketBuilder;
    let client = [10, 0, 0, 5];
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut push = |src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, seq: u32, ack: u32, payload: &[u8], syn: bool| {
        let b = PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, seq, 64240);
        let b = match (syn, ack) {
            (true, 0) => b.syn(),
            (true, a) => b.syn().ack(a),
            (false, a) => b.ack(a).psh(),
        };
        let mut buf = Vec::new();
        b.write(&mut buf, payload).expect("packet");
        packets.push(buf);
    };
    push(client, imds, 40000, 80, 1000, 0, &[], true);
    push(imds, client, 80, 40000, 5000, 1001, &[], true);
    push(client, imds, 40000, 80, 1001, 5001, request, false);
    push(imds, client, 80, 40000, 5001, 1001 + request.len() as u32, response, false);
    packets
}

/// A pcap file built here: LINKTYPE_RAW (IPv4), one flow carrying `request` then `response`.
fn write_pcap(path: &Path, request: &[u8], response: &[u8]) {
    write_pcap_of(path, &flow_packets(request, response))
}

fn write_pcap_of(path: &Path, packets: &[Vec<u8>]) {
    let mut out = Vec::new();
    // Global header: magic, v2.4, thiszone, sigfigs, snaplen, linktype 101 (raw IP).
    out.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&101u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        out.extend_from_slice(&(1_777_600_000u32 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    std::fs::write(path, out).expect("write pcap");
}

/// The same flow as a pcapng file whose packets name their process, as macOS `tcpdump -k`
/// writes it (an Apple process information block, and option 0x8001 on each packet).
fn write_pcapng_with_process(path: &Path, request: &[u8], response: &[u8], pid: u32, name: &str) {
    fn block(out: &mut Vec<u8>, btype: u32, mut body: Vec<u8>) {
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = (body.len() + 12) as u32;
        out.extend_from_slice(&btype.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&len.to_le_bytes());
    }
    let mut out = Vec::new();
    let mut shb = 0x1a2b3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&[0xff; 8]);
    block(&mut out, 0x0a0d0d0a, shb);
    let mut idb = 101u16.to_le_bytes().to_vec(); // raw IP, microsecond resolution (default)
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&65535u32.to_le_bytes());
    block(&mut out, 1, idb);
    let mut pib = pid.to_le_bytes().to_vec();
    pib.extend_from_slice(&2u16.to_le_bytes());
    pib.extend_from_slice(&(name.len() as u16).to_le_bytes());
    pib.extend_from_slice(name.as_bytes());
    while !pib.len().is_multiple_of(4) {
        pib.push(0);
    }
    pib.extend_from_slice(&[0; 4]);
    block(&mut out, 0x80000001, pib);
    for (i, p) in flow_packets(request, response).iter().enumerate() {
        let ts = (1_777_600_000u64 + i as u64) * 1_000_000;
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&(p.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(p.len() as u32).to_le_bytes());
        epb.extend_from_slice(p);
        while !epb.len().is_multiple_of(4) {
            epb.push(0);
        }
        epb.extend_from_slice(&0x8001u16.to_le_bytes());
        epb.extend_from_slice(&4u16.to_le_bytes());
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&[0; 4]);
        block(&mut out, 6, epb);
    }
    std::fs::write(path, out).expect("write pcapng");
}

/// Where the capture names the process (pcapng process blocks), the IMDSv1 finding names it too.
#[test]
fn imdsv1_finding_names_the_process_the_capture_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v1.pcapng");
    let req = "GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/8.4.0\r\n\r\n";
    let rsp = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nweb-role";
    write_pcapng_with_process(&path, req.as_bytes(), rsp.as_bytes(), 4242, "curl");
    let (alerts, stderr, _) = hunt(&[path.to_str().expect("utf8"), "--state", ":memory:"]);
    let finding = of_rule(&alerts, IMDSV1_FINDING);
    assert_eq!(finding.len(), 1, "{stderr}");
    assert_eq!(finding[0]["process"]["name"], "curl");
    assert_eq!(finding[0]["process"]["pid"], 4242);
    assert_eq!(finding[0]["source"]["ip"], "10.0.0.5");
}

/// A capture of an IMDSv1 credential request decodes into a Packetbeat-style event with the
/// `imds.*` fields, without the credentials, and the seed rules fire on it in `hunt`.
#[test]
fn decode_and_hunt_a_capture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("imds.pcap");
    let body = r#"{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAPCAPSECRET000001","SecretAccessKey":"pcapSecretAccessKeyValue/abcdefgh","Token":"IQoJpcapTokenValueThatMustNotLeak==","Expiration":"2026-05-01T20:00:00Z"}"#;
    let response = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let request = "GET /latest/meta-data/iam/security-credentials/web-app-role HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
    write_pcap(&pcap, request.as_bytes(), response.as_bytes());
    let out = bin().arg("decode").arg(&pcap).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = ndjson(&out.stdout);
    assert_eq!(events.len(), 1, "{}", String::from_utf8_lossy(&out.stderr));
    let e = &events[0];
    assert_eq!(e["event"]["module"], "network_traffic");
    assert_eq!(e["event"]["dataset"], "network_traffic.http");
    assert_eq!(e["http"]["request"]["method"], "GET");
    assert_eq!(e["http"]["response"]["status_code"], 200);
    assert_eq!(e["url"]["path"], "/latest/meta-data/iam/security-credentials/web-app-role");
    assert_eq!(e["destination"]["ip"], "169.254.169.254");
    assert_eq!(e["destination"]["port"], 80);
    assert_eq!(e["user_agent"]["original"], "curl/8.5.0");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for secret in ["ASIAPCAPSECRET000001", "pcapSecretAccessKeyValue", "IQoJpcapTokenValue"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert_eq!(e["imds"]["aws"]["is_imds_v2"], false, "{e}");
    assert_eq!(e["imds"]["credentials_request"], true, "{e}");

    let (alerts, stderr, code) = hunt(&[pcap.to_str().expect("utf8"), "--state", ":memory:"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(of_rule(&alerts, SEED_001).len(), 1, "seed 001 fires on the decoded request: {stderr}");
    // Seed 002 needs process.name: `not process.name in~ (...)` is null without it (EQL is
    // three-valued), and a capture carries no process.
    assert_eq!(of_rule(&alerts, SEED_002).len(), 0, "{stderr}");
    assert!(stderr.contains("capture"), "{stderr}");
}

const IMDSV1_FINDING: &str = "6f1c2a34-8d3e-4b5a-9c7e-1d2f3a4b5c60";

/// Seed 004: IMDSv1 requests raise one finding per host and process (suppression counts the
/// others); a capture with IMDSv2 only raises none.
#[test]
fn imdsv1_finding_from_captures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let resp = |body: &str| format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    // IMDSv1: two plain GETs on one keep-alive connection.
    let v1 = dir.path().join("v1.pcap");
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: aws-sdk-go/1.44.0\r\n\r\n");
    let req = get("/latest/meta-data/instance-id") + &get("/latest/meta-data/placement/region");
    let rsp = resp("i-0123456789abcdef0") + &resp("eu-west-1");
    write_pcap(&v1, req.as_bytes(), rsp.as_bytes());
    let (alerts, stderr, _) = hunt(&[v1.to_str().expect("utf8"), "--state", ":memory:"]);
    let finding = of_rule(&alerts, IMDSV1_FINDING);
    assert_eq!(finding.len(), 1, "one finding for the host, not one per request: {stderr}");
    let f = finding[0];
    assert_eq!(field(f, "kibana.alert.suppression.docs_count"), 1);
    assert_eq!(f["source"]["ip"], "10.0.0.5", "the finding names the host");
    assert!(field(f, "kibana.alert.reason").as_str().unwrap_or("").contains("10.0.0.5"));
    assert!(field(f, "kibana.alert.rule.note").as_str().unwrap_or("").contains("modify-instance-metadata-options"));

    // IMDSv2: token PUT, then a GET carrying the token.
    let v2 = dir.path().join("v2.pcap");
    let req = "PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 0\r\n\r\n".to_string()
        + "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token: AQAEAsecretsessiontoken==\r\n\r\n";
    let rsp = resp("AQAEAsecretsessiontoken==") + &resp("i-0123456789abcdef0");
    write_pcap(&v2, req.as_bytes(), rsp.as_bytes());
    let out = bin().arg("decode").arg(&v2).output().expect("run");
    let events = ndjson(&out.stdout);
    assert_eq!(events.len(), 2, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("AQAEAsecretsessiontoken"), "the session token never leaves the decoder");
    let (alerts, stderr, _) = hunt(&[v2.to_str().expect("utf8"), "--state", ":memory:"]);
    assert!(of_rule(&alerts, IMDSV1_FINDING).is_empty(), "IMDSv2 only: no finding: {stderr}");
}

/// The shipped allow-list, when loaded, stops the metadata rules from alerting on EC2 Instance
/// Connect's own curl calls; without it they alert. Bad lines of an exceptions file are reported.
#[test]
fn shipped_metadata_agent_exceptions_apply_when_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("eic.ndjson");
    let ev = serde_json::json!({"@timestamp": "2026-05-01T10:00:00Z", "host": {"name": "web-1", "os": {"type": "linux"}},
        "event": {"category": ["process"], "type": ["start"]},
        "process": {"name": "curl", "executable": "/usr/bin/curl", "pid": 4242,
            "command_line": "/usr/bin/curl -s -f -m 1 -H X-aws-ec2-metadata-token:... http://169.254.169.254/latest/meta-data/instance-id/",
            "args": ["/usr/bin/curl", "-s", "http://169.254.169.254/latest/meta-data/instance-id/"],
            "parent": {"name": "eic_run_authorized_keys", "executable": "/usr/share/ec2-instance-connect/eic_run_authorized_keys"}}});
    std::fs::write(&events, format!("{ev}\n")).expect("write");
    let list = repo().join("exceptions/metadata-service-agents.ndjson");
    let (without, _, _) = hunt(&[events.to_str().expect("utf8"), "--state", ":memory:"]);
    assert_eq!(of_rule(&without, SEED_002).len(), 1, "EIC's curl alerts without the allow-list");
    assert_eq!(of_rule(&without, SEED_002)[0]["kibana.alert.rule.exceptions_list"][0]["list_id"], "imdsguard-metadata-service-agents", "the alert names the rule's exception lists");
    let (with, stderr, _) = hunt(&[events.to_str().expect("utf8"), "--state", ":memory:", "--exceptions", list.to_str().expect("utf8")]);
    assert!(of_rule(&with, SEED_002).is_empty(), "excepted by the shipped list: {stderr}");
    assert!(stderr.contains("exception list `imdsguard-metadata-service-agents` applied to"), "{stderr}");

    let bad = dir.path().join("bad.ndjson");
    std::fs::write(&bad, "{\"list_id\":\"x\",\"entries\":[{\"field\":\"a\",\"type\":\"regex\"}]}\nnot json\n").expect("write");
    let (_, stderr, code) = hunt(&[events.to_str().expect("utf8"), "--state", ":memory:", "--exceptions", bad.to_str().expect("utf8")]);
    assert_eq!(code, 0);
    assert!(stderr.contains("bad.ndjson:1: skipped: unknown entry type `regex`") && stderr.contains("bad.ndjson:2: skipped: invalid JSON"), "{stderr}");
}

/// `--baseline`: the benign corpus's own alerts pass; any alert outside the baseline fails the
/// run with status 3 and is listed; a malformed baseline line is reported.
#[test]
fn baseline_gates_new_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let benign = repo().join("examples/events/2026-05-01-benign.ndjson");
    let all = repo().join("examples/events");
    let base = dir.path().join("baseline.ndjson");
    let out = bin().arg("hunt").arg(&benign).args(["--state", ":memory:", "--format", "ndjson", "--now", "2026-05-03T00:00:00Z", "-q"]).output().expect("run");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    let known = text.lines().count();
    assert!(known > 0);
    text.push_str("{oops\n");
    std::fs::write(&base, text).expect("write");
    let run = |input: &Path| {
        bin().arg("hunt").arg(input).args(["--state", ":memory:", "--format", "ndjson", "--now", "2026-05-03T00:00:00Z", "-q", "--baseline"]).arg(&base).output().expect("run")
    };
    let same = run(&benign);
    let stderr = String::from_utf8_lossy(&same.stderr);
    assert_eq!(same.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("no new alerts ({known} known")), "{stderr}");
    assert!(stderr.contains(&format!("baseline.ndjson:{}: skipped: invalid JSON", known + 1)), "{stderr}");
    let more = run(&all);
    let stderr = String::from_utf8_lossy(&more.stderr);
    assert_eq!(more.status.code(), Some(3), "{stderr}");
    let listed = stderr.lines().filter(|l| l.starts_with("  ") && l.contains(SEED_000)).count();
    assert!(listed > 0, "new seed 000 alerts are listed: {stderr}");
}

/// `--explain` on the seed new-terms rule names the include branch that matched (the process
/// name `python*`, and `/var/www/*` for the executable) and shows the exclusions that did not
/// match, with the values seen. Pinned in `tests/snapshots/explain_seed_000.txt`
/// (`UPDATE_SNAPSHOTS=1` rewrites it).
#[test]
fn explain_snapshot_for_the_seed_new_terms_rule() {
    let out = bin()
        .current_dir(repo())
        .args(["hunt", "crates/cli/tests/data/explain_seed_000.ndjson", "--state", ":memory:", "--format", "ndjson", "--now", "2026-05-03T00:00:00Z", "-q", "--explain"])
        .output()
        .expect("run");
    let alerts = ndjson(&out.stdout);
    let seed = of_rule(&alerts, SEED_000);
    assert_eq!(seed.len(), 1, "{}", String::from_utf8_lossy(&out.stderr));
    let text = field(seed[0], "imdsguard.explanation").as_str().expect("explanation").to_string();
    let snap = repo().join("crates/cli/tests/snapshots/explain_seed_000.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snap, &text).expect("write snapshot");
    }
    let want = std::fs::read_to_string(&snap).expect("snapshot (UPDATE_SNAPSHOTS=1 writes it)");
    assert_eq!(text, want);
    assert!(text.contains("[x] process.name: python* (wildcard)   (saw \"python3.11\")"), "{text}");
    assert!(text.contains("[x] not\n    [ ] or"), "the exclusions did not match: {text}");
}

/// `--metadata-endpoint` adds an endpoint (here an OpenStack-style address) to the decoder, and
/// `--host-name`/`--host-id` name the capturing host in the events; a bad endpoint is refused.
#[test]
fn decode_with_an_extra_metadata_endpoint_and_the_capturing_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("os.pcap");
    let req = "GET /openstack/latest/meta_data.json HTTP/1.1\r\nHost: 10.0.0.254\r\nUser-Agent: curl/8.4.0\r\n\r\n";
    let rsp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    write_pcap_of(&pcap, &flow_packets_to([10, 0, 0, 254], req.as_bytes(), rsp.as_bytes()));
    let plain = bin().arg("decode").arg(&pcap).output().expect("run");
    let ev = ndjson(&plain.stdout);
    assert_eq!(ev.len(), 1);
    assert!(ev[0].get("imds").is_none(), "not a metadata endpoint by default");
    let out = bin()
        .arg("decode")
        .arg(&pcap)
        .args(["--metadata-endpoint", "10.0.0.254=openstack", "--host-name", "web-9", "--host-id", "i-09"])
        .output()
        .expect("run");
    let ev = ndjson(&out.stdout);
    assert_eq!(ev[0]["imds"]["cloud_provider"], "openstack", "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ev[0]["host"], serde_json::json!({"name": "web-9", "id": "i-09"}));
    let bad = bin().arg("decode").arg(&pcap).args(["--metadata-endpoint", "not an address"]).output().expect("run");
    assert_ne!(bad.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--metadata-endpoint `not an address`: neither an IP address nor a host name"));
}
