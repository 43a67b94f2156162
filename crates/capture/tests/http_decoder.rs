//! HTTP decoding and ECS building from hand-made stream events.

use imdsguard_capture::{
    to_ecs, Direction, FlowKey, HttpConfig, HttpDecoder, HttpStats, HttpTransaction, ImdsConfig, StreamEvent,
};
use serde_json::{json, Value};

const T0: i64 = 1_700_000_000_000_000; // 2023-11-14T22:13:20Z

fn flow(client: &str, server: &str) -> FlowKey {
    FlowKey { client: client.parse().expect("client addr"), server: server.parse().expect("server addr") }
}

fn req(f: FlowKey, ts: i64, bytes: &[u8]) -> StreamEvent {
    StreamEvent::Data { flow: f, dir: Direction::ToServer, ts_micros: T0 + ts, data: bytes.to_vec() }
}

fn resp(f: FlowKey, ts: i64, bytes: &[u8]) -> StreamEvent {
    StreamEvent::Data { flow: f, dir: Direction::ToClient, ts_micros: T0 + ts, data: bytes.to_vec() }
}

fn gap(f: FlowKey, dir: Direction, ts: i64) -> StreamEvent {
    StreamEvent::Gap { flow: f, dir, ts_micros: T0 + ts, len: 100 }
}

fn close(f: FlowKey, ts: i64) -> StreamEvent {
    StreamEvent::Close { flow: f, ts_micros: T0 + ts }
}

fn run(events: &[StreamEvent]) -> (Vec<HttpTransaction>, HttpStats) {
    let mut d = HttpDecoder::new(HttpConfig::default());
    let mut out = Vec::new();
    for ev in events {
        d.on_event(ev, &mut out);
    }
    d.finish(&mut out);
    (out, d.stats().clone())
}

fn docs(txs: &[HttpTransaction]) -> Vec<Value> {
    txs.iter().map(|t| to_ecs(t, &ImdsConfig::default(), false)).collect()
}

/// Compare with the expected documents; `PRINT_ECS=1` prints the actual ones.
fn check(name: &str, actual: &[Value], expected: Value) {
    if std::env::var_os("PRINT_ECS").is_some() {
        println!("@@@ {name} {}", serde_json::to_string(actual).unwrap_or_default());
    }
    assert_eq!(Value::Array(actual.to_vec()), expected, "{name}");
}

const AWS_CREDS: &str = "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2023-11-14T22:00:00Z\",\n  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"ASIAQ7XKZ3PLM9VBN2RT\",\n  \"SecretAccessKey\" : \"pX9wQz7Lm4Kt2Vb8Nc6Hj1Rs5Yd3Fg0AeUiOkPlM\",\n  \"Token\" : \"IQoJb3JpZ2luX2VjEHkaCXVzLWVhc3QtMSJHMEUCIQDx7Qm2Lp9Vt\",\n  \"Expiration\" : \"2023-11-15T04:30:00Z\"\n}";

#[test]
fn imdsv1_get_credentials() {
    let f = flow("10.0.1.5:51234", "169.254.169.254:80");
    let body = AWS_CREDS;
    let response = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let (txs, stats) = run(&[
        req(f, 0, b"GET /latest/meta-data/iam/security-credentials/web-role HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/8.4.0\r\nAccept: */*\r\n\r\n"),
        resp(f, 1500, response.as_bytes()),
        close(f, 2000),
    ]);
    assert_eq!(stats.transactions, 1);
    check("imdsv1_get_credentials", &docs(&txs), json!([
        {
            "@timestamp": "2023-11-14T22:13:20.000000Z",
            "client": {
                "bytes": 128,
                "ip": "10.0.1.5",
                "port": 51234
            },
            "destination": {
                "bytes": 373,
                "ip": "169.254.169.254",
                "port": 80
            },
            "event": {
                "category": [
                    "network"
                ],
                "dataset": "network_traffic.http",
                "duration": 1500000,
                "end": "2023-11-14T22:13:20.001500Z",
                "kind": "event",
                "module": "network_traffic",
                "start": "2023-11-14T22:13:20.000000Z",
                "type": [
                    "connection",
                    "protocol"
                ]
            },
            "http": {
                "request": {
                    "body": {
                        "bytes": 0
                    },
                    "bytes": 128,
                    "method": "GET"
                },
                "response": {
                    "body": {
                        "bytes": 307
                    },
                    "bytes": 373,
                    "status_code": 200,
                    "status_phrase": "ok"
                },
                "version": "1.1"
            },
            "imds": {
                "aws": {
                    "is_imds_v2": false,
                    "token_request": false
                },
                "cloud_provider": "aws",
                "credentials": {
                    "expiration": "2023-11-15T04:30:00Z",
                    "returned": true,
                    "role": "web-role",
                    "type": "AWS-HMAC"
                },
                "credentials_request": true,
                "forwarded": false
            },
            "method": "GET",
            "network": {
                "bytes": 501,
                "protocol": "http",
                "transport": "tcp",
                "type": "ipv4"
            },
            "query": "GET /latest/meta-data/iam/security-credentials/web-role",
            "related": {
                "ip": [
                    "10.0.1.5",
                    "169.254.169.254"
                ]
            },
            "server": {
                "bytes": 373,
                "ip": "169.254.169.254",
                "port": 80
            },
            "source": {
                "bytes": 128,
                "ip": "10.0.1.5",
                "port": 51234
            },
            "status": "OK",
            "type": "http",
            "url": {
                "domain": "169.254.169.254",
                "full": "http://169.254.169.254/latest/meta-data/iam/security-credentials/web-role",
                "path": "/latest/meta-data/iam/security-credentials/web-role",
                "scheme": "http"
            },
            "user_agent": {
                "original": "curl/8.4.0"
            }
        }
    ]));
    // The body kept in the transaction is already redacted.
    let body = txs[0].response_body.as_deref().unwrap_or_default();
    assert!(body.contains("\"AccessKeyId\" : \"[REDACTED]\""), "{body}");
    assert!(body.contains("\"Expiration\" : \"2023-11-15T04:30:00Z\""), "{body}");
    assert!(!body.contains("pX9wQz7L") && !body.contains("IQoJb3Jp") && !body.contains("ASIAQ7XK"), "{body}");
}

