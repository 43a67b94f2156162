//! Metadata-service knowledge: providers, credential paths, IMDSv2 facts, forwarding, custom
//! endpoints, and the `url.*` fields for ports and IPv6.

use std::net::IpAddr;

use imdsguard_capture::imds::{analyze, EndpointAddr};
use imdsguard_capture::{
    to_ecs, Direction, FlowKey, HttpConfig, HttpDecoder, HttpTransaction, ImdsConfig, ImdsEndpoint, StreamEvent,
};
use serde_json::{json, Value};

fn one(server: &str, request: &str, response: &str) -> HttpTransaction {
    let flow = FlowKey { client: "10.0.0.9:45000".parse().expect("addr"), server: server.parse().expect("addr") };
    let mut d = HttpDecoder::new(HttpConfig::default());
    let mut out = Vec::new();
    let ev = |dir, data: &str| StreamEvent::Data { flow, dir, ts_micros: 1_000_000, data: data.as_bytes().to_vec() };
    d.on_event(&ev(Direction::ToServer, request), &mut out);
    if !response.is_empty() {
        d.on_event(&ev(Direction::ToClient, response), &mut out);
    }
    d.finish(&mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    out.remove(0)
}

fn imds(tx: &HttpTransaction, cfg: &ImdsConfig) -> Value {
    to_ecs(tx, cfg, false).get("imds").cloned().unwrap_or(Value::Null)
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";

#[test]
fn providers_from_paths_and_headers() {
    let cfg = ImdsConfig::default();
    let cases: &[(&str, &str, Value)] = &[
        (
            "169.254.169.254:80",
            "GET /opc/v2/identity/cert.pem HTTP/1.1\r\nHost: 169.254.169.254\r\nAuthorization: Bearer Oracle\r\n\r\n",
            json!({"cloud_provider": "oracle", "credentials_request": true, "forwarded": false, "required_header_present": true}),
        ),
        (
            "169.254.169.254:80",
            "GET /opc/v2/instance/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
            json!({"cloud_provider": "oracle", "credentials_request": false, "forwarded": false, "required_header_present": false}),
        ),
        (
            "169.254.169.254:80",
            "GET /metadata/v1/id HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
            json!({"cloud_provider": "digitalocean", "credentials_request": false, "forwarded": false}),
        ),
        (
            "169.254.169.254:80",
            "GET /openstack/latest/meta_data.json HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
            json!({"cloud_provider": "openstack", "credentials_request": false, "forwarded": false}),
        ),
        (
            "100.100.100.200:80",
            "GET /latest/meta-data/ram/security-credentials/EcsRole HTTP/1.1\r\nHost: 100.100.100.200\r\n\r\n",
            json!({"cloud_provider": "alibaba", "credentials_request": true, "forwarded": false, "credentials": {"role": "EcsRole"}}),
        ),
        (
            "[fd00:ec2::254]:80",
            "GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: [fd00:ec2::254]\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n",
            json!({"cloud_provider": "aws", "credentials_request": true, "forwarded": true,
                   "aws": {"is_imds_v2": false, "token_request": false}}),
        ),
        (
            "169.254.169.254:80",
            "GET /computeMetadata/v1/instance/service-accounts/default/identity?audience=x HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata-Flavor: Google\r\n\r\n",
            json!({"cloud_provider": "gcp", "credentials_request": true, "forwarded": false, "required_header_present": true}),
        ),
        ("10.0.0.1:80", "GET /latest/meta-data/ HTTP/1.1\r\nHost: example.com\r\n\r\n", Value::Null),
    ];
    for (server, request, want) in cases {
        let tx = one(server, request, OK);
        assert_eq!(&imds(&tx, &cfg), want, "{request}");
    }
}

#[test]
fn token_ttl_and_ssrf_style_requests() {
    let tx = one(
        "169.254.169.254:80",
        "PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\nX-Forwarded-For: 198.51.100.4\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nAQAEAabc",
    );
    assert_eq!(tx.response_body, None);
    let doc = to_ecs(&tx, &ImdsConfig::default(), false);
    assert_eq!(
        doc["imds"],
        json!({"cloud_provider": "aws", "credentials_request": false, "forwarded": true,
               "aws": {"is_imds_v2": false, "token_request": true, "token_ttl_seconds": 21600}})
    );
    assert_eq!(doc["network"]["forwarded_ip"], json!("198.51.100.4"));
}

#[test]
fn custom_endpoints() {
    let cfg = ImdsConfig {
        endpoints: vec![
            ImdsEndpoint { addr: EndpointAddr::Ip("10.20.30.40".parse::<IpAddr>().expect("ip")), provider: Some("aws".into()) },
            ImdsEndpoint { addr: EndpointAddr::Host("imds.internal".into()), provider: None },
        ],
    };
    let tx = one("10.20.30.40:8080", "GET /latest/meta-data/iam/security-credentials/r HTTP/1.1\r\nHost: 10.20.30.40:8080\r\n\r\n", OK);
    let doc = to_ecs(&tx, &cfg, false);
    assert_eq!(doc["imds"]["cloud_provider"], "aws");
    assert_eq!(doc["imds"]["credentials"], json!({"role": "r"}));
    assert_eq!(
        doc["url"],
        json!({"scheme": "http", "domain": "10.20.30.40", "port": 8080, "path": "/latest/meta-data/iam/security-credentials/r",
               "full": "http://10.20.30.40:8080/latest/meta-data/iam/security-credentials/r"})
    );
    let tx = one("192.0.2.1:80", "GET /computeMetadata/v1/ HTTP/1.1\r\nHost: imds.internal\r\n\r\n", OK);
    assert_eq!(analyze(&tx, &cfg).map(|i| i.cloud_provider), Some("gcp".to_string()));
    // The default endpoints are not in this configuration.
    let tx = one("169.254.169.254:80", "GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n", OK);
    assert_eq!(analyze(&tx, &cfg), None);
}

#[test]
fn ipv6_url_and_lowercase_method_kept() {
    let tx = one("[fd00:ec2::254]:80", "get /latest/meta-data/index.html HTTP/1.0\r\n\r\n", OK);
    let doc = to_ecs(&tx, &ImdsConfig::default(), true);
    assert_eq!(doc["http"]["request"]["method"], "get");
    assert_eq!(doc["http"]["version"], "1.0");
    assert_eq!(doc["network"]["type"], "ipv6");
    assert_eq!(
        doc["url"],
        json!({"scheme": "http", "domain": "fd00:ec2::254", "path": "/latest/meta-data/index.html", "extension": "html",
               "full": "http://[fd00:ec2::254]/latest/meta-data/index.html"})
    );
    assert_eq!(doc["http"]["request"]["headers"], json!({}));
    assert_eq!(doc["http"]["response"]["headers"], json!({"content-length": 2}));
}
