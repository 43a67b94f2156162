//! Elastic exception lists: the NDJSON Kibana exports (`POST /api/exception_lists/_export`, or the
//! rules export with its exception lists), parsed into lists and items.
//!
//! An export holds list containers (`list_id`, `name`, `type`, `namespace_type`), their items
//! (`item_id`, `list_id`, `entries`, optional `os_types` and `expire_time`) and a summary line
//! (`exported_exception_list_count`, ...), which is skipped. A rule applies the items of the lists
//! its `exceptions_list` names. Every malformed line is reported with its line number and the
//! reason; the other lines still load.

use serde_json::Value;
use imdsguard_ecs::doc::scalar_text as scalar;

/// `included`: the entry holds when the condition does; `excluded`: when it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Included,
    Excluded,
}

/// One condition of an exception item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `match`: the field has this value (a `match_phrase` query).
    Match { field: String, operator: Operator, value: String },
    /// `match_any`: the field has one of these values.
    MatchAny { field: String, operator: Operator, values: Vec<String> },
    /// `wildcard`: a `wildcard` query (`*`, `?`), case-sensitive.
    Wildcard { field: String, operator: Operator, value: String },
    /// `exists`: the field has a value.
    Exists { field: String, operator: Operator },
    /// `list`: the field has a value of a value list (`list.id`, of type `keyword`, `ip`,
    /// `ip_range`, `text`, ...).
    List { field: String, operator: Operator, list_id: String, list_type: String },
    /// `nested`: one object of the nested field satisfies every inner entry (fields relative).
    Nested { field: String, entries: Vec<Entry> },
}

/// An exception list container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionList {
    pub list_id: String,
    pub name: String,
    /// `detection`, `rule_default`, `endpoint`, ...
    pub list_type: String,
    pub description: String,
    /// `file:line` it came from.
    pub origin: String,
}

/// An exception item: the event is excepted when every entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionItem {
    pub item_id: String,
    pub list_id: String,
    pub name: String,
    pub entries: Vec<Entry>,
    /// When set, the item holds only on these operating systems (`host.os.type`).
    pub os_types: Vec<String>,
    /// After this time (RFC 3339) the item no longer applies.
    pub expire_time: Option<String>,
    pub origin: String,
}

/// The lists and items of one or more exports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExceptionSet {
    pub lists: Vec<ExceptionList>,
    pub items: Vec<ExceptionItem>,
}

impl ExceptionSet {
    /// The items of `list_id`.
    pub fn items_of<'a>(&'a self, list_id: &'a str) -> impl Iterator<Item = &'a ExceptionItem> + 'a {
        self.items.iter().filter(move |i| i.list_id == list_id)
    }

    pub fn has_list(&self, list_id: &str) -> bool {
        self.lists.iter().any(|l| l.list_id == list_id) || self.items.iter().any(|i| i.list_id == list_id)
    }

    pub fn extend(&mut self, other: ExceptionSet) {
        self.lists.extend(other.lists);
        self.items.extend(other.items);
    }
}

/// A malformed line of an exceptions file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionError {
    pub line: usize,
    pub message: String,
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn operator(v: &Value) -> Result<Operator, String> {
    match v.get("operator").and_then(Value::as_str) {
        Some("included") | None => Ok(Operator::Included),
        Some("excluded") => Ok(Operator::Excluded),
        Some(other) => Err(format!("unknown operator `{other}` (expected included or excluded)")),
    }
}


/// Parse one entry (`nested_ok`: nested entries may not nest again).
pub fn parse_entry(v: &Value, nested_ok: bool) -> Result<Entry, String> {
    let field = str_field(v, "field").filter(|f| !f.is_empty()).ok_or("entry without a `field`")?;
    let ty = v.get("type").and_then(Value::as_str).ok_or_else(|| format!("entry on `{field}` without a `type`"))?;
    let op = operator(v)?;
    match ty {
        "match" => {
            let value = v.get("value").and_then(scalar).ok_or_else(|| format!("match entry on `{field}` needs a scalar `value`"))?;
            Ok(Entry::Match { field, operator: op, value })
        }
        "match_any" => {
            let values: Vec<String> = match v.get("value") {
                Some(Value::Array(a)) => a.iter().map(|x| scalar(x).ok_or("match_any values must be scalars")).collect::<Result<_, _>>()?,
                _ => return Err(format!("match_any entry on `{field}` needs a `value` array")),
            };
            if values.is_empty() {
                return Err(format!("match_any entry on `{field}` has no values"));
            }
            Ok(Entry::MatchAny { field, operator: op, values })
        }
        "wildcard" => {
            let value = v.get("value").and_then(Value::as_str).ok_or_else(|| format!("wildcard entry on `{field}` needs a string `value`"))?;
            Ok(Entry::Wildcard { field, operator: op, value: value.to_string() })
        }
        "exists" => Ok(Entry::Exists { field, operator: op }),
        "list" => {
            let list = v.get("list").ok_or_else(|| format!("list entry on `{field}` needs a `list` object"))?;
            let list_id = str_field(list, "id").ok_or_else(|| format!("list entry on `{field}` needs `list.id`"))?;
            let list_type = str_field(list, "type").unwrap_or_else(|| "keyword".into());
            Ok(Entry::List { field, operator: op, list_id, list_type })
        }
        "nested" => {
            if !nested_ok {
                return Err(format!("nested entry on `{field}` inside a nested entry"));
            }
            let inner = v.get("entries").and_then(Value::as_array).ok_or_else(|| format!("nested entry on `{field}` needs `entries`"))?;
            if inner.is_empty() {
                return Err(format!("nested entry on `{field}` has no entries"));
            }
            let entries = inner.iter().map(|e| parse_entry(e, false)).collect::<Result<Vec<_>, _>>()?;
            Ok(Entry::Nested { field, entries })
        }
        other => Err(format!("unknown entry type `{other}` on `{field}`")),
    }
}

