//! Server mode (`imdsguard serve`): an ingest API that Elasticsearch outputs (Filebeat,
//! Packetbeat, Auditbeat, Elastic Agent, Vector, Logstash) accept as a cluster, the rules run
//! over each batch as it arrives, alerts written to the embedded store (SQLite, WAL) before the
//! request is acknowledged, and an alerts and rules API.
//!
//! - `GET /` (the banner clients check), `GET /_license`, `POST /_bulk`, `POST /<index>/_bulk`,
//!   `POST|PUT /<index>/_doc[/<id>]`, with Elasticsearch's per-item bulk responses;
//! - `GET /api/alerts` (filters `rule_id`, `severity`, `host`, `since`, `until`, `status`, `size`,
//!   `search_after`), `GET /api/alerts/{id}`, `POST /api/alerts/{id}/status`;
//! - `GET /api/rules`, `POST /api/rules/{rule_id}/enable|disable`, `POST /api/rules/_reload`;
//! - `GET /api/openapi.json`, `GET /healthz`, `GET /metrics` (Prometheus text).
//!
//! Security and bounds: API keys (only their SHA-256 is configured) unless the server listens on
//! loopback with `no_auth`; request bodies above `max_body_bytes` get 413; at most
//! `max_inflight` batches are processed at once, beyond that 429 with `Retry-After`.
//!
//! Streaming semantics: each request is one batch. Query, EQL event and new_terms rules behave as
//! in `hunt` (new_terms history persists in the state store across batches); sequences,
//! thresholds, alert suppression and `max_signals` windows continue across requests through the
//! engine's `StreamState`, saved in the state store with the history.
//!
//! Client compatibility (checked with the official Python client, `elasticsearch` 8.17): every
//! response carries `X-Elastic-Product: Elasticsearch` (clients refuse a server without it); the
//! index-management calls Beats and Logstash make at start-up (`_index_template`,
//! `_component_template`, `_ilm/policy`, `_ingest/pipeline`) are acknowledged and remembered by
//! name, not applied.

pub mod bulk;
pub mod openapi;

use imdsguard_store::alerts::{AlertQuery, AlertStore, STATUSES};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use imdsguard_ecs::{Event, FieldTable, Provenance};
use imdsguard_engine::history::{MemoryHistory, TermsHistory};
use imdsguard_engine::{CompiledRule, Hunt, StreamState};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::Semaphore;

/// The Elasticsearch version the banner announces (Beats 8.x accept an 8.x cluster).
pub const ES_VERSION: &str = "8.17.0";

/// Loads the rule set again (for `POST /api/rules/_reload`): the rules and whether each is built in.
pub type Reloader = Arc<dyn Fn() -> Result<Vec<(imdsguard_rules::Rule, bool)>, String> + Send + Sync>;

pub struct ServerConfig {
    pub listen: SocketAddr,
    /// SHA-256 (lower-case hex) of each accepted API key.
    pub api_key_hashes: Vec<String>,
    /// Accept requests without a key (refused unless `listen` is a loopback address).
    pub no_auth: bool,
    pub max_body_bytes: usize,
    pub max_inflight: usize,
    pub table: Arc<FieldTable>,
    pub rules: Vec<(imdsguard_rules::Rule, bool)>,
    pub reload: Option<Reloader>,
    /// Alerts database; `None` keeps alerts in memory.
    pub alerts_db: Option<PathBuf>,
    /// new_terms history; `None` keeps it in memory.
    pub state_db: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain and private key (rustls).
    pub tls: Option<TlsFiles>,
}

/// PEM files of the server's certificate chain and private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

struct RuleEntry {
    compiled: CompiledRule,
    builtin: bool,
    enabled: bool,
}

#[derive(Default)]
struct Metrics {
    requests: AtomicU64,
    events_in: AtomicU64,
    events_rejected: AtomicU64,
    batches: AtomicU64,
    throttled: AtomicU64,
    unauthorized: AtomicU64,
    eval_micros: AtomicU64,
    alerts: Mutex<BTreeMap<String, u64>>,
}

/// new_terms history: in the state store, or in memory.
enum History {
    Sqlite(imdsguard_store::SqliteHistory),
    Memory(MemoryHistory),
}

