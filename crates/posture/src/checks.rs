//! The checks, their ids and severities, the evidence, the fixes (seed 004's remediation adapted
//! to each resource) and the equivalent checks of AWS Config, Prowler, Checkov and tfsec.

use crate::alerts::Observation;
use crate::model::*;
use crate::{Inventory, LiveTemplate, Options};
use std::collections::BTreeMap;

/// The check catalogue: (id, title, default severity, description).
pub const CHECKS: [(&str, &str, Severity, &str); 5] = [
    (
        "IMDS001",
        "IMDSv1 allowed (HttpTokens is not required)",
        Severity::High,
        "The instance metadata service answers IMDSv1 requests (no session token), so any SSRF in a workload can read the instance role's credentials. Require IMDSv2 (HttpTokens=required).",
    ),
    (
        "IMDS002",
        "Metadata response hop limit too high",
        Severity::Medium,
        "The IMDSv2 token response can travel more hops than needed: above 2 anywhere, or 2 on a host without containers, lets a token leave the instance (or the container network) through a forwarder.",
    ),
    (
        "IMDS003",
        "Metadata endpoint enabled where no metadata is needed",
        Severity::Low,
        "The resource is marked as not using instance metadata (tag imdsguard:imds=unused or --no-metadata) but its endpoint is enabled: disable it.",
    ),
    (
        "IMDS004",
        "Account default does not require IMDSv2",
        Severity::Medium,
        "The account-level instance metadata default (per region) does not require tokens, so new instances launched without explicit metadata options allow IMDSv1.",
    ),
    (
        "IMDS005",
        "Auto Scaling group launches a template version that allows IMDSv1",
        Severity::High,
        "Every instance the group launches allows IMDSv1: the launch template version (or launch configuration) it uses does not require tokens.",
    ),
];

pub fn check_title(id: &str) -> &'static str {
    CHECKS.iter().find(|c| c.0 == id).map(|c| c.1).unwrap_or("")
}

/// The IMDSv1 state of a resource's metadata options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tokens {
    Required,
    /// Required through the account default (AWS, options unset).
    RequiredByDefault,
    EndpointDisabled,
    Allows(String),
    Unknown(String),
}

/// Whether the account defaults loaded require tokens: `Some(true)` if every loaded default
/// does, `Some(false)` if one does not, `None` if none was loaded.
pub fn account_requires(inv: &Inventory) -> Option<bool> {
    let defaults: Vec<&Resource> =
        inv.resources.iter().filter(|r| r.kind == ResourceKind::AccountDefaults && r.origin == Origin::Aws).collect();
    if defaults.is_empty() {
        return None;
    }
    Some(defaults.iter().all(|r| r.metadata.as_ref().is_some_and(|m| m.http_tokens.is("required"))))
}

pub fn tokens(md: Option<&Metadata>, origin: Origin, account: Option<bool>) -> Tokens {
    let unset_reason = |what: &str| -> Tokens {
        if origin.is_iac() {
            return Tokens::Allows(format!("{what}: the AWS default allows IMDSv1 (HttpTokens=optional) unless the AMI or the account default requires tokens"));
        }
        match account {
            Some(true) => Tokens::RequiredByDefault,
            Some(false) => Tokens::Allows(format!("{what}: instances get the account default, which does not require tokens")),
            None => Tokens::Allows(format!("{what}: instances get the account default (not among the inputs), which allows IMDSv1 unless set to required")),
        }
    };
    let Some(md) = md else {
        return unset_reason(match origin {
            Origin::Terraform | Origin::TerraformPlan => "no metadata_options block",
            _ => "no MetadataOptions",
        });
    };
    if md.endpoint_disabled() {
        return Tokens::EndpointDisabled;
    }
    match &md.http_tokens {
        Setting::Unset => unset_reason(&format!("{} not set", tokens_key(origin))),
        Setting::Unknown(e) => Tokens::Unknown(format!("{} = {e}", tokens_key(origin))),
        t if t.is("required") => Tokens::Required,
        t => Tokens::Allows(format!("{} = {}", tokens_key(origin), t.show())),
    }
}

