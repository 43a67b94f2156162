//! Architecture invariants checked on the workspace itself.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

const CORE: &[&str] = &[
    "imdsguard-syntax",
    "imdsguard-ecs",
    "imdsguard-kql",
    "imdsguard-ir",
    "imdsguard-rules",
    "imdsguard-engine",
    "imdsguard-alerts",
    "imdsguard-ruletest",
    "imdsguard-auditd",
    "imdsguard-posture",
];

/// Crates a pure core must never pull in, even transitively.
const FORBIDDEN: &[&str] = &[
    "tokio", "async-std", "hyper", "axum", "reqwest", "rusqlite", "libsqlite3-sys", "rdkafka", "rdkafka-sys", "rskafka", "imdsguard-kafka", "ureq", "pcap",
    "pcap-file", "pcap-parser", "libbpf-rs", "aya", "indicatif", "clap", "anyhow",
];

#[test]
fn core_crates_do_no_io_dependencies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let vv = Command::new(rustc).arg("-vV").output().expect("rustc -vV");
    let host = String::from_utf8_lossy(&vv.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("host triple");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--filter-platform", &host])
        .current_dir(&root)
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata json");
    let packages = meta["packages"].as_array().expect("packages");
    let name_of: HashMap<&str, &str> =
        packages.iter().filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?))).collect();
    let nodes = meta["resolve"]["nodes"].as_array().expect("resolve nodes");
    let deps: HashMap<&str, Vec<(&str, bool)>> = nodes
        .iter()
        .filter_map(|n| {
            let id = n["id"].as_str()?;
            let ds = n["deps"]
                .as_array()?
                .iter()
                .filter_map(|d| {
                    let normal = d["dep_kinds"].as_array()?.iter().any(|k| k["kind"].is_null());
                    Some((d["pkg"].as_str()?, normal))
                })
                .collect();
            Some((id, ds))
        })
        .collect();
    let mut problems = Vec::new();
    for core in CORE {
        let Some((id, _)) = name_of.iter().find(|(_, n)| *n == core) else {
            problems.push(format!("{core} not found in the workspace"));
            continue;
        };
        let mut seen = BTreeSet::new();
        let mut stack = vec![*id];
        while let Some(cur) = stack.pop() {
            for (d, normal) in deps.get(cur).into_iter().flatten() {
                if *normal && seen.insert(*d) {
                    stack.push(d);
                }
            }
        }
        for d in &seen {
            let n = name_of.get(d).copied().unwrap_or("?");
            if FORBIDDEN.contains(&n) {
                problems.push(format!("{core} depends on {n}"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_crate_has_a_module_doc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&root).expect("crates dir") {
        let dir = entry.expect("entry").path();
        for f in ["src/lib.rs", "src/main.rs"] {
            let p = dir.join(f);
            if let Ok(text) = std::fs::read_to_string(&p) {
                if !text.trim_start().starts_with("//!") {
                    missing.push(p.display().to_string());
                }
            }
        }
    }
    assert!(missing.is_empty(), "crate roots without a //! doc: {missing:?}");
}