impl History {
    fn as_dyn(&mut self) -> &mut dyn TermsHistory {
        match self {
            History::Sqlite(h) => h,
            History::Memory(h) => h,
        }
    }

    fn commit(&mut self) -> Result<(), String> {
        match self {
            History::Sqlite(h) => h.commit().map_err(|e| e.to_string()),
            History::Memory(_) => Ok(()),
        }
    }
}

struct Engine {
    store: AlertStore,
    history: History,
    /// What sequences, thresholds, suppression and `max_signals` carry from one request to the
    /// next (saved in the state store with the history, when there is one).
    stream: StreamState,
}

/// The name the server's stream state is saved under in the state store.
const STREAM_STATE_NAME: &str = "serve";

struct Inner {
    rules: RwLock<Vec<RuleEntry>>,
    engine: Mutex<Engine>,
    inflight: Semaphore,
    max_inflight: usize,
    metrics: Metrics,
    api_key_hashes: Vec<String>,
    auth: bool,
    table: Arc<FieldTable>,
    reload: Option<Reloader>,
    seq: AtomicU64,
    /// Index-management objects clients have put (request paths), see [`setup_put`].
    setup: Mutex<std::collections::HashSet<String>>,
}

fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Compile rules; those that cannot run are returned with their reason.
fn compile(rules: Vec<(imdsguard_rules::Rule, bool)>, table: &Arc<FieldTable>) -> (Vec<RuleEntry>, Vec<String>) {
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for (r, builtin) in rules {
        if !r.enabled || r.is_deprecated() {
            continue;
        }
        let name = r.name.clone();
        match imdsguard_engine::compile_rule(Arc::new(r), table, now_millis()) {
            Ok(c) => out.push(RuleEntry { compiled: c, builtin, enabled: true }),
            Err(d) => failed.push(format!("{name}: {}", d.first().map(|d| d.message.as_str()).unwrap_or("cannot compile"))),
        }
    }
    (out, failed)
}

/// A running server's handle: its address, and the task to await.
pub struct Running {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Rules that could not be compiled, with the reason.
    pub not_run: Vec<String>,
}

/// Bind and start serving; `shutdown` ends the server gracefully (in-flight requests finish).
pub async fn start(config: ServerConfig, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<Running, String> {
    if config.no_auth && !config.listen.ip().is_loopback() {
        return Err(format!("--no-auth is only allowed on a loopback address, not {}", config.listen));
    }
    if !config.no_auth && config.api_key_hashes.is_empty() {
        return Err("no API key configured: pass --api-key-hashes FILE (or --no-auth on loopback)".into());
    }
    let store = match &config.alerts_db {
        Some(p) => AlertStore::open(p).map_err(|e| format!("alerts store {}: {e}", p.display()))?,
        None => AlertStore::in_memory().map_err(|e| format!("alerts store: {e}"))?,
    };
    let mut history = match &config.state_db {
        Some(p) => History::Sqlite(imdsguard_store::SqliteHistory::open(p).map_err(|e| e.to_string())?),
        None => History::Memory(MemoryHistory::default()),
    };
    let stream = match &mut history {
        History::Sqlite(h) => h.load_stream_state(STREAM_STATE_NAME).map_err(|e| e.to_string())?.unwrap_or_default(),
        History::Memory(_) => StreamState::default(),
    };
    let (rules, not_run) = compile(config.rules, &config.table);
    let inner = Arc::new(Inner {
        rules: RwLock::new(rules),
        engine: Mutex::new(Engine { store, history, stream }),
        inflight: Semaphore::new(config.max_inflight.max(1)),
        max_inflight: config.max_inflight.max(1),
        metrics: Metrics::default(),
        api_key_hashes: config.api_key_hashes.iter().map(|h| h.trim().to_ascii_lowercase()).collect(),
        auth: !config.no_auth,
        table: config.table,
        reload: config.reload,
        seq: AtomicU64::new(0),
        setup: Mutex::new(Default::default()),
    });
    let app = router(inner, config.max_body_bytes);
    if let Some(tls) = &config.tls {
        // rustls with the ring provider (installing it twice is harmless).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rc = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
            .await
            .map_err(|e| format!("TLS certificate {} / key {}: {e}", tls.cert.display(), tls.key.display()))?;
        let std_listener = std::net::TcpListener::bind(config.listen).map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        std_listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = std_listener.local_addr().map_err(|e| e.to_string())?;
        let handle = axum_server::Handle::new();
        let on_shutdown = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            // In-flight requests get up to 30 s to finish.
            on_shutdown.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
        });
        let server = axum_server::from_tcp_rustls(std_listener, rc).handle(handle);
        let task = tokio::spawn(async move { server.serve(app.into_make_service()).await });
        return Ok(Running { addr, task, not_run });
    }
    let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let task = tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await });
    Ok(Running { addr, task, not_run })
}