fn tokens_key(origin: Origin) -> &'static str {
    match origin {
        Origin::Terraform | Origin::TerraformPlan => "http_tokens",
        _ => "HttpTokens",
    }
}

const CONTAINER_TAGS: [&str; 6] =
    ["eks:cluster-name", "aws:eks:cluster-name", "eks:nodegroup-name", "k8s.io/cluster-autoscaler/enabled", "AmazonECSManaged", "aws:ecs:clusterName"];

/// AMI names (from `describe-images`) and SSM public parameter paths of the ECS-optimized,
/// EKS-optimized and Bottlerocket images.
const CONTAINER_IMAGES: [&str; 8] = [
    "amazon-eks-",
    "amzn2-ami-ecs-",
    "al2023-ami-ecs-",
    "amazon-ecs-optimized",
    "bottlerocket-aws-k8s-",
    "bottlerocket-aws-ecs-",
    "/aws/service/eks/optimized-ami/",
    "/aws/service/ecs/optimized-ami/",
];

/// Whether the resource runs containers: `--container-host`, the tag `imdsguard:containers=true`,
/// an EKS/ECS/Kubernetes tag (`eks:cluster-name`, `kubernetes.io/cluster/<name>`,
/// `AmazonECSManaged`...), or an ECS/EKS-optimized or Bottlerocket image (its name from
/// `describe-images`, or the SSM parameter a CloudFormation `ImageId` reads).
pub fn is_container_host(r: &Resource, opts: &Options, images: &BTreeMap<String, String>) -> bool {
    if named_in(r, &opts.container_hosts) {
        return true;
    }
    if let Some(img) = &r.image {
        let name = images.get(img).unwrap_or(img).to_ascii_lowercase();
        if CONTAINER_IMAGES.iter().any(|p| name.contains(p)) || name.starts_with("/aws/service/bottlerocket/") {
            return true;
        }
    }
    r.tags.iter().any(|(k, v)| {
        CONTAINER_TAGS.contains(&k.as_str())
            || k.starts_with("kubernetes.io/cluster/")
            || (k == "imdsguard:containers" && v.eq_ignore_ascii_case("true"))
    })
}

/// Whether the resource needs no instance metadata: `--no-metadata`, or the tag
/// `imdsguard:imds=unused`.
pub fn needs_no_metadata(r: &Resource, opts: &Options) -> bool {
    named_in(r, &opts.no_metadata) || r.tags.iter().any(|(k, v)| k == "imdsguard:imds" && v.eq_ignore_ascii_case("unused"))
}

fn named_in(r: &Resource, names: &[String]) -> bool {
    names.iter().any(|n| *n == r.id || r.name.as_deref() == Some(n.as_str()) || r.template.as_ref().is_some_and(|t| t.template_id == *n))
}

/// The hop limit a fix writes: the current one when it is acceptable, else 2 for container
/// hosts and 1 for the others.
fn recommended_hop(md: Option<&Metadata>, container: bool) -> i64 {
    let max = if container { 2 } else { 1 };
    match md.and_then(|m| m.hop_limit.int()) {
        Some(h) if h >= 1 && h <= max => h,
        _ => max,
    }
}

