//! Planted credentials never leave the decoder: no 8-byte window of any planted secret appears in
//! transactions (Debug), ECS documents (with and without all headers), statistics or notes.
//! Also: arbitrary input never panics.

use imdsguard_capture::{to_ecs, write_ecs, Direction, FlowKey, HttpConfig, HttpDecoder, HttpTransaction, ImdsConfig, StreamEvent};
use proptest::prelude::*;

const T0: i64 = 1_700_000_000_000_000;

fn flow(client: &str, server: &str) -> FlowKey {
    FlowKey { client: client.parse().expect("client addr"), server: server.parse().expect("server addr") }
}

fn data(f: FlowKey, dir: Direction, ts: i64, bytes: &[u8]) -> StreamEvent {
    StreamEvent::Data { flow: f, dir, ts_micros: T0 + ts, data: bytes.to_vec() }
}

use Direction::{ToClient as C, ToServer as S};

/// Distinct, random-looking secrets (no 8-byte window in common with ordinary output).
const SECRETS: &[&str] = &[
    "Qm7vZt2pXk9wLr4sNb8c",                         // 0 IMDSv2 token header
    "bR3xK8mQ2zW7vT5nY1pL6jH4",                     // 1 Authorization bearer
    "cK9tPz3wQm7Xv2LrN5bY",                         // 2 Cookie
    "sD4fG7hJ2kL9zX3cV6bN",                         // 3 Set-Cookie
    "qA8wS2eD5rF9tG3yH7uJ",                         // 4 access_token in query
    "ASIAZ7XQ4KLM2PVN8RTW",                         // 5 AccessKeyId
    "wJx9Qp2Lm7Zk4Vt8Nb3Rc6Hy1Fg5Dj0Ks",             // 6 SecretAccessKey
    "IQoJb3Jp9Zx2Wq7Lk4Mv8Tn3Rb6Yc1Hd5Fg0Js",         // 7 Token
    "ya29.Zq8Xw3Lm7Kt2Vb9Nc4Rj6Hs1Pd5Fg",             // 8 access_token (chunked, split)
    "1//0gRt7Yk3Pz9Xw2Lq8Mv4Nb6Hc1Jd5Fs",             // 9 refresh_token (chunked)
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4eXoifQ.Zk9Xw2Lq8Mv4Nb6Hc", // 10 id_token
    "gP5tRw9Zx2Kq7Lm4Vb8N",                         // 11 SecretAccessKey cut by a gap
    "hT6yUj3Ik8Ol2Pm9Zn4B",                         // 12 Token after the gap
    "AQAEAJz8Xk2Wq7Lm4Vt9Nb3Rc6Hy1Fg5Dj0Ks==",       // 13 IMDSv2 token response body
    "fL2kJh8Gd5Sa3Qw9Ez7X",                         // 14 request body secret
    "mN7bV4cX1zL8kJ5hG2fD",                         // 15 Token=... in a custom header
    "pO9iU6yT3rE8wQ2aS5dF",                         // 16 Token cut by the end of the flow
    "LTAIz7Xq4Kw2Lm9Vb3Nc",                         // 17 Alibaba AccessKeySecret
    "CAISz8Xw3Lq7Mv4Nb6Hc1Jd5Fs9Kt2Pr",             // 18 Alibaba SecurityToken
];

