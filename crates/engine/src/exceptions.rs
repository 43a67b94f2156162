//! Exception items to an IR expression, built the way Kibana builds its exception filter
//! (`@kbn/securitysolution-list-utils`, `buildExceptionFilter`): each item is the conjunction of
//! its entries, an event is excepted when any item holds, and the rule searches with that filter
//! negated. Entries become the same Elasticsearch queries Kibana sends (`match_phrase` for
//! `match`/`match_any`, `wildcard`, `exists`, `terms` or ranges for value lists, `nested`), which
//! are then lowered with [`crate::lower_dsl`], so field types give them Elasticsearch's meaning.
//! `os_types` becomes `host.os.type` (or Endpoint's `host.os.name.caseless`) being one of them;
//! items whose `expire_time` has passed are left out, as Kibana does.

use crate::lower_dsl::lower_query;
use imdsguard_ecs::FieldTable;
use imdsguard_ir::Expr;
use imdsguard_rules::exceptions::{Entry, ExceptionItem, Operator};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Value lists referenced by `list` entries: id -> values (one per line in the list's file).
pub type ValueLists = HashMap<String, Vec<String>>;

fn exclusion(q: Value, op: Operator) -> Value {
    match op {
        Operator::Included => q,
        Operator::Excluded => json!({"bool": {"must_not": q}}),
    }
}

fn phrase(field: &str, value: &str) -> Value {
    json!({"bool": {"minimum_should_match": 1, "should": [{"match_phrase": {field: value}}]}})
}

/// The Elasticsearch query Kibana builds for one entry (`parent`: the nested field around it).
pub fn entry_query(entry: &Entry, parent: Option<&str>, lists: &ValueLists) -> Result<Value, String> {
    let full = |f: &str| match parent {
        Some(p) => format!("{p}.{f}"),
        None => f.to_string(),
    };
    Ok(match entry {
        Entry::Match { field, operator, value } => exclusion(phrase(&full(field), value), *operator),
        Entry::MatchAny { field, operator, values } => {
            let f = full(field);
            let q = if values.len() == 1 {
                phrase(&f, &values[0])
            } else {
                json!({"bool": {"minimum_should_match": 1, "should": values.iter().map(|v| phrase(&f, v)).collect::<Vec<_>>()}})
            };
            exclusion(q, *operator)
        }
        Entry::Wildcard { field, operator, value } => exclusion(json!({"bool": {"filter": {"wildcard": {full(field): value}}}}), *operator),
        Entry::Exists { field, operator } => {
            exclusion(json!({"bool": {"minimum_should_match": 1, "should": [{"exists": {"field": full(field)}}]}}), *operator)
        }
        Entry::List { field, operator, list_id, list_type } => {
            let values = lists.get(list_id).ok_or_else(|| format!("value list `{list_id}` is not loaded (pass it with --value-list {list_id}=FILE)"))?;
            let f = full(field);
            let clause_key = if *operator == Operator::Excluded { "must_not" } else { "should" };
            match list_type.as_str() {
                "ip_range" => {
                    let (dash, cidr): (Vec<&String>, Vec<&String>) = values.iter().partition(|v| v.contains('-'));
                    let mut clauses: Vec<Value> = dash
                        .iter()
                        .map(|r| {
                            let (gte, lte) = r.split_once('-').unwrap_or((r.as_str(), r.as_str()));
                            json!({"range": {f.clone(): {"gte": gte.trim(), "lte": lte.trim()}}})
                        })
                        .collect();
                    if !cidr.is_empty() {
                        clauses.push(json!({"terms": {f.clone(): cidr}}));
                    }
                    json!({"bool": {clause_key: clauses, "minimum_should_match": 1}})
                }
                "text" => {
                    let clauses: Vec<Value> = values.iter().map(|v| json!({"match_phrase": {f.clone(): v}})).collect();
                    json!({"bool": {clause_key: clauses, "minimum_should_match": 1}})
                }
                _ => {
                    let key = if *operator == Operator::Excluded { "must_not" } else { "filter" };
                    json!({"bool": {key: {"terms": {f: values}}}})
                }
            }
        }
        Entry::Nested { field, entries } => {
            let inner: Vec<Value> = entries.iter().map(|e| entry_query(e, Some(field), lists)).collect::<Result<_, _>>()?;
            let query = if inner.len() == 1 { inner.into_iter().next().unwrap_or(Value::Null) } else { json!({"bool": {"filter": inner}}) };
            json!({"nested": {"path": field, "query": query, "score_mode": "none"}})
        }
    })
}

/// The query of one item (its entries and-ed; `os_types` as Kibana transforms them).
pub fn item_query(item: &ExceptionItem, lists: &ValueLists) -> Result<Value, String> {
    let entries: Vec<Value> = item.entries.iter().map(|e| entry_query(e, None, lists)).collect::<Result<_, _>>()?;
    if item.os_types.is_empty() {
        return Ok(if entries.len() == 1 { entries.into_iter().next().unwrap_or(Value::Null) } else { json!({"bool": {"filter": entries}}) });
    }
    let mut alternatives = Vec::new();
    for field in ["host.os.type", "host.os.name.caseless"] {
        for os in &item.os_types {
            let mut all = vec![phrase(field, os)];
            all.extend(entries.iter().cloned());
            alternatives.push(json!({"bool": {"filter": all}}));
        }
    }
    Ok(json!({"bool": {"should": alternatives, "minimum_should_match": 1}}))
}

/// Whether the item has expired at `now_millis`.
pub fn expired(item: &ExceptionItem, now_millis: i64) -> bool {
    item.expire_time.as_deref().and_then(imdsguard_ecs::time::parse_date).is_some_and(|t| t <= now_millis)
}

/// The expression that holds when an event is excepted by any of `items` (those not expired).
/// Errors name the item.
pub fn exception_expr(items: &[&ExceptionItem], lists: &ValueLists, table: &FieldTable, now_millis: i64) -> Result<Expr, String> {
    let mut alts = Vec::new();
    for item in items {
        if expired(item, now_millis) {
            continue;
        }
        let q = item_query(item, lists).map_err(|e| format!("exception item `{}` ({}): {e}", item.item_id, item.origin))?;
        let e = lower_query(&q, table, now_millis, 0).map_err(|e| format!("exception item `{}` ({}): {e}", item.item_id, item.origin))?;
        alts.push(e);
    }
    Ok(Expr::or(alts))
}