#[test]
fn imdsv2_token_then_get() {
    let f = flow("10.0.1.5:40000", "169.254.169.254:80");
    let token = "AQAEAGk3xYz9Qw8Vb2Nm7Lp4Kt6Rj1Hs5Df0Ga==";
    let put = b"PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: aws-sdk-go-v2/1.21.0\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 0\r\n\r\n";
    let put_resp = format!("HTTP/1.1 200 OK\r\nX-Aws-Ec2-Metadata-Token-Ttl-Seconds: 21600\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{token}", token.len());
    let get = format!("GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: aws-sdk-go-v2/1.21.0\r\nX-aws-ec2-metadata-token: {token}\r\n\r\n");
    let (txs, stats) = run(&[
        req(f, 0, put),
        resp(f, 300, put_resp.as_bytes()),
        req(f, 1000, get.as_bytes()),
        resp(f, 1200, b"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\ni-0abc1234def567890"),
        close(f, 2000),
    ]);
    assert_eq!(stats.transactions, 2);
    assert_eq!(txs[0].response_body, None, "the token response body is never kept");
    assert_eq!(txs[1].request_header("x-aws-ec2-metadata-token"), Some("[REDACTED]"));
    let d: Vec<Value> = txs.iter().map(|t| to_ecs(t, &ImdsConfig::default(), true)).collect();
    assert!(!serde_json::to_string(&d).unwrap_or_default().contains("AQAEAGk3"));
    check("imdsv2_token_then_get", &d, json!([
        {
            "@timestamp": "2023-11-14T22:13:20.000000Z",
            "client": {
                "bytes": 155,
                "ip": "10.0.1.5",
                "port": 40000
            },
            "destination": {
                "bytes": 150,
                "ip": "169.254.169.254",
                "port": 80
            },
            "event": {
                "category": [
                    "network"
                ],
                "dataset": "network_traffic.http",
                "duration": 300000,
                "end": "2023-11-14T22:13:20.000300Z",
                "kind": "event",
                "module": "network_traffic",
                "start": "2023-11-14T22:13:20.000000Z",
                "type": [
                    "connection",
                    "protocol"
                ]
            },
            "http": {
                "request": {
                    "body": {
                        "bytes": 0
                    },
                    "bytes": 155,
                    "headers": {
                        "content-length": 0,
                        "host": "169.254.169.254",
                        "user-agent": "aws-sdk-go-v2/1.21.0",
                        "x-aws-ec2-metadata-token-ttl-seconds": "21600"
                    },
                    "method": "PUT"
                },
                "response": {
                    "body": {
                        "bytes": 40
                    },
                    "bytes": 150,
                    "headers": {
                        "content-length": 40,
                        "content-type": "text/plain",
                        "x-aws-ec2-metadata-token-ttl-seconds": "21600"
                    },
                    "status_code": 200,
                    "status_phrase": "ok"
                },
                "version": "1.1"
            },
            "imds": {
                "aws": {
                    "is_imds_v2": false,
                    "token_request": true,
                    "token_ttl_seconds": 21600
                },
                "cloud_provider": "aws",
                "credentials_request": false,
                "forwarded": false
            },
            "method": "PUT",
            "network": {
                "bytes": 305,
                "protocol": "http",
                "transport": "tcp",
                "type": "ipv4"
            },
            "query": "PUT /latest/api/token",
            "related": {
                "ip": [
                    "10.0.1.5",
                    "169.254.169.254"
                ]
            },
            "server": {
                "bytes": 150,
                "ip": "169.254.169.254",
                "port": 80
            },
            "source": {
                "bytes": 155,
                "ip": "10.0.1.5",
                "port": 40000
            },
            "status": "OK",
            "type": "http",
            "url": {
                "domain": "169.254.169.254",
                "full": "http://169.254.169.254/latest/api/token",
                "path": "/latest/api/token",
                "scheme": "http"
            },
            "user_agent": {
                "original": "aws-sdk-go-v2/1.21.0"
            }
        },
        {
            "@timestamp": "2023-11-14T22:13:20.001000Z",
            "client": {
                "bytes": 171,
                "ip": "10.0.1.5",
                "port": 40000
            },
            "destination": {
                "bytes": 58,
                "ip": "169.254.169.254",
                "port": 80
            },
            "event": {
                "category": [
                    "network"
                ],
                "dataset": "network_traffic.http",
                "duration": 200000,
                "end": "2023-11-14T22:13:20.001200Z",
                "kind": "event",
                "module": "network_traffic",
                "start": "2023-11-14T22:13:20.001000Z",
                "type": [
                    "connection",
                    "protocol"
                ]
            },
            "http": {
                "request": {
                    "body": {
                        "bytes": 0
                    },
                    "bytes": 171,
                    "headers": {
                        "host": "169.254.169.254",
                        "user-agent": "aws-sdk-go-v2/1.21.0",
                        "x-aws-ec2-metadata-token": "[REDACTED]"
                    },
                    "method": "GET"
                },
                "response": {
                    "body": {
                        "bytes": 19
                    },
                    "bytes": 58,
                    "headers": {
                        "content-length": 19
                    },
                    "status_code": 200,
                    "status_phrase": "ok"
                },
                "version": "1.1"
            },
            "imds": {
                "aws": {
                    "is_imds_v2": true,
                    "token_request": false
                },
                "cloud_provider": "aws",
                "credentials_request": false,
                "forwarded": false
            },
            "method": "GET",
            "network": {
                "bytes": 229,
                "protocol": "http",
                "transport": "tcp",
                "type": "ipv4"
            },
            "query": "GET /latest/meta-data/instance-id",
            "related": {
                "ip": [
                    "10.0.1.5",
                    "169.254.169.254"
                ]
            },
            "server": {
                "bytes": 58,
                "ip": "169.254.169.254",
                "port": 80
            },
            "source": {
                "bytes": 171,
                "ip": "10.0.1.5",
                "port": 40000
            },
            "status": "OK",
            "type": "http",
            "url": {
                "domain": "169.254.169.254",
                "full": "http://169.254.169.254/latest/meta-data/instance-id",
                "path": "/latest/meta-data/instance-id",
                "scheme": "http"
            },
            "user_agent": {
                "original": "aws-sdk-go-v2/1.21.0"
            }
        }
    ]));
}