fn equivalents(check: &str, kind: ResourceKind, origin: Origin) -> Equivalents {
    let tf = matches!(origin, Origin::Terraform | Origin::TerraformPlan);
    let mut e = Equivalents::default();
    match (check, kind) {
        ("IMDS001", ResourceKind::Instance) => {
            e.aws_config = vec!["ec2-imdsv2-check"];
            e.prowler = vec!["ec2_instance_imdsv2_enabled"];
            if tf {
                e.checkov = vec!["CKV_AWS_79"];
                e.tfsec = vec!["aws-ec2-enforce-http-token-imds"];
            }
        }
        ("IMDS001", ResourceKind::LaunchTemplate) | ("IMDS005", ResourceKind::LaunchTemplate) => {
            e.aws_config = vec!["ec2-launch-template-imdsv2-check"];
            e.prowler = vec!["ec2_launch_template_imdsv2_required"];
            if tf || origin == Origin::CloudFormation {
                e.checkov = vec!["CKV_AWS_79"];
            }
            if tf {
                e.tfsec = vec!["aws-ec2-enforce-launch-config-http-token-imds"];
            }
        }
        ("IMDS001", ResourceKind::LaunchConfiguration) | ("IMDS005", ResourceKind::LaunchConfiguration) => {
            e.aws_config = vec!["autoscaling-launchconfig-requires-imdsv2"];
            e.prowler = vec!["autoscaling_group_launch_configuration_requires_imdsv2"];
            if tf {
                e.checkov = vec!["CKV_AWS_79"];
                e.tfsec = vec!["aws-ec2-enforce-launch-config-http-token-imds"];
            }
        }
        ("IMDS002", ResourceKind::Instance) => {
            e.aws_config = vec!["ec2-token-hop-limit-check"];
        }
        ("IMDS002", ResourceKind::LaunchTemplate) | ("IMDS002", ResourceKind::LaunchConfiguration) if tf => {
            e.checkov = vec!["CKV_AWS_341"];
        }
        ("IMDS004", _) => {
            e.prowler = vec!["ec2_instance_account_imdsv2_enabled"];
        }
        _ => {}
    }
    e
}

/// What a fix sets.
#[derive(Clone, Copy)]
struct Want {
    endpoint_enabled: bool,
    hop: Option<i64>,
}

