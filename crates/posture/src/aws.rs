//! AWS CLI output (`--output json`): `ec2 describe-instances`, `describe-launch-templates`,
//! `describe-launch-template-versions`, `get-instance-metadata-defaults` (also the
//! `describe-instance-metadata-defaults` spelling), `autoscaling describe-auto-scaling-groups`,
//! `describe-launch-configurations`, and `ec2 describe-images` (AMI names, to tell container hosts).

use crate::model::{AutoScalingGroup, Lines, Metadata, Origin, Resource, ResourceKind, Setting, TemplateRef};
use crate::Inventory;
use serde_json::Value;

/// Which AWS CLI document a JSON value is, from its top-level keys.
pub(crate) fn kind_of(v: &Value) -> Option<&'static str> {
    let o = v.as_object()?;
    for (key, kind) in [
        ("Reservations", "describe-instances"),
        ("LaunchTemplateVersions", "describe-launch-template-versions"),
        ("LaunchTemplates", "describe-launch-templates"),
        ("AccountLevel", "get-instance-metadata-defaults"),
        ("AutoScalingGroups", "describe-auto-scaling-groups"),
        ("LaunchConfigurations", "describe-launch-configurations"),
        ("Images", "describe-images"),
    ] {
        if o.contains_key(key) {
            return Some(kind);
        }
    }
    None
}

fn s(v: &Value, k: &str) -> Option<String> {
    match v.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn setting(v: Option<&Value>, k: &str) -> Setting {
    match v.and_then(|m| m.get(k)) {
        None | Some(Value::Null) => Setting::Unset,
        Some(Value::String(s)) => Setting::Value(s.clone()),
        Some(Value::Number(n)) => Setting::Value(n.to_string()),
        Some(Value::Bool(b)) => Setting::Value(b.to_string()),
        Some(other) => Setting::Unknown(other.to_string()),
    }
}

/// `MetadataOptions` of the API (the same keys in instances, template data, launch
/// configurations and account defaults).
pub(crate) fn metadata(m: &Value) -> Metadata {
    Metadata {
        http_tokens: setting(Some(m), "HttpTokens"),
        http_endpoint: setting(Some(m), "HttpEndpoint"),
        hop_limit: setting(Some(m), "HttpPutResponseHopLimit"),
        ipv6: setting(Some(m), "HttpProtocolIpv6"),
        tags: setting(Some(m), "InstanceMetadataTags"),
        ..Metadata::default()
    }
}

fn tags(v: &Value) -> Vec<(String, String)> {
    v.get("Tags")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|t| Some((s(t, "Key")?, s(t, "Value").unwrap_or_default()))).collect())
        .unwrap_or_default()
}

fn arr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// Adds one AWS CLI document to the inventory.
pub(crate) fn load(kind: &str, v: &Value, file: &str, bytes: &mut Lines<'_>, inv: &mut Inventory) {
    match kind {
        "describe-instances" => instances(v, file, bytes, inv),
        "describe-launch-templates" => templates(v, file, inv),
        "describe-launch-template-versions" => template_versions(v, file, bytes, inv),
        "get-instance-metadata-defaults" => defaults(v, file, bytes, inv),
        "describe-auto-scaling-groups" => asgs(v, file, bytes, inv),
        "describe-launch-configurations" => launch_configurations(v, file, bytes, inv),
        "describe-images" => {
            for i in arr(v, "Images") {
                if let (Some(id), Some(name)) = (s(i, "ImageId"), s(i, "Name")) {
                    inv.images.insert(id, name);
                }
            }
        }
        _ => {}
    }
}

fn instances(v: &Value, file: &str, lines: &mut Lines<'_>, inv: &mut Inventory) {
    for r in arr(v, "Reservations") {
        for i in arr(r, "Instances") {
            let Some(id) = s(i, "InstanceId") else {
                inv.error(file, None, "an instance without InstanceId in Reservations[].Instances[]: skipped");
                continue;
            };
            let mut res = Resource::new(ResourceKind::Instance, Origin::Aws, id.clone(), file);
            res.line = lines.find_member_next("InstanceId", &format!("\"{id}\""));
            res.tags = tags(i);
            res.name = res.tag("Name").map(str::to_string);
            res.state = i.get("State").and_then(|st| s(st, "Name"));
            res.availability_zone = i.get("Placement").and_then(|p| s(p, "AvailabilityZone"));
            res.image = s(i, "ImageId");
            res.metadata = i.get("MetadataOptions").filter(|m| m.is_object()).map(metadata);
            let mut ips: Vec<String> = s(i, "PrivateIpAddress").into_iter().collect();
            let mut dns: Vec<String> = s(i, "PrivateDnsName").into_iter().filter(|d| !d.is_empty()).collect();
            for ni in arr(i, "NetworkInterfaces") {
                for a in arr(ni, "PrivateIpAddresses") {
                    ips.extend(s(a, "PrivateIpAddress"));
                    dns.extend(s(a, "PrivateDnsName").filter(|d| !d.is_empty()));
                }
            }
            ips.sort();
            ips.dedup();
            dns.sort();
            dns.dedup();
            res.private_ips = ips;
            res.private_dns = dns;
            if matches!(res.state.as_deref(), Some("terminated") | Some("shutting-down")) {
                inv.note(format!("{file}: instance {id} is {}: not audited", res.state.as_deref().unwrap_or("")));
                continue;
            }
            if res.metadata.is_none() {
                inv.note(format!("{file}: instance {id} has no MetadataOptions in the describe output: not audited"));
                continue;
            }
            inv.resources.push(res);
        }
    }
}

