//! End-to-end tests of `imdsguard audit` on the real binary: the bundled fixtures
//! (`examples/audit/`), SARIF validated against the OASIS SARIF 2.1.0 JSON schema (vendored in
//! `tests/data/`), per-file errors, exit codes.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> String {
    repo().join("examples/audit").display().to_string()
}

fn alerts() -> String {
    repo().join("examples/audit/alerts.ndjson").display().to_string()
}

struct Run {
    stdout: String,
    stderr: String,
    code: i32,
}

fn audit(args: &[&str]) -> Run {
    let out = Command::cargo_bin("imdsguard").expect("binary").arg("audit").args(args).output().expect("run");
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("output is not JSON ({e}): {s}"))
}

#[test]
fn bundled_fixtures_as_json_observed_first() {
    let dir = fixtures();
    let al = alerts();
    let r = audit(&[&dir, "--alerts", &al, "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r.stdout);
    let findings = v["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 29);
    let first = &findings[0];
    assert_eq!(first["check_id"], "IMDS001");
    assert_eq!(first["severity"], "critical");
    assert_eq!(first["resource"]["id"], "i-0a1b2c3d4e5f60001");
    assert_eq!(first["observed"]["alerts"], 8);
    assert_eq!(first["fix"][0]["text"], "aws ec2 modify-instance-metadata-options --instance-id i-0a1b2c3d4e5f60001 --http-tokens required --http-endpoint enabled");
    assert_eq!(first["equivalents"]["aws_config"][0], "ec2-imdsv2-check");
    assert_eq!(v["summary"]["inputs"], 11);
    assert_eq!(v["summary"]["observed"], 5);
    assert!(v["errors"].as_array().is_some_and(Vec::is_empty));
    assert!(r.stderr.contains("audited 11 input(s) (0 failed): 29 resource(s), 8 auto scaling group(s); 29 finding(s)"), "{}", r.stderr);
    assert!(r.stderr.contains("alerts: 11 IMDSv1 alert(s) on 4 host(s), 1 alert(s) of other rules ignored, 0 line(s) skipped"), "{}", r.stderr);
    // The alerts file is not an audit input when the directory is walked (.ndjson is not read).
    assert!(!r.stderr.contains("alerts.ndjson:"), "{}", r.stderr);
}

/// The published schema's two `language` patterns carry a stray `]`
/// (`^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$`), which the `jsonschema` crate's check of the
/// schema itself rejects as a regex. The file stays as published; the copy compiled here uses
/// the pattern the description means (`en` or `en-US`). imdsguard writes no `language`.
const BAD_LANGUAGE_PATTERN: &str = r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$""#;

fn schema() -> jsonschema::Validator {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sarif-schema-2.1.0.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("vendored SARIF schema {} missing: {e}", p.display()));
    assert_eq!(text.matches(BAD_LANGUAGE_PATTERN).count(), 2, "the vendored schema changed: revisit the language pattern fix");
    let text = text.replace(BAD_LANGUAGE_PATTERN, r#""^[a-zA-Z]{2}(-[a-zA-Z]{2})?$""#);
    let schema = json(&text);
    assert_eq!(schema["$id"], "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/master/Schemata/sarif-schema-2.1.0.json");
    jsonschema::validator_for(&schema).expect("the SARIF schema compiles")
}

fn schema_errors(v: &Jsonschema, doc: &Value) -> Vec<String> {
    v.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

type Jsonschema = jsonschema::Validator;

#[test]
fn sarif_validates_against_the_sarif_2_1_0_schema() {
    let validator = schema();
    let dir = fixtures();
    let al = alerts();
    let r = audit(&[&dir, "--alerts", &al, "--format", "sarif"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let sarif = json(&r.stdout);
    let errors = schema_errors(&validator, &sarif);
    assert!(errors.is_empty(), "{errors:#?}");

    let run = &sarif["runs"][0];
    let rules: Vec<&str> = run["tool"]["driver"]["rules"].as_array().expect("rules").iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(rules, ["IMDS001", "IMDS002", "IMDS003", "IMDS004", "IMDS005"]);
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.len(), 29);
    // IaC: file and line.
    let tf = results.iter().find(|x| x["locations"][0]["logicalLocations"][0]["name"] == "aws_instance.web").expect("aws_instance.web");
    let loc = &tf["locations"][0]["physicalLocation"];
    assert!(loc["artifactLocation"]["uri"].as_str().is_some_and(|u| u.ends_with("examples/audit/main.tf")), "{loc}");
    assert_eq!(loc["region"]["startLine"], 8);
    assert_eq!(tf["level"], "error");
    // Instances and templates: the resource id in the message and as a logical location.
    let inst = &results[0];
    assert!(inst["message"]["text"].as_str().is_some_and(|m| m.starts_with("instance i-0a1b2c3d4e5f60001 (web-1) allows IMDSv1")));
    assert_eq!(inst["locations"][0]["logicalLocations"][0]["fullyQualifiedName"], "aws/i-0a1b2c3d4e5f60001");
    let lt = results
        .iter()
        .find(|x| x["locations"][0]["logicalLocations"][0]["name"] == "lt-0aaa1111bbbb2222c:2")
        .expect("launch template version 2");
    assert!(lt["message"]["text"].as_str().is_some_and(|m| m.contains("lt-0aaa1111bbbb2222c version 2 (default)")));

    // The validator is not a rubber stamp: a broken log fails.
    let mut broken = sarif.clone();
    broken["version"] = Value::from("2.0.0");
    broken["runs"][0]["results"][0]["level"] = Value::from("fatal");
    assert_eq!(schema_errors(&validator, &broken).len(), 2);
}

#[test]
fn sarif_with_input_errors_is_valid_and_reports_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.tf"), "resource \"aws_instance\" \"a\" {\n  ami = \n}\n").expect("write");
    std::fs::write(dir.path().join("ok.tf"), "resource \"aws_instance\" \"b\" {\n}\n").expect("write");
    let d = dir.path().display().to_string();
    let r = audit(&[&d, "--format", "sarif"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let sarif = json(&r.stdout);
    assert!(schema_errors(&schema(), &sarif).is_empty());
    let inv = &sarif["runs"][0]["invocations"][0];
    assert_eq!(inv["executionSuccessful"], false);
    assert_eq!(inv["toolExecutionNotifications"][0]["locations"][0]["physicalLocation"]["region"]["startLine"], 2);
    assert_eq!(sarif["runs"][0]["results"].as_array().map(Vec::len), Some(1));
}

#[test]
fn bad_inputs_give_per_file_errors_and_the_rest_is_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("truncated.json"), "{\n    \"Reservations\": [\n        {\"Instances\": [{\"InstanceId\": \"i-1\"").expect("write");
    std::fs::write(p("invalid.tf"), "resource \"aws_instance\" \"x\" {\n  ami = \"ami-1\"\n  metadata_options {\n").expect("write");
    std::fs::write(p("notes.txt"), "remember to rotate the keys\n").expect("write");
    std::fs::copy(repo().join("examples/audit/main.tf"), p("main.tf")).expect("copy");
    std::fs::copy(repo().join("examples/audit/describe-instances-page1.json"), p("page1.json")).expect("copy");
    let args: Vec<String> = ["truncated.json", "invalid.tf", "notes.txt", "main.tf", "page1.json", "missing.json"]
        .iter()
        .map(|n| p(n).display().to_string())
        .collect();
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.extend(["--format", "json"]);
    let r = audit(&a);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let want = [
        format!("error: {}: no such file or directory", args[5]),
        format!("error: {}:3: truncated JSON (column 43): EOF while parsing an object at line 3 column 43", args[0]),
        format!("error: {}:3: invalid HCL at column 22: invalid block body", args[1]),
        format!("error: {}: unknown input: expected AWS CLI JSON", args[2]),
    ];
    for w in &want {
        assert!(r.stderr.lines().any(|l| l.starts_with(w.as_str())), "missing {w:?} in\n{}", r.stderr);
    }
    assert!(r.stderr.contains("audited 6 input(s) (4 failed)"), "{}", r.stderr);
    let v = json(&r.stdout);
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(4));
    let ids: Vec<&str> = v["findings"].as_array().expect("findings").iter().filter_map(|f| f["resource"]["id"].as_str()).collect();
    assert!(ids.contains(&"i-0a1b2c3d4e5f60001") && ids.contains(&"aws_instance.web"), "{ids:?}");
}

#[test]
fn fail_on_gates_on_severity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("bastion.json");
    std::fs::write(
        &f,
        r#"{"Reservations": [{"Instances": [{"InstanceId": "i-0b", "State": {"Name": "running"},
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2}}]}]}"#,
    )
    .expect("write");
    let f = f.display().to_string();
    let table: &[(&[&str], i32)] = &[
        (&[], 0),
        (&["--fail-on", "info"], 1),
        (&["--fail-on", "low"], 1),
        (&["--fail-on", "medium"], 0),
        (&["--fail-on", "critical"], 0),
        (&["--fail-on", "low", "--container-host", "i-0b"], 0),
    ];
    for (extra, code) in table {
        let mut a = vec![f.as_str(), "--format", "json", "-q"];
        a.extend(extra.iter());
        let r = audit(&a);
        assert_eq!(r.code, *code, "{extra:?}: {}", r.stderr);
    }
    let r = audit(&[&f, "--fail-on", "severe"]);
    assert_eq!(r.code, 2, "a bad value is a usage error");
}

