//! Knowledge of cloud instance-metadata services: which endpoint a transaction talks to, which
//! provider, whether it asks for credentials, IMDSv1 or IMDSv2, and what the (already redacted)
//! response says about the credentials handed out (type, expiration, role; never their values).

use std::net::IpAddr;

use serde_json::Value;

use crate::http::HttpTransaction;
use crate::json::JsonWriter;

/// How an endpoint is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointAddr {
    Ip(IpAddr),
    /// A `Host` header value (without port), compared case-insensitively.
    Host(String),
}

/// One metadata endpoint; `provider` fixes the provider when the address alone decides it
/// (`None`: decided from headers and path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsEndpoint {
    pub addr: EndpointAddr,
    pub provider: Option<String>,
}

impl ImdsEndpoint {
    /// Parse `ADDR[=PROVIDER]`: an IP address (v4 or v6, brackets allowed) or a host name.
    pub fn parse(spec: &str) -> Result<ImdsEndpoint, String> {
        let (addr, provider) = match spec.rsplit_once('=') {
            Some((a, p)) if !p.is_empty() && !p.contains(':') => (a, Some(p.to_ascii_lowercase())),
            _ => (spec, None),
        };
        let addr = addr.trim().trim_start_matches('[').trim_end_matches(']');
        if addr.is_empty() {
            return Err(format!("`{spec}`: no address or host name"));
        }
        let addr = match addr.parse::<IpAddr>() {
            Ok(ip) => EndpointAddr::Ip(ip),
            Err(_) if addr.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') => EndpointAddr::Host(addr.to_ascii_lowercase()),
            Err(_) => return Err(format!("`{spec}`: neither an IP address nor a host name")),
        };
        Ok(ImdsEndpoint { addr, provider })
    }
}

/// The metadata endpoints to recognise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsConfig {
    pub endpoints: Vec<ImdsEndpoint>,
}

impl Default for ImdsConfig {
    fn default() -> Self {
        let ip = |s: &str, p: Option<&str>| {
            s.parse::<IpAddr>().ok().map(|a| ImdsEndpoint { addr: EndpointAddr::Ip(a), provider: p.map(str::to_string) })
        };
        let mut endpoints: Vec<ImdsEndpoint> = [
            ip("169.254.169.254", None),
            ip("fd00:ec2::254", Some("aws")),
            ip("169.254.170.2", Some("aws-ecs-task")),
            ip("100.100.100.200", Some("alibaba")),
        ]
        .into_iter()
        .flatten()
        .collect();
        endpoints.push(ImdsEndpoint {
            addr: EndpointAddr::Host("metadata.google.internal".to_string()),
            provider: Some("gcp".to_string()),
        });
        ImdsConfig { endpoints }
    }
}

/// What a transaction reveals about metadata-service use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImdsInfo {
    pub cloud_provider: String,
    /// The provider's required request header (`Metadata-Flavor: Google`, `Metadata: true`) was
    /// sent; `None` for providers that require none.
    pub required_header_present: Option<bool>,
    pub credentials_request: bool,
    pub forwarded: bool,
    pub is_imds_v2: Option<bool>,
    pub token_request: Option<bool>,
    pub token_ttl_seconds: Option<u64>,
    pub credentials_type: Option<String>,
    pub credentials_expiration: Option<String>,
    pub credentials_expires_in: Option<u64>,
    pub credentials_role: Option<String>,
    /// The response body carried credential keys (their values are redacted).
    pub credentials_returned: bool,
}

/// The `Host` header without port and IPv6 brackets.
pub fn host_without_port(host: &str) -> &str {
    let h = host.trim();
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    if h.parse::<IpAddr>().is_ok() {
        return h;
    }
    match h.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => h,
    }
}

fn header_is(tx: &HttpTransaction, name: &str, value: &str) -> bool {
    tx.request_headers.iter().any(|h| h.name.eq_ignore_ascii_case(name) && h.value.trim().eq_ignore_ascii_case(value))
}

fn has_header(tx: &HttpTransaction, name: &str) -> bool {
    tx.request_headers.iter().any(|h| h.name.eq_ignore_ascii_case(name))
}

/// Metadata-service facts of a transaction, or `None` when it does not target a configured
/// endpoint.
impl ImdsConfig {
    /// The endpoint a request to `dst` with this `Host` header (without port) goes to, if any.
    pub fn endpoint_of(&self, dst: IpAddr, host: Option<&str>) -> Option<&ImdsEndpoint> {
        self.endpoints.iter().find(|e| match &e.addr {
            EndpointAddr::Ip(ip) => *ip == dst || host.and_then(|h| h.parse::<IpAddr>().ok()) == Some(*ip),
            EndpointAddr::Host(name) => host.is_some_and(|h| h.eq_ignore_ascii_case(name)),
        })
    }
}

