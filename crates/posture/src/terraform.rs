//! Terraform: `.tf` files (HCL, parsed with `hcl-edit`, which keeps byte spans for line numbers)
//! and `terraform show -json` output (plans: `resource_changes`/`planned_values`; states:
//! `values`).
//!
//! Resources read: `aws_instance`, `aws_launch_template`, `aws_launch_configuration`
//! (`metadata_options` block), `aws_ec2_instance_metadata_defaults` (attributes on the resource)
//! and `aws_autoscaling_group` (`launch_template`, `mixed_instances_policy`,
//! `launch_configuration`), which is linked to the template it names in the same inputs.

use crate::model::{AutoScalingGroup, Lines, InputError, Metadata, Origin, Resource, ResourceKind, Setting, TemplateRef};
use crate::Inventory;
use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{Block, Body};
use hcl_edit::Span;
use serde_json::Value;

fn kind_of_type(t: &str) -> Option<ResourceKind> {
    Some(match t {
        "aws_instance" => ResourceKind::Instance,
        "aws_launch_template" => ResourceKind::LaunchTemplate,
        "aws_launch_configuration" => ResourceKind::LaunchConfiguration,
        "aws_ec2_instance_metadata_defaults" => ResourceKind::AccountDefaults,
        _ => return None,
    })
}

/// Parses one `.tf` file.
pub(crate) fn load_hcl(text: &str, file: &str, inv: &mut Inventory) -> Result<(), InputError> {
    let body = hcl_edit::parser::parse_body(text).map_err(|e| InputError {
        file: file.to_string(),
        line: Some(e.location().line()),
        message: format!("invalid HCL at column {}: {}", e.location().column(), e.message()),
    })?;
    let lines = Lines::new(text.as_bytes());
    let bytes = &lines;
    let vars = variables(&body);
    let line = |span: Option<std::ops::Range<usize>>| span.map(|r| lines.line_of(r.start));
    for block in body.blocks().filter(|b| b.ident.as_str() == "resource") {
        let (Some(ty), Some(name)) = (block.labels.first(), block.labels.get(1)) else { continue };
        let (ty, name) = (ty.as_str(), name.as_str());
        let address = format!("{ty}.{name}");
        if ty == "aws_autoscaling_group" {
            inv.asgs.push(hcl_asg(&block.body, &address, file, line(block.span())));
            continue;
        }
        let Some(kind) = kind_of_type(ty) else { continue };
        let mut res = Resource::new(kind, Origin::Terraform, address, file);
        res.tf_type = Some(ty.to_string());
        res.line = line(block.span());
        res.tags = hcl_tags(&block.body);
        res.name = res.tag("Name").map(str::to_string).or_else(|| attr_string(&block.body, "name"));
        res.image = attr_string(&block.body, "ami").or_else(|| attr_string(&block.body, "image_id"));
        res.metadata = if kind == ResourceKind::AccountDefaults {
            Some(hcl_metadata(&block.body, None, bytes, &vars))
        } else if let Some(md) = block.body.get_blocks("metadata_options").next() {
            Some(hcl_metadata(&md.body, line(md.span()), bytes, &vars))
        } else if let Some(dynamic) = dynamic_block(&block.body, "metadata_options") {
            let unknown = Setting::Unknown("dynamic \"metadata_options\"".into());
            Some(Metadata {
                http_tokens: unknown.clone(),
                http_endpoint: unknown.clone(),
                hop_limit: unknown,
                line: line(dynamic.span()),
                ..Metadata::default()
            })
        } else {
            None
        };
        inv.resources.push(res);
    }
    Ok(())
}

fn dynamic_block<'a>(body: &'a Body, name: &str) -> Option<&'a Block> {
    body.get_blocks("dynamic").find(|b| b.labels.first().is_some_and(|l| l.as_str() == name))
}

/// `variable "x" { default = <literal> }` of the file.
type Vars = std::collections::HashMap<String, String>;

fn variables(body: &Body) -> Vars {
    let mut vars = Vars::new();
    for b in body.blocks().filter(|b| b.ident.as_str() == "variable") {
        let Some(name) = b.labels.first() else { continue };
        if let Some(v) = b.body.get_attribute("default").and_then(|a| literal(&a.value)) {
            vars.insert(name.as_str().to_string(), v);
        }
    }
    vars
}