#[test]
fn default_format_off_a_terminal_is_json_and_stdin_is_read() {
    let page = std::fs::read(repo().join("examples/audit/describe-instances-page2.json")).expect("fixture");
    let out = Command::cargo_bin("imdsguard").expect("binary").args(["audit", "-", "-q"]).write_stdin(page).output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    let v = json(&String::from_utf8_lossy(&out.stdout));
    assert!(v["findings"].as_array().is_some_and(|f| f.iter().all(|x| x["location"]["file"] == "<stdin>")));
    // legacy-report (IMDSv1), bastion (hop 2), static-site (endpoint), web-asg-node (IMDSv1), and
    // the ECS host's hop 2, unexplained without describe-images.
    assert_eq!(v["findings"].as_array().map(Vec::len), Some(5));
}

#[test]
fn table_lists_each_finding_with_its_fix() {
    let f = repo().join("examples/audit/stack.yaml").display().to_string();
    let r = audit(&[&f, "--format", "table", "-q"]);
    assert_eq!(r.code, 0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("SEVERITY  CHECK    RESOURCE"), "{}", r.stdout);
    assert!(r.stdout.contains("    fix (cloudformation): MetadataOptions:\n        HttpEndpoint: enabled\n        HttpTokens: required\n"), "{}", r.stdout);
    assert!(r.stdout.contains("same as: AWS Config ec2-launch-template-imdsv2-check; Prowler ec2_launch_template_imdsv2_required; Checkov CKV_AWS_79"));
}