#[test]
fn gcp_with_and_without_metadata_flavor() {
    let f1 = flow("10.128.0.7:33000", "169.254.169.254:80");
    let f2 = flow("10.128.0.7:33001", "169.254.169.254:80");
    let tok = r#"{"access_token":"ya29.c.b0Aaekm1KZx9Qw8Vb2Nm7Lp4Kt6Rj1Hs5Df0GaUoIyTr","expires_in":3599,"token_type":"Bearer"}"#;
    let ok = format!("HTTP/1.1 200 OK\r\nMetadata-Flavor: Google\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{tok}", tok.len());
    let path = "/computeMetadata/v1/instance/service-accounts/default/token";
    let (txs, _) = run(&[
        req(f1, 0, format!("GET {path} HTTP/1.1\r\nHost: metadata.google.internal\r\nMetadata-Flavor: Google\r\nUser-Agent: python-requests/2.31.0\r\n\r\n").as_bytes()),
        resp(f1, 800, ok.as_bytes()),
        close(f1, 900),
        req(f2, 1000, format!("GET {path} HTTP/1.1\r\nHost: metadata.google.internal\r\nUser-Agent: python-requests/2.31.0\r\n\r\n").as_bytes()),
        resp(f2, 1400, b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: 9\r\n\r\nForbidden"),
        close(f2, 1500),
    ]);
    check("gcp_with_and_without_metadata_flavor", &docs(&txs), json!([
        {
            "@timestamp": "2023-11-14T22:13:20.000000Z",
            "client": {
                "bytes": 169,
                "ip": "10.128.0.7",
                "port": 33000
            },
            "destination": {
                "bytes": 207,
                "domain": "metadata.google.internal",
                "ip": "169.254.169.254",
                "port": 80
            },
            "event": {
                "category": [
                    "network"
                ],
                "dataset": "network_traffic.http",
                "duration": 800000,
                "end": "2023-11-14T22:13:20.000800Z",
                "kind": "event",
                "module": "network_traffic",
                "start": "2023-11-14T22:13:20.000000Z",
                "type": [
                    "connection",
                    "protocol"
                ]
            },
            "http": {
                "request": {
                    "body": {
                        "bytes": 0
                    },
                    "bytes": 169,
                    "method": "GET"
                },
                "response": {
                    "body": {
                        "bytes": 110
                    },
                    "bytes": 207,
                    "status_code": 200,
                    "status_phrase": "ok"
                },
                "version": "1.1"
            },
            "imds": {
                "cloud_provider": "gcp",
                "credentials": {
                    "expires_in": 3599,
                    "returned": true,
                    "type": "Bearer"
                },
                "credentials_request": true,
                "forwarded": false,
                "required_header_present": true
            },
            "method": "GET",
            "network": {
                "bytes": 376,
                "protocol": "http",
                "transport": "tcp",
                "type": "ipv4"
            },
            "query": "GET /computeMetadata/v1/instance/service-accounts/default/token",
            "related": {
                "hosts": [
                    "metadata.google.internal"
                ],
                "ip": [
                    "10.128.0.7",
                    "169.254.169.254"
                ]
            },
            "server": {
                "bytes": 207,
                "domain": "metadata.google.internal",
                "ip": "169.254.169.254",
                "port": 80
            },
            "source": {
                "bytes": 169,
                "ip": "10.128.0.7",
                "port": 33000
            },
            "status": "OK",
            "type": "http",
            "url": {
                "domain": "metadata.google.internal",
                "full": "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
                "path": "/computeMetadata/v1/instance/service-accounts/default/token",
                "scheme": "http"
            },
            "user_agent": {
                "original": "python-requests/2.31.0"
            }
        },
        {
            "@timestamp": "2023-11-14T22:13:20.001000Z",
            "client": {
                "bytes": 144,
                "ip": "10.128.0.7",
                "port": 33001
            },
            "destination": {
                "bytes": 79,
                "domain": "metadata.google.internal",
                "ip": "169.254.169.254",
                "port": 80
            },
            "event": {
                "category": [
                    "network"
                ],
                "dataset": "network_traffic.http",
                "duration": 400000,
                "end": "2023-11-14T22:13:20.001400Z",
                "kind": "event",
                "module": "network_traffic",
                "start": "2023-11-14T22:13:20.001000Z",
                "type": [
                    "connection",
                    "protocol"
                ]
            },
            "http": {
                "request": {
                    "body": {
                        "bytes": 0
                    },
                    "bytes": 144,
                    "method": "GET"
                },
                "response": {
                    "body": {
                        "bytes": 9
                    },
                    "bytes": 79,
                    "status_code": 403,
                    "status_phrase": "forbidden"
                },
                "version": "1.1"
            },
            "imds": {
                "cloud_provider": "gcp",
                "credentials_request": true,
                "forwarded": false,
                "required_header_present": false
            },
            "method": "GET",
            "network": {
                "bytes": 223,
                "protocol": "http",
                "transport": "tcp",
                "type": "ipv4"
            },
            "query": "GET /computeMetadata/v1/instance/service-accounts/default/token",
            "related": {
                "hosts": [
                    "metadata.google.internal"
                ],
                "ip": [
                    "10.128.0.7",
                    "169.254.169.254"
                ]
            },
            "server": {
                "bytes": 79,
                "domain": "metadata.google.internal",
                "ip": "169.254.169.254",
                "port": 80
            },
            "source": {
                "bytes": 144,
                "ip": "10.128.0.7",
                "port": 33001
            },
            "status": "Error",
            "type": "http",
            "url": {
                "domain": "metadata.google.internal",
                "full": "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
                "path": "/computeMetadata/v1/instance/service-accounts/default/token",
                "scheme": "http"
            },
            "user_agent": {
                "original": "python-requests/2.31.0"
            }
        }
    ]));
}

#[test]
fn azure_with_and_without_metadata_header() {
    let f1 = flow("10.1.0.4:50000", "169.254.169.254:80");
    let f2 = flow("10.1.0.4:50001", "169.254.169.254:80");
    let tok = r#"{"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQifQ.c2lnbmF0dXJlX3g5","client_id":"5f1e2c3a-0000-4000-8000-000000000001","expires_in":"86399","expires_on":"1700086400","resource":"https://management.azure.com/","token_type":"Bearer"}"#;
    let ok = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{tok}", tok.len());
    let target = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F";
    let (txs, _) = run(&[
        req(f1, 0, format!("GET {target} HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\nUser-Agent: azurehound/2.1\r\n\r\n").as_bytes()),
        resp(f1, 500, ok.as_bytes()),
        req(f2, 1000, format!("GET {target} HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/7.88.1\r\n\r\n").as_bytes()),
        resp(f2, 1100, b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 37\r\n\r\n{\"error\":\"Required metadata header\"}\n"),
    ]);
    check("azure_with_and_without_metadata_header", &docs(&txs), json!([
        {
            "@timestamp": "2023-11-14T22:13:20.000000Z",
            "client": {
                "bytes": 185,
                "ip": "10.1.0.4",
                "port": 50000
            },
            "destination": {
                "bytes": 361,
                "ip": "169.254.169.254",
                "port": 80
            },
            "event": {
                "category": [
                    "network"
                ],
                "dataset": "network_traffic.http",
                "duration": 500000,
                "end": "2023-11-14T22:13:20.000500Z",
                "kind": "event",
                "module": "network_traffic",
                "start": "2023-11-14T22:13:20.000000Z",
                "type": [
                    "connection",
                    "protocol"
                ]
            },
            "http": {
                "request": {
                    "body": {
                        "bytes": 0
                    },
                    "bytes": 185,
                    "method": "GET"
                },
                "response": {
                    "body": {
                        "bytes": 274
                    },
                    "bytes": 361,
                    "status_code": 200,
                    "status_phrase": "ok"
                },
                "version": "1.1"
            },
            "imds": {
                "cloud_provider": "azure",
                "credentials": {
                    "expiration": "2023-11-15T22:13:20.000000Z",
                    "expires_in": 86399,
                    "returned": true,
                    "type": "Bearer"
                },
                "credentials_request": true,
                "forwarded": false,
                "required_header_present": true
            },
            "method": "GET",
            "network": {
                "bytes": 546,
                "protocol": "http",
                "transport": "tcp",
                "type": "ipv4"
            },
            "query": "GET /metadata/identity/oauth2/token",
            "related": {
                "ip": [
                    "10.1.0.4",
                    "169.254.169.254"
                ]
            },
            "server": {
                "bytes": 361,
                "ip": "169.254.169.254",
                "port": 80
            },
            "source": {
                "bytes": 185,
                "ip": "10.1.0.4",
                "port": 50000
            },
            "status": "OK",
            "type": "http",
            "url": {
                "domain": "169.254.169.254",
                "full": "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F",
                "path": "/metadata/identity/oauth2/token",
                "query": "api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F",
                "scheme": "http"
            },
            "user_agent": {
                "original": "azurehound/2.1"
            }
        },
        {
            "@timestamp": "2023-11-14T22:13:20.001000Z",
            "client": {
                "bytes": 166,
                "ip": "10.1.0.4",
                "port": 50001
            },
            "destination": {
                "bytes": 117,
                "ip": "169.254.169.254",
                "port": 80
            },
            "event": {
                "category": [
                    "network"
                ],
                "dataset": "network_traffic.http",
                "duration": 100000,
                "end": "2023-11-14T22:13:20.001100Z",
                "kind": "event",
                "module": "network_traffic",
                "start": "2023-11-14T22:13:20.001000Z",
                "type": [
                    "connection",
                    "protocol"
                ]
            },
            "http": {
                "request": {
                    "body": {
                        "bytes": 0
                    },
                    "bytes": 166,
                    "method": "GET"
                },
                "response": {
                    "body": {
                        "bytes": 37
                    },
                    "bytes": 117,
                    "status_code": 400,
                    "status_phrase": "bad request"
                },
                "version": "1.1"
            },
            "imds": {
                "cloud_provider": "azure",
                "credentials_request": true,
                "forwarded": false,
                "required_header_present": false
            },
            "method": "GET",
            "network": {
                "bytes": 283,
                "protocol": "http",
                "transport": "tcp",
                "type": "ipv4"
            },
            "query": "GET /metadata/identity/oauth2/token",
            "related": {
                "ip": [
                    "10.1.0.4",
                    "169.254.169.254"
                ]
            },
            "server": {
                "bytes": 117,
                "ip": "169.254.169.254",
                "port": 80
            },
            "source": {
                "bytes": 166,
                "ip": "10.1.0.4",
                "port": 50001
            },
            "status": "Error",
            "type": "http",
            "url": {
                "domain": "169.254.169.254",
                "full": "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F",
                "path": "/metadata/identity/oauth2/token",
                "query": "api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F",
                "scheme": "http"
            },
            "user_agent": {
                "original": "curl/7.88.1"
            }
        }
    ]));
}

#[test]
fn request_split_across_events() {
    let f = flow("10.0.1.5:51000", "169.254.169.254:80");
    let request: &[u8] = b"GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: Wget/1.21\r\n\r\n";
    let mut evs: Vec<StreamEvent> = request.chunks(7).enumerate().map(|(i, c)| req(f, i as i64 * 10, c)).collect();
    evs.push(resp(f, 5000, b"HTTP/1.1 200 OK\r\nContent-Len"));
    evs.push(resp(f, 5100, b"gth: 8\r\n\r\nweb-"));
    evs.push(resp(f, 5200, b"role"));
    evs.push(close(f, 6000));
    let (txs, stats) = run(&evs);
    assert_eq!(stats.transactions, 1);
    assert_eq!(txs[0].response_body.as_deref(), Some("web-role"));
    check("request_split_across_events", &docs(&txs), json!([
        {
            "@timestamp": "2023-11-14T22:13:20.000000Z",
            "client": {
                "bytes": 106,
                "ip": "10.0.1.5",
                "port": 51000
            },
            "destination": {
                "bytes": 46,
                "ip": "169.254.169.254",
                "port": 80
            },
            "event": {
                "category": [
                    "network"
                ],
                "dataset": "network_traffic.http",
                "duration": 5200000,
                "end": "2023-11-14T22:13:20.005200Z",
                "kind": "event",
                "module": "network_traffic",
                "start": "2023-11-14T22:13:20.000000Z",
                "type": [
                    "connection",
                    "protocol"
                ]
            },
            "http": {
                "request": {
                    "body": {
                        "bytes": 0
                    },
                    "bytes": 106,
                    "method": "GET"
                },
                "response": {
                    "body": {
                        "bytes": 8
                    },
                    "bytes": 46,
                    "status_code": 200,
                    "status_phrase": "ok"
                },
                "version": "1.1"
            },
            "imds": {
                "aws": {
                    "is_imds_v2": false,
                    "token_request": false
                },
                "cloud_provider": "aws",
                "credentials_request": true,
                "forwarded": false
            },
            "method": "GET",
            "network": {
                "bytes": 152,
                "protocol": "http",
                "transport": "tcp",
                "type": "ipv4"
            },
            "query": "GET /latest/meta-data/iam/security-credentials/",
            "related": {
                "ip": [
                    "10.0.1.5",
                    "169.254.169.254"
                ]
            },
            "server": {
                "bytes": 46,
                "ip": "169.254.169.254",
                "port": 80
            },
            "source": {
                "bytes": 106,
                "ip": "10.0.1.5",
                "port": 51000
            },
            "status": "OK",
            "type": "http",
            "url": {
                "domain": "169.254.169.254",
                "full": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                "path": "/latest/meta-data/iam/security-credentials/",
                "scheme": "http"
            },
            "user_agent": {
                "original": "Wget/1.21"
            }
        }
    ]));
}

#[test]
fn keep_alive_five_exchanges() {
    let f = flow("10.0.1.5:52000", "169.254.169.254:80");
    let mut evs = Vec::new();
    for i in 0..5i64 {
        evs.push(req(f, i * 1000, format!("GET /latest/meta-data/item{i} HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n").as_bytes()));
        evs.push(resp(f, i * 1000 + 100, format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv{i}").as_bytes()));
    }
    let (txs, stats) = run(&evs);
    assert_eq!(stats.transactions, 5);
    let paths: Vec<&str> = txs.iter().map(|t| t.path.as_str()).collect();
    assert_eq!(paths, ["/latest/meta-data/item0", "/latest/meta-data/item1", "/latest/meta-data/item2", "/latest/meta-data/item3", "/latest/meta-data/item4"]);
    let bodies: Vec<&str> = txs.iter().map(|t| t.response_body.as_deref().unwrap_or_default()).collect();
    assert_eq!(bodies, ["v0", "v1", "v2", "v3", "v4"]);
    check("keep_alive_five_exchanges", &docs(&txs[4..]), json!([
        {
            "@timestamp": "2023-11-14T22:13:20.004000Z",
            "client": {
                "bytes": 63,
                "ip": "10.0.1.5",
                "port": 52000
            },
            "destination": {
                "bytes": 40,
                "ip": "169.254.169.254",
                "port": 80
            },
            "event": {
                "category": [
                    "network"
                ],
                "dataset": "network_traffic.http",
                "duration": 100000,
                "end": "2023-11-14T22:13:20.004100Z",
                "kind": "event",
                "module": "network_traffic",
                "start": "2023-11-14T22:13:20.004000Z",
                "type": [
                    "connection",
                    "protocol"
                ]
            },
            "http": {
                "request": {
                    "body": {
                        "bytes": 0
                    },
                    "bytes": 63,
                    "method": "GET"
                },
                "response": {
                    "body": {
                        "bytes": 2
                    },
                    "bytes": 40,
                    "status_code": 200,
                    "status_phrase": "ok"
                },
                "version": "1.1"
            },
            "imds": {
                "aws": {
                    "is_imds_v2": false,
                    "token_request": false
                },
                "cloud_provider": "aws",
                "credentials_request": false,
                "forwarded": false
            },
            "method": "GET",
            "network": {
                "bytes": 103,
                "protocol": "http",
                "transport": "tcp",
                "type": "ipv4"
            },
            "query": "GET /latest/meta-data/item4",
            "related": {
                "ip": [
                    "10.0.1.5",
                    "169.254.169.254"
                ]
            },
            "server": {
                "bytes": 40,
                "ip": "169.254.169.254",
                "port": 80
            },
            "source": {
                "bytes": 63,
                "ip": "10.0.1.5",
                "port": 52000
            },
            "status": "OK",
            "type": "http",
            "url": {
                "domain": "169.254.169.254",
                "full": "http://169.254.169.254/latest/meta-data/item4",
                "path": "/latest/meta-data/item4",
                "scheme": "http"
            }
        }
    ]));
}

#[test]
fn pipelined_requests() {
    let f = flow("10.0.1.5:53000", "169.254.169.254:80");
    let (txs, stats) = run(&[
        req(f, 0, b"GET /latest/meta-data/ami-id HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\nHEAD /latest/meta-data/hostname HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"),
        resp(f, 100, b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nami-12345678HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n"),
        close(f, 200),
    ]);
    assert_eq!(stats.transactions, 2);
    check("pipelined_requests", &docs(&txs), json!([
        {
            "@timestamp": "2023-11-14T22:13:20.000000Z",
            "client": {
                "bytes": 64,
                "ip": "10.0.1.5",
                "port": 53000
            },
            "destination": {
                "bytes": 51,
                "ip": "169.254.169.254",
                "port": 80
            },
            "event": {
                "category": [
                    "network"
                ],
                "dataset": "network_traffic.http",
                "duration": 100000,
                "end": "2023-11-14T22:13:20.000100Z",
                "kind": "event",
                "module": "network_traffic",
                "start": "2023-11-14T22:13:20.000000Z",
                "type": [
                    "connection",
                    "protocol"
                ]
            },
            "http": {
                "request": {
                    "body": {
                        "bytes": 0
                    },
                    "bytes": 64,
                    "method": "GET"
                },
                "response": {
                    "body": {
                        "bytes": 12
                    },
                    "bytes": 51,
                    "status_code": 200,
                    "status_phrase": "ok"
                },
                "version": "1.1"
            },
            "imds": {
                "aws": {
                    "is_imds_v2": false,
                    "token_request": false
                },
                "cloud_provider": "aws",
                "credentials_request": false,
                "forwarded": false
            },
            "method": "GET",
            "network": {
                "bytes": 115,
                "protocol": "http",
                "transport": "tcp",
                "type": "ipv4"
            },
            "query": "GET /latest/meta-data/ami-id",
            "related": {
                "ip": [
                    "10.0.1.5",
                    "169.254.169.254"
                ]
            },
            "server": {
                "bytes": 51,
                "ip": "169.254.169.254",
                "port": 80
            },
            "source": {
                "bytes": 64,
                "ip": "10.0.1.5",
                "port": 53000
            },
            "status": "OK",
            "type": "http",
            "url": {
                "domain": "169.254.169.254",
                "full": "http://169.254.169.254/latest/meta-data/ami-id",
                "path": "/latest/meta-data/ami-id",
                "scheme": "http"
            }
        },
        {
            "@timestamp": "2023-11-14T22:13:20.000000Z",
            "client": {
                "bytes": 67,
                "ip": "10.0.1.5",
                "port": 53000
            },
            "destination": {
                "bytes": 39,
                "ip": "169.254.169.254",
                "port": 80
            },
            "event": {
                "category": [
                    "network"
                ],
                "dataset": "network_traffic.http",
                "duration": 100000,
                "end": "2023-11-14T22:13:20.000100Z",
                "kind": "event",
                "module": "network_traffic",
                "start": "2023-11-14T22:13:20.000000Z",
                "type": [
                    "connection",
                    "protocol"
                ]
            },
            "http": {
                "request": {
                    "body": {
                        "bytes": 0
                    },
                    "bytes": 67,
                    "method": "HEAD"
                },
                "response": {
                    "body": {
                        "bytes": 0
                    },
                    "bytes": 39,
                    "status_code": 200,
                    "status_phrase": "ok"
                },
                "version": "1.1"
            },
            "imds": {
                "aws": {
                    "is_imds_v2": false,
                    "token_request": false
                },
                "cloud_provider": "aws",
                "credentials_request": false,
                "forwarded": false
            },
            "method": "HEAD",
            "network": {
                "bytes": 106,
                "protocol": "http",
                "transport": "tcp",
                "type": "ipv4"
            },
            "query": "HEAD /latest/meta-data/hostname",
            "related": {
                "ip": [
                    "10.0.1.5",
                    "169.254.169.254"
                ]
            },
            "server": {
                "bytes": 39,
                "ip": "169.254.169.254",
                "port": 80
            },
            "source": {
                "bytes": 67,
                "ip": "10.0.1.5",
                "port": 53000
            },
            "status": "OK",
            "type": "http",
            "url": {
                "domain": "169.254.169.254",
                "full": "http://169.254.169.254/latest/meta-data/hostname",
                "path": "/latest/meta-data/hostname",
                "scheme": "http"
            }
        }
    ]));
}

#[test]
fn chunked_response() {
    let f = flow("172.17.0.2:41000", "169.254.170.2:80");
    let c1 = "{\"RoleArn\":\"arn:aws:iam::123456789012:role/task-role\",";
    let c2 = "\"Expiration\":\"2023-11-15T04:30:00Z\"}";
    let (txs, _) = run(&[
        req(f, 0, b"GET /v2/credentials/0f6b7c1e-2a3d-4e5f-8a9b-0c1d2e3f4a5b HTTP/1.1\r\nHost: 169.254.170.2\r\nUser-Agent: Boto3/1.28.0\r\n\r\n"),
        resp(f, 100, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"),
        resp(f, 120, format!("{:x}\r\n{}", c1.len(), &c1[..10]).as_bytes()),
        resp(f, 150, format!("{}\r\n", &c1[10..]).as_bytes()),
        resp(f, 200, format!("{:X}\r\n{}", c2.len(), &c2[..5]).as_bytes()),
        resp(f, 250, format!("{}\r\n0\r\n\r\n", &c2[5..]).as_bytes()),
        close(f, 300),
    ]);
    assert_eq!(txs.len(), 1);
    assert_eq!(
        txs[0].response_body.as_deref(),
        Some("{\"RoleArn\":\"arn:aws:iam::123456789012:role/task-role\",\"Expiration\":\"2023-11-15T04:30:00Z\"}")
    );
    check("chunked_response", &docs(&txs), json!([
        {
            "@timestamp": "2023-11-14T22:13:20.000000Z",
            "client": {
                "bytes": 116,
                "ip": "172.17.0.2",
                "port": 41000
            },
            "destination": {
                "bytes": 186,
                "ip": "169.254.170.2",
                "port": 80
            },
            "event": {
                "category": [
                    "network"
                ],
                "dataset": "network_traffic.http",
                "duration": 250000,
                "end": "2023-11-14T22:13:20.000250Z",
                "kind": "event",
                "module": "network_traffic",
                "start": "2023-11-14T22:13:20.000000Z",
                "type": [
                    "connection",
                    "protocol"
                ]
            },
            "http": {
                "request": {
                    "body": {
                        "bytes": 0
                    },
                    "bytes": 116,
                    "method": "GET"
                },
                "response": {
                    "body": {
                        "bytes": 90
                    },
                    "bytes": 186,
                    "status_code": 200,
                    "status_phrase": "ok"
                },
                "version": "1.1"
            },
            "imds": {
                "cloud_provider": "aws-ecs-task",
                "credentials": {
                    "expiration": "2023-11-15T04:30:00Z",
                    "role": "task-role"
                },
                "credentials_request": true,
                "forwarded": false
            },
            "method": "GET",
            "network": {
                "bytes": 302,
                "protocol": "http",
                "transport": "tcp",
                "type": "ipv4"
            },
            "query": "GET /v2/credentials/0f6b7c1e-2a3d-4e5f-8a9b-0c1d2e3f4a5b",
            "related": {
                "ip": [
                    "172.17.0.2",
                    "169.254.170.2"
                ]
            },
            "server": {
                "bytes": 186,
                "ip": "169.254.170.2",
                "port": 80
            },
            "source": {
                "bytes": 116,
                "ip": "172.17.0.2",
                "port": 41000
            },
            "status": "OK",
            "type": "http",
            "url": {
                "domain": "169.254.170.2",
                "full": "http://169.254.170.2/v2/credentials/0f6b7c1e-2a3d-4e5f-8a9b-0c1d2e3f4a5b",
                "path": "/v2/credentials/0f6b7c1e-2a3d-4e5f-8a9b-0c1d2e3f4a5b",
                "scheme": "http"
            },
            "user_agent": {
                "original": "Boto3/1.28.0"
            }
        }
    ]));
}

#[test]
fn gap_mid_request_resynchronises() {
    let f = flow("10.0.1.5:54000", "169.254.169.254:80");
    let (txs, stats) = run(&[
        req(f, 0, b"GET /latest/meta-data/iam/secur"),
        gap(f, Direction::ToServer, 10),
        req(f, 20, b"ole HTTP/1.1\r\nHost: x\r\n\r\nGET /latest/meta-data/local-ipv4 HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"),
        resp(f, 100, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nrole"),
        resp(f, 200, b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n10.0.1.5"),
        close(f, 300),
    ]);
    assert_eq!(stats.gaps, 1);
    assert_eq!(stats.messages_dropped_by_gap, 1);
    assert_eq!(stats.unmatched_responses, 1);
    check("gap_mid_request_resynchronises", &docs(&txs), json!([
        {
            "@timestamp": "2023-11-14T22:13:20.000020Z",
            "client": {
                "bytes": 68,
                "ip": "10.0.1.5",
                "port": 54000
            },
            "destination": {
                "bytes": 46,
                "ip": "169.254.169.254",
                "port": 80
            },
            "event": {
                "category": [
                    "network"
                ],
                "dataset": "network_traffic.http",
                "duration": 180000,
                "end": "2023-11-14T22:13:20.000200Z",
                "kind": "event",
                "module": "network_traffic",
                "start": "2023-11-14T22:13:20.000020Z",
                "type": [
                    "connection",
                    "protocol"
                ]
            },
            "http": {
                "request": {
                    "body": {
                        "bytes": 0
                    },
                    "bytes": 68,
                    "method": "GET"
                },
                "response": {
                    "body": {
                        "bytes": 8
                    },
                    "bytes": 46,
                    "status_code": 200,
                    "status_phrase": "ok"
                },
                "version": "1.1"
            },
            "imds": {
                "aws": {
                    "is_imds_v2": false,
                    "token_request": false
                },
                "cloud_provider": "aws",
                "credentials_request": false,
                "forwarded": false
            },
            "method": "GET",
            "network": {
                "bytes": 114,
                "protocol": "http",
                "transport": "tcp",
                "type": "ipv4"
            },
            "query": "GET /latest/meta-data/local-ipv4",
            "related": {
                "ip": [
                    "10.0.1.5",
                    "169.254.169.254"
                ]
            },
            "server": {
                "bytes": 46,
                "ip": "169.254.169.254",
                "port": 80
            },
            "source": {
                "bytes": 68,
                "ip": "10.0.1.5",
                "port": 54000
            },
            "status": "OK",
            "type": "http",
            "url": {
                "domain": "169.254.169.254",
                "full": "http://169.254.169.254/latest/meta-data/local-ipv4",
                "path": "/latest/meta-data/local-ipv4",
                "scheme": "http"
            }
        }
    ]));
}

#[test]
fn capture_cut_mid_request() {
    let f = flow("10.0.1.5:55000", "169.254.169.254:80");
    let (txs, stats) = run(&[
        req(f, 0, b"GET /latest/meta-data/iam/security-credentials/admin HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: python-urllib3/2.0\r\nAcce"),
        close(f, 50),
    ]);
    assert_eq!(stats.truncated_messages, 1);
    assert_eq!(stats.unmatched_requests, 1);
    check("capture_cut_mid_request", &docs(&txs), json!([
        {
            "@timestamp": "2023-11-14T22:13:20.000000Z",
            "client": {
                "bytes": 122,
                "ip": "10.0.1.5",
                "port": 55000
            },
            "destination": {
                "bytes": 0,
                "ip": "169.254.169.254",
                "port": 80
            },
            "error": {
                "message": [
                    "request truncated"
                ]
            },
            "event": {
                "category": [
                    "network"
                ],
                "dataset": "network_traffic.http",
                "kind": "event",
                "module": "network_traffic",
                "start": "2023-11-14T22:13:20.000000Z",
                "type": [
                    "connection",
                    "protocol"
                ]
            },
            "http": {
                "request": {
                    "body": {
                        "bytes": 0
                    },
                    "bytes": 122,
                    "method": "GET"
                },
                "version": "1.1"
            },
            "imds": {
                "aws": {
                    "is_imds_v2": false,
                    "token_request": false
                },
                "cloud_provider": "aws",
                "credentials": {
                    "role": "admin"
                },
                "credentials_request": true,
                "forwarded": false
            },
            "method": "GET",
            "network": {
                "bytes": 122,
                "protocol": "http",
                "transport": "tcp",
                "type": "ipv4"
            },
            "query": "GET /latest/meta-data/iam/security-credentials/admin",
            "related": {
                "ip": [
                    "10.0.1.5",
                    "169.254.169.254"
                ]
            },
            "server": {
                "bytes": 0,
                "ip": "169.254.169.254",
                "port": 80
            },
            "source": {
                "bytes": 122,
                "ip": "10.0.1.5",
                "port": 55000
            },
            "status": "Error",
            "type": "http",
            "url": {
                "domain": "169.254.169.254",
                "full": "http://169.254.169.254/latest/meta-data/iam/security-credentials/admin",
                "path": "/latest/meta-data/iam/security-credentials/admin",
                "scheme": "http"
            },
            "user_agent": {
                "original": "python-urllib3/2.0"
            }
        }
    ]));
}

#[test]
fn non_http_streams_are_counted() {
    let f = flow("10.0.1.5:56000", "10.0.9.9:80");
    let g = flow("10.0.1.5:56001", "10.0.9.9:443");
    let (txs, stats) = run(&[
        req(f, 0, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        req(f, 10, b"GET / HTTP/1.1\r\n\r\n"),
        req(g, 0, b"SSH-2.0-OpenSSH_9.3\r\n"),
        resp(g, 5, b"\x00\x00\x01\x00garbage"),
        close(f, 20),
        close(g, 20),
    ]);
    assert!(txs.is_empty());
    assert_eq!(stats.non_http_flows, 2);
    check("non_http_streams_are_counted", &docs(&txs), json!([]));
}
