//! `imdsguard rules test`: the built-in pack's fixtures pass; a user rule directory with its
//! sidecar and fixtures file passes; a broken expectation fails (exit 1) with a readable diff.

use assert_cmd::Command;
use std::path::Path;

fn bin() -> Command {
    Command::cargo_bin("imdsguard").expect("binary")
}

const RULE: &str = r#"[metadata]
creation_date = "2026/11/30"
maturity = "production"
updated_date = "2026/11/30"

[rule]
author = ["me"]
description = "curl reads the metadata service"
name = "Curl Reads Metadata"
risk_score = 47
rule_id = "11111111-2222-4333-8444-555555555555"
severity = "medium"
type = "query"
language = "kuery"
index = ["logs-*"]
query = 'event.category:network and destination.ip:"169.254.169.254" and process.name:curl'
"#;

fn write(dir: &Path, sidecar: &str) {
    std::fs::write(dir.join("curl_imds.toml"), RULE).expect("rule");
    std::fs::write(dir.join("curl_imds.test.toml"), sidecar).expect("sidecar");
    std::fs::create_dir_all(dir.join("fixtures")).expect("dir");
    std::fs::write(
        dir.join("fixtures/tp.ndjson"),
        "{\"@timestamp\":\"2026-05-01T10:00:00Z\",\"event\":{\"category\":\"network\"},\"destination\":{\"ip\":\"169.254.169.254\"},\"process\":{\"name\":\"curl\"}}\n",
    )
    .expect("fixture");
}

#[test]
fn builtin_fixtures_pass() {
    let out = bin().args(["rules", "test"]).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().filter(|l| l.starts_with("PASS")).count(), 20, "{stdout}");
}

#[test]
fn user_rules_with_sidecars_pass_and_broken_ones_fail_readably() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "now = \"2026-05-03T00:00:00Z\"\n[[test]]\nname = \"curl\"\nevents_file = \"fixtures/tp.ndjson\"\nalerts = 1\n[[test.expect]]\n\"process.name\" = \"curl\"\n",
    );
    let out = bin().args(["rules", "test"]).arg(dir.path()).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(stdout.trim(), "PASS  Curl Reads Metadata / curl (1 alert(s))");
    assert!(!stderr.contains("error["), "fixtures are not loaded as rules: {stderr}");

    write(
        dir.path(),
        "now = \"2026-05-03T00:00:00Z\"\n[[test]]\nname = \"curl\"\nevents_file = \"fixtures/tp.ndjson\"\nalerts = 1\n[[test.expect]]\n\"process.name\" = \"wget\"\n",
    );
    let out = bin().args(["rules", "test", "--format", "json"]).arg(dir.path()).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let row: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON row");
    assert_eq!(row["status"], "fail");
    assert_eq!(row["diff"], serde_json::json!(["alert 1 process.name: expected \"wget\", got \"curl\""]));
}

/// Sigma rules take `<rule>.test.toml` sidecars too.
#[test]
fn sigma_rules_with_sidecars() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("curl_imds.yml"),
        "title: Curl Reads Metadata\nid: 5b7f0c1e-8f3a-4c2d-9e10-6a7b8c9d0e1f\nstatus: test\nlevel: high\ntags: [attack.credential-access, attack.t1552.005]\nlogsource:\n  category: process_creation\n  product: linux\ndetection:\n  selection:\n    Image|endswith: /curl\n    CommandLine|contains: 169.254.169.254\n  condition: selection\n",
    )
    .expect("rule");
    std::fs::write(
        dir.path().join("curl_imds.test.toml"),
        "now = \"2026-05-03T00:00:00Z\"\n[[test]]\nname = \"curl\"\nevents = '''\n{\"@timestamp\":\"2026-05-01T10:00:00Z\",\"host\":{\"os\":{\"type\":\"linux\"}},\"event\":{\"category\":[\"process\"],\"type\":[\"start\"]},\"process\":{\"executable\":\"/usr/bin/curl\",\"command_line\":\"curl http://169.254.169.254/latest/meta-data/\"}}\n{\"@timestamp\":\"2026-05-01T10:00:01Z\",\"host\":{\"os\":{\"type\":\"linux\"}},\"event\":{\"category\":[\"process\"],\"type\":[\"start\"]},\"process\":{\"executable\":\"/usr/bin/curl\",\"command_line\":\"curl https://example.com\"}}\n'''\nalerts = 1\n[[test.expect]]\n\"kibana.alert.severity\" = \"high\"\n",
    )
    .expect("sidecar");
    let out = bin().args(["rules", "test"]).arg(dir.path()).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), "PASS  Curl Reads Metadata / curl (1 alert(s))");
}