#[test]
fn an_alerts_file_inside_the_audited_directory_is_not_an_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(repo().join("examples/audit/describe-instances-page1.json"), dir.path().join("page1.json")).expect("copy");
    // A Kibana export as a JSON array: a .json file the directory walk would pick up.
    let alerts = serde_json::json!([{
        "kibana.alert.rule.rule_id": "6f1c2a34-8d3e-4b5a-9c7e-1d2f3a4b5c60",
        "host": {"name": "ip-10-0-1-16.ec2.internal"},
        "kibana.alert.original_time": "2026-11-29T10:00:00.000Z"
    }]);
    let a = dir.path().join("alerts.json");
    std::fs::write(&a, alerts.to_string()).expect("write");
    let (d, a) = (dir.path().display().to_string(), a.display().to_string());
    let r = audit(&[&d, "--alerts", &a, "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r.stdout);
    assert_eq!(v["summary"]["inputs"], 1);
    // web-2 requires tokens: the alert matches it, but there is no IMDSv1 finding to mark.
    assert!(v["findings"].as_array().is_some_and(|f| f.iter().all(|x| x["observed"].is_null())));
    let notes: Vec<&str> = v["notes"].as_array().expect("notes").iter().filter_map(Value::as_str).collect();
    assert_eq!(
        notes,
        ["IMDSv1 use observed (1 alert(s), host.name=ip-10-0-1-16.ec2.internal) on instance i-0a1b2c3d4e5f60002, which requires tokens or has the endpoint disabled now: the requests were refused or predate the change"]
    );
}
