//! GCP Compute Engine metadata server (`/computeMetadata/v1/…`), as documented in "About VM
//! metadata" / "Access VM metadata":
//!
//! - every request needs `Metadata-Flavor: Google` (`403` without); a request carrying
//!   `X-Forwarded-For` is refused (`403`);
//! - responses carry `Metadata-Flavor: Google`, `Server: Metadata Server for VM`, an `ETag`;
//! - directories list their entries one per line (each followed by a newline, sub-directories with
//!   a trailing `/`); a directory asked for without its trailing slash is redirected (`301`);
//! - `?recursive=true` returns the directory as JSON (camelCase keys, except attribute names;
//!   numbered directories become arrays; tokens and identities are left out); `?alt=json|text`
//!   chooses the format (recursive text is one `path value` line per leaf);
//! - `instance/service-accounts/{default,<email>}/{aliases,email,scopes,token,identity}`:
//!   `token` is the OAuth2 JSON, `identity` needs `audience` (`400` without) and returns a JWT.

use crate::config::MockConfig;
use crate::core::{http_date, meta, response, Dyn, Leaf, Node, State};
use crate::http::{ImdsVersion, Provider, Request, Response};
use crate::secrets::ROTATION_SECS;
use sha2::{Digest, Sha256};

const PREFIX: &str = "/computeMetadata/v1";

pub(crate) fn build_tree(cfg: &MockConfig) -> Node {
    let g = &cfg.gcp;
    let s = |v: &str| v.to_string();
    let text = |v: &str| Node::text(v.to_string());
    let num = |n: u64| Node::Leaf(Leaf::Num(n));
    let account = |email: &str| {
        Node::dir([
            (s("aliases"), Node::Leaf(Leaf::List(vec![s("default")]))),
            (s("email"), text(email)),
            (s("identity"), Node::Leaf(Leaf::Dyn(Dyn::GcpIdentity))),
            (s("scopes"), Node::Leaf(Leaf::List(g.scopes.clone()))),
            (s("token"), Node::Leaf(Leaf::Dyn(Dyn::GcpToken))),
        ])
    };
    let email = g.email();
    let attrs = |m: &std::collections::BTreeMap<String, String>| Node::dir(m.iter().map(|(k, v)| (k.clone(), text(v))));
    let instance = Node::dir([
        (s("attributes"), attrs(&g.instance_attributes)),
        (s("cpu-platform"), text("Intel Broadwell")),
        (s("description"), text("")),
        (
            s("disks"),
            Node::dir([(
                s("0"),
                Node::dir([
                    (s("device-name"), text("persistent-disk-0")),
                    (s("index"), num(0)),
                    (s("interface"), text("SCSI")),
                    (s("mode"), text("READ_WRITE")),
                    (s("type"), text("PERSISTENT-BALANCED")),
                ]),
            )]),
        ),
        (s("hostname"), text(&g.hostname)),
        (s("id"), num(g.instance_id)),
        (s("image"), text("projects/debian-cloud/global/images/debian-12-bookworm-v20241112")),
        (s("machine-type"), text(&format!("projects/{}/machineTypes/{}", g.numeric_project_id, g.machine_type))),
        (s("name"), text(&g.instance_name)),
        (
            s("network-interfaces"),
            Node::dir([(
                s("0"),
                Node::dir([
                    (s("gateway"), text("10.128.0.1")),
                    (s("ip"), text(&g.internal_ip)),
                    (s("mac"), text("42:01:0a:80:00:02")),
                    (s("mtu"), num(1460)),
                    (s("network"), text(&format!("projects/{}/networks/default", g.numeric_project_id))),
                    (s("subnetmask"), text("255.255.240.0")),
                ]),
            )]),
        ),
        (
            s("scheduling"),
            Node::dir([(s("automatic-restart"), text("TRUE")), (s("on-host-maintenance"), text("MIGRATE")), (s("preemptible"), text("FALSE"))]),
        ),
        (s("service-accounts"), Node::dir([(s("default"), account(&email)), (email.clone(), account(&email))])),
        (s("zone"), text(&format!("projects/{}/zones/{}", g.numeric_project_id, g.zone))),
    ]);
    let project = Node::dir([
        (s("attributes"), attrs(&g.project_attributes)),
        (s("numeric-project-id"), num(g.numeric_project_id)),
        (s("project-id"), text(&g.project_id)),
    ]);
    Node::dir([(s("instance"), instance), (s("project"), project)])
}