pub fn analyze(tx: &HttpTransaction, cfg: &ImdsConfig) -> Option<ImdsInfo> {
    let dst = tx.flow.server.ip();
    let host = tx.request_header("host").map(host_without_port);
    let endpoint = cfg.endpoint_of(dst, host)?;
    let path = tx.path.as_str();
    let lpath = path.to_ascii_lowercase();
    let provider = match &endpoint.provider {
        Some(p) => p.clone(),
        None => detect_provider(tx, &lpath).to_string(),
    };
    let mut info = ImdsInfo { cloud_provider: provider.clone(), ..ImdsInfo::default() };
    info.forwarded = has_header(tx, "x-forwarded-for");
    match provider.as_str() {
        "gcp" => info.required_header_present = Some(header_is(tx, "metadata-flavor", "Google")),
        "azure" => info.required_header_present = Some(header_is(tx, "metadata", "true")),
        "oracle" if lpath.starts_with("/opc/v2/") => {
            info.required_header_present = Some(header_is(tx, "authorization", "Bearer Oracle"))
        }
        _ => {}
    }
    if provider == "aws" {
        info.is_imds_v2 = Some(has_header(tx, "x-aws-ec2-metadata-token"));
        let token = tx.method.eq_ignore_ascii_case("PUT") && path == "/latest/api/token";
        info.token_request = Some(token);
        if token {
            info.token_ttl_seconds =
                tx.request_header("x-aws-ec2-metadata-token-ttl-seconds").and_then(|v| v.trim().parse().ok());
        }
    }
    info.credentials_request = is_credentials_path(&provider, &lpath);
    if info.credentials_request && matches!(provider.as_str(), "aws" | "alibaba") {
        info.credentials_role = path.rsplit('/').next().filter(|s| !s.is_empty()).map(str::to_string);
    }
    if let Some(body) = &tx.response_body {
        read_credentials(body, &mut info);
    }
    Some(info)
}

fn detect_provider(tx: &HttpTransaction, lpath: &str) -> &'static str {
    if has_header(tx, "metadata-flavor") || lpath.starts_with("/computemetadata/") {
        "gcp"
    } else if lpath.starts_with("/opc/") {
        "oracle"
    } else if lpath.starts_with("/metadata/v1") {
        "digitalocean"
    } else if lpath.starts_with("/openstack") {
        "openstack"
    } else if header_is(tx, "metadata", "true") || lpath.starts_with("/metadata/") {
        "azure"
    } else if lpath.starts_with("/latest/")
        || lpath == "/latest"
        || lpath.as_bytes().first().is_some_and(|_| is_dated_aws(lpath))
        || has_header(tx, "x-aws-ec2-metadata-token")
        || has_header(tx, "x-aws-ec2-metadata-token-ttl-seconds")
    {
        "aws"
    } else {
        "unknown"
    }
}

/// `/2009-04-04/meta-data/...` style AWS paths.
fn is_dated_aws(lpath: &str) -> bool {
    let b = lpath.as_bytes();
    b.len() >= 11 && b[0] == b'/' && b[1..5].iter().all(u8::is_ascii_digit) && b[5] == b'-' && b[8] == b'-'
}

fn is_credentials_path(provider: &str, lpath: &str) -> bool {
    match provider {
        "aws" => {
            lpath.contains("/meta-data/iam/security-credentials/")
                || lpath.contains("/meta-data/identity-credentials/ec2/security-credentials/")
        }
        "gcp" => lpath.contains("/service-accounts/") && (lpath.ends_with("/token") || lpath.ends_with("/identity")),
        "azure" => lpath.contains("metadata/identity/oauth2/token"),
        "aws-ecs-task" => lpath.starts_with("/v2/credentials"),
        "alibaba" => lpath.contains("ram/security-credentials"),
        "oracle" => lpath.starts_with("/opc/v1/identity/") || lpath.starts_with("/opc/v2/identity/"),
        "digitalocean" | "openstack" => false,
        _ => {
            lpath.contains("security-credentials") || lpath.contains("oauth2/token") || lpath.ends_with("/token")
        }
    }
}