fn router(inner: Arc<Inner>, max_body: usize) -> Router {
    Router::new()
        .route("/", get(banner).head(banner_head))
        .route("/_license", get(license))
        .route("/_bulk", post(bulk_root).put(bulk_root))
        .route("/{index}/_bulk", post(bulk_index).put(bulk_index))
        .route("/{index}/_doc", post(doc_auto))
        .route("/{index}/_doc/{id}", post(doc_id).put(doc_id))
        .route("/{index}/_create/{id}", post(doc_id).put(doc_id))
        .route("/api/alerts", get(list_alerts))
        .route("/api/alerts/{id}", get(get_alert))
        .route("/api/alerts/{id}/status", post(set_status))
        .route("/api/rules", get(list_rules))
        .route("/api/rules/_reload", post(reload_rules))
        .route("/api/rules/{rule_id}/{action}", post(toggle_rule))
        .route("/api/openapi.json", get(openapi_doc))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/_index_template/{name}", get(setup_get).head(setup_get).put(setup_put).post(setup_put))
        .route("/_component_template/{name}", get(setup_get).head(setup_get).put(setup_put).post(setup_put))
        .route("/_ilm/policy/{name}", get(setup_get).head(setup_get).put(setup_put))
        .route("/_ingest/pipeline/{name}", get(setup_get).head(setup_get).put(setup_put))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(inner.clone(), auth))
        .layer(middleware::from_fn(product_header))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(inner)
}

/// Elasticsearch names itself on every response; its clients check (the Python client refuses a
/// 2xx answer without the header).
async fn product_header(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    r.headers_mut().insert("x-elastic-product", HeaderValue::from_static("Elasticsearch"));
    r
}

/// `GET|HEAD /_index_template/<name>` and friends: 404 until the client has put it (then it puts
/// it, as against a fresh cluster), then 200.
async fn setup_get(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let known = inner.setup.lock().map(|s| s.contains(&path)).unwrap_or(false);
    if !known {
        return es_error(StatusCode::NOT_FOUND, "resource_not_found_exception", &format!("[{path}] not found"));
    }
    let name = path.rsplit('/').next().unwrap_or("").to_string();
    let body = if path.starts_with("/_index_template/") {
        json!({"index_templates": [{"name": name, "index_template": {"index_patterns": [], "composed_of": []}}]})
    } else if path.starts_with("/_component_template/") {
        json!({"component_templates": [{"name": name, "component_template": {"template": {}}}]})
    } else {
        json!({ name: {} })
    };
    Json(body).into_response()
}

/// `PUT /_index_template/<name>` and friends: acknowledged and remembered, not applied (imdsguard
/// keeps no indices).
async fn setup_put(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    if let Ok(mut s) = inner.setup.lock() {
        // Bounded: a client has a handful of templates and policies.
        if s.len() < 10_000 {
            s.insert(path);
        }
    }
    Json(json!({"acknowledged": true})).into_response()
}

