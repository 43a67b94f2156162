//! Packetbeat-compatible ECS documents for HTTP transactions (the `network_traffic.http` data
//! stream), with the `imds.*` field set.
//!
//! Field names follow Packetbeat's HTTP protocol (`packetbeat/protos/http`): `http.version`,
//! `http.request.{method,bytes,headers,body.bytes}`, `http.response.{status_code,status_phrase
//! (lower case),bytes,headers,body.bytes}`, `url.*` from the `Host` header and the target (port
//! only when not 80), `user_agent.original`, the root `type`, `method`, `query` and `status`
//! (`OK`, or `Error` for a missing response or a status of 400 and above). Header names are lower
//! case; repeated headers are joined with `, `. Secrets were already removed by the decoder; every
//! string from the wire is redacted once more as it is written, as defence in depth.

use std::net::IpAddr;

use serde_json::Value;

use crate::http::{Header, HttpTransaction};
use crate::imds::{analyze, host_without_port, ImdsConfig};
use crate::json::JsonWriter;

/// RFC 3339 UTC time with microseconds, from microseconds since the Unix epoch.
pub fn rfc3339_micros(ts: i64) -> String {
    imdsguard_ecs::time::format_micros(ts)
}

/// Write the headers as one object: lower-case names, repeated headers joined with `, `,
/// `content-length` as a number (as Packetbeat does).
fn write_headers(w: &mut JsonWriter<'_>, key: &str, headers: &[Header]) {
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for h in headers {
        let name = h.name.to_ascii_lowercase();
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push_str(", ");
                v.push_str(&h.value);
            }
            None => merged.push((name, h.value.clone())),
        }
    }
    w.object(key);
    for (name, value) in &merged {
        match value.trim().parse::<u64>() {
            Ok(n) if name == "content-length" => w.kv_u64(name, n),
            _ => w.kv(name, value),
        }
    }
    w.end_object();
}

fn ip_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// Build the ECS document of one transaction as a `serde_json::Value` (see [`write_ecs`], which
/// the decoder uses).
pub fn to_ecs(tx: &HttpTransaction, cfg: &ImdsConfig, send_all_headers: bool) -> Value {
    let mut buf = Vec::with_capacity(1024);
    write_ecs(tx, cfg, send_all_headers, &mut buf);
    // The writer only produces valid JSON; a failure here would be a bug, shown as a null.
    serde_json::from_slice(&buf).unwrap_or(Value::Null)
}

/// The capturing host's identity, written as `host.*` when known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostIdentity {
    pub name: Option<String>,
    pub id: Option<String>,
}

/// Append the ECS document of one transaction to `out`, as JSON (one object, no newline).
pub fn write_ecs(tx: &HttpTransaction, cfg: &ImdsConfig, send_all_headers: bool, out: &mut Vec<u8>) {
    write_ecs_with(tx, cfg, send_all_headers, &HostIdentity::default(), out)
}

