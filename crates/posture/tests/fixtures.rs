//! The audit over the fixtures of `examples/audit/` (AWS CLI pages, launch templates with several
//! versions, Auto Scaling groups on `$Latest`/`$Default`/a number, account defaults, Terraform with
//! and without `metadata_options`, a plan, CloudFormation YAML with short tags and JSON, IMDSv1
//! alerts): every finding, its location, its fix and its cross-references.

use imdsguard_posture::alerts::read_alerts;
use imdsguard_posture::{audit, Finding, FixKind, Inventory, Options, Report, Severity};
use std::path::PathBuf;

const FILES: [&str; 11] = [
    "describe-auto-scaling-groups.json",
    "describe-images.json",
    "describe-instances-page1.json",
    "describe-instances-page2.json",
    "describe-launch-template-versions.json",
    "describe-launch-templates.json",
    "instance-metadata-defaults.json",
    "main.tf",
    "plan.json",
    "stack.json",
    "stack.yaml",
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/audit")
}

fn read(name: &str) -> Vec<u8> {
    let p = dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {} is missing ({e}): it is part of the repository", p.display()))
}

fn run(with_alerts: bool) -> Report {
    let mut inv = Inventory::default();
    for f in FILES {
        inv.add(f, &read(f));
    }
    let mut opts = Options::default();
    if with_alerts {
        let (obs, other, errors) = read_alerts("alerts.ndjson", &read("alerts.ndjson"));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(other, 1, "one alert of another rule");
        opts.observations = obs;
    }
    audit(&inv, &opts)
}

fn find<'a>(r: &'a Report, check: &str, id: &str, version: Option<i64>) -> &'a Finding {
    r.findings
        .iter()
        .find(|f| f.check_id == check && f.resource.id == id && f.resource.version == version)
        .unwrap_or_else(|| panic!("no {check} finding on {id} {version:?}"))
}

use Severity::*;

/// (check, severity, resource id, template version, file, line, observed alerts).
type Row<'a> = (&'a str, Severity, &'a str, Option<i64>, &'a str, Option<usize>, u64);

