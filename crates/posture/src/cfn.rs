//! CloudFormation templates, YAML (with the short intrinsic-function tags `!Ref`, `!Sub`,
//! `!GetAtt`, `!If`...) and JSON.
//!
//! YAML is read with `saphyr-parser`'s event stream (a YAML 1.2 parser that reports tags and
//! positions) into a `serde_json::Value` in CloudFormation's long form (`!Ref X` becomes
//! `{"Ref": "X"}`, `!GetAtt A.B` becomes `{"Fn::GetAtt": ["A", "B"]}`), with the line of every
//! mapping key and sequence item kept by JSON pointer. JSON templates go through the same reader
//! (JSON is YAML 1.2), so both get lines.
//!
//! Resources read: `AWS::EC2::Instance` (`MetadataOptions`, or the `LaunchTemplate` it names),
//! `AWS::EC2::LaunchTemplate` (`LaunchTemplateData.MetadataOptions`),
//! `AWS::AutoScaling::LaunchConfiguration` (`MetadataOptions`) and
//! `AWS::AutoScaling::AutoScalingGroup` (`LaunchTemplate`, `MixedInstancesPolicy`).
//! `!Ref` to a template parameter resolves to the parameter's `Default`.

use crate::model::{AutoScalingGroup, InputError, Metadata, Origin, Resource, ResourceKind, Setting, TemplateRef};
use crate::Inventory;
use saphyr_parser::{Event, Parser};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Deepest nesting accepted (CloudFormation templates are shallow; this bounds memory and the
/// recursion of dropping the tree).
pub const MAX_DEPTH: usize = 128;

/// A parsed YAML/JSON document with the line of each node by JSON pointer.
pub struct Doc {
    pub root: Value,
    pub lines: HashMap<String, usize>,
}

impl Doc {
    pub fn line(&self, pointer: &str) -> Option<usize> {
        self.lines.get(pointer).copied()
    }
}

enum Frame {
    Seq { items: Vec<Value>, tag: Option<String>, ptr: String },
    Map { map: Map<String, Value>, key: Option<String>, tag: Option<String>, ptr: String },
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// `!Ref X` → `{"Ref": X}` etc. `None` for core tags (`!!str`), which change nothing here.
fn long_form(tag: &saphyr_parser::Tag, v: Value) -> Value {
    if tag.handle != "!" {
        return v;
    }
    let name = tag.suffix.as_str();
    let v = match (name, v) {
        ("GetAtt", Value::String(s)) => match s.split_once('.') {
            Some((a, b)) => Value::Array(vec![Value::String(a.into()), Value::String(b.into())]),
            None => Value::String(s),
        },
        (_, v) => v,
    };
    let key = match name {
        "Ref" | "Condition" => name.to_string(),
        other => format!("Fn::{other}"),
    };
    let mut m = Map::new();
    m.insert(key, v);
    Value::Object(m)
}

/// Reads the first YAML document of `text`.
pub fn parse_yaml(text: &str) -> Result<Doc, (Option<usize>, String)> {
    let mut lines = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Value> = None;
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| (Some(e.marker().line()), format!("invalid YAML: {}", e.info())))?;
        let line = span.start.line();
        // Where a new node goes: its pointer, and (for a mapping key) that it is a key.
        let (is_key, ptr) = match stack.last() {
            Some(Frame::Map { key: None, .. }) => (true, String::new()),
            Some(Frame::Map { key: Some(k), ptr, .. }) => (false, format!("{ptr}/{}", escape(k))),
            Some(Frame::Seq { items, ptr, .. }) => (false, format!("{ptr}/{}", items.len())),
            None => (false, String::new()),
        };
        let done: Option<Value> = match ev {
            Event::StreamStart | Event::DocumentStart(_) | Event::Nothing => None,
            Event::DocumentEnd | Event::StreamEnd => break,
            Event::Alias(_) => Some(Value::Null),
            Event::Scalar(v, style, _, tag) => {
                if !is_key {
                    lines.entry(ptr.clone()).or_insert(line);
                }
                let plain = matches!(style, saphyr_parser::ScalarStyle::Plain);
                let value = if plain && tag.is_none() && matches!(v.as_ref(), "~" | "null" | "Null" | "NULL" | "") {
                    Value::Null
                } else {
                    Value::String(v.into_owned())
                };
                Some(match tag {
                    Some(t) => long_form(&t, value),
                    None => value,
                })
            }
            Event::SequenceStart(_, tag) | Event::MappingStart(_, tag) if stack.len() >= MAX_DEPTH => {
                let _ = tag;
                return Err((Some(line), format!("nesting deeper than {MAX_DEPTH} levels")));
            }
            Event::SequenceStart(_, tag) => {
                if !is_key {
                    lines.entry(ptr.clone()).or_insert(line);
                }
                stack.push(Frame::Seq { items: Vec::new(), tag: tag.map(|t| format!("{}{}", t.handle, t.suffix)), ptr });
                None
            }
            Event::MappingStart(_, tag) => {
                if !is_key {
                    lines.entry(ptr.clone()).or_insert(line);
                }
                stack.push(Frame::Map { map: Map::new(), key: None, tag: tag.map(|t| format!("{}{}", t.handle, t.suffix)), ptr });
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { items, tag, .. }) => Some(retag(tag, Value::Array(items))),
                _ => return Err((Some(line), "unbalanced sequence".into())),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map { map, tag, .. }) => Some(retag(tag, Value::Object(map))),
                _ => return Err((Some(line), "unbalanced mapping".into())),
            },
        };
        let Some(v) = done else { continue };
        match stack.last_mut() {
            None => {
                root = Some(v);
            }
            Some(Frame::Seq { items, .. }) => items.push(v),
            Some(Frame::Map { map, key, ptr, .. }) => match key.take() {
                None => {
                    let k = match v {
                        Value::String(s) => s,
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    lines.entry(format!("{ptr}/{}", escape(&k))).or_insert(line);
                    *key = Some(k);
                }
                Some(k) => {
                    map.insert(k, v);
                }
            },
        }
    }
    let root = root.ok_or((None, "empty document".to_string()))?;
    Ok(Doc { root, lines })
}