fn events() -> Vec<StreamEvent> {
    let s = SECRETS;
    let mut ev = Vec::new();
    // 1. Headers, query string and a Content-Length JSON body.
    let f = flow("10.0.0.1:40001", "169.254.169.254:80");
    ev.push(data(f, S, 0, format!(
        "GET /latest/meta-data/iam/security-credentials/r?access_token={} HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token: {}\r\nAuthorization: Bearer {}\r\nCookie: session={}\r\nX-Custom: Token={}\r\n\r\n",
        s[4], s[0], s[1], s[2], s[15]).as_bytes()));
    let body = format!(
        "{{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"{}\",\"SecretAccessKey\":\"{}\",\"Token\":\"{}\",\"Expiration\":\"2023-11-15T04:30:00Z\"}}",
        s[5], s[6], s[7]);
    ev.push(data(f, C, 10, format!("HTTP/1.1 200 OK\r\nSet-Cookie: sid={}; HttpOnly\r\nContent-Length: {}\r\n\r\n{body}", s[3], body.len()).as_bytes()));

    // 2. A chunked body whose secrets are split across chunks and events.
    let f = flow("10.0.0.1:40002", "169.254.169.254:80");
    ev.push(data(f, S, 100, b"GET /metadata/identity/oauth2/token?resource=x HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n\r\n"));
    let body = format!("{{\"access_token\":\"{}\",\"refresh_token\":\"{}\",\"id_token\":\"{}\",\"token_type\":\"Bearer\"}}", s[8], s[9], s[10]);
    let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for chunk in body.as_bytes().chunks(11) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    for (i, piece) in wire.chunks(5).enumerate() {
        ev.push(data(f, C, 110 + i as i64, piece));
    }

    // 3. A body cut by a gap, then a resynchronised response.
    let f = flow("10.0.0.1:40003", "169.254.169.254:80");
    ev.push(data(f, S, 200, b"GET /latest/meta-data/iam/security-credentials/r HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\nGET /latest/meta-data/ami-id HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"));
    let half = &s[11][..10];
    ev.push(data(f, C, 210, format!("HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n{{\"Type\":\"AWS-HMAC\",\"SecretAccessKey\":\"{half}").as_bytes()));
    ev.push(StreamEvent::Gap { flow: f, dir: C, ts_micros: T0 + 211, len: 50 });
    ev.push(data(f, C, 212, format!("{}\",\"Token\":\"{}\"}}\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nami-", &s[11][10..], s[12]).as_bytes()));

    // 4. An IMDSv2 token response and a request body with a secret.
    let f = flow("10.0.0.1:40004", "169.254.169.254:80");
    ev.push(data(f, S, 300, b"PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n"));
    ev.push(data(f, C, 310, format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}", s[13].len(), s[13]).as_bytes()));
    let form = format!("grant=1&x={}", s[14]);
    ev.push(data(f, S, 320, format!("POST /x HTTP/1.1\r\nHost: 169.254.169.254\r\nContent-Length: {}\r\n\r\n{form}", form.len()).as_bytes()));
    ev.push(data(f, C, 330, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));

    // 5. A response cut by the end of the flow in the middle of a value; Alibaba keys.
    let f = flow("10.0.0.1:40005", "100.100.100.200:80");
    ev.push(data(f, S, 400, b"GET /latest/meta-data/ram/security-credentials/ecs-role HTTP/1.1\r\nHost: 100.100.100.200\r\n\r\n"));
    ev.push(data(f, C, 410, format!(
        "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{{\"AccessKeySecret\" : \"{}\", \"SecurityToken\": \"{}\", \"Token\":\"{}",
        s[17], s[18], s[16]).as_bytes()));
    ev.push(StreamEvent::Close { flow: f, ts_micros: T0 + 420 });
    ev
}

/// Every 8-byte window of every planted secret, with the secret's index.
fn secret_windows() -> &'static std::collections::HashMap<[u8; 8], usize> {
    static W: std::sync::OnceLock<std::collections::HashMap<[u8; 8], usize>> = std::sync::OnceLock::new();
    W.get_or_init(|| {
        let mut m = std::collections::HashMap::new();
        for (i, s) in SECRETS.iter().enumerate() {
            for w in s.as_bytes().windows(8) {
                let mut k = [0u8; 8];
                k.copy_from_slice(w);
                m.insert(k, i);
            }
        }
        m
    })
}

fn assert_clean(what: &str, text: &str) {
    let windows = secret_windows();
    for t in text.as_bytes().windows(8) {
        let mut k = [0u8; 8];
        k.copy_from_slice(t);
        if let Some(i) = windows.get(&k) {
            panic!("{what}: secret {i} leaks ({:?}) in {text}", String::from_utf8_lossy(t));
        }
    }
}

fn decode(events: &[StreamEvent], config: HttpConfig) -> (Vec<HttpTransaction>, String) {
    let mut d = HttpDecoder::new(config);
    let mut out = Vec::new();
    for e in events {
        d.on_event(e, &mut out);
    }
    d.finish(&mut out);
    (out, format!("{:?}", d.stats()))
}

#[test]
fn planted_secrets_never_leave_the_decoder() {
    let evs = events();
    for config in [HttpConfig::default(), HttpConfig { max_body_bytes: 57, ..HttpConfig::default() }] {
        let (txs, stats) = decode(&evs, config);
        assert!(txs.len() >= 6, "{txs:#?}");
        assert_clean("stats", &stats);
        for tx in &txs {
            assert_clean("transaction", &format!("{tx:?}"));
            for notes in &tx.notes {
                assert_clean("note", notes);
            }
            for all in [false, true] {
                let doc = to_ecs(tx, &ImdsConfig::default(), all);
                assert_clean("ecs", &doc.to_string());
            }
        }
        // The evidence stays: the keys are there, with the redaction marker.
        let first = &txs[0];
        assert_eq!(first.request_header("authorization"), Some("Bearer [REDACTED]"));
        assert_eq!(first.request_header("x-aws-ec2-metadata-token"), Some("[REDACTED]"));
        assert!(first.target.contains("access_token=[REDACTED]"), "{}", first.target);
    }
    // The same holds when every event is split into single bytes.
    let mut bytes = Vec::new();
    for e in &evs {
        match e {
            StreamEvent::Data { flow, dir, ts_micros, data: d } => {
                bytes.extend(d.iter().map(|b| StreamEvent::Data { flow: *flow, dir: *dir, ts_micros: *ts_micros, data: vec![*b] }))
            }
            other => bytes.push(other.clone()),
        }
    }
    let (txs, stats) = decode(&bytes, HttpConfig::default());
    assert!(txs.len() >= 6);
    assert_clean("stats", &stats);
    for tx in &txs {
        assert_clean("transaction", &format!("{tx:?}"));
        assert_clean("ecs", &to_ecs(tx, &ImdsConfig::default(), true).to_string());
    }
}

