//! The OpenAPI 3.1 document the server serves at `/api/openapi.json`. A test checks that every
//! path and method it lists is served, and that the server serves nothing else under `/api`.

use serde_json::{json, Value};

fn op(summary: &str, params: &[(&str, &str, &str)], body: Option<&str>, responses: &[(&str, &str)]) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|(name, inn, desc)| json!({"name": name, "in": inn, "required": *inn == "path", "description": desc, "schema": {"type": "string"}}))
        .collect();
    let mut o = json!({"summary": summary, "parameters": parameters,
        "responses": responses.iter().map(|(c, d)| (c.to_string(), json!({"description": d}))).collect::<serde_json::Map<_, _>>()});
    if let Some(b) = body {
        o["requestBody"] = json!({"required": true, "content": {b: {"schema": {"type": "string"}}}});
    }
    o
}

/// The document.
pub fn document() -> Value {
    let ndjson = "application/x-ndjson";
    let js = "application/json";
    json!({
        "openapi": "3.1.0",
        "info": {"title": "imdsguard server", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Elasticsearch-compatible ingest (rules run as events arrive) and the alerts and rules API."},
        "components": {"securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "Authorization",
            "description": "`ApiKey <key>` or `Bearer <key>`; the server holds only the key's SHA-256."}}},
        "security": [{"apiKey": []}],
        "paths": {
            "/": {"get": op("Cluster banner (what Elasticsearch clients check on connect)", &[], None, &[("200", "banner")]),
                  "head": op("Ping", &[], None, &[("200", "alive")])},
            "/_license": {"get": op("License (a basic license, for clients that ask)", &[], None, &[("200", "license")])},
            "/_bulk": {"post": op("Bulk ingest: index/create items are evaluated; per-item results", &[], Some(ndjson),
                &[("200", "per-item results"), ("400", "malformed request"), ("401", "no or wrong API key"), ("413", "body too large"), ("429", "too many batches in flight; retry after Retry-After")]),
                       "put": op("Bulk ingest (PUT form)", &[], Some(ndjson), &[("200", "per-item results")])},
            "/{index}/_bulk": {"post": op("Bulk ingest with a default index", &[("index", "path", "default index")], Some(ndjson), &[("200", "per-item results")]),
                               "put": op("Bulk ingest with a default index (PUT form)", &[("index", "path", "default index")], Some(ndjson), &[("200", "per-item results")])},
            "/{index}/_doc": {"post": op("Ingest one document", &[("index", "path", "index")], Some(js), &[("201", "created"), ("400", "not a JSON object")])},
            "/{index}/_doc/{id}": {"post": op("Ingest one document with an id", &[("index", "path", "index"), ("id", "path", "document id")], Some(js), &[("201", "created")]),
                                   "put": op("Ingest one document with an id (PUT form)", &[("index", "path", "index"), ("id", "path", "document id")], Some(js), &[("201", "created")])},
            "/{index}/_create/{id}": {"post": op("Create one document", &[("index", "path", "index"), ("id", "path", "document id")], Some(js), &[("201", "created")]),
                                      "put": op("Create one document (PUT form)", &[("index", "path", "index"), ("id", "path", "document id")], Some(js), &[("201", "created")])},
            "/api/alerts": {"get": op("List alerts, newest first: {total, alerts, next_search_after}", &[
                ("rule_id", "query", "rule id"), ("severity", "query", "low|medium|high|critical"), ("host", "query", "host.name"),
                ("since", "query", "detection time lower bound (date or date math, e.g. now-1h)"), ("until", "query", "detection time upper bound"),
                ("status", "query", "open|acknowledged|closed"), ("size", "query", "page size, 1-10000 (default 100)"),
                ("search_after", "query", "the previous page's next_search_after")], None, &[("200", "alerts"), ("400", "bad filter")])},
            "/api/alerts/{id}": {"get": op("One alert", &[("id", "path", "kibana.alert.uuid")], None, &[("200", "the alert"), ("404", "no such alert")])},
            "/api/alerts/{id}/status": {"post": op("Change the workflow status: {\"status\": \"open\"|\"acknowledged\"|\"closed\"}", &[("id", "path", "kibana.alert.uuid")], Some(js), &[("200", "changed"), ("400", "bad status"), ("404", "no such alert")])},
            "/api/rules": {"get": op("List the rules: {total, rules}", &[], None, &[("200", "rules")])},
            "/api/rules/_reload": {"post": op("Reload the rules from disk (enabled/disabled choices kept)", &[], None, &[("200", "reloaded"), ("400", "load failed")])},
            "/api/rules/{rule_id}/{action}": {"post": op("Enable or disable a rule (action = enable|disable)", &[("rule_id", "path", "rule id"), ("action", "path", "enable|disable")], None, &[("200", "changed"), ("404", "no such rule")])},
            "/api/openapi.json": {"get": op("This document", &[], None, &[("200", "OpenAPI 3.1")])},
            "/metrics": {"get": op("Prometheus metrics (events in, dropped, throttled, alerts per rule, evaluation time)", &[], None, &[("200", "text exposition format")])},
            "/healthz": {"get": {"summary": "Liveness (no API key needed)", "security": [], "responses": {"200": {"description": "ok"}}}}
        }
    })
}
