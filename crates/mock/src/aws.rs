//! AWS EC2 instance metadata (IMDSv1 and IMDSv2), as documented in the EC2 user guide
//! ("Use the Instance Metadata Service to access instance metadata", "Configure the instance
//! metadata options") and as the real service answers on the wire:
//!
//! - `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` between 1 and 21600
//!   issues a session token (`200`, the TTL echoed in `X-Aws-Ec2-Metadata-Token-Ttl-Seconds`, sent
//!   with the IP TTL set to `HttpPutResponseHopLimit`); a missing or invalid TTL is `400`; a PUT
//!   carrying `X-Forwarded-For` is `403`; any other method on the token path is
//!   `405 Not Allowed` with `Allow: OPTIONS, PUT`.
//! - A request with `X-aws-ec2-metadata-token` is IMDSv2: an invalid or expired token is `401`
//!   whatever `HttpTokens` says; a valid one is answered with its remaining TTL in
//!   `X-Aws-Ec2-Metadata-Token-Ttl-Seconds`. A request without a token is IMDSv1: `401` when
//!   `HttpTokens` is `required`.
//! - `HttpEndpoint` `disabled`: every request is `403`.
//! - Errors carry the service's XHTML error page; every response has `Server: EC2ws` and
//!   `Connection: close`; listings are newline-separated, directories end with `/` inside
//!   `meta-data/`, and the version roots list `dynamic`, `meta-data`, `user-data` without slashes.

use crate::config::MockConfig;
use crate::core::{http_date, iso_seconds, meta, response, Dyn, Leaf, Node, State};
use crate::http::{ImdsVersion, Provider, Request, Response};
use crate::core::{HttpEndpoint, HttpTokens};
use crate::secrets::TokenError;

/// The metadata API versions the root lists (the real service lists every dated version it
/// supports, then `latest`); each one serves the same tree.
pub const VERSIONS: &[&str] = &[
    "1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15", "2008-02-01", "2008-09-01", "2009-04-04",
    "2011-01-01", "2011-05-01", "2012-01-12", "2014-02-25", "2014-11-05", "2015-10-20", "2016-04-19", "2016-06-30",
    "2016-09-02", "2018-03-28", "2018-08-17", "2018-09-24", "2019-10-01", "2020-10-27", "2021-01-03", "2021-03-23",
    "2021-07-15", "2022-09-24", "2024-04-11", "latest",
];

/// The header a client sends its session token in.
pub const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
/// The header a token PUT asks for a TTL with (and responses give the TTL in).
pub const TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
/// The longest token TTL, in seconds (six hours).
pub const MAX_TTL: u32 = 21_600;