fn retag(tag: Option<String>, v: Value) -> Value {
    match tag {
        Some(t) => match t.strip_prefix('!') {
            Some(suffix) if !suffix.starts_with('!') => {
                long_form(&saphyr_parser::Tag { handle: "!".into(), suffix: suffix.into() }, v)
            }
            _ => v,
        },
        None => v,
    }
}

/// Whether a document looks like a CloudFormation template.
pub fn is_template(v: &Value) -> bool {
    let Some(res) = v.get("Resources").and_then(Value::as_object) else { return false };
    v.get("AWSTemplateFormatVersion").is_some()
        || res.values().any(|r| r.get("Type").and_then(Value::as_str).is_some_and(|t| t.starts_with("AWS::") || t.starts_with("Custom::")))
}

struct Ctx<'a> {
    doc: &'a Doc,
    params: Option<&'a Map<String, Value>>,
}

impl Ctx<'_> {
    /// A property value as a setting: literals, `!Ref` to a parameter with a `Default`, else unknown.
    fn setting(&self, v: Option<&Value>) -> Setting {
        match v {
            None | Some(Value::Null) => Setting::Unset,
            Some(Value::String(s)) => Setting::Value(s.clone()),
            Some(Value::Number(n)) => Setting::Value(n.to_string()),
            Some(Value::Bool(b)) => Setting::Value(b.to_string()),
            Some(other) => {
                if let Some(Value::String(p)) = other.get("Ref") {
                    if let Some(d) = self.params.and_then(|ps| ps.get(p)).and_then(|p| p.get("Default")) {
                        let expr = format!("!Ref {p}");
                        return match d {
                            Value::String(s) => Setting::Defaulted { expr, value: s.clone() },
                            Value::Number(n) => Setting::Defaulted { expr, value: n.to_string() },
                            _ => Setting::Unknown(expr),
                        };
                    }
                    return Setting::Unknown(format!("!Ref {p}"));
                }
                Setting::Unknown(short(other))
            }
        }
    }

    fn metadata(&self, m: &Value, ptr: &str) -> Metadata {
        let line = |k: &str| self.doc.line(&format!("{ptr}/{k}"));
        Metadata {
            http_tokens: self.setting(m.get("HttpTokens")),
            http_endpoint: self.setting(m.get("HttpEndpoint")),
            hop_limit: self.setting(m.get("HttpPutResponseHopLimit")),
            ipv6: self.setting(m.get("HttpProtocolIpv6")),
            tags: self.setting(m.get("InstanceMetadataTags")),
            line: self.doc.line(ptr),
            tokens_line: line("HttpTokens"),
            hop_line: line("HttpPutResponseHopLimit"),
            endpoint_line: line("HttpEndpoint"),
        }
    }
}

/// An intrinsic function printed back in short form for evidence.
fn short(v: &Value) -> String {
    if let Some((k, inner)) = v.as_object().and_then(|o| o.iter().next()) {
        let name = k.strip_prefix("Fn::").unwrap_or(k);
        return format!("!{name} {}", inner);
    }
    v.to_string()
}