/// Parse one exported item object.
pub fn parse_item(v: &Value, origin: &str) -> Result<ExceptionItem, String> {
    let list_id = str_field(v, "list_id").ok_or("item without a `list_id`")?;
    let entries = v.get("entries").and_then(Value::as_array).ok_or("item without `entries`")?;
    if entries.is_empty() {
        return Err("item with no entries".into());
    }
    let entries = entries.iter().map(|e| parse_entry(e, true)).collect::<Result<Vec<_>, _>>()?;
    let os_types = match v.get("os_types") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    Ok(ExceptionItem {
        item_id: str_field(v, "item_id").unwrap_or_default(),
        name: str_field(v, "name").unwrap_or_default(),
        list_id,
        entries,
        os_types,
        expire_time: str_field(v, "expire_time"),
        origin: origin.to_string(),
    })
}

/// Parse an exported NDJSON text. `origin` names the file in errors and provenance.
pub fn parse_exceptions_ndjson(text: &str, origin: &str) -> (ExceptionSet, Vec<ExceptionError>) {
    let mut set = ExceptionSet::default();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                errors.push(ExceptionError { line: n, message: format!("invalid JSON: {e}") });
                continue;
            }
        };
        if !v.is_object() {
            errors.push(ExceptionError { line: n, message: "not a JSON object".into() });
            continue;
        }
        let at = format!("{origin}:{n}");
        if v.get("exported_exception_list_count").is_some() || v.get("exported_exception_list_item_count").is_some() {
            continue;
        }
        if v.get("entries").is_some() {
            match parse_item(&v, &at) {
                Ok(item) => set.items.push(item),
                Err(e) => errors.push(ExceptionError { line: n, message: e }),
            }
        } else if let Some(list_id) = str_field(&v, "list_id") {
            set.lists.push(ExceptionList {
                list_id,
                name: str_field(&v, "name").unwrap_or_default(),
                list_type: str_field(&v, "type").unwrap_or_else(|| "detection".into()),
                description: str_field(&v, "description").unwrap_or_default(),
                origin: at,
            });
        } else {
            errors.push(ExceptionError { line: n, message: "neither an exception list (`list_id`) nor an item (`entries`)".into() });
        }
    }
    (set, errors)
}

/// The `list_id`s a rule's `exceptions_list` names (the rule key is kept in `Rule::extra`).
pub fn rule_exception_list_ids(rule: &crate::Rule) -> Vec<String> {
    match rule.extra.get("exceptions_list") {
        Some(Value::Array(refs)) => refs.iter().filter_map(|r| str_field(r, "list_id")).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kibana_export_loads_lists_items_and_skips_the_summary() {
        let text = r#"{"list_id":"imds-agents","name":"Agents","type":"detection","namespace_type":"single","description":"d"}
{"item_id":"ssm","list_id":"imds-agents","name":"SSM","type":"simple","namespace_type":"single","entries":[{"field":"process.executable","operator":"included","type":"match_any","value":["/usr/bin/amazon-ssm-agent","/snap/amazon-ssm-agent/current/amazon-ssm-agent"]}]}
{"item_id":"n","list_id":"imds-agents","name":"N","entries":[{"field":"process.parent","type":"nested","entries":[{"field":"name","operator":"included","type":"match","value":"systemd"}]},{"field":"user.id","operator":"excluded","type":"exists"}],"os_types":["linux"],"expire_time":"2027-01-01T00:00:00.000Z"}
not json
{"item_id":"bad","list_id":"x","entries":[{"field":"a","type":"regex","value":"x"}]}
{"exported_exception_list_count":1,"exported_exception_list_item_count":3}
"#;
        let (set, errors) = parse_exceptions_ndjson(text, "agents.ndjson");
        assert_eq!(set.lists.len(), 1);
        assert_eq!(set.items.len(), 2);
        assert_eq!(
            set.items[0].entries,
            vec![Entry::MatchAny {
                field: "process.executable".into(),
                operator: Operator::Included,
                values: vec!["/usr/bin/amazon-ssm-agent".into(), "/snap/amazon-ssm-agent/current/amazon-ssm-agent".into()]
            }]
        );
        assert_eq!(
            set.items[1].entries,
            vec![
                Entry::Nested {
                    field: "process.parent".into(),
                    entries: vec![Entry::Match { field: "name".into(), operator: Operator::Included, value: "systemd".into() }]
                },
                Entry::Exists { field: "user.id".into(), operator: Operator::Excluded },
            ]
        );
        assert_eq!(set.items[1].os_types, vec!["linux".to_string()]);
        assert_eq!(set.items[1].origin, "agents.ndjson:3");
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![4, 5]);
        assert!(errors[1].message.contains("unknown entry type `regex`"), "{errors:?}");
    }
}