fn base_headers(state: &State, content_type: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("Metadata-Flavor", "Google".to_string()),
        ("Content-Type", content_type.to_string()),
        ("ETag", etag(body)),
        ("Date", http_date(state.now())),
        ("Server", "Metadata Server for VM".to_string()),
        ("Content-Length", body.len().to_string()),
        ("X-XSS-Protection", "0".to_string()),
        ("X-Frame-Options", "SAMEORIGIN".to_string()),
        ("Connection", "close".to_string()),
    ]
}

fn etag(body: &[u8]) -> String {
    let h = Sha256::digest(body);
    h[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn error_page(state: &State, status: u16, path: &str, detail: &str, outcome: &'static str) -> Response {
    let title = format!("Error {status} ({})!!1", crate::http::reason(status));
    let body = format!(
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>{title}</title>\n  <p><b>{status}.</b> <ins>That\u{2019}s an error.</ins>\n  <p>{}{detail} <ins>That\u{2019}s all we know.</ins>\n",
        if status == 403 {
            format!("Your client does not have permission to get URL <code>{}</code> from this server. ", html_escape(path))
        } else if status == 404 {
            format!("The requested URL <code>{}</code> was not found on this server. ", html_escape(path))
        } else {
            String::new()
        }
    )
    .into_bytes();
    let mut headers = base_headers(state, "text/html; charset=UTF-8", &body);
    headers.retain(|(n, _)| *n != "ETag");
    response(status, headers, body, meta(Provider::Gcp, ImdsVersion::None, outcome))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub(crate) fn not_found(state: &State, req: &Request) -> Response {
    error_page(state, 404, &req.path, "", "not_found")
}

fn ok(state: &State, content_type: &str, body: Vec<u8>, outcome: &'static str) -> Response {
    let headers = base_headers(state, content_type, &body);
    response(200, headers, body, meta(Provider::Gcp, ImdsVersion::None, outcome))
}

pub(crate) fn handle(state: &State, req: &Request) -> Response {
    if req.has_header("X-Forwarded-For") {
        return error_page(state, 403, &req.path, "Request contains an X-Forwarded-For header. ", "refused_forwarded");
    }
    if req.header("Metadata-Flavor") != Some("Google") {
        return error_page(state, 403, &req.path, "Missing Metadata-Flavor:Google header. ", "missing_header");
    }
    if req.method != "GET" && req.method != "HEAD" {
        return error_page(state, 405, &req.path, "", "method_not_allowed");
    }
    let p = req.path.as_str();
    if p == "/" || p == "/computeMetadata" {
        return redirect_or_list(state, req, &["computeMetadata/"]);
    }
    if p == "/computeMetadata/" {
        return ok(state, "application/text", b"v1/\n".to_vec(), "ok");
    }
    let Some(rest) = p.strip_prefix(PREFIX) else {
        return not_found(state, req);
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return not_found(state, req);
    }
    let trailing = rest.ends_with('/') || rest.is_empty() && p.ends_with('/');
    let segments: Vec<&str> = rest.split('/').collect();
    let Some(node) = state.gcp_tree.find(&segments) else {
        return not_found(state, req);
    };
    let recursive = req.param("recursive").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let alt = req.param("alt");
    match node {
        Node::Dir(entries) => {
            if recursive {
                let v = to_json(node, false);
                if alt == Some("text") {
                    let mut lines = Vec::new();
                    flatten_text("", &v, &mut lines);
                    ok(state, "application/text", lines.concat().into_bytes(), "ok")
                } else {
                    ok(state, "application/json", v.to_string().into_bytes(), "ok")
                }
            } else if !trailing {
                let location = format!("{}/", req.path);
                let mut r = error_page(state, 301, &req.path, "", "redirect");
                r.headers.insert(0, ("Location", location));
                r
            } else if alt == Some("json") {
                let names: Vec<String> = entries.iter().map(|(n, c)| if matches!(c, Node::Dir(_)) { format!("{n}/") } else { n.clone() }).collect();
                ok(state, "application/json", serde_json::Value::from(names).to_string().into_bytes(), "ok")
            } else {
                let listing: String =
                    entries.iter().map(|(n, c)| if matches!(c, Node::Dir(_)) { format!("{n}/\n") } else { format!("{n}\n") }).collect();
                ok(state, "application/text", listing.into_bytes(), "ok")
            }
        }
        Node::Leaf(Leaf::Dyn(Dyn::GcpToken)) => {
            let now = state.now().timestamp();
            let left = ROTATION_SECS - (now - state.start).rem_euclid(ROTATION_SECS) - 1;
            let v = serde_json::json!({
                "access_token": state.secrets.gcp_access_token(state.start, now),
                "expires_in": left.max(1),
                "token_type": "Bearer",
            });
            ok(state, "application/json", v.to_string().into_bytes(), "token_issued")
        }
        Node::Leaf(Leaf::Dyn(Dyn::GcpIdentity)) => {
            let Some(aud) = req.param("audience").filter(|a| !a.is_empty()) else {
                return error_page(state, 400, &req.path, "non-empty audience parameter required ", "audience_missing");
            };
            let now = state.now().timestamp();
            let g = &state.config.gcp;
            let mut claims = serde_json::json!({
                "aud": aud,
                "azp": "104683257463217456789",
                "exp": now + 3600,
                "iat": now,
                "iss": "https://accounts.google.com",
                "sub": "104683257463217456789",
            });
            if req.param("format") == Some("full") {
                claims["email"] = serde_json::Value::from(g.email());
                claims["email_verified"] = serde_json::Value::from(true);
                claims["google"] = serde_json::json!({"compute_engine": {
                    "instance_creation_timestamp": state.start,
                    "instance_id": g.instance_id.to_string(),
                    "instance_name": g.instance_name,
                    "project_id": g.project_id,
                    "project_number": g.numeric_project_id,
                    "zone": g.zone,
                }});
            }
            ok(state, "application/text", state.secrets.fake_jwt("gcp-identity", &claims, now).into_bytes(), "token_issued")
        }
        Node::Leaf(leaf) => {
            if alt == Some("json") {
                let v = leaf_json(leaf);
                ok(state, "application/json", v.to_string().into_bytes(), "ok")
            } else {
                let text = match leaf {
                    Leaf::Text(t) => t.clone(),
                    Leaf::Num(n) => n.to_string(),
                    Leaf::List(l) => l.iter().map(|x| format!("{x}\n")).collect(),
                    Leaf::Dyn(_) => String::new(),
                };
                ok(state, "application/text", text.into_bytes(), "ok")
            }
        }
    }
}

fn redirect_or_list(state: &State, req: &Request, entries: &[&str]) -> Response {
    if req.path == "/" {
        let listing: String = entries.iter().map(|e| format!("{e}\n")).collect();
        ok(state, "application/text", listing.into_bytes(), "ok")
    } else {
        let mut r = error_page(state, 301, &req.path, "", "redirect");
        r.headers.insert(0, ("Location", format!("{}/", req.path)));
        r
    }
}

fn leaf_json(leaf: &Leaf) -> serde_json::Value {
    match leaf {
        Leaf::Text(t) => serde_json::Value::from(t.clone()),
        Leaf::Num(n) => serde_json::Value::from(*n),
        Leaf::List(l) => serde_json::Value::from(l.clone()),
        Leaf::Dyn(_) => serde_json::Value::Null,
    }
}

/// `machine-type` → `machineType`.
fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut up = false;
    for c in name.chars() {
        if c == '-' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The recursive JSON of a directory. Attribute names stay verbatim; numbered directories are
/// arrays; tokens and identities are not included (as on GCP).
fn to_json(node: &Node, verbatim_keys: bool) -> serde_json::Value {
    match node {
        Node::Leaf(l) => leaf_json(l),
        Node::Dir(entries) => {
            let numbered = !entries.is_empty() && entries.keys().all(|k| k.parse::<usize>().is_ok());
            if numbered {
                let mut items: Vec<(usize, &Node)> = entries.iter().filter_map(|(k, v)| k.parse::<usize>().ok().map(|i| (i, v))).collect();
                items.sort_by_key(|(i, _)| *i);
                return serde_json::Value::from(items.into_iter().map(|(_, v)| to_json(v, false)).collect::<Vec<_>>());
            }
            let mut m = serde_json::Map::new();
            for (k, v) in entries {
                if matches!(v, Node::Leaf(Leaf::Dyn(_))) {
                    continue;
                }
                let key = if verbatim_keys { k.clone() } else { camel(k) };
                m.insert(key, to_json(v, k == "attributes"));
            }
            serde_json::Value::Object(m)
        }
    }
}

fn flatten_text(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                flatten_text(&join(prefix, k), x, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten_text(&join(prefix, &i.to_string()), x, out);
            }
        }
        serde_json::Value::String(s) => out.push(format!("{prefix} {s}\n")),
        other => out.push(format!("{prefix} {other}\n")),
    }
}

fn join(prefix: &str, k: &str) -> String {
    if prefix.is_empty() {
        k.to_string()
    } else {
        format!("{prefix}/{k}")
    }
}

#[cfg(test)]
mod tests {
    use crate::core::handle;
    use crate::core::testutil::*;
    use crate::http::Request;

    fn g(path: &str) -> Request {
        get(path).with_header("Metadata-Flavor", "Google")
    }

    #[test]
    fn header_requirements() {
        let (st, _) = state();
        let cases: Vec<(Request, u16, &str)> = vec![
            (get("/computeMetadata/v1/instance/id"), 403, "missing_header"),
            (get("/computeMetadata/v1/instance/id").with_header("Metadata-Flavor", "google"), 403, "missing_header"),
            (g("/computeMetadata/v1/instance/id").with_header("X-Forwarded-For", "1.2.3.4"), 403, "refused_forwarded"),
            (g("/computeMetadata/v1/instance/id"), 200, "ok"),
            (Request::new("POST", "/computeMetadata/v1/instance/id").with_header("Metadata-Flavor", "Google"), 405, "method_not_allowed"),
        ];
        for (req, status, outcome) in cases {
            let r = handle(&st, &req);
            assert_eq!((r.status, r.meta.outcome), (status, outcome), "{:?}", req.headers);
            assert_eq!(r.header("Metadata-Flavor"), Some("Google"));
        }
        let r = handle(&st, &get("/computeMetadata/v1/"));
        assert!(r.body_str().contains("Missing Metadata-Flavor:Google header."), "{}", r.body_str());
    }

    #[test]
    fn paths_listings_and_formats() {
        let (st, _) = state();
        let cases: Vec<(&str, u16, &str, &str)> = vec![
            ("/computeMetadata/v1/", 200, "application/text", "instance/\nproject/\n"),
            ("/computeMetadata/v1/instance/id", 200, "application/text", "4520031799277581759"),
            ("/computeMetadata/v1/instance/id?alt=json", 200, "application/json", "4520031799277581759"),
            ("/computeMetadata/v1/instance/name?alt=json", 200, "application/json", "\"demo-vm\""),
            ("/computeMetadata/v1/project/project-id", 200, "application/text", "imdsguard-demo"),
            ("/computeMetadata/v1/project/attributes/", 200, "application/text", "env\n"),
            ("/computeMetadata/v1/project/attributes/env", 200, "application/text", "demo"),
            ("/computeMetadata/v1/instance/attributes/enable-oslogin", 200, "application/text", "TRUE"),
            ("/computeMetadata/v1/instance/service-accounts/", 200, "application/text", "123456789012-compute@developer.gserviceaccount.com/\ndefault/\n"),
            ("/computeMetadata/v1/instance/service-accounts/default/", 200, "application/text", "aliases\nemail\nidentity\nscopes\ntoken\n"),
            ("/computeMetadata/v1/instance/service-accounts/default/email", 200, "application/text", "123456789012-compute@developer.gserviceaccount.com"),
            (
                "/computeMetadata/v1/instance/service-accounts/default/scopes",
                200,
                "application/text",
                "https://www.googleapis.com/auth/devstorage.read_only\nhttps://www.googleapis.com/auth/logging.write\nhttps://www.googleapis.com/auth/monitoring.write\n",
            ),
            ("/computeMetadata/v1/project/?recursive=true", 200, "application/json", "{\"attributes\":{\"env\":\"demo\"},\"numericProjectId\":123456789012,\"projectId\":\"imdsguard-demo\"}"),
            ("/computeMetadata/v1/project?recursive=true&alt=text", 200, "application/text", "attributes/env demo\nnumericProjectId 123456789012\nprojectId imdsguard-demo\n"),
            ("/computeMetadata/v1/instance/service-accounts/default/?recursive=true", 200, "application/json", "{\"aliases\":[\"default\"],\"email\":\"123456789012-compute@developer.gserviceaccount.com\",\"scopes\":[\"https://www.googleapis.com/auth/devstorage.read_only\",\"https://www.googleapis.com/auth/logging.write\",\"https://www.googleapis.com/auth/monitoring.write\"]}"),
            ("/computeMetadata/v1/instance/nope", 404, "text/html; charset=UTF-8", ""),
            ("/computeMetadata/v2/", 404, "text/html; charset=UTF-8", ""),
        ];
        for (path, status, ct, body) in cases {
            let r = handle(&st, &g(path));
            assert_eq!((r.status, r.header("Content-Type")), (status, Some(ct)), "{path}: {}", r.body_str());
            if status == 200 {
                assert_eq!(r.body_str(), body, "{path}");
            }
        }
        let r = handle(&st, &g("/computeMetadata/v1/instance"));
        assert_eq!((r.status, r.header("Location")), (301, Some("/computeMetadata/v1/instance/")));
        let v: serde_json::Value = serde_json::from_str(&handle(&st, &g("/computeMetadata/v1/instance/?recursive=true")).body_str()).expect("json");
        assert_eq!(v["networkInterfaces"][0]["ip"], "10.128.0.2");
        assert_eq!(v["machineType"], "projects/123456789012/machineTypes/e2-medium");
        assert_eq!(v["attributes"]["enable-oslogin"], "TRUE", "attribute names stay verbatim");
        assert!(v["serviceAccounts"]["default"].get("token").is_none(), "tokens are not part of recursive output");
    }

    #[test]
    fn token_and_identity() {
        let (st, _) = state();
        let r = handle(&st, &g("/computeMetadata/v1/instance/service-accounts/default/token"));
        assert_eq!((r.status, r.meta.outcome, r.header("Content-Type")), (200, "token_issued", Some("application/json")));
        let v: serde_json::Value = serde_json::from_str(&r.body_str()).expect("token JSON");
        assert!(v["access_token"].as_str().unwrap_or("").starts_with("ya29.EXAMPLE"));
        assert_eq!((v["expires_in"].as_i64(), v["token_type"].as_str()), (Some(3599), Some("Bearer")));
        let r = handle(&st, &g("/computeMetadata/v1/instance/service-accounts/default/identity"));
        assert_eq!((r.status, r.meta.outcome), (400, "audience_missing"));
        let r = handle(&st, &g("/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://example.com&format=full"));
        assert_eq!(r.status, 200);
        let jwt = r.body_str();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        use base64::Engine;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).expect("b64");
        let claims: serde_json::Value = serde_json::from_slice(&claims).expect("claims");
        assert_eq!(claims["aud"], "https://example.com");
        assert_eq!(claims["google"]["compute_engine"]["project_id"], "imdsguard-demo");
    }
}
