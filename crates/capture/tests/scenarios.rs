//! The whole decoder (capture bytes -> ECS documents) on the scenarios the issue names, with
//! captures built in code (nothing is sent anywhere). Each scenario compares every produced
//! document, field by field, with a reviewed expectation in `tests/scenarios/<name>.json`
//! (`UPDATE_SCENARIOS=1` rewrites them; review the diff before committing), and checks the
//! decoder's counters.
#![allow(clippy::unwrap_used)]

mod testpcap;

use imdsguard_capture::{CaptureDecoder, DecoderConfig};
use serde_json::Value;
use std::path::PathBuf;
use testpcap::{frame, pcap, pcapng_with_processes, Link, P};

const T0: i64 = 1_777_600_000_000_000; // 2026-05-01T01:46:40Z

struct Decoded {
    docs: Vec<Value>,
    packets: u64,
    corrupt: u64,
    truncated_file: bool,
    gaps: u64,
    truncated_messages: u64,
    body_not_kept: u64,
}

fn decode_with(bytes: &[u8], chunk: usize, config: DecoderConfig) -> Decoded {
    let mut d = CaptureDecoder::new(config);
    let mut out = Vec::new();
    for c in bytes.chunks(chunk.max(1)) {
        d.feed(c, &mut out);
    }
    d.finish(&mut out);
    let docs = out.iter().map(|b| serde_json::from_slice(b).expect("every event is JSON")).collect();
    let s = d.stats();
    Decoded {
        docs,
        packets: s.capture.packets,
        corrupt: s.capture.corrupt_packets + s.capture.corrupt_records,
        truncated_file: s.capture.truncated_file,
        gaps: s.tcp.gaps,
        truncated_messages: s.http.truncated_messages,
        body_not_kept: s.http.body_bytes_not_kept,
    }
}

fn decode(bytes: &[u8]) -> Decoded {
    // Any chunking gives the same result; 7 bytes exercises records split across feeds.
    let a = decode_with(bytes, 1 << 20, DecoderConfig::default());
    let b = decode_with(bytes, 7, DecoderConfig::default());
    assert_eq!(a.docs, b.docs, "chunking changed the result");
    a
}

fn expect(name: &str, docs: &[Value]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios").join(format!("{name}.json"));
    let actual = Value::Array(docs.to_vec());
    if std::env::var_os("UPDATE_SCENARIOS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_SCENARIOS=1)", path.display()));
    let expected: Value = serde_json::from_str(&text).unwrap();
    if actual != expected {
        panic!(
            "{name}: documents differ from {}\nactual:\n{}",
            path.display(),
            serde_json::to_string_pretty(&actual).unwrap()
        );
    }
}

/// One TCP connection: handshake, then each (request, response) as one segment each way
/// (`split` cuts a request into pieces), then FIN both ways.
struct Conn {
    c: &'static str,
    s: &'static str,
    cs: u32,
    ss: u32,
    t: i64,
    packets: Vec<P>,
}

impl Conn {
    fn open(c: &'static str, s: &'static str, t: i64) -> Conn {
        let mut k = Conn { c, s, cs: 1000, ss: 5000, t, packets: Vec::new() };
        let t = k.tick();
        k.packets.push(P::new(t, c, s, k.cs, b"").syn());
        let t = k.tick();
        k.packets.push(P::new(t, s, c, k.ss, b"").syn().ack(k.cs + 1));
        k.cs += 1;
        k.ss += 1;
        let t = k.tick();
        k.packets.push(P::new(t, c, s, k.cs, b"").ack(k.ss));
        k
    }
    fn tick(&mut self) -> i64 {
        self.t += 1000;
        self.t
    }
    fn request(&mut self, bytes: &[u8]) {
        let t = self.tick();
        self.packets.push(P::new(t, self.c, self.s, self.cs, bytes).ack(self.ss));
        self.cs += bytes.len() as u32;
    }
    fn response(&mut self, bytes: &[u8]) {
        let t = self.tick();
        self.packets.push(P::new(t, self.s, self.c, self.ss, bytes).ack(self.cs));
        self.ss += bytes.len() as u32;
    }
    fn exchange(&mut self, req: &str, resp: &str) {
        self.request(req.as_bytes());
        self.response(resp.as_bytes());
    }
    fn close(mut self) -> Vec<P> {
        let (t1, t2, t3) = (self.tick(), self.tick(), self.tick());
        self.packets.push(P::new(t1, self.c, self.s, self.cs, b"").fin().ack(self.ss));
        self.packets.push(P::new(t2, self.s, self.c, self.ss, b"").fin().ack(self.cs + 1));
        self.packets.push(P::new(t3, self.c, self.s, self.cs + 1, b"").ack(self.ss + 1));
        self.packets
    }
}

