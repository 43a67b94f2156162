//! Azure Instance Metadata Service (`/metadata/…`), as documented in "Azure Instance Metadata
//! Service" (errors and debugging, versioning, security) and "How to use managed identities …
//! to acquire an access token":
//!
//! - `Metadata: true` is required: without it `400` and
//!   `{"error":"Bad request. Required metadata header not specified"}`; requests carrying
//!   `X-Forwarded-For` are rejected (`400`);
//! - `api-version` is required: without it `400` with the documented body listing the
//!   `newest-versions`; `/metadata/versions` needs none;
//! - `/metadata/instance[/path]`: the instance document (compute, network) as JSON; a leaf needs
//!   `format=text`;
//! - `/metadata/identity/oauth2/token?api-version=…&resource=…`: a managed-identity token JSON
//!   (`access_token`, `expires_in`, `expires_on`, `not_before`, `resource`, `token_type`, …), with
//!   the OAuth-style `invalid_request` errors;
//! - only `GET` is served (`405` otherwise).

use crate::config::MockConfig;
use crate::core::{http_date, meta, response, State};
use crate::http::{ImdsVersion, Provider, Request, Response};
use serde_json::{json, Value};

/// The instance API versions accepted, oldest first.
pub const API_VERSIONS: &[&str] = &[
    "2017-03-01", "2017-04-02", "2017-08-01", "2017-10-01", "2017-12-01", "2018-02-01", "2018-04-02", "2018-10-01", "2019-02-01",
    "2019-03-11", "2019-04-30", "2019-06-01", "2019-06-04", "2019-08-01", "2019-08-15", "2019-11-01", "2020-06-01", "2020-07-15",
    "2020-09-01", "2020-10-01", "2020-12-01", "2021-01-01", "2021-02-01", "2021-03-01", "2021-05-01", "2021-08-01", "2021-10-01",
    "2021-11-01", "2021-11-15", "2021-12-13", "2023-07-01",
];

/// The managed-identity token API versions accepted.
pub const IDENTITY_API_VERSIONS: &[&str] = &["2018-02-01", "2019-08-01"];

pub(crate) fn instance_document(cfg: &MockConfig) -> Value {
    let a = &cfg.azure;
    let resource_id = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
        a.subscription_id, a.resource_group, a.vm_name
    );
    json!({
        "compute": {
            "azEnvironment": "AzurePublicCloud",
            "isHostCompatibilityLayerVm": "false",
            "location": a.location,
            "name": a.vm_name,
            "offer": "0001-com-ubuntu-server-jammy",
            "osProfile": {"adminUsername": "azureuser", "computerName": a.vm_name, "disablePasswordAuthentication": "true"},
            "osType": "Linux",
            "placementGroupId": "",
            "platformFaultDomain": "0",
            "platformUpdateDomain": "0",
            "priority": "",
            "provider": "Microsoft.Compute",
            "publisher": "canonical",
            "resourceGroupName": a.resource_group,
            "resourceId": resource_id,
            "sku": "22_04-lts-gen2",
            "subscriptionId": a.subscription_id,
            "tags": "",
            "tagsList": [],
            "userData": "",
            "version": "22.04.202411190",
            "vmId": a.vm_id,
            "vmScaleSetName": "",
            "vmSize": a.vm_size,
            "zone": ""
        },
        "network": {
            "interface": [{
                "ipv4": {
                    "ipAddress": [{"privateIpAddress": a.private_ip, "publicIpAddress": ""}],
                    "subnet": [{"address": "10.1.0.0", "prefix": "24"}]
                },
                "ipv6": {"ipAddress": []},
                "macAddress": a.mac
            }]
        }
    })
}

fn json_response(state: &State, status: u16, v: &Value, outcome: &'static str) -> Response {
    let body = v.to_string().into_bytes();
    text_response(state, status, "application/json; charset=utf-8", body, outcome)
}

fn text_response(state: &State, status: u16, ct: &str, body: Vec<u8>, outcome: &'static str) -> Response {
    let headers = vec![
        ("Content-Type", ct.to_string()),
        ("Date", http_date(state.now())),
        ("Content-Length", body.len().to_string()),
        ("Connection", "close".to_string()),
    ];
    response(status, headers, body, meta(Provider::Azure, ImdsVersion::None, outcome))
}

fn newest_versions() -> Vec<&'static str> {
    API_VERSIONS.iter().rev().take(3).copied().collect()
}

pub(crate) fn not_found(state: &State) -> Response {
    json_response(state, 404, &json!({"error": "Not found"}), "not_found")
}

