//! The two EQL seed rules of the built-in pack, firing and not firing on every clause:
//! 001 "Cloud Instance Metadata Credential Path HTTP Request" (Packetbeat HTTP events) and
//! 002 "Detect Cloud Instance Metadata API" (network connections and process starts).

use imdsguard_ecs::FieldTable;
use imdsguard_engine::{compile_rule, CompiledRule};
use serde_json::{json, Value};
use std::sync::Arc;

mod common;
use common::with;

fn rule(id: &str) -> CompiledRule {
    let set = imdsguard_rules::builtin();
    let r = set.rules.into_iter().find(|r| r.rule_id == id).expect("seed rule in the built-in pack");
    compile_rule(Arc::new(r), &Arc::new(FieldTable::ecs()), 0).expect("seed rule compiles")
}


fn check(r: &CompiledRule, cases: &[(&str, Value, bool)]) {
    let mut failures = Vec::new();
    for (name, doc, want) in cases {
        let sonic: sonic_rs::Value = sonic_rs::from_str(&doc.to_string()).expect("json");
        let got = r.matcher.matches(&sonic);
        if got != *want {
            failures.push(format!("{name}: expected {want}, got {got} for {doc}"));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

fn http() -> Value {
    json!({
        "@timestamp": "2026-05-01T14:00:00Z",
        "event": {"category": ["network"], "module": "network_traffic", "dataset": "network_traffic.http"},
        "destination": {"ip": "169.254.169.254", "port": 80},
        "http": {"request": {"method": "GET"}},
        "url": {"path": "/latest/meta-data/iam/security-credentials/web-app-role"},
        "process": {"name": "curl", "executable": "/usr/bin/curl"},
        "user_agent": {"original": "curl/8.5.0"},
    })
}

#[test]
fn seed_001_every_clause() {
    let r = rule("73dd1f2c-3c24-4e13-a64b-dfd510e9fd98");
    assert_eq!(r.rule.severity.as_str(), "medium");
    assert_eq!(r.rule.risk_score, 47);
    assert_eq!(r.rule.timestamp_override.as_deref(), Some("event.ingested"));
    assert_eq!(r.rule.from, "now-9m");
    assert_eq!(r.rule.index, vec!["logs-network_traffic.http*", "packetbeat-*"]);
    let b = http;
    let no_proc = || with(with(b(), "process", Value::Null), "user_agent.original", json!("Mozilla/5.0"));
    check(
        &r,
        &[
            ("base", b(), true),
            ("category process", with(b(), "event.category", json!(["process"])), false),
            ("category array with network", with(b(), "event.category", json!(["network", "web"])), true),
            ("module endpoint", with(b(), "event.module", json!("endpoint")), false),
            ("module upper case (== is case-sensitive)", with(b(), "event.module", json!("Network_Traffic")), false),
            ("other address", with(b(), "destination.ip", json!("169.254.170.2")), false),
            ("IPv4-mapped address", with(b(), "destination.ip", json!("::ffff:169.254.169.254")), true),
            ("port 443", with(b(), "destination.port", json!(443)), false),
            ("port as string", with(b(), "destination.port", json!("80")), true),
            ("PUT (IMDSv2 token)", with(b(), "http.request.method", json!("PUT")), false),
            ("get lower case (== is case-sensitive)", with(b(), "http.request.method", json!("get")), false),
            ("AWS credentials listing", with(b(), "url.path", json!("/latest/meta-data/iam/security-credentials/")), true),
            ("AWS path in upper case (: is case-insensitive)", with(b(), "url.path", json!("/LATEST/META-DATA/IAM/SECURITY-CREDENTIALS/x")), true),
            ("GCP token", with(b(), "url.path", json!("/computeMetadata/v1/instance/service-accounts/default/oauth2/access_token")), true),
            ("Azure token", with(b(), "url.path", json!("/metadata/identity/oauth2/token")), true),
            ("instance id only", with(b(), "url.path", json!("/latest/meta-data/instance-id")), false),
            ("url.path missing", with(b(), "url.path", Value::Null), false),
            ("process python3", with(b(), "process.name", json!("python3")), true),
            ("process CURL (: is case-insensitive)", with(b(), "process.name", json!("CURL")), true),
            ("process .hidden", with(b(), "process.name", json!(".x")), true),
            (
                "unlisted process, temp executable",
                with(with(b(), "process.name", json!("agent")), "process.executable", json!("/tmp/agent")),
                true,
            ),
            (
                "unlisted process, Windows user dir",
                with(with(b(), "process.name", json!("agent.exe")), "process.executable", json!("C:\\Users\\bob\\agent.exe")),
                true,
            ),
            (
                "unlisted process, ProgramData on any drive",
                with(with(b(), "process.name", json!("agent.exe")), "process.executable", json!("D:\\ProgramData\\agent.exe")),
                true,
            ),
            (
                "unlisted process and path, tool user agent",
                with(with(b(), "process.name", json!("agent")), "process.executable", json!("/usr/bin/agent")),
                true,
            ),
            (
                "unlisted process, path and agent",
                with(
                    with(with(b(), "process.name", json!("agent")), "process.executable", json!("/usr/bin/agent")),
                    "user_agent.original",
                    json!("Mozilla/5.0"),
                ),
                false,
            ),
            ("?process.name absent, tool user agent", with(b(), "process", Value::Null), true),
            ("no process fields and a browser agent", no_proc(), false),
            ("user agent Go-http-client", with(no_proc(), "user_agent.original", json!("Go-http-client/1.1")), true),
            ("user agent with PowerShell", with(no_proc(), "user_agent.original", json!("Mozilla/5.0 (Windows NT; WindowsPowerShell/5.1)")), true),
        ],
    );
}

fn net() -> Value {
    json!({
        "event": {"category": ["network"], "type": ["start"]},
        "destination": {"ip": "169.254.169.254", "port": 80},
        "process": {"name": "curl"},
    })
}

fn proc_start(cmd: &str) -> Value {
    json!({
        "event": {"category": ["process"], "type": ["start"]},
        "process": {"name": "curl", "command_line": cmd, "args": cmd.split(' ').collect::<Vec<_>>()},
    })
}

#[test]
fn seed_002_every_clause() {
    let r = rule("4e1e6d2a-9b1c-4c2e-8a7b-1d52a005e001");
    assert_eq!(r.rule.severity.as_str(), "high");
    assert_eq!(r.rule.rule_type.as_str(), "eql");
    let threat = serde_json::to_string(&r.rule.threat).expect("threat");
    assert!(threat.contains("T1552.005"));
    let mut cases: Vec<(String, Value, bool)> = vec![
        ("network to the AWS address".into(), net(), true),
        ("network, category as string".into(), with(net(), "event.category", json!("network")), true),
        ("network, other address".into(), with(net(), "destination.ip", json!("10.0.0.1")), false),
        (
            "destination.address".into(),
            with(with(net(), "destination.ip", Value::Null), "destination.address", json!("169.254.169.254")),
            true,
        ),
        (
            "AWS IPv6 address".into(),
            with(with(net(), "destination.ip", Value::Null), "destination.address", json!("fd00:ec2::254")),
            true,
        ),
        (
            "GCP domain".into(),
            with(with(net(), "destination", Value::Null), "url.domain", json!("metadata.google.internal")),
            true,
        ),
        ("network, process name absent".into(), with(net(), "process", Value::Null), false),
        ("category Network (== is case-sensitive)".into(), with(net(), "event.category", json!("Network")), false),
        ("process start with the address".into(), proc_start("curl http://169.254.169.254/latest/meta-data/"), true),
        ("process start, Azure".into(), proc_start("curl -H Metadata:true http://x/metadata/instance?api-version=2021"), true),
        ("process start, GCP".into(), proc_start("curl http://metadata.google.internal/computeMetadata/v1/"), true),
        ("process start, case variant (: is case-insensitive)".into(), proc_start("CURL HTTP://X/LATEST/META-DATA/"), true),
        ("process start, unrelated".into(), proc_start("curl https://example.com/"), false),
        ("process end".into(), with(proc_start("curl http://169.254.169.254/"), "event.type", json!(["end"])), false),
        (
            "process start, address only in args array".into(),
            with(with(proc_start("x"), "process.command_line", Value::Null), "process.args", json!(["curl", "http://169.254.169.254/"])),
            true,
        ),
    ];
    for agent in ["AzureGuestAgent.exe", "WindowsAzureGuestAgent.exe", "WaAppAgent.exe", "aws-cfn-bootstrap", "cloud-init", "amazon-ssm-agent", "google_guest_agent", "waagent"] {
        cases.push((format!("network by agent {agent}"), with(net(), "process.name", json!(agent)), false));
        cases.push((format!("network by agent {agent} in upper case (in~)"), with(net(), "process.name", json!(agent.to_uppercase())), false));
    }
    for agent in ["aws-cfn-bootstrap", "cloud-init", "amazon-ssm-agent", "google_guest_agent", "waagent", "AzureGuestAgent.exe"] {
        cases.push((
            format!("process start by agent {agent}"),
            with(proc_start("x http://169.254.169.254/"), "process.name", json!(agent)),
            false,
        ));
    }
    // WaAppAgent.exe is excluded for network events only.
    cases.push(("process start by WaAppAgent.exe".into(), with(proc_start("x http://169.254.169.254/"), "process.name", json!("WaAppAgent.exe")), true));
    let cases: Vec<(&str, Value, bool)> = cases.iter().map(|(n, d, w)| (n.as_str(), d.clone(), *w)).collect();
    check(&r, &cases);
}
