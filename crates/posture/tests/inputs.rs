//! Input detection and per-input errors: every input is recognised by its content (and `.tf`),
//! a bad one gives an error naming the file and line, and the others are still audited.

use imdsguard_posture::checks::{tokens, Tokens};
use imdsguard_posture::{audit, InputKind, Inventory, Metadata, Options, Origin, Setting};

fn page(ids: &[(&str, &str)]) -> String {
    let instances: Vec<String> = ids
        .iter()
        .map(|(id, t)| {
            format!(
                r#"{{"InstanceId": "{id}", "State": {{"Name": "running"}}, "MetadataOptions": {{"HttpTokens": "{t}", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1}}}}"#
            )
        })
        .collect();
    format!(r#"{{"Reservations": [{{"Instances": [{}]}}]}}"#, instances.join(", "))
}

#[test]
fn kinds_are_detected_from_content() {
    let table: &[(&str, &str, InputKind)] = &[
        ("a.json", r#"{"Reservations": []}"#, InputKind::AwsCli),
        ("noext", r#"{"LaunchTemplateVersions": []}"#, InputKind::AwsCli),
        ("d.txt", r#"{"AccountLevel": {"HttpTokens": "required"}}"#, InputKind::AwsCli),
        ("g.json", r#"{"AutoScalingGroups": []}"#, InputKind::AwsCli),
        ("lc.json", r#"{"LaunchConfigurations": []}"#, InputKind::AwsCli),
        ("p.json", r#"{"format_version": "1.2", "resource_changes": []}"#, InputKind::TerraformPlan),
        ("s.json", r#"{"format_version": "1.0", "values": {"root_module": {}}}"#, InputKind::TerraformPlan),
        ("m.tf", "resource \"aws_instance\" \"a\" {}\n", InputKind::TerraformHcl),
        ("m.hcl", "resource \"aws_instance\" \"a\" {}\n", InputKind::TerraformHcl),
        ("t.yaml", "Resources:\n  A:\n    Type: AWS::EC2::Instance\n", InputKind::CloudFormation),
        ("t.template", "AWSTemplateFormatVersion: '2010-09-09'\nResources: {}\n", InputKind::CloudFormation),
        ("t.json", r#"{"Resources": {"A": {"Type": "AWS::EC2::LaunchTemplate"}}}"#, InputKind::CloudFormation),
    ];
    for (name, text, kind) in table {
        let mut inv = Inventory::default();
        inv.add(name, text.as_bytes());
        assert!(inv.errors.is_empty(), "{name}: {:?}", inv.errors);
        assert_eq!(inv.inputs, vec![(name.to_string(), *kind)], "{name}");
    }
}

#[test]
fn bad_inputs_are_errors_with_file_and_line() {
    let table: &[(&str, &str, Option<usize>, &str)] = &[
        ("trunc.json", "{\n  \"Reservations\": [\n    {\"Instances\": [", Some(3), "truncated JSON"),
        ("bad.json", "{\n  \"Reservations\": [}\n", Some(2), "invalid JSON"),
        ("bad.tf", "resource \"aws_instance\" \"a\" {\n  ami = \"x\n}\n", Some(2), "invalid HCL"),
        ("bad.yaml", "Resources:\n  A: [1, 2\n", Some(3), "invalid YAML"),
        ("other.json", r#"{"Users": []}"#, None, "unrecognised JSON document 1"),
        ("notes.txt", "hello world\n", None, "unknown input"),
        ("k8s.yaml", "apiVersion: v1\nkind: Pod\n", None, "not a CloudFormation template"),
        ("bin.dat", "\u{0}\u{1}", None, "unknown input"),
        ("empty.json", "", None, "empty input"),
    ];
    for (name, text, line, msg) in table {
        let mut inv = Inventory::default();
        inv.add(name, text.as_bytes());
        assert_eq!(inv.errors.len(), 1, "{name}");
        let e = &inv.errors[0];
        assert_eq!((e.file.as_str(), e.line), (*name, *line), "{name}: {}", e.message);
        assert!(e.message.contains(msg), "{name}: {}", e.message);
        assert!(inv.inputs.is_empty(), "{name}");
    }
    let mut inv = Inventory::default();
    inv.add("latin1.json", b"{\"a\": \"\xe9\"}");
    assert_eq!(inv.errors[0].message, "not UTF-8 text");
}

#[test]
fn one_bad_input_does_not_stop_the_others() {
    let mut inv = Inventory::default();
    inv.add("good1.json", page(&[("i-1", "optional")]).as_bytes());
    inv.add("trunc.json", &page(&[("i-2", "optional")]).as_bytes()[..40]);
    inv.add("bad.tf", b"resource \"aws_instance\" \"a\" {\n");
    inv.add("good2.tf", b"resource \"aws_instance\" \"b\" {\n}\n");
    let r = audit(&inv, &Options::default());
    assert_eq!(r.errors.iter().map(|e| e.file.as_str()).collect::<Vec<_>>(), vec!["trunc.json", "bad.tf"]);
    let ids: Vec<&str> = r.findings.iter().map(|f| f.resource.id.as_str()).collect();
    assert_eq!(ids, vec!["i-1", "aws_instance.b"]);
    assert_eq!((r.summary.inputs, r.summary.inputs_failed), (4, 2));
}

#[test]
fn pages_concatenated_or_in_an_array_and_a_truncated_last_page() {
    let two = format!("{}\n{}\n", page(&[("i-1", "optional")]), page(&[("i-2", "optional")]));
    let arr = format!("[{}, {}]", page(&[("i-1", "optional")]), page(&[("i-2", "optional")]));
    for (name, text) in [("concat.json", two.clone()), ("array.json", arr)] {
        let mut inv = Inventory::default();
        inv.add(name, text.as_bytes());
        assert!(inv.errors.is_empty(), "{name}: {:?}", inv.errors);
        assert_eq!(inv.resources.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), vec!["i-1", "i-2"], "{name}");
    }
    // The second page is cut: the first is kept, the error names the page.
    let cut = &two[..two.len() - 20];
    let mut inv = Inventory::default();
    inv.add("cut.json", cut.as_bytes());
    assert_eq!(inv.resources.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), vec!["i-1"]);
    assert_eq!(inv.errors.len(), 1);
    assert!(inv.errors[0].message.starts_with("page 2: truncated JSON"), "{}", inv.errors[0].message);
    assert_eq!(inv.errors[0].line, Some(2));
}

fn md(tokens: Setting, endpoint: Setting) -> Metadata {
    Metadata { http_tokens: tokens, http_endpoint: endpoint, ..Metadata::default() }
}

#[test]
fn imdsv1_state_of_metadata_options() {
    let v = |s: &str| Setting::Value(s.into());
    let allows = |s: &str| Tokens::Allows(s.into());
    let table: Vec<(Option<Metadata>, Origin, Option<bool>, Tokens)> = vec![
        (Some(md(v("required"), v("enabled"))), Origin::Aws, None, Tokens::Required),
        (Some(md(v("REQUIRED"), Setting::Unset)), Origin::Terraform, None, Tokens::Required),
        (Some(md(v("optional"), v("disabled"))), Origin::Aws, None, Tokens::EndpointDisabled),
        (Some(md(v("optional"), v("enabled"))), Origin::Aws, None, allows("HttpTokens = optional")),
        (Some(md(v("optional"), v("enabled"))), Origin::Terraform, None, allows("http_tokens = optional")),
        (None, Origin::Aws, Some(true), Tokens::RequiredByDefault),
        (None, Origin::Aws, Some(false), allows("no MetadataOptions: instances get the account default, which does not require tokens")),
        (
            None,
            Origin::Aws,
            None,
            allows("no MetadataOptions: instances get the account default (not among the inputs), which allows IMDSv1 unless set to required"),
        ),
        (
            None,
            Origin::Terraform,
            Some(true),
            allows("no metadata_options block: the AWS default allows IMDSv1 (HttpTokens=optional) unless the AMI or the account default requires tokens"),
        ),
        (Some(md(Setting::Unknown("var.x".into()), Setting::Unset)), Origin::Terraform, None, Tokens::Unknown("http_tokens = var.x".into())),
        (
            Some(md(Setting::Defaulted { expr: "!Ref P".into(), value: "required".into() }, Setting::Unset)),
            Origin::CloudFormation,
            None,
            Tokens::Required,
        ),
    ];
    for (m, origin, account, want) in table {
        assert_eq!(tokens(m.as_ref(), origin, account), want, "{m:?} {origin:?} {account:?}");
    }
}

#[test]
fn account_default_requiring_tokens_covers_templates_without_options() {
    let versions = r#"{"LaunchTemplateVersions": [{"LaunchTemplateId": "lt-1", "VersionNumber": 1, "DefaultVersion": true, "LaunchTemplateData": {"ImageId": "ami-1"}}]}"#;
    for (defaults, findings) in [(r#"{"AccountLevel": {"HttpTokens": "required"}}"#, 0), (r#"{"AccountLevel": {"HttpTokens": "optional"}}"#, 2)] {
        let mut inv = Inventory::default();
        inv.add("v.json", versions.as_bytes());
        inv.add("d.json", defaults.as_bytes());
        let r = audit(&inv, &Options::default());
        assert_eq!(r.findings.len(), findings, "{defaults}: {:?}", r.findings.iter().map(|f| (f.check_id, &f.resource.id)).collect::<Vec<_>>());
    }
}

#[test]
fn cloudformation_image_from_an_ssm_container_ami_parameter() {
    let template = |path: &str| {
        format!(
            "Parameters:\n  Ami:\n    Type: AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>\n    Default: {path}\nResources:\n  Host:\n    Type: AWS::EC2::Instance\n    Properties:\n      ImageId: !Ref Ami\n      MetadataOptions:\n        HttpTokens: required\n        HttpPutResponseHopLimit: 2\n"
        )
    };
    let table = [
        ("/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id", 0),
        ("/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/standard/recommended/image_id", 0),
        ("/aws/service/bottlerocket/aws-k8s-1.31/x86_64/latest/image_id", 0),
        ("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64", 1),
    ];
    for (path, findings) in table {
        let mut inv = Inventory::default();
        inv.add("t.yaml", template(path).as_bytes());
        let r = audit(&inv, &Options::default());
        assert_eq!(r.findings.len(), findings, "{path}");
    }
}