fn tags(props: &Value) -> Vec<(String, String)> {
    props
        .get("Tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| Some((t.get("Key")?.as_str()?.to_string(), t.get("Value")?.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The logical id a `!Ref X` / `!GetAtt X.Attr` names.
fn ref_target(v: Option<&Value>) -> Option<String> {
    let v = v?;
    if let Some(s) = v.get("Ref").and_then(Value::as_str) {
        return Some(s.to_string());
    }
    v.get("Fn::GetAtt").and_then(Value::as_array).and_then(|a| a.first()).and_then(Value::as_str).map(str::to_string)
}

fn cfn_template_ref(spec: &Value) -> TemplateRef {
    let version = match spec.get("Version") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => {
            let t = v.to_string();
            Some(if t.contains("DefaultVersionNumber") { "$Default".into() } else { "$Latest".into() })
        }
    };
    TemplateRef {
        id: ref_target(spec.get("LaunchTemplateId")).or_else(|| spec.get("LaunchTemplateId").and_then(Value::as_str).map(str::to_string)),
        name: ref_target(spec.get("LaunchTemplateName")).or_else(|| spec.get("LaunchTemplateName").and_then(Value::as_str).map(str::to_string)),
        version,
    }
}

/// Loads a CloudFormation template into the inventory.
pub(crate) fn load(doc: &Doc, file: &str, inv: &mut Inventory) -> Result<(), InputError> {
    let Some(resources) = doc.root.get("Resources").and_then(Value::as_object) else {
        return Err(InputError { file: file.into(), line: None, message: "CloudFormation template without a Resources mapping".into() });
    };
    let ctx = Ctx { doc, params: doc.root.get("Parameters").and_then(Value::as_object) };
    let templates: Vec<&String> = resources
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some("AWS::EC2::LaunchTemplate"))
        .map(|(k, _)| k)
        .collect();
    for (id, r) in resources {
        let ptr = format!("/Resources/{}", escape(id));
        let ty = r.get("Type").and_then(Value::as_str).unwrap_or("");
        let props = r.get("Properties").cloned().unwrap_or(Value::Null);
        let pptr = format!("{ptr}/Properties");
        let kind = match ty {
            "AWS::EC2::Instance" => ResourceKind::Instance,
            "AWS::EC2::LaunchTemplate" => ResourceKind::LaunchTemplate,
            "AWS::AutoScaling::LaunchConfiguration" => ResourceKind::LaunchConfiguration,
            "AWS::AutoScaling::AutoScalingGroup" => {
                let mut refs = Vec::new();
                if let Some(lt) = props.get("LaunchTemplate") {
                    refs.push(cfn_template_ref(lt));
                }
                if let Some(lt) = props.get("MixedInstancesPolicy").and_then(|m| m.get("LaunchTemplate")) {
                    if let Some(spec) = lt.get("LaunchTemplateSpecification") {
                        refs.push(cfn_template_ref(spec));
                    }
                    for o in lt.get("Overrides").and_then(Value::as_array).into_iter().flatten() {
                        if let Some(spec) = o.get("LaunchTemplateSpecification") {
                            refs.push(cfn_template_ref(spec));
                        }
                    }
                }
                inv.asgs.push(AutoScalingGroup {
                    name: id.clone(),
                    origin: Origin::CloudFormation,
                    file: file.into(),
                    line: doc.line(&ptr),
                    templates: refs,
                    launch_configuration: ref_target(props.get("LaunchConfigurationName"))
                        .or_else(|| props.get("LaunchConfigurationName").and_then(Value::as_str).map(str::to_string)),
                    instance_ids: Vec::new(),
                });
                continue;
            }
            _ => continue,
        };
        let mut res = Resource::new(kind, Origin::CloudFormation, id.clone(), file);
        res.line = doc.line(&ptr);
        res.tags = tags(&props);
        res.name = res.tag("Name").map(str::to_string);
        let (md, mptr) = match kind {
            ResourceKind::LaunchTemplate => {
                let data = props.get("LaunchTemplateData");
                if res.name.is_none() {
                    res.name = props.get("LaunchTemplateName").and_then(Value::as_str).map(str::to_string);
                }
                for spec in data.and_then(|d| d.get("TagSpecifications")).and_then(Value::as_array).into_iter().flatten() {
                    if spec.get("ResourceType").and_then(Value::as_str) == Some("instance") {
                        res.tags.extend(tags(spec));
                    }
                }
                (data.and_then(|d| d.get("MetadataOptions")), format!("{pptr}/LaunchTemplateData/MetadataOptions"))
            }
            _ => (props.get("MetadataOptions"), format!("{pptr}/MetadataOptions")),
        };
        res.metadata = md.filter(|m| m.is_object()).map(|m| ctx.metadata(m, &mptr));
        let image = match kind {
            ResourceKind::LaunchTemplate => props.get("LaunchTemplateData").and_then(|d| d.get("ImageId")),
            _ => props.get("ImageId"),
        };
        res.image = ctx.setting(image).value().map(str::to_string);
        if kind == ResourceKind::Instance && res.metadata.is_none() {
            if let Some(lt) = props.get("LaunchTemplate") {
                let r = cfn_template_ref(lt);
                let target = r.id.or(r.name);
                match target {
                    Some(t) if templates.iter().any(|x| **x == t) => {
                        inv.note(format!(
                            "{file}: instance {id} takes its metadata options from launch template {t}, which is checked on its own"
                        ));
                    }
                    other => inv.note(format!(
                        "{file}: instance {id} launches from launch template {} that is not in this template: not audited",
                        other.unwrap_or_else(|| "(unnamed)".into())
                    )),
                }
                continue;
            }
        }
        inv.resources.push(res);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_tags_become_long_form() {
        let table: &[(&str, Value)] = &[
            ("a: !Ref Param", json!({"a": {"Ref": "Param"}})),
            ("a: !GetAtt Res.Arn", json!({"a": {"Fn::GetAtt": ["Res", "Arn"]}})),
            ("a: !GetAtt [Res, Arn]", json!({"a": {"Fn::GetAtt": ["Res", "Arn"]}})),
            ("a: !Sub 'x-${Env}'", json!({"a": {"Fn::Sub": "x-${Env}"}})),
            ("a: !If [IsProd, required, optional]", json!({"a": {"Fn::If": ["IsProd", "required", "optional"]}})),
            ("a: !Condition IsProd", json!({"a": {"Condition": "IsProd"}})),
            ("a: !Base64\n  Fn::Sub: x", json!({"a": {"Fn::Base64": {"Fn::Sub": "x"}}})),
            ("a: !Equals [!Ref Env, prod]", json!({"a": {"Fn::Equals": [{"Ref": "Env"}, "prod"]}})),
            ("a: !!str 3", json!({"a": "3"})),
            ("a: ~\nb: ''", json!({"a": null, "b": ""})),
        ];
        for (yaml, want) in table {
            let doc = parse_yaml(yaml).unwrap_or_else(|e| panic!("{yaml}: {e:?}"));
            assert_eq!(&doc.root, want, "{yaml}");
        }
    }

    #[test]
    fn lines_by_pointer() {
        let doc = parse_yaml("Resources:\n  A:\n    Type: X\n    Properties:\n      L:\n        - one\n        - two\n").expect("yaml");
        let table = [("/Resources", 1), ("/Resources/A", 2), ("/Resources/A/Type", 3), ("/Resources/A/Properties/L", 5), ("/Resources/A/Properties/L/1", 7)];
        for (ptr, line) in table {
            assert_eq!(doc.line(ptr), Some(line), "{ptr}");
        }
        // JSON is read by the same reader.
        let doc = parse_yaml("{\n  \"Resources\": {\n    \"A/B\": {\"Type\": \"X\"}\n  }\n}").expect("json");
        assert_eq!(doc.line("/Resources/A~1B"), Some(3));
    }

    #[test]
    fn bad_yaml_is_an_error_with_a_line() {
        let table: &[(&str, Option<usize>, &str)] = &[
            ("a: [1, 2\nb: 3\n", Some(2), "invalid YAML"),
            ("a: b\n c: d: e\n", Some(2), "invalid YAML"),
            ("", None, "empty document"),
        ];
        for (yaml, line, msg) in table {
            let Err((l, m)) = parse_yaml(yaml) else { panic!("{yaml:?} parsed") };
            assert_eq!(l, *line, "{yaml:?}: {m}");
            assert!(m.contains(msg), "{yaml:?}: {m}");
        }
        let deep = "a: ".to_string() + &"[".repeat(MAX_DEPTH + 5);
        let Err((_, m)) = parse_yaml(&deep) else { panic!("deep parsed") };
        assert!(m.contains("nesting deeper"), "{m}");
    }

    #[test]
    fn template_detection() {
        let table = [
            (json!({"Resources": {"A": {"Type": "AWS::EC2::Instance"}}}), true),
            (json!({"AWSTemplateFormatVersion": "2010-09-09", "Resources": {}}), true),
            (json!({"Resources": {"A": {"Type": "Something"}}}), false),
            (json!({"resources": []}), false),
        ];
        for (v, want) in table {
            assert_eq!(is_template(&v), want, "{v}");
        }
    }
}
