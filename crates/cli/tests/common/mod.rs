//! Helpers shared by the end-to-end tests: the binary, the repository root, NDJSON output,
//! alert fields and the built-in rules' ids.
#![allow(dead_code)]

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

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
