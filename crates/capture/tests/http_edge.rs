//! Edge cases of HTTP/1.x framing: interim responses, bodiless statuses, read-until-close,
//! upgrades, too many headers, lenient header syntax, bounded body capture, evicted flows.

use imdsguard_capture::{Direction, FlowKey, HttpConfig, HttpDecoder, HttpStats, HttpTransaction, StreamEvent};

fn flow(port: u16) -> FlowKey {
    FlowKey { client: format!("10.0.0.1:{port}").parse().expect("addr"), server: "169.254.169.254:80".parse().expect("addr") }
}

fn run(config: HttpConfig, evs: &[(FlowKey, Option<Direction>, &[u8])]) -> (Vec<HttpTransaction>, HttpStats) {
    let mut d = HttpDecoder::new(config);
    let mut out = Vec::new();
    for (i, (f, dir, data)) in evs.iter().enumerate() {
        let ts = i as i64 * 10;
        let ev = match dir {
            Some(dir) => StreamEvent::Data { flow: *f, dir: *dir, ts_micros: ts, data: data.to_vec() },
            None => StreamEvent::Close { flow: *f, ts_micros: ts },
        };
        d.on_event(&ev, &mut out);
    }
    d.finish(&mut out);
    (out, d.stats().clone())
}

use Direction::{ToClient as C, ToServer as S};