fn cli_template_data(w: Want) -> String {
    if !w.endpoint_enabled {
        return r#"{"MetadataOptions":{"HttpEndpoint":"disabled"}}"#.to_string();
    }
    match w.hop {
        Some(h) => format!(r#"{{"MetadataOptions":{{"HttpTokens":"required","HttpEndpoint":"enabled","HttpPutResponseHopLimit":{h}}}}}"#),
        None => r#"{"MetadataOptions":{"HttpTokens":"required","HttpEndpoint":"enabled"}}"#.to_string(),
    }
}

fn terraform_block(w: Want) -> String {
    if !w.endpoint_enabled {
        return "metadata_options {\n  http_endpoint = \"disabled\"\n}".to_string();
    }
    let hop = w.hop.unwrap_or(1);
    format!(
        "metadata_options {{\n  http_endpoint               = \"enabled\"\n  http_tokens                 = \"required\"\n  http_put_response_hop_limit = {hop}\n}}"
    )
}

fn cfn_snippet(kind: ResourceKind, w: Want) -> String {
    let body = if w.endpoint_enabled {
        format!("MetadataOptions:\n  HttpEndpoint: enabled\n  HttpTokens: required\n  HttpPutResponseHopLimit: {}", w.hop.unwrap_or(1))
    } else {
        "MetadataOptions:\n  HttpEndpoint: disabled".to_string()
    };
    if kind == ResourceKind::LaunchTemplate {
        let indented: Vec<String> = body.lines().map(|l| format!("  {l}")).collect();
        format!("LaunchTemplateData:\n{}", indented.join("\n"))
    } else {
        body
    }
}

/// The new-version commands for a live launch template version.
fn template_version_fix(t: &TemplateVersion, w: Want, make_default: bool) -> Vec<String> {
    let source = if t.is_latest { "\"\\$Latest\"".to_string() } else { t.version.to_string() };
    let mut cmds = vec![format!(
        "aws ec2 create-launch-template-version --launch-template-id {} --source-version {source} --launch-template-data '{}'",
        t.template_id,
        cli_template_data(w)
    )];
    if make_default {
        let new = t.latest.map(|l| (l + 1).to_string()).unwrap_or_else(|| "<new version number>".into());
        cmds.push(format!("aws ec2 modify-launch-template --launch-template-id {} --default-version {new}", t.template_id));
    }
    cmds
}

/// The fix for one resource (instance, template, launch configuration, account defaults).
fn fix_for(r: &Resource, w: Want, check: &str) -> Vec<Fix> {
    let cli = |text: String| Fix { kind: FixKind::AwsCli, text };
    match (r.origin, r.kind) {
        (Origin::Aws, ResourceKind::Instance) => {
            let text = match check {
                "IMDS002" => format!("aws ec2 modify-instance-metadata-options --instance-id {} --http-put-response-hop-limit {}", r.id, w.hop.unwrap_or(1)),
                "IMDS003" => format!("aws ec2 modify-instance-metadata-options --instance-id {} --http-endpoint disabled", r.id),
                _ => format!("aws ec2 modify-instance-metadata-options --instance-id {} --http-tokens required --http-endpoint enabled", r.id),
            };
            vec![cli(text)]
        }
        (Origin::Aws, ResourceKind::LaunchTemplate) => match &r.template {
            Some(t) => template_version_fix(t, w, t.is_default).into_iter().map(cli).collect(),
            None => Vec::new(),
        },
        (Origin::Aws, ResourceKind::LaunchConfiguration) => vec![cli(format!(
            "# launch configurations cannot be changed: create a copy of {} with --metadata-options HttpTokens=required,HttpEndpoint=enabled (aws autoscaling create-launch-configuration), or move its groups to a launch template, then point the groups at it",
            r.id
        ))],
        (Origin::Aws, ResourceKind::AccountDefaults) => {
            vec![cli("aws ec2 modify-instance-metadata-defaults --http-tokens required --http-endpoint enabled".into())]
        }
        (Origin::Terraform | Origin::TerraformPlan, ResourceKind::AccountDefaults) => vec![Fix {
            kind: FixKind::Terraform,
            text: "http_tokens   = \"required\"\nhttp_endpoint = \"enabled\"".into(),
        }],
        (Origin::Terraform | Origin::TerraformPlan, _) => vec![Fix { kind: FixKind::Terraform, text: terraform_block(w) }],
        (Origin::CloudFormation, kind) => vec![Fix { kind: FixKind::CloudFormation, text: cfn_snippet(kind, w) }],
        (_, ResourceKind::AutoScalingGroup) => Vec::new(),
    }
}

fn display(r: &Resource) -> String {
    match (&r.template, r.origin) {
        (Some(t), _) => {
            let mut s = format!("{} version {}", t.template_id, t.version);
            let roles: Vec<&str> = [(t.is_default, "default"), (t.is_latest, "latest")].iter().filter(|x| x.0).map(|x| x.1).collect();
            if !roles.is_empty() {
                s.push_str(&format!(" ({})", roles.join(", ")));
            }
            s
        }
        _ => r.id.clone(),
    }
}

fn describe(r: &Resource) -> String {
    let mut s = format!("{} {}", r.kind.label(), display(r));
    if let Some(n) = r.name.as_deref().or(r.template.as_ref().and_then(|t| t.template_name.as_deref())) {
        s.push_str(&format!(" ({n})"));
    }
    s
}

fn finding(check: &'static str, sev: Severity, r: &Resource, line: Option<usize>, message: String, evidence: Vec<String>, fix: Vec<Fix>) -> Finding {
    Finding {
        check_id: check,
        title: check_title(check),
        severity: sev,
        resource: ResourceRef { kind: r.kind, origin: r.origin, id: r.id.clone(), version: r.template.as_ref().map(|t| t.version), name: r.name.clone() },
        location: Location { file: r.file.clone(), line },
        message,
        evidence,
        fix,
        equivalents: equivalents(check, r.kind, r.origin),
        observed: None,
    }
}

fn base_evidence(r: &Resource) -> Vec<String> {
    let mut ev = Vec::new();
    if let Some(s) = &r.state {
        ev.push(format!("state: {s}"));
    }
    if let Some(az) = &r.availability_zone {
        ev.push(format!("availability zone: {az}"));
    }
    if let Some(md) = &r.metadata {
        ev.push(format!(
            "metadata options: tokens {}, endpoint {}, hop limit {}",
            md.http_tokens.show(),
            md.http_endpoint.show(),
            md.hop_limit.show()
        ));
    }
    ev
}

/// Runs every check over the inventory.
pub fn run(inv: &Inventory, opts: &Options) -> (Vec<Finding>, Vec<String>) {
    let mut notes = Vec::new();
    let account = account_requires(inv);
    let mut out = Vec::new();
    let mut resources: Vec<Resource> = inv.resources.clone();
    resources.extend(live_template_resources(inv));
    for r in &resources {
        let md = r.metadata.as_ref();
        let container = is_container_host(r, opts, &inv.images);
        let hop = recommended_hop(md, container);
        let want = Want { endpoint_enabled: true, hop: Some(hop) };
        let want_cli = Want { endpoint_enabled: true, hop: md.and_then(|m| m.hop_limit.int()).map(|_| hop) };
        match r.kind {
            ResourceKind::AccountDefaults => {
                let ev = base_evidence(r);
                match md.map(|m| &m.http_tokens) {
                    Some(t) if t.is("required") => {}
                    Some(Setting::Unknown(e)) => out.push(finding(
                        "IMDS004",
                        Severity::Info,
                        r,
                        md.and_then(|m| m.tokens_line).or(r.line),
                        format!("account default http_tokens = {e} cannot be resolved offline: make sure it is \"required\""),
                        ev,
                        fix_for(r, want, "IMDS004"),
                    )),
                    other => {
                        let what = match other {
                            Some(t @ (Setting::Value(_) | Setting::Defaulted { .. })) => format!("{} = {}", tokens_key(r.origin), t.show()),
                            _ => "no account-level HttpTokens is set (no preference), so new instances get the AMI's default".into(),
                        };
                        out.push(finding(
                            "IMDS004",
                            Severity::Medium,
                            r,
                            md.and_then(|m| m.tokens_line).or(r.line),
                            format!("the account default does not require IMDSv2: {what}"),
                            ev,
                            fix_for(r, want, "IMDS004"),
                        ));
                    }
                }
                hop_check(r, md, container, hop, opts, &mut out);
                continue;
            }
            ResourceKind::AutoScalingGroup => continue,
            _ => {}
        }
        let fix_want = if r.origin == Origin::Aws { want_cli } else { want };
        match tokens(md, r.origin, account) {
            Tokens::Allows(why) => {
                let mut ev = base_evidence(r);
                ev.push(why.clone());
                out.push(finding(
                    "IMDS001",
                    Severity::High,
                    r,
                    md.and_then(|m| m.tokens_line.or(m.line)).or(r.line),
                    format!("{} allows IMDSv1: {why}", describe(r)),
                    ev,
                    fix_for(r, fix_want, "IMDS001"),
                ));
            }
            Tokens::Unknown(expr) => {
                let mut ev = base_evidence(r);
                ev.push(expr.clone());
                out.push(finding(
                    "IMDS001",
                    Severity::Info,
                    r,
                    md.and_then(|m| m.tokens_line.or(m.line)).or(r.line),
                    format!("{} may allow IMDSv1: {expr} cannot be resolved offline; make sure it evaluates to required", describe(r)),
                    ev,
                    fix_for(r, fix_want, "IMDS001"),
                ));
            }
            Tokens::Required | Tokens::RequiredByDefault | Tokens::EndpointDisabled => {}
        }
        hop_check(r, md, container, hop, opts, &mut out);
        if needs_no_metadata(r, opts) && !md.is_some_and(Metadata::endpoint_disabled) {
            let endpoint = md.map(|m| m.http_endpoint.show()).unwrap_or_else(|| "unset (enabled by default)".into());
            let mut ev = base_evidence(r);
            ev.push(format!("marked as needing no instance metadata; endpoint: {endpoint}"));
            out.push(finding(
                "IMDS003",
                Severity::Low,
                r,
                md.and_then(|m| m.endpoint_line.or(m.line)).or(r.line),
                format!("{} needs no instance metadata but its endpoint is enabled", describe(r)),
                ev,
                fix_for(r, Want { endpoint_enabled: false, hop: None }, "IMDS003"),
            ));
        }
    }
    asg_checks(inv, &resources, account, opts, &mut out, &mut notes);
    (out, notes)
}

fn hop_check(r: &Resource, md: Option<&Metadata>, container: bool, hop: i64, _opts: &Options, out: &mut Vec<Finding>) {
    let Some(m) = md else { return };
    if m.endpoint_disabled() {
        return;
    }
    let Some(h) = m.hop_limit.int() else { return };
    let (sev, why) = if h > 2 {
        (Severity::Medium, format!("hop limit {h} is above 2: the IMDSv2 token can be forwarded beyond the instance and its containers"))
    } else if h == 2 && !container {
        (Severity::Low, "hop limit 2 on a host with no container marker: only containers need a second hop".to_string())
    } else {
        return;
    };
    let mut ev = base_evidence(r);
    ev.push(format!("container host: {}", if container { "yes" } else { "no" }));
    let want = Want { endpoint_enabled: true, hop: Some(hop) };
    out.push(finding("IMDS002", sev, r, m.hop_line.or(m.line).or(r.line), format!("{}: {why}", describe(r)), ev, fix_for(r, want, "IMDS002")));
}

/// The live launch template versions that matter: the default and the latest of each template.
pub fn live_template_resources(inv: &Inventory) -> Vec<Resource> {
    let mut out = Vec::new();
    for t in inv.templates.values() {
        let latest = t.latest_number();
        let mut check: Vec<i64> = Vec::new();
        for n in [t.default, latest].into_iter().flatten() {
            if t.versions.contains_key(&n) && !check.contains(&n) {
                check.push(n);
            }
        }
        if check.is_empty() {
            if let Some((&n, _)) = t.versions.iter().next_back() {
                check.push(n);
            }
        }
        for n in check {
            if let Some(r) = t.version_resource(n, latest) {
                out.push(r);
            }
        }
    }
    out
}

fn resolve_live<'a>(inv: &'a Inventory, r: &TemplateRef) -> Option<&'a LiveTemplate> {
    inv.templates
        .values()
        .find(|t| r.id.as_deref() == Some(t.id.as_str()) || (r.name.is_some() && r.name.as_deref() == t.name.as_deref()))
}

