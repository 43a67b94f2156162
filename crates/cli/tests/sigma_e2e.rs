//! End-to-end: Sigma rules through the real binary (`hunt --rules x.yml`, `rules validate`,
//! `rules list`, `--sigma-pipeline`).

mod common;

use common::*;
use serde_json::Value;

fn hunt(args: &[&str]) -> (Vec<Value>, String, i32) {
    let out = bin()
        .arg("hunt")
        .args(args)
        .args(["--format", "ndjson", "--now", "2026-05-03T00:00:00Z", "--state", ":memory:", "--no-builtin"])
        .output()
        .unwrap_or_else(|e| panic!("run: {e}"));
    (ndjson(&out.stdout), String::from_utf8_lossy(&out.stderr).into_owned(), out.status.code().unwrap_or(-1))
}

fn pack(name: &str) -> String {
    repo().join("crates/sigma/rules").join(name).display().to_string()
}

fn fixture(name: &str) -> String {
    repo().join("crates/sigma/fixtures").join(name).display().to_string()
}

#[test]
fn hunt_runs_a_sigma_rule_with_severity_risk_and_mitre() {
    let (alerts, stderr, _) = hunt(&[
        &fixture("imds_proc_creation_lnx_metadata_api_cmdline.hit.ndjson"),
        &fixture("imds_proc_creation_lnx_metadata_api_cmdline.miss.ndjson"),
        "--rules",
        &pack("imds_proc_creation_lnx_metadata_api_cmdline.yml"),
    ]);
    assert_eq!(alerts.len(), 3, "{stderr}");
    let a = &alerts[0];
    assert_eq!(a["kibana.alert.rule.rule_id"], "7c0e5a52-2f4e-4f57-9c83-5a6f0e2b1101");
    assert_eq!(a["kibana.alert.severity"], "high");
    assert_eq!(a["kibana.alert.risk_score"], 73);
    let threat = a["kibana.alert.rule.threat"].to_string();
    assert!(threat.contains("TA0006") && threat.contains("T1552.005"), "{threat}");
}

#[test]
fn every_pack_rule_alerts_on_its_fixtures_through_the_binary() {
    for stem in [
        "imds_proc_creation_lnx_metadata_api_cmdline",
        "imds_net_connection_lnx_metadata_endpoint",
        "imds_http_credential_path_request",
        "imds_aws_imdsv1_use",
    ] {
        let hits = std::fs::read_to_string(fixture(&format!("{stem}.hit.ndjson"))).unwrap_or_default().lines().count();
        let (alerts, stderr, _) = hunt(&[&fixture(&format!("{stem}.hit.ndjson")), "--rules", &pack(&format!("{stem}.yml"))]);
        assert_eq!(alerts.len(), hits, "{stem}: {stderr}");
        let (alerts, stderr, _) = hunt(&[&fixture(&format!("{stem}.miss.ndjson")), "--rules", &pack(&format!("{stem}.yml"))]);
        assert_eq!(alerts.len(), 0, "{stem}: {stderr}");
    }
}

#[test]
fn bad_sigma_rules_are_reported_per_file_and_the_rest_load() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let good = dir.path().join("good.yml");
    std::fs::write(&good, "title: good\nid: 11111111-2222-3333-4444-555555555555\nlogsource:\n  product: linux\n  category: process_creation\ndetection:\n  sel:\n    CommandLine|contains: 169.254.169.254\n  condition: sel\nlevel: low\n").unwrap_or_else(|e| panic!("{e}"));
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "title: bad\nlogsource:\n  product: linux\ndetection:\n  sel:\n    Image|nosuch: x\n  condition: sel\n").unwrap_or_else(|e| panic!("{e}"));
    let corr = dir.path().join("corr.yml");
    std::fs::write(&corr, "title: c\nlogsource:\n  product: linux\ncorrelation:\n  type: event_count\n  rules: [x]\n  group-by: [host.name]\n  timespan: 5m\n  condition:\n    gte: 2\n").unwrap_or_else(|e| panic!("{e}"));
    let out = bin().args(["rules", "validate"]).arg(dir.path()).output().unwrap_or_else(|e| panic!("{e}"));
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("bad.yml") && all.contains("unknown value modifier `nosuch`"), "{all}");
    assert!(all.contains("corr.yml") && all.contains("Sigma correlation references rule(s) not loaded: x"), "{all}");
    assert!(all.contains("good"), "{all}");
    let list = bin().args(["rules", "list", "--no-builtin", "--format", "json", "--rules"]).arg(dir.path()).output().unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&list.stdout);
    assert!(stdout.contains("11111111-2222-3333-4444-555555555555"), "{stdout}");
}

#[test]
fn sigma_pipeline_flag_replaces_the_builtin_mapping() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let rule = dir.path().join("r.yml");
    std::fs::write(&rule, "title: r\nid: 22222222-2222-3333-4444-555555555555\nlogsource:\n  product: myapp\ndetection:\n  sel:\n    Url|contains: security-credentials\n  condition: sel\nlevel: critical\n").unwrap_or_else(|e| panic!("{e}"));
    let pipeline = dir.path().join("p.yml");
    std::fs::write(&pipeline, "name: myapp\ntransformations:\n  - type: field_name_mapping\n    mapping:\n      Url: url.original\n    rule_conditions:\n      - type: logsource\n        product: myapp\n").unwrap_or_else(|e| panic!("{e}"));
    let events = dir.path().join("e.ndjson");
    std::fs::write(&events, "{\"@timestamp\":\"2026-05-01T10:00:00Z\",\"url\":{\"original\":\"http://169.254.169.254/latest/meta-data/iam/security-credentials/r\"}}\n").unwrap_or_else(|e| panic!("{e}"));
    let (alerts, stderr, _) = hunt(&[&events.display().to_string(), "--rules", &rule.display().to_string()]);
    assert_eq!(alerts.len(), 0, "without the pipeline the field is `Url`: {stderr}");
    assert!(stderr.contains("S004"), "unmapped logsource is warned about: {stderr}");
    let (alerts, stderr, _) = hunt(&[&events.display().to_string(), "--rules", &rule.display().to_string(), "--sigma-pipeline", &pipeline.display().to_string()]);
    assert_eq!(alerts.len(), 1, "{stderr}");
    assert_eq!(alerts[0]["kibana.alert.severity"], "critical");
    assert_eq!(alerts[0]["kibana.alert.risk_score"], 99);
}