#[test]
#[should_panic(expected = "leaks")]
fn the_leak_check_detects_a_window() {
    assert_clean("self-test", &format!("prefix {} suffix", &SECRETS[6][3..12]));
}

fn arb_event() -> impl Strategy<Value = StreamEvent> {
    let flows = prop::sample::select(vec![
        flow("10.0.0.1:1000", "169.254.169.254:80"),
        flow("10.0.0.2:1001", "169.254.170.2:80"),
        flow("[fe80::1]:1002", "[fd00:ec2::254]:80"),
    ]);
    let dir = prop_oneof![Just(Direction::ToServer), Just(Direction::ToClient)];
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::sample::select(vec![
            b"GET / HTTP/1.1\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\n".to_vec(),
            b"Content-Length: 5\r\n".to_vec(),
            b"Transfer-Encoding: chunked\r\n".to_vec(),
            b"\r\n".to_vec(),
            b"5\r\nhello\r\n".to_vec(),
            b"0\r\n\r\n".to_vec(),
            b"ffffffffffffffff\r\n".to_vec(),
            b"HEAD /x HTTP/1.0\r\nHost: a\r\n\r\n".to_vec(),
            b"HTTP/1.1 101 Switching\r\n\r\n".to_vec(),
            b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(),
            b"{\"Token\":\"abc".to_vec(),
        ]),
    ];
    prop_oneof![
        8 => (flows.clone(), dir.clone(), any::<i32>(), bytes)
            .prop_map(|(flow, dir, ts, data)| StreamEvent::Data { flow, dir, ts_micros: i64::from(ts), data }),
        1 => (flows.clone(), dir, any::<u32>()).prop_map(|(flow, dir, len)| StreamEvent::Gap { flow, dir, ts_micros: 0, len: u64::from(len) }),
        1 => flows.prop_map(|flow| StreamEvent::Close { flow, ts_micros: i64::MAX }),
    ]
}

/// Re-cut the planted stream: every Data event split at `sizes`, some pieces lost in gaps.
fn recut(sizes: &[usize], lost: &[bool]) -> Vec<StreamEvent> {
    let mut out = Vec::new();
    let mut k = 0usize;
    for e in events() {
        match e {
            StreamEvent::Data { flow, dir, ts_micros, data: d } => {
                let mut rest: &[u8] = &d;
                while !rest.is_empty() {
                    let n = sizes.get(k % sizes.len().max(1)).copied().unwrap_or(1).clamp(1, rest.len());
                    let lose = lost.get(k % lost.len().max(1)).copied().unwrap_or(false);
                    k += 1;
                    if lose {
                        out.push(StreamEvent::Gap { flow, dir, ts_micros, len: n as u64 });
                    } else {
                        out.push(StreamEvent::Data { flow, dir, ts_micros, data: rest[..n].to_vec() });
                    }
                    rest = &rest[n..];
                }
            }
            other => out.push(other),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn planted_secrets_never_leak_under_any_cut(
        sizes in prop::collection::vec(1usize..48, 1..16),
        lost in prop::collection::vec(prop::bool::weighted(0.08), 1..16),
        body_cap in 1usize..200,
    ) {
        let evs = recut(&sizes, &lost);
        for config in [HttpConfig::default(), HttpConfig { max_body_bytes: body_cap, ..HttpConfig::default() }] {
            let (txs, stats) = decode(&evs, config);
            assert_clean("stats", &stats);
            for tx in &txs {
                assert_clean("transaction", &format!("{tx:?}"));
                assert_clean("ecs", &to_ecs(tx, &ImdsConfig::default(), true).to_string());
            }
        }
    }

    #[test]
    fn arbitrary_chunks_never_panic(evs in prop::collection::vec(arb_event(), 0..40), small in any::<bool>()) {
        let config = if small {
            HttpConfig { max_head_bytes: 64, max_headers: 2, max_header_value_len: 4, max_body_bytes: 3, max_pending_requests: 1, max_flows: 1, body_endpoints: None }
        } else {
            HttpConfig::default()
        };
        let mut d = HttpDecoder::new(config);
        let mut out = Vec::new();
        for e in &evs {
            d.on_event(e, &mut out);
        }
        d.finish(&mut out);
        for tx in &out {
            // The streaming writer must produce one valid JSON object whatever the bytes were.
            let mut raw = Vec::new();
            write_ecs(tx, &ImdsConfig::default(), true, &mut raw);
            let doc: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&raw))))?;
            prop_assert!(doc.is_object());
            if small {
                prop_assert!(tx.response_body.as_ref().is_none_or(|b| b.len() <= 3 + 16));
            }
        }
    }
}
