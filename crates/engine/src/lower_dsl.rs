//! Lowering Kibana filters (Elasticsearch query DSL carried in a rule's `filters`) to the IR.
//!
//! Supported: `exists`, `term`, `terms`, `wildcard` (with `case_insensitive`), `prefix`,
//! `match`, `match_phrase`, `range`, `bool` (`must`, `filter`, `should`, `must_not`,
//! `minimum_should_match`), `match_all`, `match_none`, `nested` (`path` + `query`, inner field
//! names written in full as Elasticsearch expects); filter `meta.negate` and `meta.disabled`.
//! Anything else is an error naming the query type, so a rule never runs without its filters.

use crate::lower_kql::{range_pred, term_pred};
use imdsguard_ecs::{FieldPath, FieldTable};
use imdsguard_ir::glob::GlobToken;
use imdsguard_ir::{Expr, Glob, Pred};
use imdsguard_kql::ast::RangeOp;
use serde_json::Value;
use imdsguard_ecs::doc::scalar_text as scalar;


/// `{"field": value}` or `{"field": {"value"|"query": value, ...}}` -> (field, value, options).
fn field_and_value<'a>(body: &'a Value, value_keys: &[&str]) -> Result<(&'a str, &'a Value, Option<&'a serde_json::Map<String, Value>>), String> {
    let obj = body.as_object().ok_or("expected an object")?;
    let (field, v) = obj.iter().find(|(k, _)| !k.starts_with('_') && *k != "boost").ok_or("no field")?;
    match v {
        Value::Object(opts) => {
            let val = value_keys.iter().find_map(|k| opts.get(*k)).ok_or_else(|| format!("no {} for field {field}", value_keys.join("/")))?;
            Ok((field, val, Some(opts)))
        }
        other => Ok((field, other, None)),
    }
}

fn ci(opts: Option<&serde_json::Map<String, Value>>) -> bool {
    opts.and_then(|o| o.get("case_insensitive")).and_then(Value::as_bool).unwrap_or(false)
}

fn typed(table: &FieldTable, field: &str, value: &str, phrase: bool, case_insensitive: bool, now: i64) -> Result<Expr, String> {
    let ty = table.get(table.resolve_alias(field));
    let path = FieldPath::new(field);
    if case_insensitive {
        return Ok(Expr::Match(path, Pred::StrEq { value: value.to_string(), case_insensitive: true }));
    }
    Ok(match term_pred(ty, value, phrase, now)? {
        Some(p) => Expr::Match(path, p),
        None => Expr::Const(false),
    })
}

/// Lower one DSL query.
pub fn lower_query(q: &Value, table: &FieldTable, now: i64, depth: usize) -> Result<Expr, String> {
    if depth > 64 {
        return Err("filter query nested too deeply".into());
    }
    let obj = q.as_object().ok_or("a query must be a JSON object")?;
    let (kind, body) = obj.iter().next().ok_or("empty query object")?;
    match kind.as_str() {
        "match_all" => Ok(Expr::Const(true)),
        "match_none" => Ok(Expr::Const(false)),
        "exists" => {
            let f = body.get("field").and_then(Value::as_str).ok_or("exists needs a field")?;
            Ok(Expr::Exists(FieldPath::new(f)))
        }
        "term" => {
            let (f, v, opts) = field_and_value(body, &["value"])?;
            let v = scalar(v).ok_or("term value must be a scalar")?;
            typed(table, f, &v, false, ci(opts), now)
        }
        "terms" => {
            let obj = body.as_object().ok_or("terms needs an object")?;
            let (f, vals) = obj.iter().find(|(k, _)| *k != "boost").ok_or("terms needs a field")?;
            let vals = vals.as_array().ok_or("terms values must be an array")?;
            let mut alts = Vec::new();
            for v in vals {
                alts.push(typed(table, f, &scalar(v).ok_or("terms values must be scalars")?, false, false, now)?);
            }
            Ok(Expr::or(alts))
        }
        "match" | "match_phrase" => {
            let (f, v, _) = field_and_value(body, &["query"])?;
            let v = scalar(v).ok_or("match value must be a scalar")?;
            typed(table, f, &v, kind == "match_phrase", false, now)
        }
        "wildcard" | "prefix" => {
            let (f, v, opts) = field_and_value(body, &["value", "wildcard"])?;
            let v = scalar(v).ok_or("pattern must be a string")?;
            let g = if kind == "prefix" {
                Glob::new(vec![GlobToken::Lit(v), GlobToken::Star], ci(opts))
            } else {
                Glob::parse(&v, true, ci(opts))
            };
            let ty = table.get(table.resolve_alias(f));
            let pred = if ty.is_some_and(|t| t.is_text()) {
                Pred::TextGlob(Glob::parse(&g.source().to_lowercase(), true, false))
            } else {
                Pred::StrGlob(g)
            };
            Ok(Expr::Match(FieldPath::new(f), pred))
        }
        "range" => {
            let obj = body.as_object().ok_or("range needs an object")?;
            let (f, bounds) = obj.iter().next().ok_or("range needs a field")?;
            let bounds = bounds.as_object().ok_or("range bounds must be an object")?;
            let ty = table.get(table.resolve_alias(f));
            let mut parts = Vec::new();
            for (k, op) in [("gt", RangeOp::Gt), ("gte", RangeOp::Gte), ("lt", RangeOp::Lt), ("lte", RangeOp::Lte)] {
                if let Some(v) = bounds.get(k).and_then(scalar) {
                    parts.push(Expr::Match(FieldPath::new(f), range_pred(ty, op, &v, now)?));
                }
            }
            Ok(Expr::and(parts))
        }
        "bool" => {
            let list = |key: &str| -> Result<Vec<Expr>, String> {
                match body.get(key) {
                    None => Ok(vec![]),
                    Some(Value::Array(items)) => items.iter().map(|i| lower_query(i, table, now, depth + 1)).collect(),
                    Some(one) => Ok(vec![lower_query(one, table, now, depth + 1)?]),
                }
            };
            let mut must = list("must")?;
            must.extend(list("filter")?);
            let should = list("should")?;
            let must_not = list("must_not")?;
            let min_should = match body.get("minimum_should_match") {
                Some(v) => scalar(v).and_then(|s| s.parse::<usize>().ok()).ok_or("unsupported minimum_should_match")?,
                None if must.is_empty() => 1,
                None => 0,
            };
            let mut all = must;
            if !should.is_empty() && min_should > 0 {
                if min_should == 1 {
                    all.push(Expr::or(should));
                } else {
                    return Err("minimum_should_match above 1 is not supported".into());
                }
            }
            all.extend(must_not.into_iter().map(Expr::not));
            Ok(Expr::and(all))
        }
        "nested" => {
            let path = body.get("path").and_then(Value::as_str).ok_or("nested needs a path")?;
            let inner = body.get("query").ok_or("nested needs a query")?;
            let inner = lower_query(inner, table, now, depth + 1)?;
            Ok(Expr::Nested(FieldPath::new(path), Box::new(relativize(inner, path))))
        }
        other => Err(format!("filter query type `{other}` is not supported")),
    }
}

