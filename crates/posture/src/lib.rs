//! IMDSv2 posture audit (issue 9): which instances, launch templates, launch configurations,
//! Auto Scaling groups, account defaults, Terraform and CloudFormation resources still allow
//! IMDSv1, and how to fix each one (seed 004's remediation, adapted to the resource).
//!
//! Pure: inputs come in as `(name, bytes)`; the crate detects each input's kind from its content
//! (and the `.tf` extension), parses it, runs the checks of [`checks::CHECKS`], joins the findings
//! with the IMDSv1 alerts of `imdsguard hunt` and returns a [`Report`]. Reading files, rendering
//! (table, JSON, SARIF) and exit codes belong to the CLI (`imdsguard audit`).
//!
//! Inputs: `aws ec2 describe-instances` (several pages, in one file or many),
//! `describe-launch-templates`, `describe-launch-template-versions`,
//! `get-instance-metadata-defaults`, `aws autoscaling describe-auto-scaling-groups` and
//! `describe-launch-configurations` ([`aws`]); Terraform `.tf` files and `terraform show -json`
//! ([`terraform`]); CloudFormation YAML/JSON ([`cfn`]). A malformed input is an [`InputError`]
//! naming the file (and line when known); the other inputs are still audited.

pub mod alerts;
pub mod aws;
pub mod cfn;
pub mod checks;
pub mod model;
pub mod terraform;

pub use model::*;

use std::collections::BTreeMap;

/// What a file was recognised as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// One or more AWS CLI JSON documents (pages).
    AwsCli,
    TerraformHcl,
    TerraformPlan,
    CloudFormation,
}

impl InputKind {
    pub fn label(self) -> &'static str {
        match self {
            InputKind::AwsCli => "aws-cli",
            InputKind::TerraformHcl => "terraform",
            InputKind::TerraformPlan => "terraform-plan",
            InputKind::CloudFormation => "cloudformation",
        }
    }
}

/// A launch template as described by the AWS API, merged over all inputs.
#[derive(Clone, Debug, Default)]
pub struct LiveTemplate {
    pub id: String,
    pub name: Option<String>,
    pub default: Option<i64>,
    pub latest: Option<i64>,
    pub tags: Vec<(String, String)>,
    pub versions: BTreeMap<i64, LiveVersion>,
    pub files: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct LiveVersion {
    pub metadata: Option<Metadata>,
    pub image: Option<String>,
    /// Instance tags of the version's `TagSpecifications`.
    pub tags: Vec<(String, String)>,
    pub file: String,
    pub line: Option<usize>,
}

impl LiveTemplate {
    pub(crate) fn new(id: &str) -> Self {
        LiveTemplate { id: id.to_string(), ..Default::default() }
    }

    /// The latest version number: `LatestVersionNumber`, or the highest version seen.
    pub fn latest_number(&self) -> Option<i64> {
        let seen = self.versions.keys().next_back().copied();
        match (self.latest, seen) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// One version as a checkable resource.
    pub fn version_resource(&self, n: i64, latest: Option<i64>) -> Option<Resource> {
        let v = self.versions.get(&n)?;
        let mut r = Resource::new(ResourceKind::LaunchTemplate, Origin::Aws, self.id.clone(), &v.file);
        r.line = v.line;
        r.metadata = v.metadata.clone();
        r.image = v.image.clone();
        r.tags = self.tags.iter().chain(v.tags.iter()).cloned().collect();
        r.name = self.name.clone();
        r.template = Some(TemplateVersion {
            template_id: self.id.clone(),
            template_name: self.name.clone(),
            version: n,
            is_default: self.default == Some(n),
            is_latest: latest == Some(n),
            latest,
        });
        Some(r)
    }
}

/// Everything parsed from the inputs.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    pub resources: Vec<Resource>,
    pub templates: BTreeMap<String, LiveTemplate>,
    pub asgs: Vec<AutoScalingGroup>,
    /// AMI id → name, from `aws ec2 describe-images`.
    pub images: BTreeMap<String, String>,
    pub notes: Vec<String>,
    pub errors: Vec<InputError>,
    /// (file, kind) of every input that was read.
    pub inputs: Vec<(String, InputKind)>,
}

impl Inventory {
    pub(crate) fn error(&mut self, file: &str, line: Option<usize>, message: &str) {
        self.errors.push(InputError { file: file.to_string(), line, message: message.to_string() });
    }
    pub(crate) fn note(&mut self, n: String) {
        self.notes.push(n);
    }