fn templates(v: &Value, file: &str, inv: &mut Inventory) {
    for t in arr(v, "LaunchTemplates") {
        let Some(id) = s(t, "LaunchTemplateId") else {
            inv.error(file, None, "a launch template without LaunchTemplateId: skipped");
            continue;
        };
        let e = inv.templates.entry(id.clone()).or_insert_with(|| crate::LiveTemplate::new(&id));
        e.name = e.name.take().or_else(|| s(t, "LaunchTemplateName"));
        e.default = t.get("DefaultVersionNumber").and_then(Value::as_i64).or(e.default);
        e.latest = t.get("LatestVersionNumber").and_then(Value::as_i64).or(e.latest);
        if e.tags.is_empty() {
            e.tags = tags(t);
        }
        e.files.push(file.to_string());
    }
}

fn template_versions(v: &Value, file: &str, lines: &mut Lines<'_>, inv: &mut Inventory) {
    for t in arr(v, "LaunchTemplateVersions") {
        let (Some(id), Some(n)) = (s(t, "LaunchTemplateId"), t.get("VersionNumber").and_then(Value::as_i64)) else {
            inv.error(file, None, "a launch template version without LaunchTemplateId or VersionNumber: skipped");
            continue;
        };
        let e = inv.templates.entry(id.clone()).or_insert_with(|| crate::LiveTemplate::new(&id));
        e.name = e.name.take().or_else(|| s(t, "LaunchTemplateName"));
        if t.get("DefaultVersion").and_then(Value::as_bool) == Some(true) {
            e.default = Some(n);
        }
        let data = t.get("LaunchTemplateData");
        let md = data.and_then(|d| d.get("MetadataOptions")).filter(|m| m.is_object()).map(metadata);
        let mut vtags = Vec::new();
        for spec in data.map(|d| arr(d, "TagSpecifications")).unwrap_or(&[]) {
            if s(spec, "ResourceType").as_deref() == Some("instance") {
                vtags.extend(tags(spec));
            }
        }
        // Versions are in document order: each one's line is searched after the previous one's.
        let line = lines.find_member_next("VersionNumber", &n.to_string());
        let image = data.and_then(|d| s(d, "ImageId"));
        e.versions.insert(n, crate::LiveVersion { metadata: md, image, tags: vtags, file: file.to_string(), line });
    }
}

fn defaults(v: &Value, file: &str, lines: &mut Lines<'_>, inv: &mut Inventory) {
    let al = v.get("AccountLevel").cloned().unwrap_or(Value::Null);
    let mut res = Resource::new(ResourceKind::AccountDefaults, Origin::Aws, "account-defaults", file);
    res.line = lines.find("\"AccountLevel\"");
    res.metadata = Some(if al.is_object() { metadata(&al) } else { Metadata::default() });
    inv.resources.push(res);
}

fn template_ref(v: &Value) -> TemplateRef {
    TemplateRef { id: s(v, "LaunchTemplateId"), name: s(v, "LaunchTemplateName"), version: s(v, "Version") }
}

fn asgs(v: &Value, file: &str, lines: &mut Lines<'_>, inv: &mut Inventory) {
    for g in arr(v, "AutoScalingGroups") {
        let Some(name) = s(g, "AutoScalingGroupName") else {
            inv.error(file, None, "an Auto Scaling group without AutoScalingGroupName: skipped");
            continue;
        };
        let mut refs = Vec::new();
        if let Some(lt) = g.get("LaunchTemplate").filter(|x| x.is_object()) {
            refs.push(template_ref(lt));
        }
        if let Some(lt) = g.get("MixedInstancesPolicy").and_then(|m| m.get("LaunchTemplate")) {
            if let Some(spec) = lt.get("LaunchTemplateSpecification") {
                refs.push(template_ref(spec));
            }
            for o in arr(lt, "Overrides") {
                if let Some(spec) = o.get("LaunchTemplateSpecification") {
                    refs.push(template_ref(spec));
                }
            }
        }
        let instance_ids = arr(g, "Instances").iter().filter_map(|i| s(i, "InstanceId")).collect();
        inv.asgs.push(AutoScalingGroup {
            line: lines.find_member_next("AutoScalingGroupName", &format!("\"{name}\"")),
            name,
            origin: Origin::Aws,
            file: file.to_string(),
            templates: refs,
            launch_configuration: s(g, "LaunchConfigurationName"),
            instance_ids,
        });
    }
}

fn launch_configurations(v: &Value, file: &str, lines: &mut Lines<'_>, inv: &mut Inventory) {
    for lc in arr(v, "LaunchConfigurations") {
        let Some(name) = s(lc, "LaunchConfigurationName") else {
            inv.error(file, None, "a launch configuration without LaunchConfigurationName: skipped");
            continue;
        };
        let mut res = Resource::new(ResourceKind::LaunchConfiguration, Origin::Aws, name.clone(), file);
        res.line = lines.find_member_next("LaunchConfigurationName", &format!("\"{name}\""));
        res.image = s(lc, "ImageId");
        // A launch configuration without MetadataOptions launches with the defaults: IMDSv1 allowed.
        res.metadata = lc.get("MetadataOptions").filter(|m| m.is_object()).map(metadata);
        inv.resources.push(res);
    }
}
