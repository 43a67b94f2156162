//! The pure core: [`handle`] turns one [`Request`] into one [`Response`] given the [`State`]
//! (instance data, per-run secrets, runtime settings, a clock). No sockets, no I/O: the server
//! module feeds it, and tests drive it directly.

use crate::config::MockConfig;
use crate::http::{reason, ImdsVersion, Meta, Provider, Request, Response};
use crate::secrets::Secrets;
use crate::{aws, azure, ecs, gcp};
use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// `HttpTokens`: whether IMDSv1 (no session token) is still answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpTokens {
    Optional,
    Required,
}

/// `HttpEndpoint`: whether the AWS metadata endpoint answers at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpEndpoint {
    Enabled,
    Disabled,
}

/// Which services the mock answers for (`--provider`); requests are routed by path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Providers {
    /// AWS IMDS and the ECS task credentials endpoint.
    pub aws: bool,
    pub gcp: bool,
    pub azure: bool,
}

impl Providers {
    pub const ALL: Providers = Providers { aws: true, gcp: true, azure: true };
}

/// The source of time (injectable so token expiry is testable without sleeping).
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Default, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn at(t: DateTime<Utc>) -> ManualClock {
        ManualClock { millis: Arc::new(AtomicI64::new(t.timestamp_millis())) }
    }

    pub fn advance_secs(&self, secs: i64) {
        self.millis.fetch_add(secs * 1000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.millis.load(Ordering::SeqCst)).single().unwrap_or_default()
    }
}

/// Everything [`handle`] needs. Shared by all connections; the AWS settings can be changed while
/// the server runs (like `aws ec2 modify-instance-metadata-options`).
pub struct State {
    pub config: MockConfig,
    pub providers: Providers,
    pub(crate) secrets: Secrets,
    clock: Box<dyn Clock>,
    /// When this run started (Unix seconds): `LastUpdated`, `Last-Modified`, rotation windows.
    pub(crate) start: i64,
    tokens_required: AtomicBool,
    endpoint_enabled: AtomicBool,
    hop_limit: AtomicU8,
    nonce: AtomicU64,
    pub(crate) aws_tree: Node,
    pub(crate) gcp_tree: Node,
    pub(crate) azure_instance: serde_json::Value,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("providers", &self.providers).field("http_tokens", &self.http_tokens()).finish_non_exhaustive()
    }
}

/// The AWS instance metadata options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub http_tokens: HttpTokens,
    pub http_endpoint: HttpEndpoint,
    /// `HttpPutResponseHopLimit`, 1..=64.
    pub hop_limit: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { http_tokens: HttpTokens::Optional, http_endpoint: HttpEndpoint::Enabled, hop_limit: 1 }
    }
}

impl State {
    pub fn new(config: MockConfig, settings: Settings, providers: Providers, secrets: Secrets, clock: Box<dyn Clock>) -> State {
        let start = clock.now().timestamp();
        let aws_tree = aws::build_tree(&config);
        let gcp_tree = gcp::build_tree(&config);
        let azure_instance = azure::instance_document(&config);
        let s = State {
            config,
            providers,
            secrets,
            clock,
            start,
            tokens_required: AtomicBool::new(false),
            endpoint_enabled: AtomicBool::new(true),
            hop_limit: AtomicU8::new(1),
            nonce: AtomicU64::new(0),
            aws_tree,
            gcp_tree,
            azure_instance,
        };
        s.apply(settings);
        s
    }

    /// Changes the AWS metadata options at run time.
    pub fn apply(&self, settings: Settings) {
        self.set_http_tokens(settings.http_tokens);
        self.set_http_endpoint(settings.http_endpoint);
        self.set_hop_limit(settings.hop_limit);
    }

    pub fn set_http_tokens(&self, t: HttpTokens) {
        self.tokens_required.store(t == HttpTokens::Required, Ordering::SeqCst);
    }

    pub fn set_http_endpoint(&self, e: HttpEndpoint) {
        self.endpoint_enabled.store(e == HttpEndpoint::Enabled, Ordering::SeqCst);
    }

    /// Values outside 1..=64 (the AWS range) are clamped into it.
    pub fn set_hop_limit(&self, n: u8) {
        self.hop_limit.store(n.clamp(1, 64), Ordering::SeqCst);
    }

    pub fn http_tokens(&self) -> HttpTokens {
        if self.tokens_required.load(Ordering::SeqCst) {
            HttpTokens::Required
        } else {
            HttpTokens::Optional
        }
    }

    pub fn http_endpoint(&self) -> HttpEndpoint {
        if self.endpoint_enabled.load(Ordering::SeqCst) {
            HttpEndpoint::Enabled
        } else {
            HttpEndpoint::Disabled
        }
    }

    pub fn hop_limit(&self) -> u8 {
        self.hop_limit.load(Ordering::SeqCst)
    }