fn es_error(status: StatusCode, kind: &str, reason: &str) -> Response {
    (status, Json(json!({"error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason}, "status": status.as_u16()}))).into_response()
}

async fn not_found(req: Request) -> Response {
    let reason = format!("no handler found for uri [{}] and method [{}]", req.uri(), req.method());
    es_error(StatusCode::NOT_FOUND, "resource_not_found_exception", &reason)
}

/// The presented key: `Authorization: ApiKey <token>` (Elasticsearch's form) or `Bearer <token>`.
fn presented_key(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("apikey") || scheme.eq_ignore_ascii_case("bearer")).then(|| token.trim().to_string())
}

/// SHA-256 of a key, lower-case hex (what `--api-key-hashes` holds).
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn same(a: &str, b: &str) -> bool {
    // Compare every byte, whatever differs first.
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(inner): State<Arc<Inner>>, req: Request, next: Next) -> Response {
    inner.metrics.requests.fetch_add(1, Ordering::Relaxed);
    if !inner.auth || req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let ok = presented_key(req.headers()).map(|k| hash_key(&k)).is_some_and(|h| inner.api_key_hashes.iter().any(|x| same(x, &h)));
    if ok {
        next.run(req).await
    } else {
        inner.metrics.unauthorized.fetch_add(1, Ordering::Relaxed);
        let mut r = es_error(StatusCode::UNAUTHORIZED, "security_exception", "missing or invalid API key");
        r.headers_mut().insert("www-authenticate", HeaderValue::from_static("ApiKey"));
        r
    }
}

fn banner_json() -> Value {
    json!({
        "name": "imdsguard",
        "cluster_name": "imdsguard",
        "cluster_uuid": "aW1kc2d1YXJkLWNsdXN0ZXI",
        "version": {
            "number": ES_VERSION,
            "build_flavor": "default",
            "build_type": "tar",
            "build_hash": "imdsguard",
            "build_date": "2026-01-01T00:00:00.000Z",
            "build_snapshot": false,
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0"
        },
        "tagline": "You Know, for Search"
    })
}

async fn banner() -> Response {
    let mut r = Json(banner_json()).into_response();
    r.headers_mut().insert("x-elastic-product", HeaderValue::from_static("Elasticsearch"));
    r
}

async fn banner_head() -> Response {
    let mut r = StatusCode::OK.into_response();
    r.headers_mut().insert("x-elastic-product", HeaderValue::from_static("Elasticsearch"));
    r
}

async fn license() -> Response {
    Json(json!({"license": {"status": "active", "uid": "imdsguard", "type": "basic", "issue_date_in_millis": 0, "max_nodes": 1000}})).into_response()
}

async fn bulk_root(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    ingest(inner, body, None, false).await
}

async fn bulk_index(State(inner): State<Arc<Inner>>, UrlPath(index): UrlPath<String>, body: Bytes) -> Response {
    ingest(inner, body, Some(index), false).await
}

async fn doc_auto(State(inner): State<Arc<Inner>>, UrlPath(index): UrlPath<String>, body: Bytes) -> Response {
    let mut b = format!("{{\"index\":{{\"_index\":{}}}}}\n", json!(index)).into_bytes();
    b.extend_from_slice(&body);
    b.push(b'\n');
    ingest(inner, Bytes::from(b), Some(index), true).await
}

async fn doc_id(State(inner): State<Arc<Inner>>, UrlPath((index, id)): UrlPath<(String, String)>, body: Bytes) -> Response {
    let mut b = format!("{{\"index\":{{\"_index\":{},\"_id\":{}}}}}\n", json!(index), json!(id)).into_bytes();
    b.extend_from_slice(&body);
    b.push(b'\n');
    ingest(inner, Bytes::from(b), Some(index), true).await
}

async fn ingest(inner: Arc<Inner>, body: Bytes, index: Option<String>, single: bool) -> Response {
    let Ok(permit) = inner.inflight.clone_permit() else {
        inner.metrics.throttled.fetch_add(1, Ordering::Relaxed);
        let mut r = es_error(StatusCode::TOO_MANY_REQUESTS, "es_rejected_execution_exception", "too many batches in flight; retry later");
        r.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
        return r;
    };
    let worker = inner.clone();
    let result = tokio::task::spawn_blocking(move || process(&worker, &body, index.as_deref())).await;
    drop(permit);
    match result {
        Ok(Ok(resp)) => {
            if single {
                // `_doc`: the one item's result, unwrapped.
                let item = resp["items"][0].as_object().and_then(|o| o.values().next().cloned()).unwrap_or(Value::Null);
                let status = item["status"].as_u64().and_then(|s| StatusCode::from_u16(s as u16).ok()).unwrap_or(StatusCode::CREATED);
                (status, Json(item)).into_response()
            } else {
                Json(resp).into_response()
            }
        }
        Ok(Err((status, kind, reason))) => es_error(status, kind, &reason),
        Err(e) => es_error(StatusCode::INTERNAL_SERVER_ERROR, "exception", &format!("batch failed: {e}")),
    }
}

trait ClonePermit {
    fn clone_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ()>;
}

impl ClonePermit for Semaphore {
    fn clone_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ()> {
        self.try_acquire().map_err(|_| ())
    }
}

type BatchError = (StatusCode, &'static str, String);

/// One batch: parse, evaluate, store alerts durably, answer per item.
fn process(inner: &Inner, body: &[u8], index: Option<&str>) -> Result<Value, BatchError> {
    let started = std::time::Instant::now();
    let items = bulk::parse(body, index).map_err(|e| (StatusCode::BAD_REQUEST, "illegal_argument_exception", e))?;
    let mut responses = Vec::with_capacity(items.len());
    let mut events = Vec::new();
    let mut errors = false;
    for item in &items {
        let n = inner.seq.fetch_add(1, Ordering::Relaxed);
        let origin: Arc<str> = Arc::from(format!("_bulk:{}", item.index.as_deref().unwrap_or("")));
        match &item.source {
            Err(reason) => {
                errors = true;
                let id = item.id.clone().unwrap_or_default();
                responses.push(bulk::item_response(item, &id, n, Some((400, "illegal_argument_exception", reason))));
            }
            Ok(src) => match sonic_rs::from_slice::<sonic_rs::Value>(src) {
                Ok(doc) if sonic_rs::JsonValueTrait::is_object(&doc) => {
                    // A document id: the client's, else a hash of the source, so a redelivered
                    // document yields the same alert ids.
                    let id = item.id.clone().unwrap_or_else(|| Sha256::digest(src).iter().take(10).map(|b| format!("{b:02x}")).collect());
                    let key = format!("{}/{id}", item.index.as_deref().unwrap_or(""));
                    responses.push(bulk::item_response(item, &id, n, None));
                    events.push(Event { doc: Arc::new(doc), provenance: Provenance { origin, line: n + 1 }, key, index: item.index.clone() });
                }
                Ok(_) | Err(_) => {
                    errors = true;
                    let id = item.id.clone().unwrap_or_default();
                    let reason = match sonic_rs::from_slice::<sonic_rs::Value>(src) {
                        Err(e) => format!("failed to parse: {e}"),
                        Ok(_) => "the document is not a JSON object".to_string(),
                    };
                    responses.push(bulk::item_response(item, &id, n, Some((400, "document_parsing_exception", &reason))));
                }
            },
        }
    }
    inner.metrics.events_in.fetch_add(events.len() as u64, Ordering::Relaxed);
    inner.metrics.events_rejected.fetch_add((items.len() - events.len()) as u64, Ordering::Relaxed);
    inner.metrics.batches.fetch_add(1, Ordering::Relaxed);

    let (compiled, builtin): (Vec<CompiledRule>, Vec<bool>) = {
        let rules = inner.rules.read().map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "exception", "rule set lock poisoned".to_string()))?;
        rules.iter().filter(|r| r.enabled).map(|r| (r.compiled.clone(), r.builtin)).unzip()
    };
    let now = now_millis();
    let mut engine = inner.engine.lock().map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "exception", "engine lock poisoned".to_string()))?;
    let mut alerts = Vec::new();
    let mut next_stream = None;
    if !compiled.is_empty() && !events.is_empty() {
        let mut hunt = Hunt::new(compiled);
        for e in &events {
            hunt.evaluate(e);
        }
        // The state is updated on a copy: a batch that fails leaves the previous one.
        let mut stream = engine.stream.clone();
        let (matches, _, rules) = hunt
            .finish_stream(engine.history.as_dyn(), &mut stream)
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, "exception", e.to_string()))?;
        if let History::Sqlite(h) = &mut engine.history {
            h.save_stream_state(STREAM_STATE_NAME, &stream).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, "exception", e.to_string()))?;
        }
        next_stream = Some(stream);
        for m in &matches {
            alerts.push(imdsguard_alerts::alert_for_match(m, &rules[m.rule].rule, builtin[m.rule], now).0);
        }
    }
    // Durable before the acknowledgement: the alerts, then the new_terms history.
    engine.store.insert(&alerts).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, "exception", format!("alerts store: {e}")))?;
    engine.history.commit().map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, "exception", e))?;
    if let Some(stream) = next_stream {
        engine.stream = stream;
    }
    drop(engine);
    if let Ok(mut per_rule) = inner.metrics.alerts.lock() {
        for a in &alerts {
            let id = a.get("kibana.alert.rule.rule_id").and_then(Value::as_str).unwrap_or("").to_string();
            *per_rule.entry(id).or_default() += 1;
        }
    }
    let took = started.elapsed();
    inner.metrics.eval_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    Ok(json!({"took": took.as_millis() as u64, "errors": errors, "items": responses}))
}