/// (check, resource id, template version, fixes).
type FixRow<'a> = (&'a str, &'a str, Option<i64>, &'a [(FixKind, &'a str)]);

/// (check, severity, resource id, template version, file, line, observed alerts), in report order.
const EXPECTED: &[Row] = &[
    ("IMDS001", Critical, "i-0a1b2c3d4e5f60001", None, "describe-instances-page1.json", Some(9), 8),
    ("IMDS005", Critical, "web-asg", None, "describe-auto-scaling-groups.json", Some(4), 1),
    ("IMDS001", Critical, "i-0a1b2c3d4e5f60003", None, "describe-instances-page1.json", Some(154), 1),
    ("IMDS001", Critical, "i-0a1b2c3d4e5f6000a", None, "describe-instances-page2.json", Some(326), 1),
    ("IMDS002", Medium, "i-0a1b2c3d4e5f60003", None, "describe-instances-page1.json", Some(154), 1),
    ("IMDS005", High, "reports-asg", None, "describe-auto-scaling-groups.json", Some(76), 0),
    ("IMDS001", High, "i-0a1b2c3d4e5f60007", None, "describe-instances-page2.json", Some(150), 0),
    ("IMDS001", High, "lt-0aaa1111bbbb2222c", Some(2), "describe-launch-template-versions.json", Some(38), 0),
    ("IMDS001", High, "aws_instance.web", None, "main.tf", Some(8), 0),
    ("IMDS001", High, "aws_instance.worker", None, "main.tf", Some(35), 0),
    ("IMDS001", High, "aws_launch_template.app", None, "main.tf", Some(46), 0),
    ("IMDS001", High, "aws_launch_configuration.legacy", None, "main.tf", Some(66), 0),
    ("IMDS005", High, "aws_autoscaling_group.app", None, "main.tf", Some(72), 0),
    ("IMDS001", High, "aws_instance.db", None, "plan.json", Some(1), 0),
    ("IMDS001", High, "module.cache.aws_instance.redis[0]", None, "plan.json", Some(1), 0),
    ("IMDS001", High, "LegacyConfig", None, "stack.json", Some(11), 0),
    ("IMDS005", High, "LegacyGroup", None, "stack.json", Some(16), 0),
    ("IMDS001", High, "OrdersInstance", None, "stack.yaml", Some(27), 0),
    ("IMDS001", High, "AppTemplate", None, "stack.yaml", Some(40), 0),
    ("IMDS005", High, "AppGroup", None, "stack.yaml", Some(71), 0),
    ("IMDS004", Medium, "account-defaults", None, "instance-metadata-defaults.json", Some(2), 0),
    ("IMDS002", Medium, "aws_launch_template.app", None, "main.tf", Some(47), 0),
    ("IMDS004", Medium, "aws_ec2_instance_metadata_defaults.this", None, "main.tf", Some(85), 0),
    ("IMDS002", Medium, "LegacyConfig", None, "stack.json", Some(12), 0),
    ("IMDS002", Low, "i-0a1b2c3d4e5f60005", None, "describe-instances-page2.json", Some(9), 0),
    ("IMDS003", Low, "i-0a1b2c3d4e5f60006", None, "describe-instances-page2.json", Some(74), 0),
    ("IMDS002", Low, "lt-0aaa1111bbbb2222c", Some(3), "describe-launch-template-versions.json", Some(6), 0),
    ("IMDS002", Low, "module.cache.aws_instance.redis[0]", None, "plan.json", Some(1), 0),
    ("IMDS001", Info, "ReportsInstance", None, "stack.yaml", Some(38), 0),
];

#[test]
fn every_finding_with_its_location_in_report_order() {
    let r = run(true);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let got: Vec<Row> = r
        .findings
        .iter()
        .map(|f| {
            (
                f.check_id,
                f.severity,
                f.resource.id.as_str(),
                f.resource.version,
                f.location.file.as_str(),
                f.location.line,
                f.observed.as_ref().map(|o| o.alerts).unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(got, EXPECTED);
    assert_eq!(r.summary.findings, EXPECTED.len());
    assert_eq!(r.summary.inputs, FILES.len());
}

#[test]
fn clean_resources_have_no_finding() {
    let r = run(false);
    for clean in [
        "i-0a1b2c3d4e5f60002", // required, hop 1
        "i-0a1b2c3d4e5f60004", // EKS node: required, hop 2 is expected on a container host
        "i-0a1b2c3d4e5f6000b", // hop 2 on an ECS-optimized AMI (its name from describe-images)
        "i-0a1b2c3d4e5f60008", // terminated
        "i-0a1b2c3d4e5f60009", // endpoint disabled: neither IMDS version answers
        "lt-0ddd3333eeee4444f",
        "web-canary-asg", // $Latest is version 3, which requires tokens
        "batch-asg",
        "aws_instance.api",
        "aws_launch_template.eks_nodes",
        "aws_launch_template.queue", // the plan changes it to required
        "aws_instance.old_bastion",  // being deleted
        "HardenedTemplate",
        "WorkerInstance",
    ] {
        assert!(!r.findings.iter().any(|f| f.resource.id == clean), "unexpected finding on {clean}");
    }
}

#[test]
fn without_alerts_nothing_is_critical_or_observed() {
    let r = run(false);
    assert!(r.findings.iter().all(|f| f.observed.is_none() && f.severity != Critical));
    assert_eq!(find(&r, "IMDS001", "i-0a1b2c3d4e5f60001", None).severity, High);
}

#[test]
fn alerts_tie_to_instances_by_id_host_name_and_ip() {
    let r = run(true);
    let table: &[(&str, u64, &[&str])] = &[
        (
            "i-0a1b2c3d4e5f60001",
            8,
            &["cloud.instance.id=i-0a1b2c3d4e5f60001"],
        ),
        ("i-0a1b2c3d4e5f60003", 1, &["host.name=batch-7"]),
        ("i-0a1b2c3d4e5f6000a", 1, &["host.name=ip-10-0-1-51"]),
    ];
    for (id, alerts, on) in table {
        let o = find(&r, "IMDS001", id, None).observed.as_ref().expect("observed");
        assert_eq!(o.alerts, *alerts, "{id}");
        assert_eq!(o.matched_on, on.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{id}");
    }
    let web1 = find(&r, "IMDS001", "i-0a1b2c3d4e5f60001", None).observed.as_ref().expect("observed");
    assert_eq!(web1.first_seen.as_deref(), Some("2026-11-28T09:14:02.000Z"));
    assert_eq!(web1.last_seen.as_deref(), Some("2026-11-29T09:20:11.000Z"));
    // The group whose instance was seen is observed too.
    let asg = find(&r, "IMDS005", "web-asg", None).observed.as_ref().expect("observed");
    assert_eq!(asg.matched_on, vec!["i-0a1b2c3d4e5f6000a: host.name=ip-10-0-1-51".to_string()]);
    assert!(r.notes.iter().any(|n| n.contains("matches no audited instance") && n.contains("i-0fffffffffffffff0")), "{:?}", r.notes);
}

fn fixes(f: &Finding) -> Vec<(FixKind, &str)> {
    f.fix.iter().map(|x| (x.kind, x.text.as_str())).collect()
}

const TF_BLOCK_HOP1: &str = "metadata_options {\n  http_endpoint               = \"enabled\"\n  http_tokens                 = \"required\"\n  http_put_response_hop_limit = 1\n}";

#[test]
fn fixes_are_the_seed_commands_adapted_to_each_resource() {
    let r = run(true);
    let table: &[FixRow] = &[
        (
            "IMDS001",
            "i-0a1b2c3d4e5f60001",
            None,
            &[(FixKind::AwsCli, "aws ec2 modify-instance-metadata-options --instance-id i-0a1b2c3d4e5f60001 --http-tokens required --http-endpoint enabled")],
        ),
        (
            "IMDS002",
            "i-0a1b2c3d4e5f60003",
            None,
            &[(FixKind::AwsCli, "aws ec2 modify-instance-metadata-options --instance-id i-0a1b2c3d4e5f60003 --http-put-response-hop-limit 1")],
        ),
        (
            "IMDS003",
            "i-0a1b2c3d4e5f60006",
            None,
            &[(FixKind::AwsCli, "aws ec2 modify-instance-metadata-options --instance-id i-0a1b2c3d4e5f60006 --http-endpoint disabled")],
        ),
        (
            // The default version: a new version from it, then made the default (latest is 3).
            "IMDS001",
            "lt-0aaa1111bbbb2222c",
            Some(2),
            &[
                (FixKind::AwsCli, r#"aws ec2 create-launch-template-version --launch-template-id lt-0aaa1111bbbb2222c --source-version 2 --launch-template-data '{"MetadataOptions":{"HttpTokens":"required","HttpEndpoint":"enabled","HttpPutResponseHopLimit":1}}'"#),
                (FixKind::AwsCli, "aws ec2 modify-launch-template --launch-template-id lt-0aaa1111bbbb2222c --default-version 4"),
            ],
        ),
        (
            "IMDS002",
            "lt-0aaa1111bbbb2222c",
            Some(3),
            &[(FixKind::AwsCli, r#"aws ec2 create-launch-template-version --launch-template-id lt-0aaa1111bbbb2222c --source-version "\$Latest" --launch-template-data '{"MetadataOptions":{"HttpTokens":"required","HttpEndpoint":"enabled","HttpPutResponseHopLimit":1}}'"#)],
        ),
        (
            "IMDS005",
            "web-asg",
            None,
            &[
                (FixKind::AwsCli, r#"aws ec2 create-launch-template-version --launch-template-id lt-0aaa1111bbbb2222c --source-version 2 --launch-template-data '{"MetadataOptions":{"HttpTokens":"required","HttpEndpoint":"enabled","HttpPutResponseHopLimit":1}}'"#),
                (FixKind::AwsCli, "aws ec2 modify-launch-template --launch-template-id lt-0aaa1111bbbb2222c --default-version 4"),
                (FixKind::AwsCli, "aws autoscaling start-instance-refresh --auto-scaling-group-name web-asg"),
            ],
        ),
        (
            // Pinned to version 1 (no MetadataOptions): the group is pointed at the new version.
            "IMDS005",
            "reports-asg",
            None,
            &[
                (FixKind::AwsCli, r#"aws ec2 create-launch-template-version --launch-template-id lt-0aaa1111bbbb2222c --source-version 1 --launch-template-data '{"MetadataOptions":{"HttpTokens":"required","HttpEndpoint":"enabled"}}'"#),
                (FixKind::AwsCli, "aws autoscaling update-auto-scaling-group --auto-scaling-group-name reports-asg --launch-template LaunchTemplateId=lt-0aaa1111bbbb2222c,Version=4"),
                (FixKind::AwsCli, "aws autoscaling start-instance-refresh --auto-scaling-group-name reports-asg"),
            ],
        ),
        (
            "IMDS004",
            "account-defaults",
            None,
            &[(FixKind::AwsCli, "aws ec2 modify-instance-metadata-defaults --http-tokens required --http-endpoint enabled")],
        ),
        ("IMDS001", "aws_instance.web", None, &[(FixKind::Terraform, TF_BLOCK_HOP1)]),
        ("IMDS001", "aws_launch_template.app", None, &[(FixKind::Terraform, TF_BLOCK_HOP1)]),
        (
            "IMDS004",
            "aws_ec2_instance_metadata_defaults.this",
            None,
            &[(FixKind::Terraform, "http_tokens   = \"required\"\nhttp_endpoint = \"enabled\"")],
        ),
        (
            "IMDS005",
            "aws_autoscaling_group.app",
            None,
            &[
                (FixKind::Terraform, "# in aws_launch_template.app\nmetadata_options {\n  http_endpoint               = \"enabled\"\n  http_tokens                 = \"required\"\n  http_put_response_hop_limit = 1\n}"),
                (FixKind::Terraform, "# in aws_autoscaling_group.app\ninstance_refresh {\n  strategy = \"Rolling\"\n}"),
            ],
        ),
        (
            "IMDS001",
            "OrdersInstance",
            None,
            &[(FixKind::CloudFormation, "MetadataOptions:\n  HttpEndpoint: enabled\n  HttpTokens: required\n  HttpPutResponseHopLimit: 1")],
        ),
        (
            "IMDS001",
            "AppTemplate",
            None,
            &[(FixKind::CloudFormation, "LaunchTemplateData:\n  MetadataOptions:\n    HttpEndpoint: enabled\n    HttpTokens: required\n    HttpPutResponseHopLimit: 1")],
        ),
    ];
    for (check, id, version, want) in table {
        assert_eq!(fixes(find(&r, check, id, *version)), want.to_vec(), "{check} {id}");
    }
}

#[test]
fn evidence_names_the_setting_and_where_it_comes_from() {
    let r = run(false);
    let table: &[(&str, &str, &str)] = &[
        ("IMDS001", "aws_instance.worker", "http_tokens = optional (default of var.imds_tokens)"),
        ("IMDS001", "OrdersInstance", "HttpTokens = optional (default of !Ref ImdsTokens)"),
        ("IMDS001", "ReportsInstance", r#"HttpTokens = !If ["IsProd","required","optional"]"#),
        ("IMDS001", "aws_instance.web", "no metadata_options block: the AWS default allows IMDSv1 (HttpTokens=optional) unless the AMI or the account default requires tokens"),
        ("IMDS001", "i-0a1b2c3d4e5f60007", "state: stopped"),
        ("IMDS002", "i-0a1b2c3d4e5f60005", "container host: no"),
        ("IMDS005", "reports-asg", "no MetadataOptions: instances get the account default, which does not require tokens"),
        ("IMDS005", "web-asg", "launches launch template lt-0aaa1111bbbb2222c version 2 (as $Default)"),
        ("IMDS005", "AppGroup", "launches launch template AppTemplate ($Latest)"),
    ];
    for (check, id, ev) in table {
        let f = find(&r, check, id, None);
        assert!(f.evidence.iter().any(|e| e == ev), "{check} {id}: {:?}", f.evidence);
    }
}

#[test]
fn equivalent_checks_of_other_tools() {
    let r = run(false);
    type EqRow<'a> = (&'a str, &'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str], &'a [&'a str]);
    let table: &[EqRow] = &[
        ("IMDS001", "i-0a1b2c3d4e5f60007", &["ec2-imdsv2-check"], &["ec2_instance_imdsv2_enabled"], &[], &[]),
        ("IMDS001", "aws_instance.web", &["ec2-imdsv2-check"], &["ec2_instance_imdsv2_enabled"], &["CKV_AWS_79"], &["aws-ec2-enforce-http-token-imds"]),
        (
            "IMDS001",
            "aws_launch_template.app",
            &["ec2-launch-template-imdsv2-check"],
            &["ec2_launch_template_imdsv2_required"],
            &["CKV_AWS_79"],
            &["aws-ec2-enforce-launch-config-http-token-imds"],
        ),
        ("IMDS001", "AppTemplate", &["ec2-launch-template-imdsv2-check"], &["ec2_launch_template_imdsv2_required"], &["CKV_AWS_79"], &[]),
        (
            "IMDS001",
            "LegacyConfig",
            &["autoscaling-launchconfig-requires-imdsv2"],
            &["autoscaling_group_launch_configuration_requires_imdsv2"],
            &[],
            &[],
        ),
        ("IMDS002", "aws_launch_template.app", &[], &[], &["CKV_AWS_341"], &[]),
        ("IMDS002", "i-0a1b2c3d4e5f60005", &["ec2-token-hop-limit-check"], &[], &[], &[]),
        ("IMDS004", "account-defaults", &[], &["ec2_instance_account_imdsv2_enabled"], &[], &[]),
    ];
    for (check, id, config, prowler, checkov, tfsec) in table {
        let e = &find(&r, check, id, None).equivalents;
        assert_eq!((&e.aws_config[..], &e.prowler[..], &e.checkov[..], &e.tfsec[..]), (*config, *prowler, *checkov, *tfsec), "{check} {id}");
    }
}

#[test]
fn notes_say_what_was_not_audited() {
    let r = run(false);
    assert_eq!(
        r.notes,
        vec![
            "describe-instances-page2.json: instance i-0a1b2c3d4e5f60008 is terminated: not audited".to_string(),
            "stack.yaml: instance WorkerInstance takes its metadata options from launch template HardenedTemplate, which is checked on its own".to_string(),
            "auto scaling group ml-asg: launch template lt-0999888877776666a is not among the inputs: its launch settings were not checked".to_string(),
        ]
    );
}

#[test]
fn flags_mark_container_hosts_and_resources_without_metadata_use() {
    let mut inv = Inventory::default();
    for f in FILES {
        inv.add(f, &read(f));
    }
    let opts = Options {
        container_hosts: vec!["bastion".into()],
        no_metadata: vec!["i-0a1b2c3d4e5f60002".into()],
        observations: Vec::new(),
    };
    let r = audit(&inv, &opts);
    assert!(!r.findings.iter().any(|f| f.resource.id == "i-0a1b2c3d4e5f60005"), "hop limit 2 is fine on a container host");
    let f = find(&r, "IMDS003", "i-0a1b2c3d4e5f60002", None);
    assert_eq!(f.severity, Low);
}

#[test]
fn ami_names_tell_container_hosts() {
    // Without describe-images the ECS host's hop limit of 2 is unexplained.
    let mut inv = Inventory::default();
    for f in FILES.iter().filter(|f| **f != "describe-images.json") {
        inv.add(f, &read(f));
    }
    let r = audit(&inv, &Options::default());
    let f = find(&r, "IMDS002", "i-0a1b2c3d4e5f6000b", None);
    assert_eq!((f.severity, f.location.line), (Low, Some(410)));
}