/// The tree under a version root: `dynamic/`, `meta-data/`, `user-data`.
pub(crate) fn build_tree(cfg: &MockConfig) -> Node {
    let a = &cfg.aws;
    let text = |v: &str| Node::text(v.to_string());
    let s = |v: &str| v.to_string();
    let mut md: Vec<(String, Node)> = vec![
        (s("ami-id"), text(&a.ami_id)),
        (s("ami-launch-index"), text("0")),
        (s("ami-manifest-path"), text("(unknown)")),
        (s("block-device-mapping"), Node::dir([(s("ami"), text("/dev/xvda")), (s("root"), text("/dev/xvda"))])),
        (
            s("events"),
            Node::dir([(s("maintenance"), Node::dir([(s("history"), text("[]")), (s("scheduled"), text("[]"))]))]),
        ),
        (s("hostname"), text(&a.hostname)),
        (s("instance-action"), text("none")),
        (s("instance-id"), text(&a.instance_id)),
        (s("instance-life-cycle"), text("on-demand")),
        (s("instance-type"), text(&a.instance_type)),
        (s("local-hostname"), text(&a.hostname)),
        (s("local-ipv4"), text(&a.local_ipv4)),
        (s("mac"), text(&a.mac)),
        (s("metrics"), Node::dir([(s("vhostmd"), text("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"))])),
        (
            s("placement"),
            Node::dir([
                (s("availability-zone"), text(&a.availability_zone)),
                (s("availability-zone-id"), text(&a.availability_zone_id)),
                (s("region"), text(&a.region)),
            ]),
        ),
        (s("profile"), text("default-hvm")),
        (s("reservation-id"), text(&a.reservation_id)),
        (s("security-groups"), text(&a.security_group)),
        (s("services"), Node::dir([(s("domain"), text("amazonaws.com")), (s("partition"), text("aws"))])),
    ];
    let mut mac_dir: Vec<(String, Node)> = vec![
        (s("device-number"), text("0")),
        (s("interface-id"), text(&a.interface_id)),
        (s("local-hostname"), text(&a.hostname)),
        (s("local-ipv4s"), text(&a.local_ipv4)),
        (s("mac"), text(&a.mac)),
        (s("owner-id"), text(&a.account_id)),
        (s("security-group-ids"), text(&a.security_group_id)),
        (s("security-groups"), text(&a.security_group)),
        (s("subnet-id"), text(&a.subnet_id)),
        (s("subnet-ipv4-cidr-block"), text(&a.subnet_cidr)),
        (s("vpc-id"), text(&a.vpc_id)),
        (s("vpc-ipv4-cidr-block"), text(&a.vpc_cidr)),
        (s("vpc-ipv4-cidr-blocks"), text(&a.vpc_cidr)),
    ];
    if !a.public_ipv4.is_empty() {
        md.push((s("public-ipv4"), text(&a.public_ipv4)));
        md.push((s("public-hostname"), text(&a.public_hostname)));
        mac_dir.push((s("public-ipv4s"), text(&a.public_ipv4)));
        mac_dir.push((s("public-hostname"), text(&a.public_hostname)));
        mac_dir.push((s("ipv4-associations"), Node::dir([(a.public_ipv4.clone(), text(&a.local_ipv4))])));
    }
    md.push((
        s("network"),
        Node::dir([(s("interfaces"), Node::dir([(s("macs"), Node::dir([(a.mac.clone(), Node::dir(mac_dir))]))]))]),
    ));
    if !a.role_name.is_empty() {
        md.push((
            s("iam"),
            Node::dir([
                (s("info"), Node::Leaf(Leaf::Dyn(Dyn::AwsIamInfo))),
                (s("security-credentials"), Node::dir([(a.role_name.clone(), Node::Leaf(Leaf::Dyn(Dyn::AwsRoleCredentials)))])),
            ]),
        ));
    }
    let dynamic = Node::dir([(
        s("instance-identity"),
        Node::dir([
            (s("document"), Node::Leaf(Leaf::Dyn(Dyn::AwsIdentityDocument))),
            (s("pkcs7"), Node::Leaf(Leaf::Dyn(Dyn::AwsIdentityPkcs7))),
            (s("rsa2048"), Node::Leaf(Leaf::Dyn(Dyn::AwsIdentityRsa2048))),
            (s("signature"), Node::Leaf(Leaf::Dyn(Dyn::AwsIdentitySignature))),
        ]),
    )]);
    let mut root = vec![(s("dynamic"), dynamic), (s("meta-data"), Node::dir(md))];
    if !a.user_data.is_empty() {
        root.push((s("user-data"), text(&a.user_data)));
    }
    Node::dir(root)
}

const ERROR_PAGE: &str = "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\t\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n <head>\n  <title>{T}</title>\n </head>\n <body>\n  <h1>{T}</h1>\n </body>\n</html>\n";

fn error(state: &State, status: u16, version: ImdsVersion, outcome: &'static str) -> Response {
    let title = format!("{status} - {}", crate::http::reason(status));
    let body = ERROR_PAGE.replace("{T}", &title).into_bytes();
    let headers = vec![
        ("Content-Type", "text/html".to_string()),
        ("Content-Length", body.len().to_string()),
        ("Date", http_date(state.now())),
        ("Server", "EC2ws".to_string()),
        ("Connection", "close".to_string()),
    ];
    response(status, headers, body, meta(Provider::Aws, version, outcome))
}