fn pcap_of(ps: &[P]) -> Vec<u8> {
    let frames: Vec<(i64, Vec<u8>)> = ps.iter().map(|p| (p.ts, frame(Link::Ethernet, p))).collect();
    pcap(Link::Ethernet.linktype(), &frames, false, false)
}

fn ok(body: &str, content_type: &str) -> String {
    format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}", body.len())
}

const CLIENT: &str = "10.0.1.5:51234";
const AWS: &str = "169.254.169.254:80";
const CREDS: &str = "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-05-01T01:00:00Z\",\n  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"ASIAQ7XKZ3PLM9VBN2RT\",\n  \"SecretAccessKey\" : \"pX9wQz7Lm4Kt2Vb8Nc6Hj1Rs5Yd3Fg0AeUiOkPlM\",\n  \"Token\" : \"IQoJb3JpZ2luX2VjEHkaCXVzLWVhc3QtMSJHMEUCIQDx7Qm2Lp9Vt\",\n  \"Expiration\" : \"2026-05-01T07:00:00Z\"\n}";
const V1_REQUEST: &str = "GET /latest/meta-data/iam/security-credentials/web-role HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/8.4.0\r\nAccept: */*\r\n\r\n";

fn imdsv1_conn() -> Conn {
    let mut k = Conn::open(CLIENT, AWS, T0);
    k.exchange(V1_REQUEST, &ok(CREDS, "text/plain"));
    k
}

fn assert_no_secret(docs: &[Value]) {
    let text = serde_json::to_string(docs).unwrap();
    for s in ["ASIAQ7XKZ3PLM9VBN2RT", "pX9wQz7Lm4Kt2Vb8Nc6Hj1Rs5Yd3Fg0AeUiOkPlM", "IQoJb3JpZ2luX2VjEHkaCXVzLWVhc3QtMSJHMEUCIQDx7Qm2Lp9Vt", "AQAEAtok3n", "ya29.c.secret-gcp", "eyJ0eXAiOiJKV1QifQ.azure.secret"] {
        assert!(!text.contains(s), "secret {s} leaked: {text}");
    }
}

#[test]
fn imdsv1_get_of_role_credentials() {
    let d = decode(&pcap_of(&imdsv1_conn().close()));
    assert_eq!((d.packets, d.corrupt, d.gaps), (8, 0, 0));
    assert_no_secret(&d.docs);
    expect("imdsv1_get", &d.docs);
}

#[test]
fn imdsv2_token_put_then_get_with_the_token() {
    let mut k = Conn::open(CLIENT, AWS, T0);
    k.exchange(
        "PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: aws-sdk-go-v2/1.30.0\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 0\r\n\r\n",
        &ok("AQAEAtok3n==", "text/plain"),
    );
    k.exchange(
        "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: aws-sdk-go-v2/1.30.0\r\nX-aws-ec2-metadata-token: AQAEAtok3n==\r\n\r\n",
        &ok("i-0123456789abcdef0", "text/plain"),
    );
    let d = decode(&pcap_of(&k.close()));
    assert_no_secret(&d.docs);
    assert_eq!(d.docs.len(), 2);
    expect("imdsv2_put_then_get", &d.docs);
}