    /// Detects the kind of one input and adds what it describes. On error nothing of a
    /// document that failed is added (documents of the same file before it are kept: each AWS
    /// CLI page stands on its own) and the error is recorded.
    pub fn add(&mut self, name: &str, bytes: &[u8]) {
        match self.load(name, bytes) {
            Ok(kind) => self.inputs.push((name.to_string(), kind)),
            Err(e) => self.errors.push(e),
        }
    }

    fn load(&mut self, name: &str, bytes: &[u8]) -> Result<InputKind, InputError> {
        let err = |line: Option<usize>, message: String| InputError { file: name.to_string(), line, message };
        let lower = name.to_ascii_lowercase();
        let text = std::str::from_utf8(bytes).map_err(|e| err(Some(line_of(bytes, e.valid_up_to())), "not UTF-8 text".into()))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if lower.ends_with(".tf") {
            terraform::load_hcl(text, name, self)?;
            return Ok(InputKind::TerraformHcl);
        }
        let first = text.trim_start().chars().next();
        if first == Some('{') || first == Some('[') || lower.ends_with(".json") {
            return self.load_json(name, text);
        }
        if lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".template") || text.contains("Resources:") {
            let doc = cfn::parse_yaml(text).map_err(|(l, m)| err(l, m))?;
            if !cfn::is_template(&doc.root) {
                return Err(err(None, "YAML that is not a CloudFormation template (no Resources with AWS:: types)".into()));
            }
            cfn::load(&doc, name, self)?;
            return Ok(InputKind::CloudFormation);
        }
        if text.contains("resource \"aws_") {
            terraform::load_hcl(text, name, self)?;
            return Ok(InputKind::TerraformHcl);
        }
        Err(err(
            None,
            "unknown input: expected AWS CLI JSON (describe-instances, describe-launch-templates, describe-launch-template-versions, get-instance-metadata-defaults, describe-auto-scaling-groups, describe-launch-configurations), Terraform (.tf or terraform show -json) or a CloudFormation template".into(),
        ))
    }

    fn load_json(&mut self, name: &str, text: &str) -> Result<InputKind, InputError> {
        let err = |line: Option<usize>, message: String| InputError { file: name.to_string(), line, message };
        let mut lines = Lines::new(text.as_bytes());
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
        let mut kind = None;
        let mut index = 0;
        loop {
            let v = match stream.next() {
                None => break,
                Some(Ok(v)) => v,
                Some(Err(e)) => {
                    let what = if e.is_eof() { "truncated JSON" } else { "invalid JSON" };
                    let msg = format!("{what} (column {}): {e}", e.column());
                    if kind.is_some() {
                        // Earlier pages were read; report this one and keep them.
                        self.errors.push(err(Some(e.line()), format!("page {}: {msg}", index + 1)));
                        break;
                    }
                    return Err(err(Some(e.line()), msg));
                }
            };
            index += 1;
            // A JSON array of pages.
            let docs: Vec<serde_json::Value> = match v {
                serde_json::Value::Array(a) if a.iter().all(|x| x.is_object()) && !a.is_empty() => a,
                other => vec![other],
            };
            for d in docs {
                let k = if let Some(k) = aws::kind_of(&d) {
                    aws::load(k, &d, name, &mut lines, self);
                    InputKind::AwsCli
                } else if terraform::is_plan(&d) {
                    terraform::load_plan(&d, name, &mut lines, self);
                    InputKind::TerraformPlan
                } else if cfn::is_template(&d) {
                    // Re-read through the YAML reader for line numbers; fall back to no lines.
                    let doc = cfn::parse_yaml(text)
                        .ok()
                        .filter(|doc| cfn::is_template(&doc.root))
                        .unwrap_or(cfn::Doc { root: d, lines: Default::default() });
                    cfn::load(&doc, name, self)?;
                    InputKind::CloudFormation
                } else {
                    return Err(err(
                        None,
                        format!(
                            "unrecognised JSON document {index}: expected the output of an aws ec2/autoscaling describe command (Reservations, LaunchTemplates, LaunchTemplateVersions, AccountLevel, AutoScalingGroups, LaunchConfigurations), terraform show -json, or a CloudFormation template{}",
                            top_keys(&d)
                        ),
                    ));
                };
                kind = Some(k);
            }
        }
        kind.ok_or_else(|| err(None, "empty input".into()))
    }
}

