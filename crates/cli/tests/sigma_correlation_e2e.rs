//! End-to-end: Sigma correlation rules through the real binary (`hunt`, `rules test`) with
//! windows computed by hand, and SigmaHQ's regression-test layout in `rules test`.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;

fn hunt(dir: &Path, events: &str, rules: &[&str]) -> (Vec<Value>, String) {
    let ev = dir.join("events.ndjson");
    std::fs::write(&ev, events).unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = bin();
    cmd.arg("hunt").arg(&ev);
    for r in rules {
        cmd.arg("--rules").arg(dir.join(r));
    }
    let out = cmd
        .args(["--format", "ndjson", "--now", "2026-05-03T00:00:00Z", "--state", ":memory:", "--no-builtin"])
        .output()
        .unwrap_or_else(|e| panic!("run: {e}"));
    (ndjson(&out.stdout), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A Linux process start at 10:mm:ss on `host` by `user` running `cmd`.
fn ev(mm: u32, ss: u32, host: &str, user: &str, cmd: &str) -> String {
    json!({"@timestamp": format!("2026-05-01T10:{mm:02}:{ss:02}Z"), "host": {"name": host, "os": {"type": "linux"}},
        "user": {"name": user}, "event": {"category": ["process"], "type": ["start"]},
        "process": {"name": "curl", "executable": "/usr/bin/curl", "command_line": cmd}})
    .to_string()
        + "\n"
}

const BASE: &str = "title: Metadata address in a command line
id: 11111111-0000-4000-8000-000000000001
name: md_cmdline
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        CommandLine|contains: '169.254.169.254'
    condition: selection
level: low
";

fn shells(alerts: &[Value]) -> Vec<&Value> {
    alerts.iter().filter(|a| a.get("imdsguard.correlation").is_some()).collect()
}

#[test]
fn event_count_in_a_multi_document_file_with_hand_computed_windows() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let corr = format!(
        "title: Repeated metadata requests per host
id: 11111111-0000-4000-8000-0000000000c1
correlation:
    type: event_count
    rules: [md_cmdline]
    group-by: [host.name]
    timespan: 5m
    condition:
        gte: 3
level: high
---
{BASE}"
    );
    std::fs::write(dir.path().join("corr.yml"), corr).unwrap_or_else(|e| panic!("{e}"));
    let md = "curl http://169.254.169.254/latest/meta-data/";
    // h1: 0:00 1:00 | 7:00 8:00 9:00 -> one hit over 7:00-9:00 (0:00 and 1:00 are more than 5m
    // before 7:00). h2: 0:00 2:00 4:59 -> one hit (4:59 < 5m after 0:00). h3: 0:00 5:00 10:00 ->
    // none (events exactly 5m apart are not in one window). A non-matching h1 event at 8:30.
    let events = [
        ev(0, 0, "h1", "u", md),
        ev(0, 0, "h2", "u", md),
        ev(0, 0, "h3", "u", md),
        ev(1, 0, "h1", "u", md),
        ev(2, 0, "h2", "u", md),
        ev(4, 59, "h2", "u", md),
        ev(5, 0, "h3", "u", md),
        ev(7, 0, "h1", "u", md),
        ev(8, 0, "h1", "u", md),
        ev(8, 30, "h1", "u", "curl https://example.com/"),
        ev(9, 0, "h1", "u", md),
        ev(10, 0, "h3", "u", md),
    ]
    .concat();
    let (alerts, stderr) = hunt(dir.path(), &events, &["corr.yml"]);
    let s = shells(&alerts);
    assert_eq!(s.len(), 2, "{stderr}");
    let got: Vec<(String, String, String, Value)> = s
        .iter()
        .map(|a| {
            let c = &a["imdsguard.correlation"];
            (c["group"]["host.name"].as_str().unwrap_or("").to_string(), c["start"].as_str().unwrap_or("").to_string(), c["end"].as_str().unwrap_or("").to_string(), c["value"].clone())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("h2".into(), "2026-05-01T10:00:00.000Z".into(), "2026-05-01T10:04:59.000Z".into(), json!(3.0)),
            ("h1".into(), "2026-05-01T10:07:00.000Z".into(), "2026-05-01T10:09:00.000Z".into(), json!(3.0)),
        ]
    );
    let h1 = s[1];
    assert_eq!(h1["kibana.alert.rule.rule_id"], "11111111-0000-4000-8000-0000000000c1");
    assert_eq!(h1["kibana.alert.severity"], "high");
    assert_eq!(h1["host"]["name"], "h1", "the shell keeps the fields its events share");
    assert_eq!(h1["kibana.alert.ancestors"].as_array().map(Vec::len), Some(3));
    assert!(
        h1["kibana.alert.reason"].as_str().unwrap_or("").starts_with("event_count correlation: 3 event(s) from [Metadata address in a command line] with host.name=h1 within 5m (gte 3)"),
        "{}",
        h1["kibana.alert.reason"]
    );
    // 3 building blocks per hit share the shell's group id; the base rule raises nothing itself.
    assert_eq!(alerts.len(), 8, "{stderr}");
    let group = h1["kibana.alert.group.id"].clone();
    let blocks: Vec<&Value> = alerts.iter().filter(|a| a["kibana.alert.group.id"] == group && a.get("kibana.alert.group.index").is_some()).collect();
    let lines: Vec<&Value> = blocks.iter().map(|b| &b["imdsguard.provenance"]["line"]).collect();
    assert_eq!(lines, [&json!(8), &json!(9), &json!(11)], "event lines of the window");
    assert!(blocks.iter().all(|b| b["kibana.alert.building_block_type"] == "default"));
    assert!(alerts.iter().all(|a| a["kibana.alert.rule.rule_id"] == "11111111-0000-4000-8000-0000000000c1"));
    assert!(stderr.contains("Metadata address in a command line: 11 matching event(s), 0 alert(s)"), "{stderr}");
}

#[test]
fn temporal_ordered_across_files_by_name_with_aliases_and_generate() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let token = "title: Token request in a command line
id: 11111111-0000-4000-8000-000000000002
name: md_token
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        CommandLine|contains: 'api/token'
    condition: selection
level: low
";
    let corr = |generate: bool| {
        format!(
            "title: Token then credentials by one user
correlation:
    type: temporal_ordered
    rules: [md_token, md_cmdline]
    group-by: [who]
    aliases:
        who:
            md_token: User
            md_cmdline: user.name
    timespan: 1m
    generate: {generate}
level: high
"
        )
    };
    std::fs::write(dir.path().join("base.yml"), BASE).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("token.yml"), token).unwrap_or_else(|e| panic!("{e}"));
    let tok = "curl -X PUT http://169.254.169.254/latest/api/token";
    let md = "curl http://169.254.169.254/latest/meta-data/iam/security-credentials/r";
    // alice: token 0:00, credentials 0:30 -> hit. bob: credentials 0:10 before his token 0:20 ->
    // none (the token command line matches both rules but one event fills one step). carol:
    // token 0:00, credentials 1:00 -> exactly 1m later, outside the window.
    let events = [ev(0, 0, "h", "alice", tok), ev(0, 0, "h", "carol", tok), ev(0, 10, "h", "bob", md), ev(0, 20, "h", "bob", tok), ev(0, 30, "h", "alice", md), ev(1, 0, "h", "carol", md)].concat();
    for (generate, base_alerts) in [(false, 0usize), (true, 9)] {
        std::fs::write(dir.path().join("corr.yml"), corr(generate)).unwrap_or_else(|e| panic!("{e}"));
        let (alerts, stderr) = hunt(dir.path(), &events, &["corr.yml", "base.yml", "token.yml"]);
        let s = shells(&alerts);
        assert_eq!(s.len(), 1, "generate {generate}: {stderr}");
        assert_eq!(s[0]["imdsguard.correlation"]["group"]["who"], "alice");
        assert_eq!(s[0]["imdsguard.correlation"]["type"], "temporal_ordered");
        assert_eq!(s[0]["kibana.alert.ancestors"].as_array().map(Vec::len), Some(2));
        // generate: true -> the referenced rules alert as usual (6 credential + 3 token lines).
        let own = alerts.iter().filter(|a| a["kibana.alert.rule.name"] != "Token then credentials by one user").count();
        assert_eq!(own, base_alerts, "generate {generate}: {stderr}");
    }
}