fn literal(e: &Expression) -> Option<String> {
    match e {
        Expression::String(s) => Some(s.value().to_string()),
        Expression::Number(n) => Some(n.value().to_string()),
        Expression::Bool(b) => Some(b.value().to_string()),
        _ => None,
    }
}

fn expr_setting(e: &Expression, vars: &Vars) -> Setting {
    if let Expression::Traversal(_) = e {
        let text = e.to_string();
        let text = text.trim();
        if let Some(value) = text.strip_prefix("var.").and_then(|name| vars.get(name)) {
            return Setting::Defaulted { expr: text.to_string(), value: value.clone() };
        }
    }
    match e {
        Expression::Null(_) => Setting::Unset,
        Expression::String(s) => Setting::Value(s.value().to_string()),
        Expression::Number(n) => Setting::Value(n.value().to_string()),
        Expression::Bool(b) => Setting::Value(b.value().to_string()),
        other => Setting::Unknown(other.to_string().trim().to_string()),
    }
}

fn attr_setting(body: &Body, key: &str, bytes: &Lines<'_>, vars: &Vars) -> (Setting, Option<usize>) {
    match body.get_attribute(key) {
        Some(a) => (expr_setting(&a.value, vars), a.span().map(|r| bytes.line_of(r.start))),
        None => (Setting::Unset, None),
    }
}

fn attr_string(body: &Body, key: &str) -> Option<String> {
    body.get_attribute(key).and_then(|a| literal(&a.value))
}

fn hcl_metadata(body: &Body, line: Option<usize>, bytes: &Lines<'_>, vars: &Vars) -> Metadata {
    let (http_tokens, tokens_line) = attr_setting(body, "http_tokens", bytes, vars);
    let (http_endpoint, endpoint_line) = attr_setting(body, "http_endpoint", bytes, vars);
    let (hop_limit, hop_line) = attr_setting(body, "http_put_response_hop_limit", bytes, vars);
    Metadata {
        http_tokens,
        http_endpoint,
        hop_limit,
        ipv6: attr_setting(body, "http_protocol_ipv6", bytes, vars).0,
        tags: attr_setting(body, "instance_metadata_tags", bytes, vars).0,
        line,
        tokens_line,
        hop_line,
        endpoint_line,
    }
}

fn hcl_tags(body: &Body) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in ["tags", "tags_all"] {
        let Some(Expression::Object(obj)) = body.get_attribute(key).map(|a| &a.value) else { continue };
        for (k, v) in obj.iter() {
            let k = match k {
                ObjectKey::Ident(i) => i.as_str().to_string(),
                ObjectKey::Expression(Expression::String(s)) => s.value().to_string(),
                ObjectKey::Expression(_) => continue,
            };
            if let Some(v) = literal(v.expr()) {
                out.push((k, v.to_string()));
            }
        }
    }
    out
}

/// `aws_launch_template.web.id` / `.name` / `.latest_version` → `aws_launch_template.web`.
fn template_address(e: &Expression) -> Option<String> {
    let text = e.to_string();
    let t = text.trim();
    let rest = t.strip_prefix("aws_launch_template.")?;
    let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-').collect();
    (!name.is_empty()).then(|| format!("aws_launch_template.{name}"))
}

fn hcl_template_ref(body: &Body, id_key: &str, name_key: &str) -> TemplateRef {
    let find = |k: &str| body.get_attribute(k).map(|a| &a.value);
    let id = find(id_key).and_then(|e| template_address(e).or_else(|| literal(e)));
    let name = find(name_key).and_then(|e| template_address(e).or_else(|| literal(e)));
    let version = find("version").map(|e| match literal(e) {
        Some(v) => v,
        // `aws_launch_template.x.latest_version` / `.default_version`: the template in the same
        // configuration is the one checked.
        _ => {
            let t = e.to_string();
            if t.contains("default_version") {
                "$Default".to_string()
            } else {
                "$Latest".to_string()
            }
        }
    });
    TemplateRef { id, name, version }
}