fn top_keys(v: &serde_json::Value) -> String {
    match v.as_object() {
        Some(o) if !o.is_empty() => {
            let keys: Vec<&str> = o.keys().take(5).map(String::as_str).collect();
            format!("; found keys {}", keys.join(", "))
        }
        _ => String::new(),
    }
}

/// Options of a run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Resources (instance ids, template ids, names, Terraform addresses, logical ids) that run
    /// containers: a hop limit of 2 is expected there.
    pub container_hosts: Vec<String>,
    /// Resources that need no instance metadata: their endpoint should be disabled.
    pub no_metadata: Vec<String>,
    /// Hosts where the IMDSv1 rule fired.
    pub observations: Vec<alerts::Observation>,
}

/// The result of an audit.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    /// Observed first (most alerts first), then by severity, file, line, resource, check.
    pub findings: Vec<Finding>,
    pub errors: Vec<InputError>,
    pub notes: Vec<String>,
    pub summary: Summary,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    pub inputs: usize,
    pub inputs_failed: usize,
    pub resources: usize,
    pub auto_scaling_groups: usize,
    pub findings: usize,
    pub observed: usize,
    pub by_severity: BTreeMap<String, usize>,
}

/// Runs the checks and the join with alerts.
pub fn audit(inv: &Inventory, opts: &Options) -> Report {
    let (mut findings, mut notes) = checks::run(inv, opts);
    let mut all_notes = inv.notes.clone();
    all_notes.append(&mut notes);
    all_notes.extend(checks::join_observations(&mut findings, inv, &opts.observations));
    findings.sort_by(|a, b| {
        let obs = |f: &Finding| f.observed.as_ref().map(|o| o.alerts).unwrap_or(0);
        obs(b)
            .cmp(&obs(a))
            .then(b.severity.cmp(&a.severity))
            .then_with(|| a.location.file.cmp(&b.location.file))
            .then(a.location.line.cmp(&b.location.line))
            .then_with(|| a.resource.id.cmp(&b.resource.id))
            .then(a.check_id.cmp(b.check_id))
    });
    let mut by_severity = BTreeMap::new();
    for f in &findings {
        *by_severity.entry(f.severity.as_str().to_string()).or_insert(0) += 1;
    }
    let failed: std::collections::BTreeSet<&str> = inv.errors.iter().map(|e| e.file.as_str()).collect();
    let live_versions = checks::live_template_resources(inv).len();
    Report {
        summary: Summary {
            inputs: inv.inputs.len() + failed.iter().filter(|f| !inv.inputs.iter().any(|(n, _)| n == *f)).count(),
            inputs_failed: failed.iter().filter(|f| !inv.inputs.iter().any(|(n, _)| n == *f)).count(),
            resources: inv.resources.len() + live_versions,
            auto_scaling_groups: inv.asgs.len(),
            findings: findings.len(),
            observed: findings.iter().filter(|f| f.observed.is_some()).count(),
            by_severity,
        },
        findings,
        errors: inv.errors.clone(),
        notes: all_notes,
    }
}

/// Convenience: audit a set of in-memory inputs.
pub fn audit_inputs<'a>(inputs: impl IntoIterator<Item = (&'a str, &'a [u8])>, opts: &Options) -> Report {
    let mut inv = Inventory::default();
    for (name, bytes) in inputs {
        inv.add(name, bytes);
    }
    audit(&inv, opts)
}