fn asg_checks(inv: &Inventory, resources: &[Resource], account: Option<bool>, opts: &Options, out: &mut Vec<Finding>, notes: &mut Vec<String>) {
    for g in &inv.asgs {
        let asg_res = {
            let mut r = Resource::new(ResourceKind::AutoScalingGroup, g.origin, g.name.clone(), &g.file);
            r.line = g.line;
            r
        };
        let mut targets: Vec<(Resource, String, Option<String>)> = Vec::new();
        for tr in &g.templates {
            let version = tr.version.clone().unwrap_or_else(|| "$Default".into());
            let label = tr.id.clone().or(tr.name.clone()).unwrap_or_else(|| "(unnamed)".into());
            if g.origin == Origin::Aws {
                let Some(t) = resolve_live(inv, tr) else {
                    inv_note(notes, &g.name, &format!("launch template {label} is not among the inputs"));
                    continue;
                };
                let latest = t.latest_number();
                let n = match version.as_str() {
                    "$Latest" => latest,
                    "$Default" => t.default,
                    v => v.parse().ok(),
                };
                match n.and_then(|n| t.version_resource(n, latest)) {
                    Some(vr) => targets.push((vr, version, Some(t.id.clone()))),
                    None => inv_note(notes, &g.name, &format!("version {version} of launch template {label} is not among the inputs")),
                }
            } else {
                match resources.iter().find(|r| {
                    r.kind == ResourceKind::LaunchTemplate
                        && r.origin == g.origin
                        && r.file == g.file
                        && (tr.id.as_deref() == Some(r.id.as_str()) || tr.name.as_deref() == Some(r.id.as_str()))
                }) {
                    Some(r) => targets.push((r.clone(), version, None)),
                    None => inv_note(notes, &g.name, &format!("launch template {label} is not among the inputs")),
                }
            }
        }
        if let Some(lc) = &g.launch_configuration {
            match resources.iter().find(|r| r.kind == ResourceKind::LaunchConfiguration && (r.id == *lc || r.name.as_deref() == Some(lc))) {
                Some(r) => targets.push((r.clone(), String::new(), None)),
                None => inv_note(notes, &g.name, &format!("launch configuration {lc} is not among the inputs")),
            }
        }
        for (t, version, _) in targets {
            let Tokens::Allows(why) = tokens(t.metadata.as_ref(), t.origin, account) else { continue };
            let container = is_container_host(&t, opts, &inv.images);
            let want_hop = recommended_hop(t.metadata.as_ref(), container);
            let what = if t.kind == ResourceKind::LaunchConfiguration {
                format!("launch configuration {}", t.id)
            } else {
                match &t.template {
                    Some(tv) if version.starts_with('$') => format!("launch template {} version {} (as {version})", tv.template_id, tv.version),
                    Some(tv) => format!("launch template {} version {}", tv.template_id, tv.version),
                    None => format!("launch template {} ({})", t.id, if version.is_empty() { "$Default" } else { &version }),
                }
            };
            let mut ev = vec![format!("launches {what}"), why.clone()];
            if !g.instance_ids.is_empty() {
                ev.push(format!("instances: {}", g.instance_ids.join(", ")));
            }
            let mut fix = Vec::new();
            match (&t.template, t.origin, t.kind) {
                (Some(tv), Origin::Aws, _) => {
                    let w = Want { endpoint_enabled: true, hop: t.metadata.as_ref().and_then(|m| m.hop_limit.int()).map(|_| want_hop) };
                    let mut cmds = template_version_fix(tv, w, version == "$Default");
                    let new = tv.latest.map(|l| (l + 1).to_string()).unwrap_or_else(|| "<new version number>".into());
                    if version != "$Latest" && version != "$Default" {
                        cmds.push(format!(
                            "aws autoscaling update-auto-scaling-group --auto-scaling-group-name {} --launch-template LaunchTemplateId={},Version={new}",
                            g.name, tv.template_id
                        ));
                    }
                    cmds.push(format!("aws autoscaling start-instance-refresh --auto-scaling-group-name {}", g.name));
                    fix.extend(cmds.into_iter().map(|text| Fix { kind: FixKind::AwsCli, text }));
                }
                (_, Origin::Aws, _) => fix.extend(fix_for(&t, Want { endpoint_enabled: true, hop: None }, "IMDS001")),
                (_, Origin::Terraform | Origin::TerraformPlan, _) => {
                    let mut text = format!("# in {}\n{}", t.id, terraform_block(Want { endpoint_enabled: true, hop: Some(want_hop) }));
                    if version == "$Default" && t.kind == ResourceKind::LaunchTemplate {
                        text.push_str("\nupdate_default_version = true");
                    }
                    fix.push(Fix { kind: FixKind::Terraform, text });
                    fix.push(Fix { kind: FixKind::Terraform, text: format!("# in {}\ninstance_refresh {{\n  strategy = \"Rolling\"\n}}", g.name) });
                }
                (_, Origin::CloudFormation, kind) => fix.push(Fix {
                    kind: FixKind::CloudFormation,
                    text: format!("# in {}\n{}", t.id, cfn_snippet(kind, Want { endpoint_enabled: true, hop: Some(want_hop) })),
                }),
            }
            let mut f = finding(
                "IMDS005",
                Severity::High,
                &asg_res,
                g.line,
                format!("auto scaling group {} launches {what}, which allows IMDSv1: {why}", g.name),
                ev,
                fix,
            );
            f.equivalents = equivalents("IMDS005", t.kind, t.origin);
            out.push(f);
        }
    }
}

