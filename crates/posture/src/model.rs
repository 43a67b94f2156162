//! What the parsers produce and the checks read: resources with their metadata options, where
//! they were found, and the findings.

use serde::Serialize;

/// One metadata option as written in an input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "value", rename_all = "snake_case")]
pub enum Setting {
    /// Not written: the service or provider default applies.
    Unset,
    /// A literal value (`required`, `optional`, `enabled`, `2`...).
    Value(String),
    /// An expression that cannot be resolved offline (`!If ...`, `var.x` without a default).
    Unknown(String),
    /// A variable or parameter reference resolved to its declared default (`var.imds_tokens`,
    /// `!Ref ImdsTokens`): the value applies unless the deployment overrides it.
    Defaulted { expr: String, value: String },
}

impl Setting {
    pub fn value(&self) -> Option<&str> {
        match self {
            Setting::Value(v) | Setting::Defaulted { value: v, .. } => Some(v),
            _ => None,
        }
    }
    pub fn is(&self, v: &str) -> bool {
        self.value().is_some_and(|x| x.eq_ignore_ascii_case(v))
    }
    /// The hop limit, when it is a literal integer.
    pub fn int(&self) -> Option<i64> {
        self.value().and_then(|v| v.trim().parse().ok())
    }
    /// How the evidence shows it.
    pub fn show(&self) -> String {
        match self {
            Setting::Unset => "unset".into(),
            Setting::Value(v) => v.clone(),
            Setting::Unknown(e) => format!("{e} (not resolvable offline)"),
            Setting::Defaulted { expr, value } => format!("{value} (default of {expr})"),
        }
    }
}

/// `MetadataOptions` (AWS API, CloudFormation) or `metadata_options` (Terraform).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub http_tokens: Setting,
    pub http_endpoint: Setting,
    pub hop_limit: Setting,
    pub ipv6: Setting,
    pub tags: Setting,
    /// Line of the block itself (IaC).
    pub line: Option<usize>,
    /// Lines of the `http_tokens`, `http_put_response_hop_limit` and `http_endpoint` settings.
    pub tokens_line: Option<usize>,
    pub hop_line: Option<usize>,
    pub endpoint_line: Option<usize>,
}

impl Default for Metadata {
    fn default() -> Self {
        Metadata {
            http_tokens: Setting::Unset,
            http_endpoint: Setting::Unset,
            hop_limit: Setting::Unset,
            ipv6: Setting::Unset,
            tags: Setting::Unset,
            line: None,
            tokens_line: None,
            hop_line: None,
            endpoint_line: None,
        }
    }
}

impl Metadata {
    /// The endpoint is off: neither IMDS version answers.
    pub fn endpoint_disabled(&self) -> bool {
        self.http_endpoint.is("disabled")
    }
}

/// Where a resource description came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `aws ec2 describe-*` / `aws autoscaling describe-*` output: the deployed state.
    Aws,
    /// A `.tf` file.
    Terraform,
    /// `terraform show -json` (a plan or a state).
    TerraformPlan,
    /// A CloudFormation template (YAML or JSON).
    #[serde(rename = "cloudformation")]
    CloudFormation,
}

impl Origin {
    pub fn is_iac(self) -> bool {
        !matches!(self, Origin::Aws)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Instance,
    LaunchTemplate,
    LaunchConfiguration,
    AccountDefaults,
    AutoScalingGroup,
}

impl ResourceKind {
    pub fn label(self) -> &'static str {
        match self {
            ResourceKind::Instance => "instance",
            ResourceKind::LaunchTemplate => "launch template",
            ResourceKind::LaunchConfiguration => "launch configuration",
            ResourceKind::AccountDefaults => "account defaults",
            ResourceKind::AutoScalingGroup => "auto scaling group",
        }
    }
}

/// A launch template version (AWS) as the checks see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateVersion {
    pub template_id: String,
    pub template_name: Option<String>,
    pub version: i64,
    pub is_default: bool,
    pub is_latest: bool,
    /// The template's latest version number when known (for the fix: the new version is latest + 1).
    pub latest: Option<i64>,
}

/// A reference from an Auto Scaling group (or instance) to a launch template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateRef {
    pub id: Option<String>,
    pub name: Option<String>,
    /// `$Latest`, `$Default`, a number; `None` means `$Default`.
    pub version: Option<String>,
}

/// Anything whose metadata settings can be checked.
#[derive(Clone, Debug)]
pub struct Resource {
    pub kind: ResourceKind,
    pub origin: Origin,
    /// `i-...`, `lt-...` (with `version` in `template`), a Terraform address, a CloudFormation
    /// logical id, a launch configuration name, `account-defaults`.
    pub id: String,
    /// The `Name` tag, a template name.
    pub name: Option<String>,
    pub file: String,
    pub line: Option<usize>,
    /// `None`: the resource has no metadata options at all (Terraform without a
    /// `metadata_options` block, a template without `MetadataOptions`).
    pub metadata: Option<Metadata>,
    pub tags: Vec<(String, String)>,
    /// EC2 state (`running`, `stopped`...).
    pub state: Option<String>,
    pub private_ips: Vec<String>,
    pub private_dns: Vec<String>,
    pub availability_zone: Option<String>,
    /// The AMI (`ImageId`, `image_id`, `ami`) or, in CloudFormation, the SSM parameter path it
    /// is read from, when literal.
    pub image: Option<String>,
    pub template: Option<TemplateVersion>,
    /// For Terraform: the resource type (`aws_instance`...).
    pub tf_type: Option<String>,
}

