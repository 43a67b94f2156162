//! Packetbeat-compatible ECS documents for HTTP transactions (the `network_traffic.http` data
//! stream), with the `imds.*` field set.
//!
//! Field names follow Packetbeat's HTTP protocol (`packetbeat/protos/http`): `http.version`,
//! `http.request.{method,bytes,headers,body.bytes}`, `http.response.{status_code,status_phrase
//! (lower case),bytes,headers,body.bytes}`, `url.*` from the `Host` header and the target (port
//! only when not 80), `user_agent.original`, the root `type`, `method`, `query` and `status`
//! (`OK`, or `Error` for a missing response or a status of 400 and above). Header names are lower
//! case; repeated headers are joined with `, `. Secrets were already removed by the decoder; the
//! document is redacted once more as defence in depth.

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use crate::http::{Header, HttpTransaction};
use crate::imds::{analyze, host_without_port, ImdsConfig};

/// RFC 3339 UTC time with microseconds, from microseconds since the Unix epoch.
pub fn rfc3339_micros(ts: i64) -> String {
    let secs = ts.div_euclid(1_000_000);
    let micros = ts.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

fn headers_json(headers: &[Header]) -> Value {
    let mut m = Map::new();
    for h in headers {
        let name = h.name.to_ascii_lowercase();
        match m.get_mut(&name) {
            Some(Value::String(s)) => {
                s.push_str(", ");
                s.push_str(&h.value);
            }
            _ => {
                // Packetbeat reports `content-length` as a number.
                let v = match h.value.trim().parse::<u64>() {
                    Ok(n) if name == "content-length" => json!(n),
                    _ => Value::String(h.value.clone()),
                };
                m.insert(name, v);
            }
        }
    }
    Value::Object(m)
}

fn ip_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// Build the ECS document of one transaction.
pub fn to_ecs(tx: &HttpTransaction, cfg: &ImdsConfig, send_all_headers: bool) -> Value {
    let client = tx.flow.client;
    let server = tx.flow.server;
    let start = tx.request_ts_micros;
    let end = tx.response_end_ts_micros.unwrap_or(start).max(start);

    let mut event = Map::new();
    event.insert("kind".into(), json!("event"));
    event.insert("module".into(), json!("network_traffic"));
    event.insert("dataset".into(), json!("network_traffic.http"));
    event.insert("category".into(), json!(["network"]));
    event.insert("type".into(), json!(["connection", "protocol"]));
    event.insert("start".into(), json!(rfc3339_micros(start)));
    if tx.response_end_ts_micros.is_some() {
        event.insert("end".into(), json!(rfc3339_micros(end)));
        event.insert("duration".into(), json!(end.saturating_sub(start).saturating_mul(1000)));
    }

    let net_type = if server.is_ipv4() { "ipv4" } else { "ipv6" };
    let total = tx.request_bytes + tx.response_bytes;

    // url.* from the Host header (else the server address) and the target.
    let host_header = tx.request_header("host").map(str::trim).filter(|h| !h.is_empty());
    let (domain, host_port) = match host_header {
        Some(h) => {
            let name = host_without_port(h);
            let port = h
                .strip_prefix('[')
                .and_then(|r| r.split_once("]:"))
                .map(|(_, p)| p)
                .or_else(|| if name.len() < h.len() { h.rsplit_once(':').map(|(_, p)| p) } else { None })
                .and_then(|p| p.parse::<u16>().ok());
            (name.to_string(), port)
        }
        None => (server.ip().to_string(), None),
    };
    let port = host_port.unwrap_or(server.port());
    let mut url = Map::new();
    url.insert("scheme".into(), json!("http"));
    url.insert("domain".into(), json!(domain));
    if port != 80 {
        url.insert("port".into(), json!(port));
    }
    url.insert("path".into(), json!(tx.path));
    // Packetbeat's (naive) extension: what follows the last `.` of the path.
    if let Some((_, ext)) = tx.path.rsplit_once('.') {
        if !ext.is_empty() {
            url.insert("extension".into(), json!(ext));
        }
    }
    if let Some(q) = &tx.query {
        url.insert("query".into(), json!(q));
    }
    let full_host = match domain.parse::<IpAddr>() {
        Ok(ip) => ip_host(ip),
        Err(_) => domain.clone(),
    };
    let mut full = format!("http://{full_host}");
    if port != 80 {
        full.push_str(&format!(":{port}"));
    }
    full.push_str(&tx.path);
    if let Some(q) = &tx.query {
        full.push('?');
        full.push_str(q);
    }
    url.insert("full".into(), json!(full));

    let mut request = Map::new();
    request.insert("method".into(), json!(tx.method));
    request.insert("bytes".into(), json!(tx.request_bytes));
    request.insert("body".into(), json!({"bytes": tx.request_body_bytes}));
    if send_all_headers {
        request.insert("headers".into(), headers_json(&tx.request_headers));
    }
    let mut http = Map::new();
    http.insert("version".into(), json!(tx.version));
    http.insert("request".into(), Value::Object(request));
    if let Some(code) = tx.status_code {
        let mut response = Map::new();
        response.insert("status_code".into(), json!(code));
        if let Some(p) = &tx.status_phrase {
            response.insert("status_phrase".into(), json!(p.to_ascii_lowercase()));
        }
        response.insert("bytes".into(), json!(tx.response_bytes));
        response.insert("body".into(), json!({"bytes": tx.response_body_bytes}));
        if send_all_headers {
            response.insert("headers".into(), headers_json(&tx.response_headers));
        }
        http.insert("response".into(), Value::Object(response));
    }

    let status = match tx.status_code {
        Some(c) if c < 400 => "OK",
        _ => "Error",
    };

    let mut related_ips = vec![client.ip().to_string()];
    if server.ip() != client.ip() {
        related_ips.push(server.ip().to_string());
    }
    let mut doc = Map::new();
    doc.insert("@timestamp".into(), json!(rfc3339_micros(start)));
    doc.insert("event".into(), Value::Object(event));
    doc.insert("type".into(), json!("http"));
    doc.insert("status".into(), json!(status));
    doc.insert("method".into(), json!(tx.method));
    doc.insert("query".into(), json!(format!("{} {}", tx.method, tx.path)));
    doc.insert(
        "network".into(),
        json!({"transport": "tcp", "type": net_type, "protocol": "http", "bytes": total}),
    );
    let src = json!({"ip": client.ip().to_string(), "port": client.port(), "bytes": tx.request_bytes});
    let mut dst = json!({"ip": server.ip().to_string(), "port": server.port(), "bytes": tx.response_bytes});
    let mut related = json!({"ip": related_ips});
    if domain.parse::<IpAddr>().is_err() {
        dst["domain"] = json!(domain);
        related["hosts"] = json!([domain]);
    }
    doc.insert("source".into(), src.clone());
    doc.insert("client".into(), src);
    doc.insert("destination".into(), dst.clone());
    doc.insert("server".into(), dst);
    doc.insert("related".into(), related);
    doc.insert("http".into(), Value::Object(http));
    doc.insert("url".into(), Value::Object(url));
    if let Some(ua) = tx.request_header("user-agent") {
        doc.insert("user_agent".into(), json!({"original": ua}));
    }
    if let Some(fwd) = tx.request_header("x-forwarded-for") {
        if let Some(first) = fwd.split(',').next().map(str::trim).filter(|s| s.parse::<IpAddr>().is_ok()) {
            doc["network"]["forwarded_ip"] = json!(first);
        }
    }
    if !tx.notes.is_empty() {
        doc.insert("error".into(), json!({"message": tx.notes}));
    }
    if let Some(info) = analyze(tx, cfg) {
        doc.insert("imds".into(), info.to_json());
    }
    let mut v = Value::Object(doc);
    imdsguard_ecs::redact(&mut v);
    v
}