pub(crate) fn not_found(state: &State, version: ImdsVersion) -> Response {
    error(state, 404, version, "not_found")
}

/// `405 Not Allowed` as the token endpoint sends it (empty `text/plain` body, an `Allow` list).
fn not_allowed(state: &State, allow: &str, version: ImdsVersion) -> Response {
    let headers = vec![
        ("Allow", allow.to_string()),
        ("Content-Length", "0".to_string()),
        ("Date", http_date(state.now())),
        ("Server", "EC2ws".to_string()),
        ("Connection", "close".to_string()),
        ("Content-Type", "text/plain".to_string()),
    ];
    let mut r = response(405, headers, Vec::new(), meta(Provider::Aws, version, "method_not_allowed"));
    r.reason = "Not Allowed";
    r
}

fn ok(state: &State, content_type: &str, body: Vec<u8>, ttl_left: Option<i64>, version: ImdsVersion, outcome: &'static str) -> Response {
    let mut headers = Vec::with_capacity(9);
    if let Some(ttl) = ttl_left {
        headers.push(("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", ttl.to_string()));
    }
    headers.extend([
        ("Content-Type", content_type.to_string()),
        ("Accept-Ranges", "none".to_string()),
        ("Last-Modified", http_date(chrono::DateTime::from_timestamp(state.start, 0).unwrap_or_default())),
        ("Content-Length", body.len().to_string()),
        ("Date", http_date(state.now())),
        ("Server", "EC2ws".to_string()),
        ("Connection", "close".to_string()),
    ]);
    response(200, headers, body, meta(Provider::Aws, version, outcome))
}

fn is_token_path(segments: &[&str]) -> bool {
    segments.len() >= 3 && VERSIONS.contains(&segments[0]) && segments[1] == "api" && segments[2] == "token" && segments[3..].iter().all(|s| s.is_empty())
}

pub(crate) fn handle(state: &State, req: &Request) -> Response {
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let token_path = is_token_path(&segments);
    let asked_v2 = token_path || req.has_header(TOKEN_HEADER);
    let version = if asked_v2 { ImdsVersion::V2 } else { ImdsVersion::V1 };
    if state.http_endpoint() == HttpEndpoint::Disabled {
        return error(state, 403, version, "endpoint_disabled");
    }
    if token_path {
        return token(state, req);
    }
    if req.method != "GET" && req.method != "HEAD" {
        return not_allowed(state, "OPTIONS, GET, HEAD", version);
    }
    // Authentication: a token, when sent, must be valid whatever HttpTokens says.
    let ttl_left = match req.header(TOKEN_HEADER) {
        Some(t) => match state.secrets.verify_token(t, state.now().timestamp()) {
            Ok(left) => Some(left),
            Err(TokenError::Expired) => return error(state, 401, version, "token_expired"),
            Err(TokenError::Invalid) => return error(state, 401, version, "token_invalid"),
        },
        None if state.http_tokens() == HttpTokens::Required => return error(state, 401, version, "token_missing"),
        None => None,
    };
    serve_path(state, &segments, ttl_left, version)
}

fn token(state: &State, req: &Request) -> Response {
    let v = ImdsVersion::V2;
    if req.method == "OPTIONS" {
        let mut r = not_allowed(state, "OPTIONS, PUT", v);
        r.status = 200;
        r.reason = "OK";
        r.meta.outcome = "ok";
        return r;
    }
    if req.method != "PUT" {
        return not_allowed(state, "OPTIONS, PUT", v);
    }
    let mut r = if req.has_header("X-Forwarded-For") {
        error(state, 403, v, "token_refused_forwarded")
    } else {
        match req.header(TTL_HEADER).map(str::trim) {
            None => error(state, 400, v, "token_ttl_missing"),
            Some(t) => match t.parse::<u32>() {
                Ok(ttl) if (1..=MAX_TTL).contains(&ttl) => {
                    let now = state.now().timestamp();
                    let token = state.secrets.mint_token(now, ttl, state.next_nonce());
                    ok(state, "text/plain", token.into_bytes(), Some(i64::from(ttl)), v, "token_issued")
                }
                _ => error(state, 400, v, "token_ttl_invalid"),
            },
        }
    };
    r.hop_limit = Some(state.hop_limit());
    r
}