pub(crate) fn handle(state: &State, req: &Request) -> Response {
    let identity = req.path.starts_with("/metadata/identity");
    let bad = |desc: &str, outcome: &'static str| -> Response {
        if identity {
            json_response(state, 400, &json!({"error": "invalid_request", "error_description": desc}), outcome)
        } else {
            json_response(state, 400, &json!({"error": format!("Bad request. {desc}")}), outcome)
        }
    };
    if req.has_header("X-Forwarded-For") {
        return bad("Request contains the X-Forwarded-For header, which is not allowed", "refused_forwarded");
    }
    if !req.header("Metadata").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return bad("Required metadata header not specified", "missing_header");
    }
    if req.method != "GET" && req.method != "HEAD" {
        let body = json!({"error": format!("Http method not allowed: path = \"{}\", method = \"{}\"", req.path, req.method)});
        return json_response(state, 405, &body, "method_not_allowed");
    }
    let path = req.path.trim_end_matches('/');
    if path == "/metadata/versions" {
        return json_response(state, 200, &json!({"apiVersions": API_VERSIONS}), "ok");
    }
    if path == "/metadata/identity/oauth2/token" {
        return identity_token(state, req);
    }
    let Some(rest) = path.strip_prefix("/metadata/instance") else {
        return not_found(state);
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return not_found(state);
    }
    match req.param("api-version") {
        None | Some("") => {
            let body = json!({
                "error": "Bad request. api-version was not specified in the request. For more information refer to aka.ms/azureimds",
                "newest-versions": newest_versions(),
            });
            return json_response(state, 400, &body, "api_version_missing");
        }
        Some(v) if !API_VERSIONS.contains(&v) => {
            let body = json!({
                "error": "Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds",
                "newest-versions": newest_versions(),
            });
            return json_response(state, 400, &body, "api_version_invalid");
        }
        Some(_) => {}
    }
    let mut node = &state.azure_instance;
    for seg in rest.split('/').filter(|s| !s.is_empty()) {
        let next = match node {
            Value::Object(m) => m.get(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return not_found(state),
        }
    }
    let text = req.param("format") == Some("text");
    match node {
        Value::Object(_) | Value::Array(_) if !text => json_response(state, 200, node, "ok"),
        Value::Object(m) => {
            // format=text on a directory lists its keys.
            let listing: Vec<String> = m.iter().map(|(k, v)| if v.is_object() || v.is_array() { format!("{k}/") } else { k.clone() }).collect();
            text_response(state, 200, "text/plain; charset=utf-8", listing.join("\n").into_bytes(), "ok")
        }
        Value::Array(a) => {
            let listing: Vec<String> = (0..a.len()).map(|i| format!("{i}/")).collect();
            text_response(state, 200, "text/plain; charset=utf-8", listing.join("\n").into_bytes(), "ok")
        }
        leaf if text => {
            let s = match leaf {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            text_response(state, 200, "text/plain; charset=utf-8", s.into_bytes(), "ok")
        }
        _ => bad("Query parameter format=text is required for leaf nodes", "format_required"),
    }
}

fn identity_token(state: &State, req: &Request) -> Response {
    let bad = |desc: &str, outcome: &'static str| {
        json_response(state, 400, &json!({"error": "invalid_request", "error_description": desc}), outcome)
    };
    match req.param("api-version") {
        None | Some("") => return bad("Required query variable 'api-version' is missing", "api_version_missing"),
        Some(v) if !IDENTITY_API_VERSIONS.contains(&v) => return bad("Invalid API version", "api_version_invalid"),
        Some(_) => {}
    }
    let Some(resource) = req.param("resource").filter(|r| !r.is_empty()) else {
        return bad("Required query variable 'resource' is missing", "resource_missing");
    };
    let a = &state.config.azure;
    if let Some(cid) = req.param("client_id").or_else(|| req.param("object_id")).or_else(|| req.param("msi_res_id")) {
        if cid != a.client_id {
            return bad("Identity not found", "identity_not_found");
        }
    }
    let now = state.now().timestamp();
    let expires_in = 86_399i64;
    let claims = json!({
        "aud": resource,
        "iss": format!("https://sts.windows.net/{}/", a.tenant_id),
        "iat": now, "nbf": now, "exp": now + expires_in,
        "appid": a.client_id,
        "oid": "00000000-0000-0000-0000-0000000000a1",
        "sub": "00000000-0000-0000-0000-0000000000a1",
        "tid": a.tenant_id,
        "xms_mirid": format!("/subscriptions/{}/resourcegroups/{}/providers/Microsoft.Compute/virtualMachines/{}", a.subscription_id, a.resource_group, a.vm_name),
    });
    let body = json!({
        "access_token": state.secrets.fake_jwt("azure-mi", &claims, now),
        "client_id": a.client_id,
        "expires_in": expires_in.to_string(),
        "expires_on": (now + expires_in).to_string(),
        "ext_expires_in": expires_in.to_string(),
        "not_before": now.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    });
    json_response(state, 200, &body, "token_issued")
}

