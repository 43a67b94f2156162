#![no_main]
//! Arbitrary bytes through the HTTP/1.x decoder and the ECS writer. The input is cut into
//! stream events by control bytes: `0x00` switches direction, `0x01` declares a gap, `0x02`
//! closes the flow, `0x03` switches between two flows (one to the AWS endpoint, one to a GCP
//! name); everything else is payload. Every produced event must be valid JSON.

use imdsguard_capture::{write_ecs, Direction, FlowKey, HttpConfig, HttpDecoder, ImdsConfig, StreamEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let flows = [
        FlowKey { client: "10.0.0.5:40000".parse().unwrap(), server: "169.254.169.254:80".parse().unwrap() },
        FlowKey { client: "[fd00::5]:40001".parse().unwrap(), server: "[fd00:ec2::254]:80".parse().unwrap() },
    ];
    let mut d = HttpDecoder::new(HttpConfig { max_body_bytes: 512, ..HttpConfig::default() });
    let (mut flow, mut dir, mut ts) = (0usize, Direction::ToServer, 0i64);
    let mut txs = Vec::new();
    let emit = |d: &mut HttpDecoder, ev: StreamEvent, txs: &mut Vec<_>| d.on_event(&ev, txs);
    for piece in data.split_inclusive(|b| *b <= 3) {
        ts += 1;
        let (payload, ctl) = match piece.split_last() {
            Some((c, rest)) if *c <= 3 => (rest, Some(*c)),
            _ => (piece, None),
        };
        if !payload.is_empty() {
            emit(&mut d, StreamEvent::Data { flow: flows[flow], dir, ts_micros: ts, data: payload.to_vec() }, &mut txs);
        }
        match ctl {
            Some(0) => dir = if dir == Direction::ToServer { Direction::ToClient } else { Direction::ToServer },
            Some(1) => emit(&mut d, StreamEvent::Gap { flow: flows[flow], dir, ts_micros: ts, len: 7 }, &mut txs),
            Some(2) => emit(&mut d, StreamEvent::Close { flow: flows[flow], ts_micros: ts }, &mut txs),
            Some(_) => flow = 1 - flow,
            None => {}
        }
    }
    d.finish(&mut txs);
    let cfg = ImdsConfig::default();
    for tx in &txs {
        for headers in [false, true] {
            let mut out = Vec::new();
            write_ecs(tx, &cfg, headers, &mut out);
            assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok(), "invalid JSON: {}", String::from_utf8_lossy(&out));
        }
    }
});