fn read_credentials(body: &str, info: &mut ImdsInfo) {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body.trim()) else { return };
    let get = |k: &str| map.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v);
    let s = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let n = |v: &Value| match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    info.credentials_returned = ["AccessKeyId", "SecretAccessKey", "Token", "access_token", "AccessKeySecret", "SecurityToken"]
        .iter()
        .any(|k| get(k).is_some());
    if let Some(t) = get("Type").and_then(s).or_else(|| get("token_type").and_then(s)) {
        info.credentials_type = Some(t);
    }
    if let Some(e) = get("Expiration").and_then(s) {
        info.credentials_expiration = Some(e);
    }
    if info.credentials_expiration.is_none() {
        // Azure: `expires_on`, seconds since the epoch.
        if let Some(secs) = get("expires_on").and_then(n).filter(|s| *s < 1 << 40) {
            info.credentials_expiration = Some(crate::ecs::rfc3339_micros((secs as i64).saturating_mul(1_000_000)));
        }
    }
    if let Some(e) = get("expires_in").and_then(n) {
        info.credentials_expires_in = Some(e);
    }
    if info.credentials_role.is_none() {
        if let Some(r) = get("RoleArn").and_then(s) {
            info.credentials_role = r.rsplit('/').next().map(str::to_string);
        }
    }
}

impl ImdsInfo {
    /// The `imds` object of an ECS event.
    pub fn to_json(&self) -> Value {
        let mut buf = Vec::new();
        self.write_json(&mut JsonWriter::new(&mut buf));
        serde_json::from_slice(&buf).unwrap_or(Value::Null)
    }

    /// Write the `imds` object as the value of the member being written.
    pub fn write_json(&self, w: &mut JsonWriter<'_>) {
        w.begin_object();
        w.kv_trusted("cloud_provider", &self.cloud_provider);
        w.kv_bool("credentials_request", self.credentials_request);
        w.kv_bool("forwarded", self.forwarded);
        if let Some(p) = self.required_header_present {
            w.kv_bool("required_header_present", p);
        }
        if let Some(v2) = self.is_imds_v2 {
            w.object("aws");
            w.kv_bool("is_imds_v2", v2);
            w.kv_bool("token_request", self.token_request.unwrap_or(false));
            if let Some(ttl) = self.token_ttl_seconds {
                w.kv_u64("token_ttl_seconds", ttl);
            }
            w.end_object();
        }
        let has_credentials = self.credentials_type.is_some()
            || self.credentials_expiration.is_some()
            || self.credentials_expires_in.is_some()
            || self.credentials_role.is_some()
            || self.credentials_returned;
        if has_credentials {
            w.object("credentials");
            if let Some(t) = &self.credentials_type {
                w.kv("type", t);
            }
            if let Some(e) = &self.credentials_expiration {
                w.kv("expiration", e);
            }
            if let Some(e) = self.credentials_expires_in {
                w.kv_u64("expires_in", e);
            }
            if let Some(r) = &self.credentials_role {
                w.kv("role", r);
            }
            if self.credentials_returned {
                w.kv_bool("returned", true);
            }
            w.end_object();
        }
        w.end_object();
    }
}

#[cfg(test)]
mod endpoint_tests {
    use super::*;

    #[test]
    fn endpoint_specs() {
        let ip = |s: &str| EndpointAddr::Ip(s.parse().expect("ip"));
        let cases: &[(&str, Result<ImdsEndpoint, &str>)] = &[
            ("10.0.0.254=openstack", Ok(ImdsEndpoint { addr: ip("10.0.0.254"), provider: Some("openstack".into()) })),
            ("169.254.169.254", Ok(ImdsEndpoint { addr: ip("169.254.169.254"), provider: None })),
            ("[fd00:ec2::254]=AWS", Ok(ImdsEndpoint { addr: ip("fd00:ec2::254"), provider: Some("aws".into()) })),
            ("fd00:ec2::254", Ok(ImdsEndpoint { addr: ip("fd00:ec2::254"), provider: None })),
            ("Metadata.Internal.Example", Ok(ImdsEndpoint { addr: EndpointAddr::Host("metadata.internal.example".into()), provider: None })),
            ("=aws", Err("no address")),
            ("a b", Err("neither")),
        ];
        for (spec, want) in cases {
            match (ImdsEndpoint::parse(spec), want) {
                (Ok(got), Ok(w)) => assert_eq!(&got, w, "{spec}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{spec}: {e}"),
                (got, w) => panic!("{spec}: {got:?} vs {w:?}"),
            }
        }
    }
}