/// [`write_ecs`] with the capturing host's identity.
pub fn write_ecs_with(tx: &HttpTransaction, cfg: &ImdsConfig, send_all_headers: bool, host: &HostIdentity, out: &mut Vec<u8>) {
    let client = tx.flow.client;
    let server = tx.flow.server;
    let start = tx.request_ts_micros;
    let end = tx.response_end_ts_micros.unwrap_or(start).max(start);
    let start_text = rfc3339_micros(start);

    let mut w = JsonWriter::new(out);
    w.begin_object();
    w.kv_trusted("@timestamp", &start_text);

    w.object("event");
    w.kv_trusted("kind", "event");
    w.kv_trusted("module", "network_traffic");
    w.kv_trusted("dataset", "network_traffic.http");
    w.array("category");
    w.str_trusted("network");
    w.end_array();
    w.array("type");
    w.str_trusted("connection");
    w.str_trusted("protocol");
    w.end_array();
    w.kv_trusted("start", &start_text);
    if tx.response_end_ts_micros.is_some() {
        w.kv_trusted("end", &rfc3339_micros(end));
        w.key("duration");
        w.i64(end.saturating_sub(start).saturating_mul(1000));
    }
    w.end_object();

    let status = match tx.status_code {
        Some(c) if c < 400 => "OK",
        _ => "Error",
    };
    w.kv_trusted("type", "http");
    w.kv_trusted("status", status);
    w.kv("method", &tx.method);
    w.kv("query", &format!("{} {}", tx.method, tx.path));

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
    let domain_is_ip = domain.parse::<IpAddr>().ok();

    let forwarded_ip = tx
        .request_header("x-forwarded-for")
        .and_then(|fwd| fwd.split(',').next().map(str::trim).filter(|s| s.parse::<IpAddr>().is_ok()));
    w.object("network");
    w.kv_trusted("transport", "tcp");
    w.kv_trusted("type", if server.is_ipv4() { "ipv4" } else { "ipv6" });
    w.kv_trusted("protocol", "http");
    w.kv_u64("bytes", tx.request_bytes + tx.response_bytes);
    if let Some(ip) = forwarded_ip {
        w.kv("forwarded_ip", ip);
    }
    w.end_object();

    let client_ip = client.ip().to_string();
    let server_ip = server.ip().to_string();
    for key in ["source", "client"] {
        w.object(key);
        w.kv_trusted("ip", &client_ip);
        w.kv_u64("port", u64::from(client.port()));
        w.kv_u64("bytes", tx.request_bytes);
        w.end_object();
    }
    for key in ["destination", "server"] {
        w.object(key);
        w.kv_trusted("ip", &server_ip);
        w.kv_u64("port", u64::from(server.port()));
        w.kv_u64("bytes", tx.response_bytes);
        if domain_is_ip.is_none() {
            w.kv("domain", &domain);
        }
        w.end_object();
    }
    w.object("related");
    w.array("ip");
    w.str_trusted(&client_ip);
    if server.ip() != client.ip() {
        w.str_trusted(&server_ip);
    }
    w.end_array();
    if domain_is_ip.is_none() {
        w.array("hosts");
        w.str(&domain);
        w.end_array();
    }
    w.end_object();

    w.object("http");
    w.kv("version", &tx.version);
    w.object("request");
    w.kv("method", &tx.method);
    w.kv_u64("bytes", tx.request_bytes);
    w.object("body");
    w.kv_u64("bytes", tx.request_body_bytes);
    w.end_object();
    if send_all_headers {
        write_headers(&mut w, "headers", &tx.request_headers);
    }
    w.end_object();
    if let Some(code) = tx.status_code {
        w.object("response");
        w.kv_u64("status_code", u64::from(code));
        if let Some(p) = &tx.status_phrase {
            w.kv("status_phrase", &p.to_ascii_lowercase());
        }
        w.kv_u64("bytes", tx.response_bytes);
        w.object("body");
        w.kv_u64("bytes", tx.response_body_bytes);
        w.end_object();
        if send_all_headers {
            write_headers(&mut w, "headers", &tx.response_headers);
        }
        w.end_object();
    }
    w.end_object();

    let port = host_port.unwrap_or(server.port());
    w.object("url");
    w.kv_trusted("scheme", "http");
    w.kv("domain", &domain);
    if port != 80 {
        w.kv_u64("port", u64::from(port));
    }
    w.kv("path", &tx.path);
    // Packetbeat's (naive) extension: what follows the last `.` of the path.
    if let Some((_, ext)) = tx.path.rsplit_once('.') {
        if !ext.is_empty() {
            w.kv("extension", ext);
        }
    }
    if let Some(q) = &tx.query {
        w.kv("query", q);
    }
    let full_host = match domain_is_ip {
        Some(ip) => ip_host(ip),
        None => domain.clone(),
    };
    let mut full = format!("http://{full_host}");
    if port != 80 {
        full.push(':');
        full.push_str(&port.to_string());
    }
    full.push_str(&tx.path);
    if let Some(q) = &tx.query {
        full.push('?');
        full.push_str(q);
    }
    w.kv("full", &full);
    w.end_object();

    if let Some(ua) = tx.request_header("user-agent") {
        w.object("user_agent");
        w.kv("original", ua);
        w.end_object();
    }
    if host.name.is_some() || host.id.is_some() {
        w.object("host");
        if let Some(n) = &host.name {
            w.kv("name", n);
        }
        if let Some(i) = &host.id {
            w.kv("id", i);
        }
        w.end_object();
    }
    if let Some(p) = &tx.process {
        w.object("process");
        w.kv_u64("pid", u64::from(p.pid));
        if let Some(name) = &p.name {
            w.kv("name", name);
        }
        w.end_object();
    }
    if !tx.notes.is_empty() {
        w.object("error");
        w.array("message");
        for n in &tx.notes {
            w.str_trusted(n);
        }
        w.end_array();
        w.end_object();
    }
    if let Some(info) = analyze(tx, cfg) {
        w.key("imds");
        info.write_json(&mut w);
    }
    w.end_object();
}
