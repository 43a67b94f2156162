//! Every active EQL query of Elastic's prebuilt rules parses, and so do the seed rules' queries.

use std::path::Path;

/// Seed 001, "Cloud Instance Metadata Credential Path HTTP Request" (Elastic).
const SEED_001: &str = r#"network where event.module == "network_traffic" and destination.ip == "169.254.169.254" and destination.port == 80 and
http.request.method == "GET" and url.path : (
  "/latest/meta-data/iam/security-credentials/*",
  "*computeMetadata/v1/instance/service-accounts/*/oauth2/access_token*",
  "*metadata/identity/oauth2/token*"
) and (
  ?process.name : (
    "curl", "wget", "python*", "node", "bun", "php*", "ruby", "perl", "bash", "dash", "sh", "tcsh", "tclsh", "wish",
    "csh", "zsh", "ksh", "fish", "mksh", "busybox",
    "bun.exe", "node.exe", "powershell.exe", "cmd.exe", "curl.exe", "wget.exe", "rundll32.exe", "w3wp.exe", "java*",
    "go", "nc", "netcat", "nginx", "apache*", "httpd", "tomcat*", "catalina", "spring*", "dotnet", "gunicorn", "uwsgi",
    ".*", "osascript"
  ) or ?process.executable : (
    "/tmp/*", "/var/tmp/*", "/dev/shm/*", "/home/*/*", "/var/run/*", "/run/*", "/boot/*", "/.*", "C:\\Users\\*", "?:\\ProgramData\\*"
  ) or user_agent.original : (
    "curl*", "wget*", "python*", "ruby*", "Go-http-client*", "node*", "axios*", "undici*", "java*", "php*", "Bun*",
    "Apache-HttpClient*", "okhttp*", "RestTemplate*", "*WindowsPowerShell*", "*roadtools*", "*fasthttp*", "*azurehound*", "*bloodhound*", "*aiohttp*"
  )
)"#;

/// Seed 002, "Detect Cloud Instance Metadata API" (T1552.005), with its `//` comments.
const SEED_002: &str = r#"any where
(
  // Pattern 1: Network connections to metadata API endpoints
  (
    event.category == "network" and
    (
      destination.ip == "169.254.169.254" or
      destination.address == "169.254.169.254" or
      url.domain == "metadata.google.internal" or
      destination.address == "fd00:ec2::254"
    ) and
    not process.name in~ ("AzureGuestAgent.exe", "WindowsAzureGuestAgent.exe", "WaAppAgent.exe",
                           "aws-cfn-bootstrap", "cloud-init", "amazon-ssm-agent",
                           "google_guest_agent", "waagent")
  )
  or
  // Pattern 2: Process execution with metadata API strings in args
  (
    event.category == "process" and
    event.type == "start" and
    (
      process.args : "*169.254.169.254*" or
      process.command_line : "*169.254.169.254*" or
      process.command_line : "*metadata/instance*" or
      process.command_line : "*iam/security-credentials*" or
      process.command_line : "*latest/meta-data*" or
      process.command_line : "*latest/dynamic*" or
      process.command_line : "*instance-identity*" or
      process.command_line : "*computeMetadata*" or
      process.command_line : "*metadata.google.internal*" or
      process.command_line : "*imds.azure.com*" or
      process.command_line : "*metadata/v1*"
    ) and
    not process.name in~ ("aws-cfn-bootstrap", "cloud-init", "amazon-ssm-agent",
                           "google_guest_agent", "waagent", "AzureGuestAgent.exe")
  )
)"#;

fn parse_or_render(query: &str, origin: &str) -> Result<imdsguard_eql::ast::Query, String> {
    imdsguard_eql::parse(query).map_err(|d| d.render(query, origin))
}

#[test]
fn all_1024_active_eql_queries_of_the_elastic_corpus_parse() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/elastic-rules/rules.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the rule corpus is required at {}: {e}", path.display()));
    let (mut eql, mut selected) = (0, 0);
    let mut failures = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let rule: serde_json::Value = serde_json::from_str(line).expect("corpus line is JSON");
        if rule["language"] != "eql" {
            continue;
        }
        eql += 1;
        if rule["deprecated"] != false {
            continue;
        }
        selected += 1;
        let Some(query) = rule["query"].as_str() else {
            failures.push(format!("{} ({}): no query string", rule["rule_id"], rule["name"]));
            continue;
        };
        if let Err(rendered) = parse_or_render(query, "query") {
            failures.push(format!("{} ({}):\n{rendered}", rule["rule_id"], rule["name"]));
        }
    }
    assert!(failures.is_empty(), "{} of {selected} queries failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(eql, 1081, "the corpus should hold 1081 EQL rules");
    assert_eq!(selected, 1024, "the corpus should hold 1024 active EQL rules");
}

#[test]
fn every_corpus_query_prints_and_parses_back() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/elastic-rules/rules.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the rule corpus is required at {}: {e}", path.display()));
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let rule: serde_json::Value = serde_json::from_str(line).expect("corpus line is JSON");
        let (Some("eql"), Some(query)) = (rule["language"].as_str(), rule["query"].as_str()) else { continue };
        let Ok(q) = imdsguard_eql::parse(query) else { continue };
        let printed = imdsguard_eql::to_eql(&q);
        let back = parse_or_render(&printed, "printed").unwrap_or_else(|e| panic!("{}: {e}", rule["rule_id"]));
        assert_eq!(back.without_spans(), q.without_spans(), "{} printed as:\n{printed}", rule["rule_id"]);
        checked += 1;
    }
    assert!(checked >= 1024, "{checked}");
}

#[test]
fn seed_rules_parse() {
    for (name, q) in [("seed 001", SEED_001), ("seed 002", SEED_002)] {
        if let Err(e) = parse_or_render(q, name) {
            panic!("{name}:\n{e}");
        }
    }
    let q = imdsguard_eql::parse(SEED_002).expect("seed 002");
    assert!(matches!(q.body, imdsguard_eql::ast::QueryBody::Event(_)));
}