#[cfg(test)]
mod tests {
    use crate::core::handle;
    use crate::core::testutil::*;
    use crate::http::Request;
    use serde_json::Value;

    fn az(path: &str) -> Request {
        get(path).with_header("Metadata", "true")
    }

    fn json(r: &crate::http::Response) -> Value {
        serde_json::from_slice(&r.body).unwrap_or(Value::Null)
    }

    #[test]
    fn header_version_and_error_bodies() {
        let (st, _) = state();
        let cases: Vec<(Request, u16, &str, &str)> = vec![
            (get("/metadata/instance?api-version=2021-02-01"), 400, "missing_header", r#"{"error":"Bad request. Required metadata header not specified"}"#),
            (get("/metadata/instance?api-version=2021-02-01").with_header("Metadata", "false"), 400, "missing_header", r#"{"error":"Bad request. Required metadata header not specified"}"#),
            (
                az("/metadata/instance"),
                400,
                "api_version_missing",
                r#"{"error":"Bad request. api-version was not specified in the request. For more information refer to aka.ms/azureimds","newest-versions":["2023-07-01","2021-12-13","2021-11-15"]}"#,
            ),
            (az("/metadata/instance?api-version=1999-01-01"), 400, "api_version_invalid", ""),
            (az("/metadata/instance?api-version=2021-02-01").with_header("X-Forwarded-For", "1.2.3.4"), 400, "refused_forwarded", ""),
            (
                get("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/"),
                400,
                "missing_header",
                r#"{"error":"invalid_request","error_description":"Required metadata header not specified"}"#,
            ),
            (
                az("/metadata/identity/oauth2/token?api-version=2018-02-01"),
                400,
                "resource_missing",
                r#"{"error":"invalid_request","error_description":"Required query variable 'resource' is missing"}"#,
            ),
            (
                az("/metadata/identity/oauth2/token?resource=x"),
                400,
                "api_version_missing",
                r#"{"error":"invalid_request","error_description":"Required query variable 'api-version' is missing"}"#,
            ),
            (az("/metadata/instance/compute/vmId?api-version=2021-02-01"), 400, "format_required", ""),
            (az("/metadata/instance/nope?api-version=2021-02-01"), 404, "not_found", r#"{"error":"Not found"}"#),
            (Request::new("POST", "/metadata/instance?api-version=2021-02-01").with_header("Metadata", "true"), 405, "method_not_allowed", ""),
        ];
        for (req, status, outcome, body) in cases {
            let r = handle(&st, &req);
            assert_eq!((r.status, r.meta.outcome), (status, outcome), "{} {:?}: {}", req.target, req.headers, r.body_str());
            if !body.is_empty() {
                assert_eq!(r.body_str(), body, "{}", req.target);
            }
        }
    }

    #[test]
    fn instance_document_and_leaves() {
        let (st, _) = state();
        let r = handle(&st, &az("/metadata/instance?api-version=2021-02-01"));
        assert_eq!((r.status, r.header("Content-Type")), (200, Some("application/json; charset=utf-8")));
        let v = json(&r);
        assert_eq!(v["compute"]["vmId"], "02aab8a4-74ef-476e-8182-f6d2ba4166a6");
        assert_eq!(v["network"]["interface"][0]["ipv4"]["ipAddress"][0]["privateIpAddress"], "10.1.0.4");
        let r = handle(&st, &az("/metadata/instance/compute/vmId?api-version=2021-02-01&format=text"));
        assert_eq!((r.status, r.body_str().as_str()), (200, "02aab8a4-74ef-476e-8182-f6d2ba4166a6"));
        let r = handle(&st, &az("/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress?api-version=2021-02-01&format=text"));
        assert_eq!(r.body_str(), "10.1.0.4");
        let r = handle(&st, &az("/metadata/instance/compute?api-version=2021-02-01"));
        assert_eq!(json(&r)["location"], "westeurope");
        let r = handle(&st, &az("/metadata/versions"));
        assert_eq!(json(&r)["apiVersions"][0], "2017-03-01");
    }

    #[test]
    fn managed_identity_token() {
        let (st, _) = state();
        let r = handle(&st, &az("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"));
        assert_eq!((r.status, r.meta.outcome), (200, "token_issued"));
        let v = json(&r);
        for k in ["access_token", "client_id", "expires_in", "expires_on", "ext_expires_in", "not_before", "resource", "token_type"] {
            assert!(v.get(k).is_some(), "{k} in {v}");
        }
        assert_eq!(v["resource"], "https://management.azure.com/");
        assert_eq!(v["expires_in"], "86399");
        assert_eq!(v["expires_on"], (T0 + 86399).to_string());
        assert!(v["access_token"].as_str().unwrap_or("").starts_with("eyJ"));
        let r = handle(&st, &az("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x&client_id=someone-else"));
        assert_eq!((r.status, r.meta.outcome), (400, "identity_not_found"));
    }
}