#[test]
fn gcp_with_and_without_metadata_flavor() {
    let mut with = Conn::open("10.128.0.7:40100", AWS, T0);
    with.exchange(
        "GET /computeMetadata/v1/instance/service-accounts/default/token HTTP/1.1\r\nHost: metadata.google.internal\r\nUser-Agent: curl/8.4.0\r\nMetadata-Flavor: Google\r\n\r\n",
        &ok(r#"{"access_token":"ya29.c.secret-gcp","expires_in":3599,"token_type":"Bearer"}"#, "application/json"),
    );
    let mut without = Conn::open("10.128.0.7:40101", AWS, T0 + 50_000);
    let forbidden = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Length: 9\r\n\r\nForbidden";
    without.exchange(
        "GET /computeMetadata/v1/instance/service-accounts/default/token HTTP/1.1\r\nHost: metadata.google.internal\r\nUser-Agent: python-requests/2.31.0\r\n\r\n",
        forbidden,
    );
    let mut ps = with.close();
    ps.extend(without.close());
    let d = decode(&pcap_of(&ps));
    assert_no_secret(&d.docs);
    assert_eq!(d.docs.len(), 2);
    assert_eq!(d.docs[0]["imds"]["required_header_present"], true);
    assert_eq!(d.docs[1]["imds"]["required_header_present"], false);
    expect("gcp_with_and_without_header", &d.docs);
}

#[test]
fn azure_with_and_without_metadata_header() {
    let mut with = Conn::open("10.1.0.4:50200", AWS, T0);
    let token = r#"{"access_token":"eyJ0eXAiOiJKV1QifQ.azure.secret","expires_in":"86399","expires_on":"1777686400","resource":"https://management.azure.com/","token_type":"Bearer"}"#;
    with.exchange(
        "GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\nUser-Agent: curl/8.4.0\r\n\r\n",
        &ok(token, "application/json; charset=utf-8"),
    );
    let mut without = Conn::open("10.1.0.4:50201", AWS, T0 + 50_000);
    let body = r#"{"error":"invalid_request","error_description":"Required metadata header not specified"}"#;
    without.exchange(
        "GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/8.4.0\r\n\r\n",
        &format!("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
    );
    let mut ps = with.close();
    ps.extend(without.close());
    let d = decode(&pcap_of(&ps));
    assert_no_secret(&d.docs);
    assert_eq!(d.docs.len(), 2);
    expect("azure_with_and_without_header", &d.docs);
}

#[test]
fn request_in_three_segments_delivered_out_of_order() {
    let whole = decode(&pcap_of(&imdsv1_conn().close()));
    // The same request cut into three segments sent as 3, 1, 2; timestamps as in `whole` for the
    // first piece so the documents can be compared.
    let mut k = Conn::open(CLIENT, AWS, T0);
    let req = V1_REQUEST.as_bytes();
    let (a, b, c) = (&req[..10], &req[10..40], &req[40..]);
    let t = k.tick();
    let base = k.cs;
    let p1 = P::new(t, CLIENT, AWS, base, a).ack(k.ss);
    let p2 = P::new(t + 200, CLIENT, AWS, base + 10, b).ack(k.ss);
    let p3 = P::new(t - 300, CLIENT, AWS, base + 40, c).ack(k.ss);
    k.packets.extend([p3, p1, p2]);
    k.cs += req.len() as u32;
    k.response(ok(CREDS, "text/plain").as_bytes());
    let d = decode(&pcap_of(&k.close()));
    assert_eq!(d.gaps, 0);
    assert_eq!(d.docs.len(), 1);
    // Same document as the unsplit request, apart from the start time (the first piece, in
    // stream order, was captured 1 ms later here) and what depends on it.
    let (mut got, mut want) = (d.docs[0].clone(), whole.docs[0].clone());
    for v in [&mut got, &mut want] {
        v.as_object_mut().unwrap().remove("@timestamp");
        for k in ["start", "duration"] {
            v["event"].as_object_mut().unwrap().remove(k);
        }
    }
    assert_eq!(got, want);
    expect("split_out_of_order", &d.docs);
}

#[test]
fn keep_alive_connection_with_five_requests() {
    let mut k = Conn::open(CLIENT, AWS, T0);
    let paths = ["instance-id", "ami-id", "hostname", "local-ipv4", "placement/region"];
    let values = ["i-0123456789abcdef0", "ami-0abcdef1234567890", "ip-10-0-1-5.ec2.internal", "10.0.1.5", "eu-west-1"];
    for (p, v) in paths.iter().zip(values) {
        k.exchange(
            &format!("GET /latest/meta-data/{p} HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: Boto3/1.18.0 Python/3.9\r\nAccept-Encoding: identity\r\n\r\n"),
            &ok(v, "text/plain"),
        );
    }
    let d = decode(&pcap_of(&k.close()));
    assert_eq!(d.docs.len(), 5);
    let got: Vec<&str> = d.docs.iter().map(|e| e["url"]["path"].as_str().unwrap()).collect();
    assert_eq!(got, paths.iter().map(|p| format!("/latest/meta-data/{p}")).collect::<Vec<_>>());
    expect("keep_alive_five", &d.docs);
}

#[test]
fn capture_cut_in_the_middle_of_a_request() {
    let mut k = imdsv1_conn();
    // The next request spans two packets; the file ends in the middle of the second one.
    let last = "GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/8.4.0\r\n\r\n";
    k.request(&last.as_bytes()[..70]);
    k.request(&last.as_bytes()[70..]);
    let bytes = pcap_of(&k.packets);
    let cut = bytes.len() - 20;
    let d = decode(&bytes[..cut]);
    assert!(d.truncated_file, "the cut is reported");
    assert_eq!(d.truncated_messages, 1, "the partial request is counted, not silently dropped");
    assert_eq!(d.docs.len(), 2, "the complete exchange before the cut, and the cut request");
    assert_eq!(d.docs[1]["error"]["message"], serde_json::json!(["request truncated"]));
    expect("cut_mid_request", &d.docs);
}

#[test]
fn corrupted_packets_are_counted_and_the_rest_decoded() {
    let ps = imdsv1_conn().close();
    let mut frames: Vec<(i64, Vec<u8>)> = ps.iter().map(|p| (p.ts, frame(Link::Ethernet, p))).collect();
    // An IPv4 header with a bad version/IHL, and a TCP header cut to 6 bytes, between the others.
    let mut bad_ip = frames[3].1.clone();
    bad_ip[14] = 0x42;
    let mut bad_tcp = frames[3].1[..14 + 20 + 6].to_vec();
    bad_tcp[14 + 3] = (20 + 6) as u8; // total length consistent with the cut
    bad_tcp[14 + 2] = 0;
    frames.insert(3, (T0 + 3_500, bad_ip));
    frames.insert(4, (T0 + 3_600, bad_tcp));
    let d = decode(&pcap(Link::Ethernet.linktype(), &frames, false, false));
    assert_eq!(d.corrupt, 2, "both bad packets counted");
    assert_eq!(d.docs, decode(&pcap_of(&ps)).docs, "the good packets still make the same event");
}

#[test]
fn process_named_by_a_pcapng_process_block() {
    // macOS `tcpdump -k` style: the capture says which process sent each packet.
    let ps = imdsv1_conn().close();
    let packets: Vec<(u32, i64, Vec<u8>, Option<u32>)> =
        ps.iter().map(|p| (0, p.ts, frame(Link::Ethernet, p), Some(1))).collect();
    let bytes = pcapng_with_processes(&[(1, 6)], &[(1, "launchd"), (4242, "curl")], &packets);
    let d = decode(&bytes);
    assert_eq!(d.docs.len(), 1);
    assert_eq!(d.docs[0]["process"], serde_json::json!({"pid": 4242, "name": "curl"}));
    // Without the option the event has no process.
    let packets: Vec<(u32, i64, Vec<u8>, Option<u32>)> = ps.iter().map(|p| (0, p.ts, frame(Link::Ethernet, p), None)).collect();
    let d = decode(&pcapng_with_processes(&[(1, 6)], &[(4242, "curl")], &packets));
    assert!(d.docs[0].get("process").is_none());
    // An index beyond the blocks names no process (and is not an error).
    let packets: Vec<(u32, i64, Vec<u8>, Option<u32>)> = ps.iter().map(|p| (0, p.ts, frame(Link::Ethernet, p), Some(9))).collect();
    let d = decode(&pcapng_with_processes(&[(1, 6)], &[(4242, "curl")], &packets));
    assert!(d.docs[0].get("process").is_none());
    assert_eq!(d.corrupt, 0);
}

#[test]
fn bodies_are_kept_only_for_metadata_endpoints() {
    // The same credentials response from an ordinary web server: its body is counted, not kept
    // (the events only use bodies for imds.credentials.*), and the metadata one is read.
    let mut web = Conn::open("10.0.1.5:51300", "93.184.216.34:80", T0);
    web.exchange("GET /latest/meta-data/iam/security-credentials/web-role HTTP/1.1\r\nHost: example.com\r\n\r\n", &ok(CREDS, "text/plain"));
    let d = decode(&pcap_of(&web.close()));
    assert_eq!(d.docs.len(), 1);
    assert!(d.docs[0].get("imds").is_none());
    assert_eq!(d.body_not_kept, CREDS.len() as u64);
    let d = decode(&pcap_of(&imdsv1_conn().close()));
    assert_eq!(d.body_not_kept, 0);
    assert_eq!(d.docs[0]["imds"]["credentials"]["type"], "AWS-HMAC");
}