fn store_error(e: impl std::fmt::Display) -> Response {
    es_error(StatusCode::INTERNAL_SERVER_ERROR, "exception", &format!("alerts store: {e}"))
}

async fn list_alerts(State(inner): State<Arc<Inner>>, Query(params): Query<HashMap<String, String>>) -> Response {
    #[allow(clippy::result_large_err)] // the error is the response itself
    let time = |k: &str| -> Result<Option<i64>, Response> {
        match params.get(k) {
            None => Ok(None),
            Some(v) => imdsguard_ecs::time::parse_date_math(v, now_millis())
                .map(Some)
                .map_err(|e| es_error(StatusCode::BAD_REQUEST, "illegal_argument_exception", &format!("{k}: {e}"))),
        }
    };
    let (since, until) = match (time("since"), time("until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let size = match params.get("size").map(|s| s.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=10_000).contains(&n) => n,
        Some(_) => return es_error(StatusCode::BAD_REQUEST, "illegal_argument_exception", "size must be 1 to 10000"),
    };
    let search_after = match params.get("search_after") {
        None => None,
        Some(v) => match v.split_once(',').and_then(|(t, id)| t.parse::<i64>().ok().map(|t| (t, id.to_string()))) {
            Some(c) => Some(c),
            None => return es_error(StatusCode::BAD_REQUEST, "illegal_argument_exception", "search_after is `<detected epoch ms>,<alert id>`"),
        },
    };
    if let Some(s) = params.get("status") {
        if !STATUSES.contains(&s.as_str()) {
            return es_error(StatusCode::BAD_REQUEST, "illegal_argument_exception", "status is open, acknowledged or closed");
        }
    }
    let q = AlertQuery {
        rule_id: params.get("rule_id").cloned(),
        severity: params.get("severity").cloned(),
        host: params.get("host").cloned(),
        since,
        until,
        status: params.get("status").cloned(),
        size,
        search_after,
    };
    let engine = match inner.engine.lock() {
        Ok(e) => e,
        Err(_) => return store_error("lock poisoned"),
    };
    match engine.store.query(&q) {
        Ok((total, alerts)) => {
            let next = alerts.last().and_then(|a| {
                let t = a.get("@timestamp").and_then(Value::as_str).and_then(imdsguard_ecs::time::parse_date)?;
                Some(format!("{t},{}", a.get("kibana.alert.uuid")?.as_str()?))
            });
            Json(json!({"total": total, "alerts": alerts, "next_search_after": next})).into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn get_alert(State(inner): State<Arc<Inner>>, UrlPath(id): UrlPath<String>) -> Response {
    let engine = match inner.engine.lock() {
        Ok(e) => e,
        Err(_) => return store_error("lock poisoned"),
    };
    match engine.store.get(&id) {
        Ok(Some(a)) => Json(a).into_response(),
        Ok(None) => es_error(StatusCode::NOT_FOUND, "resource_not_found_exception", &format!("no alert [{id}]")),
        Err(e) => store_error(e),
    }
}

async fn set_status(State(inner): State<Arc<Inner>>, UrlPath(id): UrlPath<String>, body: Bytes) -> Response {
    let status = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.get("status").and_then(Value::as_str).map(str::to_string));
    let Some(status) = status.filter(|s| STATUSES.contains(&s.as_str())) else {
        return es_error(StatusCode::BAD_REQUEST, "illegal_argument_exception", "body must be {\"status\": \"open\"|\"acknowledged\"|\"closed\"}");
    };
    let engine = match inner.engine.lock() {
        Ok(e) => e,
        Err(_) => return store_error("lock poisoned"),
    };
    match engine.store.set_status(&id, &status) {
        Ok(true) => Json(json!({"id": id, "status": status})).into_response(),
        Ok(false) => es_error(StatusCode::NOT_FOUND, "resource_not_found_exception", &format!("no alert [{id}]")),
        Err(e) => store_error(e),
    }
}

async fn list_rules(State(inner): State<Arc<Inner>>) -> Response {
    let Ok(rules) = inner.rules.read() else { return store_error("lock poisoned") };
    let rows: Vec<Value> = rules
        .iter()
        .map(|r| {
            let x = &r.compiled.rule;
            json!({"rule_id": x.rule_id, "name": x.name, "type": x.rule_type.as_str(), "severity": x.severity.as_str(),
                   "risk_score": x.risk_score, "enabled": r.enabled, "builtin": r.builtin})
        })
        .collect();
    Json(json!({"total": rows.len(), "rules": rows})).into_response()
}

async fn toggle_rule(State(inner): State<Arc<Inner>>, UrlPath((rule_id, action)): UrlPath<(String, String)>) -> Response {
    let enable = match action.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return es_error(StatusCode::NOT_FOUND, "resource_not_found_exception", "use /api/rules/{rule_id}/enable or /disable"),
    };
    let Ok(mut rules) = inner.rules.write() else { return store_error("lock poisoned") };
    match rules.iter_mut().find(|r| r.compiled.rule.rule_id == rule_id) {
        Some(r) => {
            r.enabled = enable;
            Json(json!({"rule_id": rule_id, "enabled": enable})).into_response()
        }
        None => es_error(StatusCode::NOT_FOUND, "resource_not_found_exception", &format!("no rule [{rule_id}]")),
    }
}

async fn reload_rules(State(inner): State<Arc<Inner>>) -> Response {
    let Some(reload) = inner.reload.clone() else {
        return es_error(StatusCode::BAD_REQUEST, "illegal_argument_exception", "this server has no rule source to reload");
    };
    let loaded = match tokio::task::spawn_blocking(move || reload()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return es_error(StatusCode::BAD_REQUEST, "illegal_argument_exception", &e),
        Err(e) => return store_error(e),
    };
    let (mut fresh, not_run) = compile(loaded, &inner.table);
    let Ok(mut rules) = inner.rules.write() else { return store_error("lock poisoned") };
    // Keep the enabled/disabled choice of rules that stay.
    for f in &mut fresh {
        if let Some(old) = rules.iter().find(|r| r.compiled.rule.rule_id == f.compiled.rule.rule_id) {
            f.enabled = old.enabled;
        }
    }
    *rules = fresh;
    Json(json!({"rules": rules.len(), "not_run": not_run})).into_response()
}

async fn openapi_doc() -> Response {
    Json(openapi::document()).into_response()
}

async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn metrics(State(inner): State<Arc<Inner>>) -> Response {
    let m = &inner.metrics;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"));
    };
    counter("imdsguard_requests_total", "HTTP requests received.", m.requests.load(Ordering::Relaxed));
    counter("imdsguard_events_in_total", "Events accepted for evaluation.", m.events_in.load(Ordering::Relaxed));
    counter("imdsguard_events_dropped_total", "Bulk items rejected (unparsable, update, delete).", m.events_rejected.load(Ordering::Relaxed));
    counter("imdsguard_batches_total", "Ingest batches processed.", m.batches.load(Ordering::Relaxed));
    counter("imdsguard_throttled_total", "Ingest requests refused with 429.", m.throttled.load(Ordering::Relaxed));
    counter("imdsguard_unauthorized_total", "Requests refused for a missing or wrong API key.", m.unauthorized.load(Ordering::Relaxed));
    counter("imdsguard_rule_eval_seconds_total_micros", "Microseconds spent evaluating batches.", m.eval_micros.load(Ordering::Relaxed));
    out.push_str("# HELP imdsguard_alerts_total Alerts raised, per rule.\n# TYPE imdsguard_alerts_total counter\n");
    if let Ok(per_rule) = m.alerts.lock() {
        for (rule, n) in per_rule.iter() {
            out.push_str(&format!("imdsguard_alerts_total{{rule_id=\"{}\"}} {n}\n", rule.replace(['"', '\\', '\n'], "_")));
        }
    }
    out.push_str(&format!(
        "# HELP imdsguard_inflight_batches Batches being processed.\n# TYPE imdsguard_inflight_batches gauge\nimdsguard_inflight_batches {}\n",
        inner.max_inflight - inner.inflight.available_permits()
    ));
    ([("content-type", "text/plain; version=0.0.4")], out).into_response()
}