/// Field paths inside a nested query are relative to the nested object: strip `prefix.`.
fn relativize(e: Expr, prefix: &str) -> Expr {
    let strip = |p: &FieldPath| -> FieldPath {
        match p.name().strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) {
            Some(rest) => FieldPath::new(rest),
            None => p.clone(),
        }
    };
    match e {
        Expr::And(v) => Expr::And(v.into_iter().map(|e| relativize(e, prefix)).collect()),
        Expr::Or(v) => Expr::Or(v.into_iter().map(|e| relativize(e, prefix)).collect()),
        Expr::Not(inner) => Expr::Not(Box::new(relativize(*inner, prefix))),
        Expr::Exists(p) => Expr::Exists(strip(&p)),
        Expr::Match(p, pred) => Expr::Match(strip(&p), pred),
        Expr::Nested(p, inner) => Expr::Nested(strip(&p), inner),
        other => other,
    }
}

/// Lower a rule's Kibana filters into one expression (all must hold).
pub fn lower_filters(filters: &[Value], table: &FieldTable, now: i64) -> Result<Expr, String> {
    let mut parts = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        let meta = f.get("meta");
        if meta.and_then(|m| m.get("disabled")).and_then(Value::as_bool).unwrap_or(false) {
            continue;
        }
        let negate = meta.and_then(|m| m.get("negate")).and_then(Value::as_bool).unwrap_or(false);
        let query = match f.get("query") {
            Some(q) => q.clone(),
            None => {
                // Older filters put the query at the top level next to meta and $state.
                let rest: serde_json::Map<String, Value> =
                    f.as_object().into_iter().flatten().filter(|(k, _)| *k != "meta" && *k != "$state").map(|(k, v)| (k.clone(), v.clone())).collect();
                Value::Object(rest)
            }
        };
        let e = lower_query(&query, table, now, 0).map_err(|e| format!("filter {}: {e}", i + 1))?;
        parts.push(if negate { Expr::not(e) } else { e });
    }
    Ok(Expr::and(parts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn negated_case_insensitive_wildcard_filter() {
        let t = FieldTable::ecs();
        let f = json!([{"meta": {"negate": true, "disabled": false}, "query": {"wildcard": {"file.path": {"value": "C:\\\\Windows\\\\*", "case_insensitive": true}}}}]);
        let e = lower_filters(f.as_array().unwrap(), &t, 0).unwrap();
        assert!(!e.matches(&json!({"file": {"path": "c:\\windows\\x.dll"}})));
        assert!(e.matches(&json!({"file": {"path": "D:\\x.dll"}})));
        assert!(e.matches(&json!({})));
    }

    #[test]
    fn bool_exists_and_disabled() {
        let t = FieldTable::ecs();
        let f = json!([
            {"meta": {"disabled": true}, "query": {"match_none": {}}},
            {"meta": {}, "query": {"bool": {"should": [{"term": {"process.name": "curl"}}, {"exists": {"field": "url.path"}}], "must_not": {"range": {"destination.port": {"gte": 1024}}}}}}
        ]);
        let e = lower_filters(f.as_array().unwrap(), &t, 0).unwrap();
        assert!(e.matches(&json!({"process": {"name": "curl"}, "destination": {"port": 80}})));
        assert!(!e.matches(&json!({"process": {"name": "curl"}, "destination": {"port": 8080}})));
        assert!(e.matches(&json!({"url": {"path": "/"}})));
        assert!(!e.matches(&json!({"process": {"name": "wget"}})));
        let bad = json!([{"query": {"script": {}}}]);
        assert!(lower_filters(bad.as_array().unwrap(), &t, 0).unwrap_err().contains("script"));
    }
}
