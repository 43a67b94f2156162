//! The mock on a loopback port, driven by a real HTTP client over TCP: the IMDSv2 flow, HttpTokens
//! switched at run time, token expiry and TTL bounds, X-Forwarded-For refusals, GCP and Azure header
//! requirements, listings, credential shapes, the request log and the safety bounds.

mod common;

use common::*;
use imdsguard_mock::{HttpEndpoint, HttpTokens, Limits, Settings};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const ROLE: &str = "imdsguard-demo-role";

#[test]
fn imdsv2_flow_with_credentials() {
    let m = start(Settings::default());
    let a = m.addr();
    let put = send(a, "PUT", "/latest/api/token", &[("X-aws-ec2-metadata-token-ttl-seconds", "21600")]);
    assert_eq!(put.status, 200);
    assert_eq!(put.header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"), Some("21600"));
    assert_eq!(put.header("Server"), Some("EC2ws"));
    assert_eq!(put.header("Connection"), Some("close"));
    assert_eq!(put.body.len(), 56, "{}", put.body);
    let t = put.body.clone();
    let h = [("X-aws-ec2-metadata-token", t.as_str())];
    let id = get(a, "/latest/meta-data/instance-id", &h);
    assert_eq!((id.status, id.body.as_str()), (200, "i-0a1b2c3d4e5f6a7b8"));
    assert_eq!(id.header("Content-Type"), Some("text/plain"));
    let ttl_left: i64 = id.header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds").and_then(|v| v.parse().ok()).expect("remaining TTL header");
    assert!((21590..=21600).contains(&ttl_left), "{ttl_left}");
    let roles = get(a, "/latest/meta-data/iam/security-credentials/", &h);
    assert_eq!(roles.body, ROLE);
    let creds = get(a, &format!("/latest/meta-data/iam/security-credentials/{}", roles.body), &h);
    assert_eq!(creds.status, 200);
    let v = creds.json();
    let obj = v.as_object().expect("object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["AccessKeyId", "Code", "Expiration", "LastUpdated", "SecretAccessKey", "Token", "Type"]);
    assert_eq!((v["Code"].as_str(), v["Type"].as_str()), (Some("Success"), Some("AWS-HMAC")));
    let akid = v["AccessKeyId"].as_str().unwrap_or("");
    assert!(akid.starts_with("ASIAEXAMPLE") && akid.len() == 20, "{akid}");
    for k in ["LastUpdated", "Expiration"] {
        let s = v[k].as_str().unwrap_or("");
        assert!(chrono::DateTime::parse_from_rfc3339(s).is_ok() && s.ends_with('Z'), "{k} = {s}");
    }
    assert_eq!(m.state().aws_credentials("ec2").access_key_id, akid);
    let info = get(a, "/latest/meta-data/iam/info", &h).json();
    assert_eq!(info["Code"], "Success");
    let doc = get(a, "/latest/dynamic/instance-identity/document", &h).json();
    assert_eq!(doc["accountId"], "123456789012");
    let sig = get(a, "/latest/dynamic/instance-identity/signature", &h);
    assert_eq!(sig.status, 200);
    let ud = get(a, "/latest/user-data", &h);
    assert_eq!((ud.status, ud.header("Content-Type")), (200, Some("application/octet-stream")));
    // Every request was logged once, as v2, with its outcome.
    let lines = m.log.lines();
    assert_eq!(lines.len(), 8, "{lines:?}");
    assert!(lines.iter().all(|l| l["imds_version"] == "v2" && l["provider"] == "aws" && l["status"] == 200), "{lines:?}");
    assert_eq!(lines[0]["outcome"], "token_issued");
    assert_eq!(lines[3]["outcome"], "credentials");
    assert!(!serde_json::to_string(&lines).unwrap_or_default().contains(&t), "tokens never logged");
}

#[test]
fn imdsv1_allowed_then_refused_after_switching_to_required() {
    let m = start(Settings::default());
    let a = m.addr();
    let v1 = get(a, "/latest/meta-data/iam/security-credentials/", &[]);
    assert_eq!((v1.status, v1.body.as_str()), (200, ROLE));
    m.state().set_http_tokens(HttpTokens::Required);
    let refused = get(a, "/latest/meta-data/iam/security-credentials/", &[]);
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("<title>401 - Unauthorized</title>"), "{}", refused.body);
    assert_eq!(refused.header("Content-Type"), Some("text/html"));
    // IMDSv2 keeps working.
    let t = token(a, "60");
    assert_eq!(get(a, "/latest/meta-data/iam/security-credentials/", &[("X-aws-ec2-metadata-token", &t)]).status, 200);
    // An invalid token is 401 whatever HttpTokens says.
    m.state().set_http_tokens(HttpTokens::Optional);
    assert_eq!(get(a, "/latest/meta-data/", &[("X-aws-ec2-metadata-token", "AQAEAbogus")]).status, 401);
    let lines = m.log.lines();
    let summary: Vec<(String, u64, String)> = lines
        .iter()
        .map(|l| (l["imds_version"].as_str().unwrap_or("").to_string(), l["status"].as_u64().unwrap_or(0), l["outcome"].as_str().unwrap_or("").to_string()))
        .collect();
    let want: Vec<(String, u64, String)> = [("v1", 200, "ok"), ("v1", 401, "token_missing"), ("v2", 200, "token_issued"), ("v2", 200, "ok"), ("v2", 401, "token_invalid")]
        .iter()
        .map(|(v, s, o)| (v.to_string(), *s, o.to_string()))
        .collect();
    assert_eq!(summary, want);
}

#[test]
fn expired_token_is_refused() {
    let m = start_manual(Settings { http_tokens: HttpTokens::Required, ..Settings::default() });
    let a = m.addr();
    let t = token(a, "1");
    let h = [("X-aws-ec2-metadata-token", t.as_str())];
    let ok = get(a, "/latest/meta-data/instance-id", &h);
    assert_eq!((ok.status, ok.header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds")), (200, Some("1")));
    m.clock.as_ref().expect("manual clock").advance_secs(1);
    let expired = get(a, "/latest/meta-data/instance-id", &h);
    assert_eq!(expired.status, 401);
    assert_eq!(m.log.lines().last().map(|l| l["outcome"].clone()), Some(serde_json::Value::from("token_expired")));
}

#[test]
fn expired_token_is_refused_on_the_real_clock() {
    // One real second: bounded (the loop gives up after 3 s).
    let m = start(Settings::default());
    let a = m.addr();
    let t = token(a, "1");
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut last = 0;
    while std::time::Instant::now() < deadline {
        last = get(a, "/latest/meta-data/instance-id", &[("X-aws-ec2-metadata-token", &t)]).status;
        if last == 401 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(last, 401, "a 1-second token must expire");
}

#[test]
fn token_ttl_bounds() {
    let m = start(Settings::default());
    let a = m.addr();
    let cases: &[(Option<&str>, u16)] =
        &[(Some("1"), 200), (Some("21600"), 200), (Some("0"), 400), (Some("21601"), 400), (Some("-1"), 400), (Some("1.5"), 400), (Some("six"), 400), (None, 400)];
    for (ttl, status) in cases {
        let headers: Vec<(&str, &str)> = ttl.map(|t| vec![("X-aws-ec2-metadata-token-ttl-seconds", t)]).unwrap_or_default();
        let r = send(a, "PUT", "/latest/api/token", &headers);
        assert_eq!(r.status, *status, "ttl {ttl:?}: {r:?}");
        if *status == 400 {
            assert!(r.body.contains("<title>400 - Bad Request</title>"), "{}", r.body);
        }
    }
    let r = get(a, "/latest/api/token", &[("X-aws-ec2-metadata-token-ttl-seconds", "60")]);
    assert_eq!((r.status, r.reason.as_str(), r.header("Allow")), (405, "Not Allowed", Some("OPTIONS, PUT")));
}

#[test]
fn x_forwarded_for_is_refused_on_aws_token_puts_and_gcp() {
    let m = start(Settings::default());
    let a = m.addr();
    let r = send(a, "PUT", "/latest/api/token", &[("X-aws-ec2-metadata-token-ttl-seconds", "60"), ("X-Forwarded-For", "198.51.100.7")]);
    assert_eq!(r.status, 403);
    assert!(r.body.contains("403 - Forbidden"));
    let r = get(a, "/computeMetadata/v1/instance/service-accounts/default/token", &[("Metadata-Flavor", "Google"), ("X-Forwarded-For", "198.51.100.7")]);
    assert_eq!(r.status, 403);
    let r = get(a, "/metadata/instance?api-version=2021-02-01", &[("Metadata", "true"), ("X-Forwarded-For", "198.51.100.7")]);
    assert_eq!(r.status, 400);
    let outcomes: Vec<String> = m.log.lines().iter().map(|l| format!("{}:{}", l["provider"].as_str().unwrap_or(""), l["outcome"].as_str().unwrap_or(""))).collect();
    assert_eq!(outcomes, ["aws:token_refused_forwarded", "gcp:refused_forwarded", "azure:refused_forwarded"]);
}

#[test]
fn gcp_header_requirement_listing_recursive_and_token() {
    let m = start(Settings::default());
    let a = m.addr();
    let r = get(a, "/computeMetadata/v1/instance/service-accounts/default/token", &[]);
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Missing Metadata-Flavor:Google header."), "{}", r.body);
    let g = [("Metadata-Flavor", "Google")];
    let r = get(a, "/computeMetadata/v1/", &g);
    assert_eq!((r.status, r.body.as_str(), r.header("Metadata-Flavor")), (200, "instance/\nproject/\n", Some("Google")));
    assert_eq!(r.header("Server"), Some("Metadata Server for VM"));
    let r = get(a, "/computeMetadata/v1/instance/service-accounts/default/", &g);
    assert_eq!(r.body, "aliases\nemail\nidentity\nscopes\ntoken\n");
    let tok = get(a, "/computeMetadata/v1/instance/service-accounts/default/token", &g).json();
    assert!(tok["access_token"].as_str().unwrap_or("").starts_with("ya29.EXAMPLE"));
    assert_eq!(tok["token_type"], "Bearer");
    assert!(tok["expires_in"].as_i64().unwrap_or(0) > 0);
    let email = get(a, "/computeMetadata/v1/instance/service-accounts/default/email", &g);
    assert_eq!(email.body, "123456789012-compute@developer.gserviceaccount.com");
    let rec = get(a, "/computeMetadata/v1/instance/?recursive=true", &g).json();
    assert_eq!(rec["id"], 4520031799277581759u64);
    let text = get(a, "/computeMetadata/v1/project/project-id?alt=text", &g);
    assert_eq!(text.body, "imdsguard-demo");
    let attrs = get(a, "/computeMetadata/v1/project/attributes/?recursive=true", &g).json();
    assert_eq!(attrs["env"], "demo");
    let id = get(a, "/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://ci.example", &g);
    assert_eq!(id.status, 200);
    assert_eq!(id.body.split('.').count(), 3);
}

#[test]
fn azure_header_and_api_version_requirements_and_identity_token() {
    let m = start(Settings::default());
    let a = m.addr();
    let r = get(a, "/metadata/instance?api-version=2021-02-01", &[]);
    assert_eq!((r.status, r.body.as_str()), (400, r#"{"error":"Bad request. Required metadata header not specified"}"#));
    let md = [("Metadata", "true")];
    let r = get(a, "/metadata/instance", &md);
    assert_eq!(r.status, 400);
    assert!(r.json()["newest-versions"].is_array());
    let r = get(a, "/metadata/instance?api-version=2021-02-01", &md);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["compute"]["subscriptionId"], "00000000-1111-2222-3333-444444444444");
    let r = get(a, "/metadata/instance/compute/vmId?api-version=2021-02-01&format=text", &md);
    assert_eq!(r.body, "02aab8a4-74ef-476e-8182-f6d2ba4166a6");
    let r = get(a, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F", &md);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!((v["token_type"].as_str(), v["resource"].as_str()), (Some("Bearer"), Some("https://management.azure.com/")));
    let r = get(a, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F", &[]);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error_description"], "Required metadata header not specified");
}

#[test]
fn ecs_task_credentials() {
    let m = start(Settings::default());
    let r = get(m.addr(), "/v2/credentials/5e1c8d0a-7b3f-4c2e-9a61-0123456789ab", &[]);
    assert_eq!(r.status, 200);
    let v = r.json();
    for k in ["RoleArn", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"] {
        assert!(v[k].is_string(), "{k}: {v}");
    }
    assert_eq!(get(m.addr(), "/v2/credentials/guess", &[]).json()["code"], "InvalidIdInRequest");
}

#[test]
fn listings_as_on_ec2() {
    let m = start(Settings::default());
    let a = m.addr();
    let root = get(a, "/", &[]);
    assert!(root.body.ends_with("\nlatest") && root.body.starts_with("1.0\n"), "{}", root.body);
    assert_eq!(get(a, "/latest/", &[]).body, "dynamic\nmeta-data\nuser-data");
    let md = get(a, "/latest/meta-data/", &[]).body;
    let entries: Vec<&str> = md.lines().collect();
    for want in ["ami-id", "hostname", "iam/", "instance-id", "local-ipv4", "mac", "network/", "placement/", "public-ipv4"] {
        assert!(entries.contains(&want), "{want} missing from {md}");
    }
    assert!(!md.ends_with('\n'), "EC2 listings have no trailing newline");
    assert_eq!(get(a, "/latest/meta-data/placement/region", &[]).body, "us-east-1");
    let mac = get(a, "/latest/meta-data/mac", &[]).body;
    let nic = get(a, &format!("/latest/meta-data/network/interfaces/macs/{mac}/"), &[]).body;
    assert!(nic.lines().any(|l| l == "vpc-id") && nic.lines().any(|l| l == "subnet-id"), "{nic}");
    let nf = get(a, "/latest/meta-data/does-not-exist", &[]);
    assert_eq!(nf.status, 404);
    assert!(nf.body.contains("<title>404 - Not Found</title>"));
    assert_eq!(get(a, "/latest/meta-data/", &[]).header("Server"), Some("EC2ws"));
    let r = send(a, "POST", "/latest/meta-data/", &[]);
    assert_eq!(r.status, 405);
}

#[test]
fn http_endpoint_disabled() {
    let m = start(Settings { http_endpoint: HttpEndpoint::Disabled, ..Settings::default() });
    let a = m.addr();
    assert_eq!(get(a, "/latest/meta-data/", &[]).status, 403);
    assert_eq!(send(a, "PUT", "/latest/api/token", &[("X-aws-ec2-metadata-token-ttl-seconds", "60")]).status, 403);
    m.state().set_http_endpoint(HttpEndpoint::Enabled);
    assert_eq!(get(a, "/latest/meta-data/", &[]).status, 200);
}

#[test]
fn ipv6_loopback_listen() {
    let addr: std::net::SocketAddr = "[::1]:0".parse().expect("addr");
    if std::net::TcpListener::bind(addr).is_err() && prerequisite_missing("ipv6_loopback_listen", "no IPv6 loopback (::1) on this host") {
        return;
    }
    let m = start_with(Settings::default(), false, &["[::1]:0", "127.0.0.1:0"], Limits::default());
    let addrs = m.server.addrs().to_vec();
    assert!(addrs[0].is_ipv6() && addrs[1].is_ipv4());
    let t = send(addrs[0], "PUT", "/latest/api/token", &[("X-aws-ec2-metadata-token-ttl-seconds", "60")]);
    assert_eq!(t.status, 200);
    assert_eq!(get(addrs[0], "/latest/meta-data/instance-id", &[("X-aws-ec2-metadata-token", &t.body)]).status, 200);
    assert_eq!(get(addrs[1], "/latest/meta-data/instance-id", &[]).status, 200);
    assert!(m.log.lines()[0]["peer"].as_str().unwrap_or("").starts_with("[::1]:"));
}

#[test]
fn bounded_requests_and_slow_clients() {
    let limits = Limits { max_connections: 2, read_timeout: Duration::from_millis(300), write_timeout: Duration::from_secs(2), ..Limits::default() };
    let m = start_with(Settings::default(), false, &["127.0.0.1:0"], limits);
    let a = m.addr();
    // An oversized head is refused with 400 and the connection closed.
    let mut big = b"GET /latest/meta-data/ HTTP/1.1\r\nX-Pad: ".to_vec();
    big.extend(vec![b'a'; 20_000]);
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(parse(&raw(a, &big)).status, 400);
    // A declared body beyond the limit is refused.
    assert_eq!(parse(&raw(a, b"PUT /latest/api/token HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n")).status, 413);
    // Garbage is refused, not crashed on.
    assert_eq!(parse(&raw(a, b"\x16\x03\x01\x00\xa5garbage\r\n\r\n")).status, 400);
    // Two silent clients fill the connection limit; they are timed out (408) and a third client is then served.
    let mut idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(a).expect("connect")).collect();
    std::thread::sleep(Duration::from_millis(50));
    let third = get(a, "/latest/meta-data/instance-id", &[]);
    assert_eq!(third.status, 200);
    for s in idle.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408 "), "{:?}", String::from_utf8_lossy(&out));
        let _ = s.write_all(b"late");
    }
    let outcomes: Vec<String> = m.log.lines().iter().map(|l| l["outcome"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(outcomes.iter().filter(|o| *o == "read_timeout").count(), 2, "{outcomes:?}");
    assert!(outcomes.contains(&"head_too_large".to_string()) && outcomes.contains(&"body_too_large".to_string()) && outcomes.contains(&"malformed".to_string()));
}

#[test]
fn response_delay_holds_the_answer_then_sends_it() {
    let limits = Limits { response_delay: Duration::from_millis(400), ..Limits::default() };
    let m = start_with(Settings::default(), false, &["127.0.0.1:0"], limits);
    let mut s = TcpStream::connect(m.addr()).expect("connect");
    s.write_all(b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    // Nothing arrives at first: the answer is held back (load can only delay it further).
    s.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
    let mut first = [0u8; 16];
    assert!(s.read(&mut first).is_err(), "the delayed answer arrived early");
    // Then the complete, normal answer.
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let r = parse(&out);
    assert_eq!((r.status, r.body.as_str()), (200, "i-0a1b2c3d4e5f6a7b8"));
}