fn inv_note(notes: &mut Vec<String>, asg: &str, msg: &str) {
    notes.push(format!("auto scaling group {asg}: {msg}: its launch settings were not checked"));
}

/// Marks findings on instances (and groups whose instances) where IMDSv1 use was observed;
/// returns the observations that matched nothing.
pub fn join_observations(findings: &mut [Finding], inv: &Inventory, obs: &[Observation]) -> Vec<String> {
    let mut used = vec![false; obs.len()];
    let instances: Vec<&Resource> = inv.resources.iter().filter(|r| r.kind == ResourceKind::Instance && r.origin == Origin::Aws).collect();
    // Per instance: (alerts, matched_on, first, last).
    let mut per_instance: Vec<(String, Observed)> = Vec::new();
    for r in &instances {
        let mut o = Observed { alerts: 0, matched_on: Vec::new(), first_seen: None, last_seen: None };
        for (i, ob) in obs.iter().enumerate() {
            let hit = ob.keys.iter().find(|(f, v)| matches_instance(r, f, v));
            if let Some((f, v)) = hit {
                used[i] = true;
                o.alerts += ob.count;
                o.matched_on.push(format!("{f}={v}"));
                if let Some(t) = &ob.first_seen {
                    if o.first_seen.as_ref().is_none_or(|x| t < x) {
                        o.first_seen = Some(t.clone());
                    }
                }
                if let Some(t) = &ob.last_seen {
                    if o.last_seen.as_ref().is_none_or(|x| t > x) {
                        o.last_seen = Some(t.clone());
                    }
                }
            }
        }
        if o.alerts > 0 {
            per_instance.push((r.id.clone(), o));
        }
    }
    for f in findings.iter_mut() {
        if f.resource.kind == ResourceKind::Instance && f.resource.origin == Origin::Aws {
            if let Some((_, o)) = per_instance.iter().find(|(id, _)| *id == f.resource.id) {
                f.observed = Some(o.clone());
                if f.check_id == "IMDS001" {
                    f.severity = Severity::Critical;
                    f.evidence.push(format!("IMDSv1 use observed: {} alert(s) of the IMDSv1 rule ({})", o.alerts, o.matched_on.join(", ")));
                }
            }
        }
        if f.check_id == "IMDS005" && f.resource.origin == Origin::Aws {
            if let Some(g) = inv.asgs.iter().find(|g| g.name == f.resource.id) {
                let hits: Vec<&(String, Observed)> = per_instance.iter().filter(|(id, _)| g.instance_ids.contains(id)).collect();
                if !hits.is_empty() {
                    let alerts = hits.iter().map(|(_, o)| o.alerts).sum();
                    let matched_on = hits.iter().flat_map(|(id, o)| o.matched_on.iter().map(move |m| format!("{id}: {m}"))).collect();
                    f.observed = Some(Observed { alerts, matched_on, first_seen: None, last_seen: None });
                    f.severity = Severity::Critical;
                }
            }
        }
    }
    let mut notes: Vec<String> = per_instance
        .iter()
        .filter(|(id, _)| !findings.iter().any(|f| f.check_id == "IMDS001" && f.resource.id == *id))
        .map(|(id, o)| {
            format!(
                "IMDSv1 use observed ({} alert(s), {}) on instance {id}, which requires tokens or has the endpoint disabled now: the requests were refused or predate the change",
                o.alerts,
                o.matched_on.join(", ")
            )
        })
        .collect();
    notes.extend(obs.iter()
        .zip(used)
        .filter(|(_, u)| !u)
        .map(|(o, _)| {
            let keys: Vec<String> = o.keys.iter().map(|(f, v)| format!("{f}={v}")).collect();
            format!("IMDSv1 use observed ({} alert(s)) on a host that matches no audited instance: {}", o.count, if keys.is_empty() { "(no host fields)".into() } else { keys.join(", ") })
        }));
    notes
}

fn matches_instance(r: &Resource, field: &str, value: &str) -> bool {
    match field {
        "cloud.instance.id" | "host.id" => r.id == value,
        "host.name" | "host.hostname" => {
            let v = value.to_ascii_lowercase();
            r.private_dns.iter().any(|d| {
                let d = d.to_ascii_lowercase();
                d == v || d.split('.').next() == Some(v.as_str())
            }) || r.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(value))
        }
        "host.ip" | "source.ip" => r.private_ips.iter().any(|ip| ip == value),
        _ => false,
    }
}