#[test]
fn a_correlation_whose_rules_are_missing_is_reported_and_the_rest_runs() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("corr.yml"),
        "title: Orphan\ncorrelation:\n    type: event_count\n    rules: [nowhere]\n    timespan: 5m\n    condition:\n        gte: 1\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("base.yml"), BASE).unwrap_or_else(|e| panic!("{e}"));
    let (alerts, stderr) = hunt(dir.path(), &ev(0, 0, "h", "u", "curl 169.254.169.254"), &["corr.yml", "base.yml"]);
    assert_eq!(alerts.len(), 1, "the standalone rule alerts: {stderr}");
    assert!(stderr.contains("references rule(s) not loaded: nowhere"), "{stderr}");
}

#[test]
fn rules_test_runs_the_pack_sidecars_and_regression_data() {
    let out = bin()
        .args(["rules", "test", "--format", "json"])
        .arg(repo().join("crates/sigma/rules"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let rows = ndjson(&out.stdout);
    assert!(rows.iter().all(|r| r["status"] == "pass"), "{rows:?}");
    // Every rule of the pack has a regression test (info.yml) with a positive and a negative case.
    let regression: Vec<&Value> = rows.iter().filter(|r| r["sidecar"].as_str().is_some_and(|s| s.ends_with("info.yml"))).collect();
    let mut ids: Vec<&str> = regression.iter().filter_map(|r| r["rule_id"].as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 6, "{regression:?}");
    assert_eq!(regression.len(), 12);
    assert!(stderr.contains("0 rule(s) without fixtures"), "{stderr}");
}

#[test]
fn rules_test_checks_match_count_and_names_what_cannot_run() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = dir.path();
    std::fs::create_dir_all(root.join("rules")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(root.join("regression_data/rules/md")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(root.join("rules/md.yml"), format!("{BASE}regression_tests_path: regression_data/rules/md/info.yml\n")).unwrap_or_else(|e| panic!("{e}"));
    // Data as a JSON array (also accepted: NDJSON, one object).
    let data = format!("[{}, {}]", ev(0, 0, "h", "u", "curl 169.254.169.254").trim(), ev(0, 1, "h", "u", "ls").trim());
    std::fs::write(root.join("regression_data/rules/md/11111111-0000-4000-8000-000000000001.json"), data).unwrap_or_else(|e| panic!("{e}"));
    let info = |count: u64| {
        format!(
            "id: 22222222-0000-4000-8000-000000000001
description: N/A
date: 2026-11-30
author: t
rule_metadata:
    - id: 11111111-0000-4000-8000-000000000001
      title: Metadata address in a command line
regression_tests_info:
    - name: Positive Detection Test
      type: json
      provider: ECS
      match_count: {count}
      path: regression_data/rules/md/11111111-0000-4000-8000-000000000001.json
    - name: Sysmon data
      type: evtx
      provider: Microsoft-Windows-Sysmon
      match_count: 1
      path: regression_data/rules/md/x.evtx
"
        )
    };
    let run = || {
        let out = bin().args(["rules", "test", "--format", "json"]).arg(root.join("rules")).output().unwrap_or_else(|e| panic!("{e}"));
        (out.status.code(), ndjson(&out.stdout), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    std::fs::write(root.join("regression_data/rules/md/info.yml"), info(1)).unwrap_or_else(|e| panic!("{e}"));
    let (code, rows, stderr) = run();
    assert_eq!(code, Some(1), "the evtx test cannot run: {stderr}");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0]["test"].as_str(), rows[0]["status"].as_str(), rows[0]["alerts"].as_u64()), (Some("Positive Detection Test"), Some("pass"), Some(1)));
    assert_eq!(rows[1]["status"], "error");
    assert!(rows[1]["reason"].as_str().unwrap_or("").contains("`evtx` is not supported"), "{rows:?}");

    std::fs::write(root.join("regression_data/rules/md/info.yml"), info(2)).unwrap_or_else(|e| panic!("{e}"));
    let (code, rows, _) = run();
    assert_eq!(code, Some(1));
    assert_eq!(rows[0]["status"], "fail");
    assert_eq!(rows[0]["diff"], json!(["match_count: expected 2, got 1"]));
}