fn hcl_asg(body: &Body, address: &str, file: &str, line: Option<usize>) -> AutoScalingGroup {
    let mut templates = Vec::new();
    for lt in body.get_blocks("launch_template") {
        templates.push(hcl_template_ref(&lt.body, "id", "name"));
    }
    for mip in body.get_blocks("mixed_instances_policy") {
        for lt in mip.body.get_blocks("launch_template") {
            for spec in lt.body.get_blocks("launch_template_specification") {
                templates.push(hcl_template_ref(&spec.body, "launch_template_id", "launch_template_name"));
            }
            for o in lt.body.get_blocks("override") {
                for spec in o.body.get_blocks("launch_template_specification") {
                    templates.push(hcl_template_ref(&spec.body, "launch_template_id", "launch_template_name"));
                }
            }
        }
    }
    let launch_configuration = body.get_attribute("launch_configuration").map(|a| {
        let t = a.value.to_string();
        let t = t.trim();
        match t.strip_prefix("aws_launch_configuration.") {
            Some(rest) => format!("aws_launch_configuration.{}", rest.split('.').next().unwrap_or(rest)),
            None => literal(&a.value).unwrap_or_else(|| t.to_string()),
        }
    });
    AutoScalingGroup {
        name: address.to_string(),
        origin: Origin::Terraform,
        file: file.to_string(),
        line,
        templates,
        launch_configuration,
        instance_ids: Vec::new(),
    }
}

/// Whether a JSON document is `terraform show -json` output.
pub(crate) fn is_plan(v: &Value) -> bool {
    v.get("format_version").is_some()
        && (v.get("planned_values").is_some() || v.get("resource_changes").is_some() || v.get("values").is_some())
}

fn json_setting(v: Option<&Value>, unknown: bool) -> Setting {
    match v {
        Some(Value::String(s)) => Setting::Value(s.clone()),
        Some(Value::Number(n)) => Setting::Value(n.to_string()),
        Some(Value::Bool(b)) => Setting::Value(b.to_string()),
        _ if unknown => Setting::Unknown("(known after apply)".into()),
        _ => Setting::Unset,
    }
}

fn plan_metadata(values: &Value, unknown: &Value) -> Option<Metadata> {
    let md = values.get("metadata_options").and_then(Value::as_array).and_then(|a| a.first());
    let unk = unknown.get("metadata_options");
    let unk0 = unk.and_then(Value::as_array).and_then(|a| a.first()).cloned().unwrap_or(Value::Null);
    let field_unknown = |k: &str| unk == Some(&Value::Bool(true)) || unk0.get(k) == Some(&Value::Bool(true));
    let md = md?;
    Some(Metadata {
        http_tokens: json_setting(md.get("http_tokens"), field_unknown("http_tokens")),
        http_endpoint: json_setting(md.get("http_endpoint"), field_unknown("http_endpoint")),
        hop_limit: json_setting(md.get("http_put_response_hop_limit"), field_unknown("http_put_response_hop_limit")),
        ipv6: json_setting(md.get("http_protocol_ipv6"), false),
        tags: json_setting(md.get("instance_metadata_tags"), false),
        ..Metadata::default()
    })
}

fn plan_tags(values: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in ["tags", "tags_all"] {
        if let Some(o) = values.get(key).and_then(Value::as_object) {
            for (k, v) in o {
                if let Some(v) = v.as_str() {
                    if !out.iter().any(|(ok, _): &(String, String)| ok == k) {
                        out.push((k.clone(), v.to_string()));
                    }
                }
            }
        }
    }
    out
}

fn address_line(lines: &mut Lines<'_>, address: &str) -> Option<usize> {
    lines.find_member_next("address", &format!("\"{address}\""))
}