    pub fn settings(&self) -> Settings {
        Settings { http_tokens: self.http_tokens(), http_endpoint: self.http_endpoint(), hop_limit: self.hop_limit() }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(crate) fn next_nonce(&self) -> u64 {
        self.nonce.fetch_add(1, Ordering::Relaxed)
    }

    /// The AWS credentials currently handed out for the instance role (`"ec2"`) or the ECS task
    /// (`"ecs"`); tests use this to check what a client received.
    pub fn aws_credentials(&self, label: &str) -> crate::secrets::AwsCredentials {
        self.secrets.aws_credentials(label, self.start, self.now().timestamp())
    }
}

/// A metadata tree (AWS `meta-data/`, GCP `computeMetadata/v1/`): directories and leaves.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    Dir(BTreeMap<String, Node>),
    Leaf(Leaf),
}

/// A leaf's value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Leaf {
    Text(String),
    /// A number (GCP recursive JSON writes it unquoted).
    Num(u64),
    /// Lines (GCP scopes, aliases): text joins them with newlines, JSON makes an array.
    List(Vec<String>),
    /// Computed when asked (credentials, tokens, documents).
    Dyn(Dyn),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dyn {
    AwsIamInfo,
    AwsRoleCredentials,
    AwsIdentityDocument,
    AwsIdentitySignature,
    AwsIdentityPkcs7,
    AwsIdentityRsa2048,
    GcpToken,
    GcpIdentity,
}

impl Node {
    pub(crate) fn dir<I: IntoIterator<Item = (String, Node)>>(entries: I) -> Node {
        Node::Dir(entries.into_iter().collect())
    }

    pub(crate) fn text(s: impl Into<String>) -> Node {
        Node::Leaf(Leaf::Text(s.into()))
    }

    /// Follows `segments` (empty segments ignored) from this node.
    pub(crate) fn find<'a>(&'a self, segments: &[&str]) -> Option<&'a Node> {
        let mut n = self;
        for seg in segments.iter().filter(|s| !s.is_empty()) {
            match n {
                Node::Dir(m) => n = m.get(*seg)?,
                Node::Leaf(_) => return None,
            }
        }
        Some(n)
    }
}

/// Routes a request to the provider that owns its path and answers it.
pub fn handle(state: &State, req: &Request) -> Response {
    let p = req.path.as_str();
    let mut resp = if p == "/computeMetadata" || p.starts_with("/computeMetadata/") {
        if state.providers.gcp {
            gcp::handle(state, req)
        } else {
            fallback_not_found(state, req)
        }
    } else if p == "/metadata" || p.starts_with("/metadata/") {
        if state.providers.azure {
            azure::handle(state, req)
        } else {
            fallback_not_found(state, req)
        }
    } else if p == "/v2/credentials" || p.starts_with("/v2/credentials/") {
        if state.providers.aws {
            ecs::handle(state, req)
        } else {
            fallback_not_found(state, req)
        }
    } else if state.providers.aws {
        aws::handle(state, req)
    } else if state.providers.gcp && p == "/" {
        gcp::handle(state, req)
    } else {
        fallback_not_found(state, req)
    };
    resp.http10 = req.http10;
    if req.method == "HEAD" {
        resp.head_only = true;
    }
    resp
}

/// A path no enabled provider owns: the 404 of the first enabled provider.
fn fallback_not_found(state: &State, req: &Request) -> Response {
    if state.providers.aws {
        aws::not_found(state, ImdsVersion::None)
    } else if state.providers.gcp {
        gcp::not_found(state, req)
    } else {
        azure::not_found(state)
    }
}