/// Export each built-in rule to Sigma (`imdsguard_sigma::export`), load the YAML back as a Sigma
/// rule and check that it matches exactly the same fixture events as the original. Rules Sigma
/// cannot express are refused with a reason (new_terms, sequences).
#[test]
fn builtin_rules_exported_to_sigma_match_the_same_fixture_events() {
    let table = std::sync::Arc::new(imdsguard_ecs::FieldTable::ecs());
    let now = 1_777_766_400_000; // 2026-05-03
    // Every fixture event of every built-in sidecar.
    let mut events: Vec<Value> = Vec::new();
    for (_, sidecar) in imdsguard_rules::BUILTIN_TESTS {
        let parsed = imdsguard_ruletest::parse_sidecar(sidecar).unwrap_or_else(|e| panic!("{e}"));
        for case in parsed.tests {
            let text = match case.events {
                imdsguard_ruletest::Events::Inline(t) => t,
                imdsguard_ruletest::Events::File(f) => std::fs::read_to_string(repo().join("crates/rules/builtin").join(&f)).unwrap_or_else(|e| panic!("{f}: {e}")),
            };
            events.extend(text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))));
        }
    }
    assert!(events.len() > 20, "{} fixture events", events.len());
    let set = imdsguard_rules::builtin();
    let (mut exported, mut refused) = (0, Vec::new());
    for rule in &set.rules {
        let original = imdsguard_engine::compile_matcher(rule, &table, now).unwrap_or_else(|e| panic!("{}: {e:?}", rule.name)).0;
        let yaml = match imdsguard_engine::sigma_export::export_sigma(rule, &table, now) {
            Ok(y) => y,
            Err(reason) => {
                refused.push(format!("{}: {reason}", rule.name));
                continue;
            }
        };
        let back = imdsguard_rules::load_texts([("exported.yml", yaml.as_str())]);
        assert!(back.hard_errors().count() == 0 && back.errors.is_empty(), "{}: {}\n{yaml}", rule.name, back.render_errors());
        let sigma_rule = &back.rules[0];
        assert_eq!((sigma_rule.rule_id.as_str(), sigma_rule.severity), (rule.rule_id.as_str(), rule.severity));
        assert_eq!(sigma_rule.technique_ids(), rule.technique_ids(), "{}", rule.name);
        let sigma = imdsguard_engine::compile_matcher(sigma_rule, &table, now).unwrap_or_else(|e| panic!("{}: {e:?}", rule.name)).0;
        let mut hits = 0;
        for ev in &events {
            let (a, b) = (original.matches(ev), sigma.matches(ev));
            assert_eq!(a, b, "{}: original {a}, exported {b} on {ev}\n{yaml}", rule.name);
            hits += usize::from(a);
        }
        assert!(hits > 0, "{}: no fixture event matches", rule.name);
        exported += 1;
    }
    eprintln!("exported {exported} built-in rule(s); refused: {refused:#?}");
    assert!(exported >= 5, "exported {exported}; refused {refused:?}");
    assert!(refused.iter().any(|r| r.contains("new_terms")), "{refused:?}");
}

/// `rules export --format sigma -o DIR` writes one file per exportable rule, says why the others
/// are not exported, and the exported files hunt like the originals on the bundled attacks.
#[test]
fn rules_export_writes_sigma_files_that_hunt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bin().args(["rules", "export", "--format", "sigma", "-o"]).arg(dir.path()).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("6 rule(s) exported as Sigma, 2 not exported"), "{stderr}");
    assert!(stderr.contains("new_terms alerts on values not seen in a history window"), "{stderr}");
    let files = std::fs::read_dir(dir.path()).expect("dir").count();
    assert_eq!(files, 6);
    let attacks = repo().join("examples/events/2026-05-01-attacks.ndjson");
    let run = |extra: &[&str]| {
        let o = bin().arg("hunt").arg(&attacks).args(["--state", ":memory:", "--format", "ndjson", "--now", "2026-05-03T00:00:00Z", "-q"]).args(extra).output().expect("run");
        let mut ids: Vec<String> = ndjson(&o.stdout).iter().map(|a| format!("{} {}", field(a, "kibana.alert.rule.rule_id"), field(a, "kibana.alert.original_time"))).collect();
        ids.sort();
        ids
    };
    let exported = run(&["--no-builtin", "--rules", dir.path().to_str().expect("utf8")]);
    // The same alerts, minus those of the two rules Sigma cannot express.
    let original: Vec<String> =
        run(&[]).into_iter().filter(|l| !l.starts_with(&format!("\"{SEED_000}")) && !l.starts_with("\"ad50e678")).collect();
    assert!(!exported.is_empty());
    assert_eq!(exported, original);
}