impl Resource {
    pub fn new(kind: ResourceKind, origin: Origin, id: impl Into<String>, file: &str) -> Self {
        Resource {
            kind,
            origin,
            id: id.into(),
            name: None,
            file: file.to_string(),
            line: None,
            metadata: None,
            tags: Vec::new(),
            state: None,
            private_ips: Vec::new(),
            private_dns: Vec::new(),
            availability_zone: None,
            image: None,
            template: None,
            tf_type: None,
        }
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// An Auto Scaling group and what it launches.
#[derive(Clone, Debug)]
pub struct AutoScalingGroup {
    pub name: String,
    pub origin: Origin,
    pub file: String,
    pub line: Option<usize>,
    pub templates: Vec<TemplateRef>,
    pub launch_configuration: Option<String>,
    pub instance_ids: Vec<String>,
}

/// Severity, ordered from least to most severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s.to_ascii_lowercase().as_str() {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// How a fix is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FixKind {
    /// AWS CLI commands, run in order.
    AwsCli,
    /// A Terraform block or attributes to put in the resource.
    Terraform,
    /// A CloudFormation snippet to put in the resource's properties.
    #[serde(rename = "cloudformation")]
    CloudFormation,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fix {
    pub kind: FixKind,
    pub text: String,
}

/// The ids of the same check in other tools.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Equivalents {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aws_config: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prowler: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checkov: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tfsec: Vec<&'static str>,
}

/// IMDSv1 use seen by the detections on the resource of a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// Alerts of the IMDSv1 rule that matched (each counting the events it suppressed).
    pub alerts: u64,
    /// The alert field and value that tied them to the resource (`cloud.instance.id=i-...`).
    pub matched_on: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResourceRef {
    pub kind: ResourceKind,
    pub origin: Origin,
    pub id: String,
    /// For a launch template version (AWS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check_id: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    pub resource: ResourceRef,
    pub location: Location,
    pub message: String,
    pub evidence: Vec<String>,
    pub fix: Vec<Fix>,
    pub equivalents: Equivalents,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observed>,
}

/// A per-file problem: the file (or one document in it) was not audited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InputError {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// 1-based line of a byte offset.
pub fn line_of(text: &[u8], offset: usize) -> usize {
    let end = offset.min(text.len());
    memchr::memchr_iter(b'\n', &text[..end]).count() + 1
}

/// Line numbers of a text: newline offsets computed once, substring search with `memmem`, and a
/// forward cursor for items listed in document order (linear over a whole file, however many
/// items it has).
pub struct Lines<'a> {
    text: &'a [u8],
    newlines: Vec<usize>,
    cursor: usize,
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a [u8]) -> Self {
        Lines { text, newlines: memchr::memchr_iter(b'\n', text).collect(), cursor: 0 }
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&n| n < offset) + 1
    }

    /// Line of the first occurrence of `needle` in the whole text.
    pub fn find(&self, needle: &str) -> Option<usize> {
        if needle.is_empty() {
            return None;
        }
        memchr::memmem::find(self.text, needle.as_bytes()).map(|p| self.line_of(p))
    }

    /// Line of the next JSON member `"key": value` (any spacing) after the previous match; moves
    /// past it. Falls back to the whole text when the items were not in document order.
    pub fn find_member_next(&mut self, key: &str, value: &str) -> Option<usize> {
        let start = self.cursor.min(self.text.len());
        let found = self.member_from(start, key, value).or_else(|| if start > 0 { self.member_from(0, key, value) } else { None })?;
        self.cursor = found;
        Some(self.line_of(found))
    }

    fn member_from(&self, from: usize, key: &str, value: &str) -> Option<usize> {
        let quoted = format!("\"{key}\"");
        let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
        for p in memchr::memmem::find_iter(&self.text[from..], quoted.as_bytes()) {
            let at = from + p;
            let mut i = at + quoted.len();
            while self.text.get(i).is_some_and(ws) {
                i += 1;
            }
            if self.text.get(i) != Some(&b':') {
                continue;
            }
            i += 1;
            while self.text.get(i).is_some_and(ws) {
                i += 1;
            }
            let rest = &self.text[i.min(self.text.len())..];
            if rest.starts_with(value.as_bytes()) && !rest.get(value.len()).is_some_and(|c| c.is_ascii_alphanumeric()) {
                return Some(at);
            }
        }
        None
    }
}