fn plan_resource(
    address: &str,
    ty: &str,
    values: &Value,
    unknown: &Value,
    file: &str,
    bytes: &mut Lines<'_>,
    inv: &mut Inventory,
) {
    if ty == "aws_autoscaling_group" {
        let mut templates = Vec::new();
        for lt in values.get("launch_template").and_then(Value::as_array).into_iter().flatten() {
            templates.push(TemplateRef {
                id: lt.get("id").and_then(Value::as_str).map(str::to_string),
                name: lt.get("name").and_then(Value::as_str).map(str::to_string),
                version: lt.get("version").and_then(Value::as_str).map(str::to_string),
            });
        }
        inv.asgs.push(AutoScalingGroup {
            name: address.to_string(),
            origin: Origin::TerraformPlan,
            file: file.to_string(),
            line: address_line(bytes, address),
            templates,
            launch_configuration: values.get("launch_configuration").and_then(Value::as_str).map(str::to_string),
            instance_ids: Vec::new(),
        });
        return;
    }
    let Some(kind) = kind_of_type(ty) else { return };
    let mut res = Resource::new(kind, Origin::TerraformPlan, address, file);
    res.tf_type = Some(ty.to_string());
    res.line = address_line(bytes, address);
    res.tags = plan_tags(values);
    res.name = res.tag("Name").map(str::to_string).or_else(|| values.get("name").and_then(Value::as_str).map(str::to_string));
    res.image = ["ami", "image_id"].iter().find_map(|k| values.get(*k).and_then(Value::as_str)).map(str::to_string);
    res.metadata = if kind == ResourceKind::AccountDefaults {
        let u = |k: &str| unknown.get(k) == Some(&Value::Bool(true));
        Some(Metadata {
            http_tokens: json_setting(values.get("http_tokens"), u("http_tokens")),
            http_endpoint: json_setting(values.get("http_endpoint"), u("http_endpoint")),
            hop_limit: json_setting(values.get("http_put_response_hop_limit"), u("http_put_response_hop_limit")),
            ..Metadata::default()
        })
    } else {
        plan_metadata(values, unknown)
    };
    inv.resources.push(res);
}

fn walk_module(m: &Value, file: &str, bytes: &mut Lines<'_>, inv: &mut Inventory, depth: usize) {
    if depth > 64 {
        return;
    }
    for r in m.get("resources").and_then(Value::as_array).into_iter().flatten() {
        if r.get("mode").and_then(Value::as_str).is_some_and(|m| m != "managed") {
            continue;
        }
        let (Some(address), Some(ty)) = (r.get("address").and_then(Value::as_str), r.get("type").and_then(Value::as_str)) else {
            continue;
        };
        let values = r.get("values").cloned().unwrap_or(Value::Null);
        plan_resource(address, ty, &values, &Value::Null, file, bytes, inv);
    }
    for c in m.get("child_modules").and_then(Value::as_array).into_iter().flatten() {
        walk_module(c, file, bytes, inv, depth + 1);
    }
}

