//! The parsers never panic, whatever the bytes: arbitrary input, and input built from the tokens
//! of the formats (JSON, HCL, YAML with CloudFormation tags) so that it gets deep into them.

use imdsguard_posture::alerts::read_alerts;
use imdsguard_posture::{audit, Inventory, Options};
use proptest::prelude::*;

const NAMES: [&str; 5] = ["x.json", "x.tf", "x.yaml", "x", "x.template"];

fn tokens() -> impl Strategy<Value = String> {
    let t = prop::sample::select(vec![
        "{", "}", "[", "]", ":", ",", "\"", "\n", "  ", "- ", "!Ref ", "!GetAtt a.b", "!If [", "!Sub |\n", "&a ", "*a", "---\n", "#",
        "Resources:", "Type: AWS::EC2::Instance", "AWS::EC2::LaunchTemplate", "MetadataOptions", "HttpTokens", "optional", "required",
        "\"Reservations\"", "\"Instances\"", "\"InstanceId\"", "\"MetadataOptions\"", "\"HttpPutResponseHopLimit\"", "3", "-1", "1e999",
        "\"LaunchTemplateVersions\"", "\"VersionNumber\"", "\"AutoScalingGroups\"", "\"LaunchTemplate\"", "\"$Latest\"", "\"AccountLevel\"",
        "\"format_version\"", "\"resource_changes\"", "\"metadata_options\"", "null", "true",
        "resource", " \"aws_instance\"", " \"aws_launch_template\"", " \"a\" ", "metadata_options", "http_tokens", " = ", "var.x", "${", "<<EOF\n", "EOF\n", "dynamic",
    ]);
    prop::collection::vec(t, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), name in prop::sample::select(NAMES.to_vec())) {
        let mut inv = Inventory::default();
        inv.add(name, &bytes);
        let _ = audit(&inv, &Options::default());
        let _ = read_alerts(name, &bytes);
    }

    #[test]
    fn format_tokens(text in tokens(), name in prop::sample::select(NAMES.to_vec())) {
        let mut inv = Inventory::default();
        inv.add(name, text.as_bytes());
        let _ = audit(&inv, &Options::default());
        let _ = read_alerts(name, text.as_bytes());
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for (name, text) in [
        ("d.json", "[".repeat(100_000)),
        ("d.yaml", format!("Resources: {}", "[".repeat(100_000))),
        ("d.tf", format!("resource \"aws_instance\" \"a\" {{ x = {} }}", "[".repeat(100_000))),
        ("d.tf", format!("resource \"aws_instance\" \"a\" {{ x = {} }}", "(1+".repeat(10_000))),
    ] {
        let mut inv = Inventory::default();
        inv.add(name, text.as_bytes());
        assert_eq!(inv.errors.len(), 1, "{name}");
    }
}
