#![allow(clippy::unwrap_used, clippy::too_many_arguments, clippy::useless_vec)]
//! Live frames through the filter and the capture decoder's frame entry point, as the sensor
//! feeds them: an IMDSv1 credentials request and its response become one ECS event.

use etherparse::PacketBuilder;
use imdsguard_capture::{CaptureDecoder, DecoderConfig};
use imdsguard_sensor::filter::Program;

fn frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, seq: u32, ack: u32, flags: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(src, dst, 64).tcp(sport, dport, seq, 65535);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(ack);
    }
    if flags.contains('F') {
        b = b.fin();
    }
    if flags.contains('P') {
        b = b.psh();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

#[test]
fn live_frames_decode_to_an_imds_event() {
    let (c, s) = ([10, 0, 0, 2], [169, 254, 169, 254]);
    let req = b"GET /latest/meta-data/iam/security-credentials/role HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
    let body = b"{\"Code\":\"Success\",\"AccessKeyId\":\"ASIAEXAMPLEEXAMPLE12\",\"SecretAccessKey\":\"abcdEXAMPLEsecret\"}";
    let resp = [format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes(), body.to_vec()].concat();
    let frames = vec![
        frame(c, s, 40000, 80, 100, 0, "S", b""),
        frame(s, c, 80, 40000, 500, 101, "SA", b""),
        frame(c, s, 40000, 80, 101, 501, "A", b""),
        frame(c, s, 40000, 80, 101, 501, "PA", req),
        frame(s, c, 80, 40000, 501, 101 + req.len() as u32, "PA", &resp),
        frame(c, s, 40000, 80, 101 + req.len() as u32, 501 + resp.len() as u32, "FA", b""),
        frame(s, c, 80, 40000, 501 + resp.len() as u32, 102 + req.len() as u32, "FA", b""),
        // Unrelated traffic the filter must drop.
        frame([10, 0, 0, 2], [10, 0, 0, 3], 40001, 80, 1, 0, "S", b""),
    ];
    let program = Program::for_addresses(&["169.254.169.254".parse().unwrap()]).unwrap();
    let mut dec = CaptureDecoder::new(DecoderConfig::default());
    let mut out = Vec::new();
    let mut accepted = 0;
    for (i, f) in frames.iter().enumerate() {
        if program.accepts(f) {
            accepted += 1;
            dec.feed_frame(1, 1_700_000_000_000_000 + i as i64 * 1000, f, f.len(), &mut out);
        }
    }
    assert_eq!(accepted, 7);
    dec.finish(&mut out);
    assert_eq!(out.len(), 1, "one HTTP transaction");
    let v: serde_json::Value = serde_json::from_slice(&out[0]).unwrap();
    assert_eq!(v["url"]["path"], "/latest/meta-data/iam/security-credentials/role");
    assert_eq!(v["source"]["port"], 40000);
    assert_eq!(v["destination"]["ip"], "169.254.169.254");
    assert_eq!(v["imds"]["aws"]["is_imds_v2"], false);
    let text = String::from_utf8_lossy(&out[0]);
    assert!(!text.contains("abcdEXAMPLEsecret"), "secret removed in the decoder");
}