fn serve_path(state: &State, segments: &[&str], ttl_left: Option<i64>, version: ImdsVersion) -> Response {
    // "/" lists the versions.
    if segments.iter().all(|s| s.is_empty()) {
        return ok(state, "text/plain", VERSIONS.join("\n").into_bytes(), ttl_left, version, "ok");
    }
    if !VERSIONS.contains(&segments[0]) {
        return not_found(state, version);
    }
    let rest = &segments[1..];
    let Some(node) = state.aws_tree.find(rest) else {
        return not_found(state, version);
    };
    match node {
        Node::Dir(entries) => {
            let top = rest.iter().all(|s| s.is_empty());
            let listing: Vec<String> = entries
                .iter()
                .map(|(name, n)| match n {
                    Node::Dir(_) if !top => format!("{name}/"),
                    _ => name.clone(),
                })
                .collect();
            ok(state, "text/plain", listing.join("\n").into_bytes(), ttl_left, version, "ok")
        }
        Node::Leaf(leaf) => {
            let user_data = rest.first() == Some(&"user-data");
            let body = leaf_body(state, leaf);
            let outcome = if matches!(leaf, Leaf::Dyn(Dyn::AwsRoleCredentials)) { "credentials" } else { "ok" };
            let ct = if user_data { "application/octet-stream" } else { "text/plain" };
            ok(state, ct, body.into_bytes(), ttl_left, version, outcome)
        }
    }
}

/// Renders ordered fields the way the service pretty-prints its JSON documents
/// (`{\n  "Key" : value,\n ...\n}`).
fn aws_json(fields: &[(&str, serde_json::Value)]) -> String {
    let lines: Vec<String> = fields.iter().map(|(k, v)| format!("  \"{k}\" : {v}")).collect();
    format!("{{\n{}\n}}", lines.join(",\n"))
}

fn leaf_body(state: &State, leaf: &Leaf) -> String {
    use serde_json::Value as V;
    let a = &state.config.aws;
    match leaf {
        Leaf::Text(t) => t.clone(),
        Leaf::Num(n) => n.to_string(),
        Leaf::List(l) => l.join("\n"),
        Leaf::Dyn(d) => match d {
            Dyn::AwsIamInfo => {
                let c = state.aws_credentials("ec2");
                aws_json(&[
                    ("Code", V::from("Success")),
                    ("LastUpdated", V::from(iso_seconds(c.last_updated))),
                    ("InstanceProfileArn", V::from(format!("arn:aws:iam::{}:instance-profile/{}", a.account_id, a.role_name))),
                    ("InstanceProfileId", V::from(a.instance_profile_id.clone())),
                ])
            }
            Dyn::AwsRoleCredentials => {
                let c = state.aws_credentials("ec2");
                aws_json(&[
                    ("Code", V::from("Success")),
                    ("LastUpdated", V::from(iso_seconds(c.last_updated))),
                    ("Type", V::from("AWS-HMAC")),
                    ("AccessKeyId", V::from(c.access_key_id)),
                    ("SecretAccessKey", V::from(c.secret_access_key)),
                    ("Token", V::from(c.token)),
                    ("Expiration", V::from(iso_seconds(c.expiration))),
                ])
            }
            Dyn::AwsIdentityDocument => identity_document(state),
            Dyn::AwsIdentitySignature => state.secrets.signature("identity-signature", 128),
            Dyn::AwsIdentityRsa2048 | Dyn::AwsIdentityPkcs7 => {
                // PEM-style base64 body lines of 64 characters, like the real blobs.
                let label = if *d == Dyn::AwsIdentityPkcs7 { "identity-pkcs7" } else { "identity-rsa2048" };
                let b = state.secrets.signature(label, 768);
                b.as_bytes().chunks(64).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("\n")
            }
            Dyn::GcpToken | Dyn::GcpIdentity => String::new(),
        },
    }
}

