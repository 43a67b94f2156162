//! `imdsguard audit`: the IMDSv2 posture audit (issue 9). Reads files, directories and stdin,
//! hands the bytes to `imdsguard_posture`, renders the report as a table, JSON or SARIF 2.1.0 and
//! maps it to an exit code.
//!
//! Exit codes: 0 the audit ran and no finding reaches `--fail-on` (or `--fail-on` was not
//! given); 1 at least one finding at or above `--fail-on`; 2 usage error (clap); 3 at least one
//! input (or the `--alerts` file) could not be read or parsed: the other inputs were audited and
//! reported, but the result is incomplete, which takes precedence over 1.

use crate::output::open_output;
use anyhow::Context;
use clap::ValueEnum;
use imdsguard_posture::checks::CHECKS;
use imdsguard_posture::{alerts, Finding, FixKind, Inventory, Options, Report, Severity};
use serde_json::{json, Value};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit code when some input could not be audited.
pub const EXIT_INPUT_ERROR: u8 = 3;

/// File extensions read when walking a directory (files named on the command line are always read).
const DIR_EXTENSIONS: [&str; 5] = ["json", "tf", "yaml", "yml", "template"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Table,
    Json,
    Sarif,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SeverityArg {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl SeverityArg {
    fn severity(self) -> Severity {
        match self {
            SeverityArg::Info => Severity::Info,
            SeverityArg::Low => Severity::Low,
            SeverityArg::Medium => Severity::Medium,
            SeverityArg::High => Severity::High,
            SeverityArg::Critical => Severity::Critical,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// Inputs: aws ec2/autoscaling describe-* JSON, Terraform .tf files or `terraform show -json`
    /// output, CloudFormation YAML/JSON; directories are walked for *.json, *.tf, *.yaml, *.yml,
    /// *.template; `-` reads stdin. Default: the current directory.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format (default: table on a terminal, json otherwise).
    #[arg(long, value_enum)]
    pub format: Option<AuditFormat>,
    /// Exit with code 1 when a finding has this severity or a higher one.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<SeverityArg>,
    /// Alerts NDJSON from `imdsguard hunt` (Kibana alert documents): instances where the IMDSv1
    /// rule fired are marked as observed and listed first. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub alerts: Vec<PathBuf>,
    /// A resource that runs containers (instance id, launch template id, Name tag, Terraform
    /// address, CloudFormation logical id): a hop limit of 2 is expected there. Repeatable.
    #[arg(long = "container-host", value_name = "RESOURCE")]
    pub container_hosts: Vec<String>,
    /// A resource that needs no instance metadata: its endpoint should be disabled. Repeatable.
    #[arg(long = "no-metadata", value_name = "RESOURCE")]
    pub no_metadata: Vec<String>,
    /// Write the report to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Do not print the closing summary on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Every file to read: named files as given, directories walked (sorted, hidden entries and
/// `.terraform` skipped).
fn collect(paths: &[PathBuf], out: &mut Vec<PathBuf>, errors: &mut Vec<(String, String)>) {
    for p in paths {
        if p.as_os_str() == "-" || p.is_file() {
            out.push(p.clone());
        } else if p.is_dir() {
            walk(p, out, errors, 0);
        } else {
            errors.push((p.display().to_string(), "no such file or directory".into()));
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<(String, String)>, depth: usize) {
    if depth > 32 {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push((dir.display().to_string(), format!("cannot read directory: {e}")));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(&p, out, errors, depth + 1);
        } else if p.extension().is_some_and(|e| DIR_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x))) {
            out.push(p);
        }
    }
}

fn read(p: &Path) -> std::io::Result<Vec<u8>> {
    if p.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin().lock().read_to_end(&mut b)?;
        Ok(b)
    } else {
        std::fs::read(p)
    }
}

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let paths = if args.paths.is_empty() { vec![PathBuf::from(".")] } else { args.paths.clone() };
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    collect(&paths, &mut files, &mut unreadable);
    // An alerts file inside an audited directory is read as alerts only.
    let alert_files: Vec<PathBuf> = args.alerts.iter().filter_map(|a| std::fs::canonicalize(a).ok()).collect();
    files.retain(|f| !std::fs::canonicalize(f).is_ok_and(|c| alert_files.contains(&c)));
    let mut inv = Inventory::default();
    for (name, msg) in &unreadable {
        inv.errors.push(imdsguard_posture::InputError { file: name.clone(), line: None, message: msg.clone() });
    }
    for f in &files {
        let name = if f.as_os_str() == "-" { "<stdin>".to_string() } else { f.display().to_string() };
        match read(f) {
            Ok(bytes) => inv.add(&name, &bytes),
            Err(e) => inv.errors.push(imdsguard_posture::InputError { file: name, line: None, message: format!("cannot read: {e}") }),
        }
    }
    let mut opts = Options { container_hosts: args.container_hosts.clone(), no_metadata: args.no_metadata.clone(), observations: Vec::new() };
    let mut alert_errors = Vec::new();
    let mut alert_lines_skipped = 0;
    let mut other_alerts = 0;
    for a in &args.alerts {
        let name = a.display().to_string();
        match std::fs::read(a) {
            Ok(bytes) => {
                let (obs, other, errs) = alerts::read_alerts(&name, &bytes);
                opts.observations.extend(obs);
                other_alerts += other;
                alert_lines_skipped += errs.len();
                alert_errors.extend(errs);
            }
            Err(e) => alert_errors.push(imdsguard_posture::InputError { file: name, line: None, message: format!("cannot read alerts: {e}") }),
        }
    }
    let mut report = imdsguard_posture::audit(&inv, &opts);
    report.errors.extend(alert_errors.iter().cloned());

    let format = args.format.unwrap_or(if args.output.is_none() && std::io::stdout().is_terminal() { AuditFormat::Table } else { AuditFormat::Json });
    let mut out = open_output(args.output.as_deref())?;
    match format {
        AuditFormat::Table => write_table(&mut out, &report)?,
        AuditFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        AuditFormat::Sarif => {
            serde_json::to_writer_pretty(&mut out, &sarif(&report))?;
            writeln!(out)?;
        }
    }
    out.flush().context("cannot write the report")?;
    drop(out);

    for e in &report.errors {
        eprintln!("error: {e}");
    }
    if !args.quiet {
        for n in &report.notes {
            eprintln!("note: {n}");
        }
        let s = &report.summary;
        let sev: Vec<String> = ["critical", "high", "medium", "low", "info"]
            .iter()
            .filter_map(|k| s.by_severity.get(*k).map(|n| format!("{k} {n}")))
            .collect();
        eprintln!(
            "audited {} input(s) ({} failed): {} resource(s), {} auto scaling group(s); {} finding(s){}; {} observed in alerts",
            s.inputs,
            s.inputs_failed,
            s.resources,
            s.auto_scaling_groups,
            s.findings,
            if sev.is_empty() { String::new() } else { format!(" ({})", sev.join(", ")) },
            s.observed
        );
        if !args.alerts.is_empty() {
            let n: u64 = opts.observations.iter().map(|o| o.count).sum();
            eprintln!(
                "alerts: {} IMDSv1 alert(s) on {} host(s), {} alert(s) of other rules ignored, {} line(s) skipped",
                n,
                opts.observations.len(),
                other_alerts,
                alert_lines_skipped
            );
        }
    }
    if !report.errors.is_empty() {
        return Ok(ExitCode::from(EXIT_INPUT_ERROR));
    }
    if let Some(t) = args.fail_on {
        if report.findings.iter().any(|f| f.severity >= t.severity()) {
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The resource id, with the version for a launch template version.
fn resource_id(f: &Finding) -> String {
    match f.resource.version {
        Some(v) => format!("{}:{v}", f.resource.id),
        None => f.resource.id.clone(),
    }
}

fn location(f: &Finding) -> String {
    match f.location.line {
        Some(l) => format!("{}:{l}", f.location.file),
        None => f.location.file.clone(),
    }
}

fn write_table(out: &mut dyn Write, r: &Report) -> anyhow::Result<()> {
    if r.findings.is_empty() {
        writeln!(out, "no findings")?;
        return Ok(());
    }
    let rows: Vec<[String; 5]> = r
        .findings
        .iter()
        .map(|f| {
            let mut res = format!("{} {}", f.resource.kind.label(), resource_id(f));
            if let Some(n) = &f.resource.name {
                res.push_str(&format!(" ({n})"));
            }
            let obs = f.observed.as_ref().map(|o| format!("{} alert(s)", o.alerts)).unwrap_or_else(|| "-".into());
            [f.severity.as_str().to_string(), f.check_id.to_string(), res, location(f), obs]
        })
        .collect();
    let headers = ["SEVERITY", "CHECK", "RESOURCE", "LOCATION", "OBSERVED"];
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[&str]| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s
    };
    writeln!(out, "{}", line(&headers))?;
    for (f, row) in r.findings.iter().zip(&rows) {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
        writeln!(out, "    {}", f.message)?;
        for fix in &f.fix {
            let label = match fix.kind {
                FixKind::AwsCli => "fix (aws cli)",
                FixKind::Terraform => "fix (terraform)",
                FixKind::CloudFormation => "fix (cloudformation)",
            };
            let mut lines = fix.text.lines();
            writeln!(out, "    {label}: {}", lines.next().unwrap_or(""))?;
            for l in lines {
                writeln!(out, "      {l}")?;
            }
        }
        let eq = equivalents_text(f);
        if !eq.is_empty() {
            writeln!(out, "    same as: {eq}")?;
        }
    }
    Ok(())
}

fn equivalents_text(f: &Finding) -> String {
    let e = &f.equivalents;
    let mut parts = Vec::new();
    for (tool, ids) in [("AWS Config", &e.aws_config), ("Prowler", &e.prowler), ("Checkov", &e.checkov), ("tfsec", &e.tfsec)] {
        if !ids.is_empty() {
            parts.push(format!("{tool} {}", ids.join(", ")));
        }
    }
    parts.join("; ")
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// GitHub code scanning's `security-severity` (0.0-10.0).
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

/// A relative path or an absolute `file://` URI, percent-encoding what a URI reference cannot hold.
fn uri(path: &str) -> String {
    let p = path.replace('\\', "/");
    let mut s = String::new();
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    if p.starts_with('/') {
        format!("file://{s}")
    } else {
        s
    }
}

fn rule_help(id: &str) -> (String, String) {
    let (text, md) = match id {
        "IMDS001" => (
            "Require IMDSv2: aws ec2 modify-instance-metadata-options --instance-id <id> --http-tokens required --http-endpoint enabled; for launch templates create a version with {\"MetadataOptions\":{\"HttpTokens\":\"required\",\"HttpEndpoint\":\"enabled\"}} and make it the default; in Terraform set metadata_options { http_tokens = \"required\" }; in CloudFormation MetadataOptions: HttpTokens: required.",
            "Require IMDSv2 once every workload on the instance uses it (current AWS SDKs do).\n\n```bash\naws ec2 modify-instance-metadata-options --instance-id <id> --http-tokens required --http-endpoint enabled\n```\n\nTerraform:\n\n```hcl\nmetadata_options {\n  http_endpoint               = \"enabled\"\n  http_tokens                 = \"required\"\n  http_put_response_hop_limit = 1\n}\n```",
        ),
        "IMDS002" => (
            "Lower the hop limit: 1 for hosts without containers, 2 for container hosts (aws ec2 modify-instance-metadata-options --instance-id <id> --http-put-response-hop-limit 1).",
            "Lower the hop limit: 1 on hosts without containers, 2 on container hosts.\n\n```bash\naws ec2 modify-instance-metadata-options --instance-id <id> --http-put-response-hop-limit 1\n```",
        ),
        "IMDS003" => (
            "Disable the metadata endpoint: aws ec2 modify-instance-metadata-options --instance-id <id> --http-endpoint disabled.",
            "Disable the metadata endpoint.\n\n```bash\naws ec2 modify-instance-metadata-options --instance-id <id> --http-endpoint disabled\n```",
        ),
        "IMDS004" => (
            "Require IMDSv2 by default for new instances, in every region: aws ec2 modify-instance-metadata-defaults --http-tokens required --http-endpoint enabled.",
            "Require IMDSv2 by default for new instances, in every region.\n\n```bash\naws ec2 modify-instance-metadata-defaults --http-tokens required --http-endpoint enabled\n```",
        ),
        _ => (
            "Create a launch template version requiring tokens, point the group at it ($Latest, $Default or the new number) and refresh its instances.",
            "Create a launch template version that requires tokens and point the group at it.\n\n```bash\naws ec2 create-launch-template-version --launch-template-id <lt-id> --source-version \"\\$Latest\" --launch-template-data '{\"MetadataOptions\":{\"HttpTokens\":\"required\",\"HttpEndpoint\":\"enabled\"}}'\naws autoscaling start-instance-refresh --auto-scaling-group-name <name>\n```",
        ),
    };
    (text.to_string(), md.to_string())
}

fn rule_name(id: &str) -> &'static str {
    match id {
        "IMDS001" => "Imdsv1Allowed",
        "IMDS002" => "HopLimitTooHigh",
        "IMDS003" => "MetadataEndpointNotNeeded",
        "IMDS004" => "AccountDefaultAllowsImdsv1",
        _ => "AutoScalingGroupLaunchesImdsv1",
    }
}

/// SARIF 2.1.0: one run, one rule per check, one result per finding. IaC findings carry a
/// physical location with the line; instance and template findings name the resource in the
/// message and as a logical location (and point at the describe output they came from).
pub fn sarif(r: &Report) -> Value {
    let rules: Vec<Value> = CHECKS
        .iter()
        .map(|(id, title, sev, desc)| {
            let (text, markdown) = rule_help(id);
            json!({
                "id": id,
                "name": rule_name(id),
                "shortDescription": {"text": title},
                "fullDescription": {"text": desc},
                "help": {"text": text, "markdown": markdown},
                "helpUri": "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html",
                "defaultConfiguration": {"level": sarif_level(*sev)},
                "properties": {
                    "security-severity": security_severity(*sev),
                    "tags": ["security", "imds", "T1552.005"],
                    "precision": "high"
                }
            })
        })
        .collect();
    let results: Vec<Value> = r
        .findings
        .iter()
        .map(|f| {
            let index = CHECKS.iter().position(|c| c.0 == f.check_id).unwrap_or(0);
            let mut physical = json!({"artifactLocation": {"uri": uri(&f.location.file)}});
            if let Some(l) = f.location.line {
                physical["region"] = json!({"startLine": l});
            }
            let origin = serde_json::to_value(f.resource.origin).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            let fqn = format!("{origin}/{}", resource_id(f));
            let mut props = json!({
                "severity": f.severity.as_str(),
                "resource": f.resource,
                "evidence": f.evidence,
                "fix": f.fix,
                "equivalents": f.equivalents,
            });
            if let Some(o) = &f.observed {
                props["observed"] = json!(o);
            }
            let fix_text: Vec<String> = f.fix.iter().map(|x| x.text.clone()).collect();
            let message = if fix_text.is_empty() { f.message.clone() } else { format!("{}\nFix:\n{}", f.message, fix_text.join("\n")) };
            json!({
                "ruleId": f.check_id,
                "ruleIndex": index,
                "level": sarif_level(f.severity),
                "message": {"text": message},
                "locations": [{
                    "physicalLocation": physical,
                    "logicalLocations": [{"name": resource_id(f), "fullyQualifiedName": fqn, "kind": "resource"}]
                }],
                "partialFingerprints": {"imdsguard/resource/v1": format!("{}:{}:{}", f.check_id, fqn, f.location.file)},
                "properties": props
            })
        })
        .collect();
    let notifications: Vec<Value> = r
        .errors
        .iter()
        .map(|e| {
            let mut loc = json!({"physicalLocation": {"artifactLocation": {"uri": uri(&e.file)}}});
            if let Some(l) = e.line {
                loc["physicalLocation"]["region"] = json!({"startLine": l});
            }
            json!({"level": "error", "message": {"text": e.message}, "locations": [loc]})
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "imdsguard",
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/imdsguard",
                "rules": rules
            }},
            "invocations": [{
                "executionSuccessful": r.errors.is_empty(),
                "toolExecutionNotifications": notifications
            }],
            "results": results
        }]
    })
}