#[test]
fn interim_bodiless_and_until_close() {
    let f = flow(1);
    let (txs, stats) = run(HttpConfig::default(), &[
        (f, Some(S), b"POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"),
        (f, Some(C), b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"),
        (f, Some(S), b"GET /b HTTP/1.1\r\n\r\n"),
        (f, Some(C), b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"),
        (f, Some(S), b"GET /c HTTP/1.0\r\n\r\n"),
        (f, Some(C), b"HTTP/1.0 200 OK\r\n\r\nuntil "),
        (f, Some(C), b"close"),
        (f, None, b""),
    ]);
    let got: Vec<(&str, Option<u16>, Option<&str>, u64)> = txs
        .iter()
        .map(|t| (t.path.as_str(), t.status_code, t.response_body.as_deref(), t.request_body_bytes))
        .collect();
    assert_eq!(got, [("/a", Some(204), None, 3), ("/b", Some(304), None, 0), ("/c", Some(200), Some("until close"), 0)]);
    assert_eq!(stats.interim_responses, 1);
    assert_eq!(txs[2].response_end_ts_micros, Some(60));
}

#[test]
fn upgrade_stops_decoding_the_flow() {
    let f = flow(2);
    let (txs, stats) = run(HttpConfig::default(), &[
        (f, Some(S), b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
        (f, Some(C), b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"),
        (f, Some(S), b"\x81\x85\x00\x00\x00\x00hello"),
    ]);
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].status_code, Some(101));
    assert_eq!((stats.upgraded_flows, stats.non_http_flows), (1, 0));
}

#[test]
fn too_many_headers_and_lenient_syntax() {
    let f = flow(3);
    let mut request = b"GET /h HTTP/1.1\r\n".to_vec();
    for i in 0..10 {
        request.extend_from_slice(format!("X-H{i}: {i}\r\n").as_bytes());
    }
    request.extend_from_slice(b"Bad Header Line\r\n\r\n");
    let config = HttpConfig { max_headers: 4, max_header_value_len: 3, ..HttpConfig::default() };
    let (txs, stats) = run(config, &[
        (f, Some(S), &request),
        (f, Some(C), b"HTTP/1.1  200  OK\r\nX-Long: abcdefgh\r\nContent-Length : 2\r\n\r\nok"),
    ]);
    assert_eq!(txs.len(), 1);
    let names: Vec<&str> = txs[0].request_headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["X-H0", "X-H1", "X-H2", "X-H3"]);
    assert_eq!(txs[0].response_header("x-long"), Some("abc"));
    assert_eq!(txs[0].response_body.as_deref(), Some("ok"));
    assert_eq!(stats.headers_truncated, 7);
}

#[test]
fn body_capture_is_bounded_and_counted() {
    let f = flow(4);
    let body = "x".repeat(1000);
    let response = format!("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{body}");
    let (txs, stats) = run(HttpConfig { max_body_bytes: 10, ..HttpConfig::default() }, &[
        (f, Some(S), b"GET /big HTTP/1.1\r\n\r\n"),
        (f, Some(C), response.as_bytes()),
    ]);
    assert_eq!(txs[0].response_body.as_deref(), Some("xxxxxxxxxx"));
    assert!(txs[0].response_body_truncated);
    assert_eq!(txs[0].response_body_bytes, 1000);
    assert_eq!(stats.body_bytes_not_kept, 990);
}

#[test]
fn gzip_bodies_are_not_kept() {
    let f = flow(5);
    let (txs, _) = run(HttpConfig::default(), &[
        (f, Some(S), b"GET /z HTTP/1.1\r\n\r\n"),
        (f, Some(C), b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\n\x1f\x8b\x08\x00"),
    ]);
    assert_eq!(txs[0].response_body, None);
    assert_eq!(txs[0].response_body_bytes, 4);
}

#[test]
fn flows_beyond_the_limit_are_flushed() {
    let (txs, stats) = run(HttpConfig { max_flows: 2, ..HttpConfig::default() }, &[
        (flow(10), Some(S), b"GET /1 HTTP/1.1\r\n\r\n"),
        (flow(11), Some(S), b"GET /2 HTTP/1.1\r\n\r\n"),
        (flow(12), Some(S), b"GET /3 HTTP/1.1\r\n\r\n"),
    ]);
    let paths: Vec<&str> = txs.iter().map(|t| t.path.as_str()).collect();
    assert_eq!(paths, ["/1", "/2", "/3"]);
    assert_eq!((stats.flows_evicted, stats.unmatched_requests), (1, 3));
}

#[test]
fn pending_queue_is_bounded() {
    let f = flow(6);
    let (txs, stats) = run(HttpConfig { max_pending_requests: 2, ..HttpConfig::default() }, &[
        (f, Some(S), b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n"),
        (f, Some(C), b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    let got: Vec<(&str, Option<u16>)> = txs.iter().map(|t| (t.path.as_str(), t.status_code)).collect();
    assert_eq!(got, [("/1", None), ("/2", Some(200)), ("/3", None)]);
    assert_eq!(stats.unmatched_requests, 2);
}

#[test]
fn absolute_targets_and_status_phrases_are_redacted() {
    let f = flow(7);
    let (txs, _) = run(HttpConfig::default(), &[
        (f, Some(S), b"GET http://admin:Pz8xQw2LmK7v@169.254.169.254/latest/meta-data/?a=1 HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"),
        (f, Some(C), b"HTTP/1.1 401 Token=Wq7Lm4Vt9Nb3Rc6H\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(txs[0].target, "http://[REDACTED]@169.254.169.254/latest/meta-data/?a=1");
    assert_eq!((txs[0].path.as_str(), txs[0].query.as_deref()), ("/latest/meta-data/", Some("a=1")));
    assert_eq!(txs[0].status_phrase.as_deref(), Some("Token=[REDACTED]"));
}

#[test]
fn long_head_in_single_byte_segments() {
    let f = flow(8);
    let mut request = b"GET /slow HTTP/1.1\r\n".to_vec();
    for i in 0..200 {
        request.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "p".repeat(40)).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let mut d = HttpDecoder::new(HttpConfig { max_headers: 256, ..HttpConfig::default() });
    let mut out = Vec::new();
    for b in &request {
        d.on_event(&StreamEvent::Data { flow: f, dir: S, ts_micros: 0, data: vec![*b] }, &mut out);
    }
    d.on_event(&StreamEvent::Data { flow: f, dir: C, ts_micros: 1, data: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec() }, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].request_headers.len(), 200);
    assert_eq!(out[0].request_bytes, request.len() as u64);
}