fn identity_document(state: &State) -> String {
    use serde_json::Value as V;
    let a = &state.config.aws;
    aws_json(&[
        ("accountId", V::from(a.account_id.clone())),
        ("architecture", V::from("x86_64")),
        ("availabilityZone", V::from(a.availability_zone.clone())),
        ("billingProducts", V::Null),
        ("devpayProductCodes", V::Null),
        ("marketplaceProductCodes", V::Null),
        ("imageId", V::from(a.ami_id.clone())),
        ("instanceId", V::from(a.instance_id.clone())),
        ("instanceType", V::from(a.instance_type.clone())),
        ("kernelId", V::Null),
        ("pendingTime", V::from(iso_seconds(state.start))),
        ("privateIp", V::from(a.local_ipv4.clone())),
        ("ramdiskId", V::Null),
        ("region", V::from(a.region.clone())),
        ("version", V::from("2017-09-30")),
    ])
}

#[cfg(test)]
mod tests {
    use crate::core::testutil::*;
    use crate::core::{handle, HttpEndpoint, HttpTokens, Settings};
    use crate::http::{ImdsVersion, Request};

    fn put_token(ttl: Option<&str>) -> Request {
        let r = Request::new("PUT", "/latest/api/token");
        match ttl {
            Some(t) => r.with_header("X-aws-ec2-metadata-token-ttl-seconds", t),
            None => r,
        }
    }

