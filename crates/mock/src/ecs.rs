//! The ECS task credentials endpoint (`GET /v2/credentials/<id>`, reached by SDKs through
//! `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`): the task role's credentials as JSON
//! (`RoleArn`, `AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`), and the ECS agent's
//! `400` JSON errors for a missing or unknown id.

use crate::core::{http_date, iso_seconds, meta, response, State};
use crate::http::{ImdsVersion, Provider, Request, Response};
use serde_json::json;

fn json_response(state: &State, status: u16, v: &serde_json::Value, outcome: &'static str) -> Response {
    let body = v.to_string().into_bytes();
    let headers = vec![
        ("Content-Type", "application/json".to_string()),
        ("Date", http_date(state.now())),
        ("Content-Length", body.len().to_string()),
        ("Connection", "close".to_string()),
    ];
    response(status, headers, body, meta(Provider::Ecs, ImdsVersion::None, outcome))
}

pub(crate) fn handle(state: &State, req: &Request) -> Response {
    if req.method != "GET" && req.method != "HEAD" {
        return json_response(state, 405, &json!({"code": "MethodNotAllowed", "message": "Only GET is allowed", "HTTPErrorCode": 405}), "method_not_allowed");
    }
    let id = req.path.trim_start_matches("/v2/credentials").trim_matches('/');
    if id.is_empty() {
        let body = json!({"code": "NoIdInRequest", "message": "CredentialsV2Request: No ID in the request", "HTTPErrorCode": 400});
        return json_response(state, 400, &body, "id_missing");
    }
    if id != state.config.ecs.credentials_id {
        let body = json!({"code": "InvalidIdInRequest", "message": "CredentialsV2Request: Credentials not found", "HTTPErrorCode": 400});
        return json_response(state, 400, &body, "id_unknown");
    }
    let c = state.aws_credentials("ecs");
    let body = json!({
        "RoleArn": state.config.ecs.task_role_arn,
        "AccessKeyId": c.access_key_id,
        "SecretAccessKey": c.secret_access_key,
        "Token": c.token,
        "Expiration": iso_seconds(c.expiration),
    });
    json_response(state, 200, &body, "credentials")
}

#[cfg(test)]
mod tests {
    use crate::core::handle;
    use crate::core::testutil::*;

    #[test]
    fn task_credentials() {
        let (st, _) = state();
        let cases = [
            ("/v2/credentials/5e1c8d0a-7b3f-4c2e-9a61-0123456789ab", 200, "credentials"),
            ("/v2/credentials/", 400, "id_missing"),
            ("/v2/credentials", 400, "id_missing"),
            ("/v2/credentials/unknown", 400, "id_unknown"),
        ];
        for (path, status, outcome) in cases {
            let r = handle(&st, &get(path));
            assert_eq!((r.status, r.meta.outcome), (status, outcome), "{path}");
        }
        let r = handle(&st, &get("/v2/credentials/5e1c8d0a-7b3f-4c2e-9a61-0123456789ab"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert!(v["AccessKeyId"].as_str().unwrap_or("").starts_with("ASIAEXAMPLE"));
        assert_eq!(v["RoleArn"], "arn:aws:iam::123456789012:role/imdsguard-demo-task-role");
        assert_ne!(v["AccessKeyId"], st.aws_credentials("ec2").access_key_id.as_str(), "task and instance credentials differ");
    }
}
