//! Helpers shared by the end-to-end tests: the binary, the repository root, NDJSON output,
//! alert fields and the built-in rules' ids.
#![allow(dead_code)]

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;

pub const SEED_000: &str = "ad02da2f-443d-454c-a12e-d9e6c65831ff";
pub const SEED_001: &str = "73dd1f2c-3c24-4e13-a64b-dfd510e9fd98";
pub const SEED_002: &str = "4e1e6d2a-9b1c-4c2e-8a7b-1d52a005e001";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `imdsguard` binary, with no state store inherited from the environment.
pub fn bin() -> Command {
    let mut c = Command::cargo_bin("imdsguard").expect("binary");
    c.env_remove("IMDSGUARD_STATE");
    c
}

/// The JSON lines of an output.
pub fn ndjson(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("output line is JSON"))
        .collect()
}

/// A field of an alert by its literal (dotted) key; null when absent.
pub fn field<'a>(a: &'a Value, k: &str) -> &'a Value {
    a.get(k).unwrap_or(&Value::Null)
}

/// The alerts of one rule.
pub fn of_rule<'a>(alerts: &'a [Value], rule_id: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| field(a, "kibana.alert.rule.rule_id") == rule_id).collect()
}

/// Whether `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    std::process::Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Check a test's prerequisites (root when `root`, and `tools` on the PATH): true when all are
/// there; otherwise the test fails naming what is missing, or, with IMDSGUARD_ALLOW_SKIP=1,
/// prints `SKIPPED <test>: <reason>` and the caller returns.
pub fn prerequisites(test: &str, root: bool, tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if root && !is_root() {
        missing.push("root (network namespaces, AF_PACKET)".to_string());
    }
    for tool in tools {
        if !have(tool) {
            missing.push(format!("`{tool}` (run scripts/test-prereqs.sh)"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let reason = format!("missing prerequisite: {}", missing.join(", "));
    if std::env::var("IMDSGUARD_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("SKIPPED {test}: {reason}");
        return false;
    }
    panic!("{test}: {reason}");
}