    #[test]
    fn token_put_ttl_bounds_and_refusals() {
        let (st, _) = state();
        // (request, status, outcome)
        let cases = vec![
            (put_token(Some("21600")), 200, "token_issued"),
            (put_token(Some("1")), 200, "token_issued"),
            (put_token(Some(" 60 ")), 200, "token_issued"),
            (put_token(Some("0")), 400, "token_ttl_invalid"),
            (put_token(Some("21601")), 400, "token_ttl_invalid"),
            (put_token(Some("-5")), 400, "token_ttl_invalid"),
            (put_token(Some("abc")), 400, "token_ttl_invalid"),
            (put_token(Some("")), 400, "token_ttl_invalid"),
            (put_token(None), 400, "token_ttl_missing"),
            (put_token(Some("60")).with_header("X-Forwarded-For", "203.0.113.9"), 403, "token_refused_forwarded"),
            (Request::new("GET", "/latest/api/token"), 405, "method_not_allowed"),
            (Request::new("POST", "/latest/api/token").with_header("X-aws-ec2-metadata-token-ttl-seconds", "60"), 405, "method_not_allowed"),
            (Request::new("PUT", "/2021-07-15/api/token").with_header("X-aws-ec2-metadata-token-ttl-seconds", "60"), 200, "token_issued"),
        ];
        for (req, status, outcome) in cases {
            let r = handle(&st, &req);
            assert_eq!((r.status, r.meta.outcome), (status, outcome), "{} {:?}", req.method, req.headers);
            assert_eq!(r.meta.imds_version, ImdsVersion::V2);
            assert_eq!(r.header("Server"), Some("EC2ws"));
            assert_eq!(r.header("Connection"), Some("close"));
            if req.method == "PUT" {
                assert_eq!(r.hop_limit, Some(1), "every token PUT answer is hop-limited");
            }
            if status == 200 {
                assert_eq!(r.body.len(), 56);
                let ttl = req.header("X-aws-ec2-metadata-token-ttl-seconds").unwrap_or("").trim().to_string();
                assert_eq!(r.header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"), Some(ttl.as_str()));
            }
        }
        let r = handle(&st, &Request::new("GET", "/latest/api/token"));
        assert_eq!((r.reason, r.header("Allow")), ("Not Allowed", Some("OPTIONS, PUT")));
    }

    #[test]
    fn v1_v2_and_http_tokens() {
        let (st, clock) = state();
        let tok = handle(&st, &put_token(Some("2"))).body_str();
        let v2 = |t: &str| get("/latest/meta-data/instance-id").with_header("X-aws-ec2-metadata-token", t);
        let cases: Vec<(HttpTokens, Request, u16, ImdsVersion, &str)> = vec![
            (HttpTokens::Optional, get("/latest/meta-data/instance-id"), 200, ImdsVersion::V1, "ok"),
            (HttpTokens::Optional, v2(&tok), 200, ImdsVersion::V2, "ok"),
            (HttpTokens::Optional, v2("bogus"), 401, ImdsVersion::V2, "token_invalid"),
            (HttpTokens::Required, get("/latest/meta-data/instance-id"), 401, ImdsVersion::V1, "token_missing"),
            (HttpTokens::Required, v2(&tok), 200, ImdsVersion::V2, "ok"),
            (HttpTokens::Required, v2(""), 401, ImdsVersion::V2, "token_invalid"),
        ];
        for (mode, req, status, version, outcome) in cases {
            st.set_http_tokens(mode);
            let r = handle(&st, &req);
            assert_eq!((r.status, r.meta.imds_version, r.meta.outcome), (status, version, outcome), "{mode:?} {:?}", req.headers);
            if status == 401 {
                assert!(r.body_str().contains("<title>401 - Unauthorized</title>"), "{}", r.body_str());
                assert_eq!(r.header("Content-Type"), Some("text/html"));
            }
        }
        st.set_http_tokens(HttpTokens::Optional);
        assert_eq!(handle(&st, &v2(&tok)).header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"), Some("2"));
        clock.advance_secs(1);
        assert_eq!(handle(&st, &v2(&tok)).header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"), Some("1"));
        clock.advance_secs(1);
        let r = handle(&st, &v2(&tok));
        assert_eq!((r.status, r.meta.outcome), (401, "token_expired"), "expired even though tokens are optional");
    }

    #[test]
    fn endpoint_disabled_is_403_everywhere() {
        let (st, _) = state_with(crate::core::Providers::ALL, Settings { http_endpoint: HttpEndpoint::Disabled, ..Settings::default() });
        for req in [get("/latest/meta-data/"), put_token(Some("60")), get("/")] {
            let r = handle(&st, &req);
            assert_eq!((r.status, r.meta.outcome), (403, "endpoint_disabled"), "{}", req.path);
        }
        // GCP and Azure are other services: unaffected.
        let r = handle(&st, &get("/computeMetadata/v1/instance/id").with_header("Metadata-Flavor", "Google"));
        assert_eq!(r.status, 200);
    }

    #[test]
    fn listings_and_leaves() {
        let (st, _) = state();
        let cases: Vec<(&str, u16, &str)> = vec![
            ("/latest", 200, "dynamic\nmeta-data\nuser-data"),
            ("/latest/", 200, "dynamic\nmeta-data\nuser-data"),
            ("/latest/meta-data/placement/", 200, "availability-zone\navailability-zone-id\nregion"),
            ("/latest/meta-data/placement", 200, "availability-zone\navailability-zone-id\nregion"),
            ("/latest/meta-data/placement/region", 200, "us-east-1"),
            ("/latest/meta-data/iam/", 200, "info\nsecurity-credentials/"),
            ("/latest/meta-data/iam/security-credentials/", 200, "imdsguard-demo-role"),
            ("/latest/meta-data/iam/security-credentials", 200, "imdsguard-demo-role"),
            ("/latest/meta-data/network/interfaces/macs/", 200, "0e:1a:2b:3c:4d:5e/"),
            ("/latest/meta-data/network/interfaces/macs/0e:1a:2b:3c:4d:5e/vpc-id", 200, "vpc-0a1b2c3d4e5f6a7b8"),
            ("/latest/dynamic/", 200, "instance-identity/"),
            ("/latest/dynamic/instance-identity/", 200, "document\npkcs7\nrsa2048\nsignature"),
            ("/latest/meta-data/instance-id", 200, "i-0a1b2c3d4e5f6a7b8"),
            ("/2009-04-04/meta-data/instance-id", 200, "i-0a1b2c3d4e5f6a7b8"),
            ("/latest/user-data", 200, "#!/bin/bash\necho 'hello from the imdsguard metadata mock'\n"),
            ("/latest/meta-data/nope", 404, ""),
            ("/latest/meta-data/instance-id/extra", 404, ""),
            ("/1999-01-01/meta-data/", 404, ""),
            ("/latest/meta-data/iam/security-credentials/other-role", 404, ""),
        ];
        for (path, status, body) in cases {
            let r = handle(&st, &get(path));
            assert_eq!(r.status, status, "{path}");
            if status == 200 {
                assert_eq!(r.body_str(), body, "{path}");
                assert_eq!(r.header("Accept-Ranges"), Some("none"));
            } else {
                assert!(r.body_str().contains("<title>404 - Not Found</title>"), "{path}");
            }
        }
        let r = handle(&st, &get("/"));
        assert!(r.body_str().starts_with("1.0\n2007-01-19\n") && r.body_str().ends_with("\nlatest"));
        let r = handle(&st, &get("/latest/meta-data/"));
        let listing = r.body_str();
        for want in ["ami-id", "iam/", "instance-id", "local-ipv4", "mac", "network/", "placement/", "hostname"] {
            assert!(listing.lines().any(|l| l == want), "{want} in {listing}");
        }
        assert_eq!(handle(&st, &get("/latest/user-data")).header("Content-Type"), Some("application/octet-stream"));
        let r = handle(&st, &Request::new("POST", "/latest/meta-data/"));
        assert_eq!(r.status, 405);
    }

    #[test]
    fn credentials_json_shape() {
        let (st, _) = state();
        let r = handle(&st, &get("/latest/meta-data/iam/security-credentials/imdsguard-demo-role"));
        assert_eq!((r.status, r.meta.outcome), (200, "credentials"));
        let body = r.body_str();
        assert!(body.starts_with("{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-01-01T00:00:00Z\",\n  \"Type\" : \"AWS-HMAC\",\n"), "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("credentials are JSON");
        let keys: Vec<&str> = v.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        let mut want = vec!["AccessKeyId", "Code", "Expiration", "LastUpdated", "SecretAccessKey", "Token", "Type"];
        want.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, want);
        assert!(v["AccessKeyId"].as_str().unwrap_or("").starts_with("ASIAEXAMPLE"));
        assert_eq!(v["Expiration"], "2026-01-01T06:00:00Z");
        let info: serde_json::Value = serde_json::from_str(&handle(&st, &get("/latest/meta-data/iam/info")).body_str()).expect("info JSON");
        assert_eq!(info["InstanceProfileArn"], "arn:aws:iam::123456789012:instance-profile/imdsguard-demo-role");
        let doc: serde_json::Value =
            serde_json::from_str(&handle(&st, &get("/latest/dynamic/instance-identity/document")).body_str()).expect("document JSON");
        assert_eq!((doc["region"].as_str(), doc["instanceId"].as_str(), doc["kernelId"].is_null()), (Some("us-east-1"), Some("i-0a1b2c3d4e5f6a7b8"), true));
        let sig = handle(&st, &get("/latest/dynamic/instance-identity/signature")).body_str();
        assert!(sig.len() > 100 && !sig.contains('\n'));
    }

    #[test]
    fn no_role_no_user_data_no_public_ip() {
        let mut cfg = crate::config::MockConfig::default();
        cfg.aws.role_name.clear();
        cfg.aws.user_data.clear();
        cfg.aws.public_ipv4.clear();
        let st = crate::core::State::new(
            cfg,
            Settings::default(),
            crate::core::Providers::ALL,
            crate::secrets::Secrets::from_seed([1; 32]),
            Box::new(crate::core::SystemClock),
        );
        assert_eq!(handle(&st, &get("/latest/meta-data/iam/")).status, 404);
        assert_eq!(handle(&st, &get("/latest/user-data")).status, 404);
        assert_eq!(handle(&st, &get("/latest/")).body_str(), "dynamic\nmeta-data");
        assert!(!handle(&st, &get("/latest/meta-data/")).body_str().contains("public-ipv4"));
    }
}