/// HTTP-date (RFC 9110 IMF-fixdate).
pub(crate) fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// ISO 8601 in seconds with `Z`, as AWS writes `LastUpdated` and `Expiration`.
pub(crate) fn iso_seconds(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0).single().unwrap_or_default().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Builds a response; `Content-Length` is appended after `headers` unless `len_at` places it.
pub(crate) fn response(status: u16, headers: Vec<(&'static str, String)>, body: Vec<u8>, meta: Meta) -> Response {
    Response { status, reason: reason(status), headers, body, hop_limit: None, head_only: false, http10: false, meta }
}

pub(crate) fn meta(provider: Provider, imds_version: ImdsVersion, outcome: &'static str) -> Meta {
    Meta { provider, imds_version, outcome }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    pub(crate) const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    pub(crate) fn state_with(providers: Providers, settings: Settings) -> (State, ManualClock) {
        let clock = ManualClock::at(Utc.timestamp_opt(T0, 0).single().unwrap_or_default());
        let st = State::new(MockConfig::default(), settings, providers, Secrets::from_seed([3; 32]), Box::new(clock.clone()));
        (st, clock)
    }

    pub(crate) fn state() -> (State, ManualClock) {
        state_with(Providers::ALL, Settings::default())
    }

    pub(crate) fn get(path: &str) -> Request {
        Request::new("GET", path)
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn routing_by_path_and_provider_selection() {
        // (providers, path, headers, want status, want provider)
        let aws_only = Providers { aws: true, gcp: false, azure: false };
        let gcp_only = Providers { aws: false, gcp: true, azure: false };
        type Case<'a> = (Providers, &'a str, Vec<(&'a str, &'a str)>, u16, Provider);
        let cases: Vec<Case> = vec![
            (Providers::ALL, "/latest/meta-data/instance-id", vec![], 200, Provider::Aws),
            (Providers::ALL, "/computeMetadata/v1/instance/id", vec![("Metadata-Flavor", "Google")], 200, Provider::Gcp),
            (Providers::ALL, "/metadata/instance?api-version=2021-02-01", vec![("Metadata", "true")], 200, Provider::Azure),
            (Providers::ALL, "/v2/credentials/5e1c8d0a-7b3f-4c2e-9a61-0123456789ab", vec![], 200, Provider::Ecs),
            (Providers::ALL, "/nothing-here", vec![], 404, Provider::Aws),
            (aws_only, "/computeMetadata/v1/instance/id", vec![("Metadata-Flavor", "Google")], 404, Provider::Aws),
            (gcp_only, "/latest/meta-data/instance-id", vec![], 404, Provider::Gcp),
            (gcp_only, "/v2/credentials/x", vec![], 404, Provider::Gcp),
            (gcp_only, "/", vec![("Metadata-Flavor", "Google")], 200, Provider::Gcp),
        ];
        for (providers, path, headers, status, provider) in cases {
            let (st, _) = state_with(providers, Settings::default());
            let mut req = get(path);
            for (n, v) in headers {
                req = req.with_header(n, v);
            }
            let r = handle(&st, &req);
            assert_eq!((r.status, r.meta.provider), (status, provider), "{path} {providers:?}: {}", r.body_str());
        }
    }

    #[test]
    fn head_and_http10_are_honoured() {
        let (st, _) = state();
        let mut req = Request::new("HEAD", "/latest/meta-data/instance-id");
        req.http10 = true;
        let r = handle(&st, &req);
        assert_eq!(r.status, 200);
        let wire = String::from_utf8_lossy(&r.to_bytes()).into_owned();
        assert!(wire.starts_with("HTTP/1.0 200 OK\r\n"), "{wire}");
        assert!(wire.ends_with("\r\n\r\n"), "HEAD has no body: {wire}");
        assert!(wire.contains("Content-Length: 19\r\n"), "{wire}");
    }

    proptest::proptest! {
        /// Any request (parsed from arbitrary bytes, or built from arbitrary paths, queries and
        /// headers) gets an answer, never a panic.
        #[test]
        fn handle_never_panics(
            method in proptest::sample::select(vec!["GET", "PUT", "HEAD", "POST", "OPTIONS", "DELETE", "get"]),
            prefix in proptest::sample::select(vec!["/", "/latest/", "/latest/meta-data/", "/latest/api/token", "/computeMetadata/v1/", "/metadata/instance/", "/metadata/identity/oauth2/token", "/v2/credentials/", "/latest/dynamic/instance-identity/"]),
            tail in "[a-zA-Z0-9/._%?&=:-]{0,40}",
            headers in proptest::collection::vec((proptest::sample::select(vec!["X-aws-ec2-metadata-token", "X-aws-ec2-metadata-token-ttl-seconds", "Metadata-Flavor", "Metadata", "X-Forwarded-For", "Content-Length"]), "[ -~]{0,60}"), 0..4),
            required in proptest::bool::ANY,
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
        ) {
            let (st, _) = state();
            if required {
                st.set_http_tokens(HttpTokens::Required);
            }
            let mut req = Request::new(method, &format!("{prefix}{tail}"));
            for (n, v) in headers {
                req = req.with_header(n, &v);
            }
            let r = handle(&st, &req);
            proptest::prop_assert!((200..600).contains(&r.status));
            proptest::prop_assert!(r.header("Content-Length").is_some());
            if let Ok(crate::http::Parsed::Complete { request, .. }) = crate::http::parse_head(&raw) {
                let _ = handle(&st, &request);
            }
        }
    }

    #[test]
    fn settings_change_at_run_time_and_hop_limit_is_clamped() {
        let (st, _) = state();
        assert_eq!(st.settings(), Settings::default());
        st.apply(Settings { http_tokens: HttpTokens::Required, http_endpoint: HttpEndpoint::Disabled, hop_limit: 200 });
        assert_eq!(st.settings(), Settings { http_tokens: HttpTokens::Required, http_endpoint: HttpEndpoint::Disabled, hop_limit: 64 });
        st.set_hop_limit(0);
        assert_eq!(st.hop_limit(), 1);
    }
}