/// Loads `terraform show -json` output: the planned changes when present (resources being
/// deleted are skipped), else the planned values, else the state's values.
pub(crate) fn load_plan(v: &Value, file: &str, bytes: &mut Lines<'_>, inv: &mut Inventory) {
    if let Some(changes) = v.get("resource_changes").and_then(Value::as_array) {
        for rc in changes {
            if rc.get("mode").and_then(Value::as_str).is_some_and(|m| m != "managed") {
                continue;
            }
            let (Some(address), Some(ty)) = (rc.get("address").and_then(Value::as_str), rc.get("type").and_then(Value::as_str)) else {
                continue;
            };
            let change = rc.get("change").cloned().unwrap_or(Value::Null);
            let actions: Vec<&str> = change.get("actions").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            if actions == ["delete"] {
                continue;
            }
            let after = change.get("after").cloned().unwrap_or(Value::Null);
            let unknown = change.get("after_unknown").cloned().unwrap_or(Value::Null);
            plan_resource(address, ty, &after, &unknown, file, bytes, inv);
        }
        return;
    }
    for root in [v.get("planned_values"), v.get("values")].into_iter().flatten() {
        if let Some(m) = root.get("root_module") {
            walk_module(m, file, bytes, inv, 0);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Inventory {
        let mut inv = Inventory::default();
        load_hcl(text, "t.tf", &mut inv).expect("valid HCL");
        inv
    }

    #[test]
    fn metadata_options_settings_and_lines() {
        // (file text, (http_tokens shown, its line) or no metadata_options at all)
        type Row<'a> = (&'a str, Option<(&'a str, Option<usize>)>);
        let table: &[Row] = &[
            ("resource \"aws_instance\" \"a\" {\n  ami = \"x\"\n}\n", None),
            ("resource \"aws_instance\" \"a\" {\n  metadata_options {\n    http_tokens = \"required\"\n  }\n}\n", Some(("required", Some(3)))),
            ("resource \"aws_instance\" \"a\" {\n  metadata_options {\n    http_endpoint = \"enabled\"\n  }\n}\n", Some(("unset", None))),
            ("resource \"aws_instance\" \"a\" {\n  metadata_options {\n    http_tokens = local.t\n  }\n}\n", Some(("local.t (not resolvable offline)", Some(3)))),
            (
                "variable \"t\" {\n  default = \"optional\"\n}\nresource \"aws_instance\" \"a\" {\n  metadata_options {\n    http_tokens = var.t\n  }\n}\n",
                Some(("optional (default of var.t)", Some(6))),
            ),
            (
                "resource \"aws_instance\" \"a\" {\n  dynamic \"metadata_options\" {\n    for_each = var.m\n    content {}\n  }\n}\n",
                Some(("dynamic \"metadata_options\" (not resolvable offline)", None)),
            ),
        ];
        for (text, want) in table {
            let inv = load(text);
            let r = &inv.resources[0];
            assert_eq!(r.line, Some(if text.starts_with("variable") { 4 } else { 1 }), "{text}");
            let got = r.metadata.as_ref().map(|m| (m.http_tokens.show(), m.tokens_line));
            assert_eq!(got, want.map(|(s, l)| (s.to_string(), l)), "{text}");
        }
    }

    #[test]
    fn invalid_hcl_names_the_line() {
        let mut inv = Inventory::default();
        let e = load_hcl("resource \"aws_instance\" \"a\" {\n  ami = \n}\n", "bad.tf", &mut inv).expect_err("invalid");
        assert_eq!(e.file, "bad.tf");
        assert_eq!(e.line, Some(2));
        assert!(e.message.starts_with("invalid HCL"), "{}", e.message);
    }

    #[test]
    fn asg_template_references() {
        let inv = load(
            "resource \"aws_autoscaling_group\" \"g\" {\n  launch_template {\n    id      = aws_launch_template.t.id\n    version = aws_launch_template.t.default_version\n  }\n  mixed_instances_policy {\n    launch_template {\n      launch_template_specification {\n        launch_template_name = \"named\"\n        version = \"3\"\n      }\n    }\n  }\n}\n",
        );
        let g = &inv.asgs[0];
        assert_eq!(g.line, Some(1));
        let refs: Vec<(Option<&str>, Option<&str>, Option<&str>)> =
            g.templates.iter().map(|t| (t.id.as_deref(), t.name.as_deref(), t.version.as_deref())).collect();
        assert_eq!(refs, vec![(Some("aws_launch_template.t"), None, Some("$Default")), (None, Some("named"), Some("3"))]);
    }

    #[test]
    fn plans_skip_deletes_and_data_sources() {
        let plan = serde_json::json!({
            "format_version": "1.2",
            "resource_changes": [
                {"address": "aws_instance.gone", "mode": "managed", "type": "aws_instance", "change": {"actions": ["delete"], "after": null}},
                {"address": "data.aws_instance.d", "mode": "data", "type": "aws_instance", "change": {"actions": ["read"], "after": {}}},
                {"address": "aws_instance.new", "mode": "managed", "type": "aws_instance",
                 "change": {"actions": ["create"], "after": {"metadata_options": [{"http_tokens": null}]}, "after_unknown": {"metadata_options": [{"http_tokens": true}]}}}
            ]
        });
        let mut inv = Inventory::default();
        let text = plan.to_string();
        load_plan(&plan, "p.json", &mut Lines::new(text.as_bytes()), &mut inv);
        assert_eq!(inv.resources.len(), 1);
        let r = &inv.resources[0];
        assert_eq!(r.id, "aws_instance.new");
        assert_eq!(r.metadata.as_ref().map(|m| m.http_tokens.clone()), Some(Setting::Unknown("(known after apply)".into())));
    }
}
