//! Capture reader and TCP reassembly over captures built in code (see `testpcap`).
#![allow(clippy::unwrap_used)]

mod testpcap;

use imdsguard_capture::{
    CaptureLimits, CaptureReader, CaptureStats, Direction, FlowKey, ReassemblyStats, Reassembler,
    Segment, StreamEvent, TcpLimits,
};
use testpcap::{fragment_v4, fragment_v6, frame, ip_packet, pcap, pcap_record_snapped, pcapng, pcapng_with, Link, P};

const C: &str = "10.0.0.5:40000";
const S: &str = "169.254.169.254:80";

fn read(bytes: &[u8], chunk: usize) -> (Vec<Segment>, CaptureStats) {
    let mut r = CaptureReader::new(CaptureLimits::default());
    let mut out = Vec::new();
    for c in bytes.chunks(chunk.max(1)) {
        r.feed(c, &mut out);
    }
    r.finish(&mut out);
    (out, r.stats().clone())
}

fn reassemble(segs: Vec<Segment>, limits: TcpLimits) -> (Vec<StreamEvent>, ReassemblyStats) {
    let mut r = Reassembler::new(limits);
    let mut out = Vec::new();
    for s in segs {
        r.push(s, &mut out);
    }
    r.finish(&mut out);
    (out, r.stats().clone())
}

fn key(c: &str, s: &str) -> FlowKey {
    FlowKey { client: c.parse().unwrap(), server: s.parse().unwrap() }
}

fn data(flow: FlowKey, dir: Direction, ts: i64, d: &[u8]) -> StreamEvent {
    StreamEvent::Data { flow, dir, ts_micros: ts, data: d.to_vec() }
}

fn pcap_of(link: Link, ps: &[P]) -> Vec<u8> {
    let frames: Vec<(i64, Vec<u8>)> = ps.iter().map(|p| (p.ts, frame(link, p))).collect();
    pcap(link.linktype(), &frames, false, false)
}

fn handshake_and_request() -> Vec<P> {
    vec![
        P::new(1_700_000_000_000_001, C, S, 1000, b"").syn(),
        P::new(1_700_000_000_000_002, S, C, 5000, b"").syn().ack(1001),
        P::new(1_700_000_000_000_003, C, S, 1001, b"").ack(5001),
        P::new(1_700_000_000_000_004, C, S, 1001, b"GET /latest/meta-data/ HTTP/1.1\r\n\r\n").ack(5001),
    ]
}

#[test]
fn every_link_type_v4_and_v6() {
    let links = [
        Link::Ethernet,
        Link::Vlan(42),
        Link::QinQ(100, 200),
        Link::Sll,
        Link::Sll2,
        Link::Raw,
        Link::Null,
    ];
    for link in links {
        for (c, s) in [(C, S), ("[fd00::5]:40000", "[fd00:ec2::254]:80")] {
            let ps = vec![
                P::new(1_000_000, c, s, 7, b"").syn(),
                P::new(2_500_000, s, c, 9, b"").syn().ack(8),
                P::new(3_000_001, c, s, 8, b"hello").ack(10),
            ];
            let (segs, st) = read(&pcap_of(link, &ps), 1 << 20);
            let want: Vec<Segment> = ps.iter().map(P::segment).collect();
            assert_eq!(segs, want, "{link:?} {c}");
            assert_eq!(st.packets, 3);
            assert_eq!(st.tcp_segments, 3);
            assert_eq!(st.corrupt_packets + st.corrupt_records + st.truncated_packets, 0);
        }
    }
}

#[test]
fn loopback_byte_orders_and_unsupported_link_types() {
    let p = P::new(1_000_000, C, S, 1, b"lo");
    let ip = ip_packet(&p);
    let framed = |fam: [u8; 4]| {
        let mut v = fam.to_vec();
        v.extend_from_slice(&ip);
        (p.ts, v)
    };
    // NULL written by a big-endian host, and LOOP (always network order).
    for (lt, fam) in [(0u32, 2u32.to_be_bytes()), (108, 2u32.to_be_bytes())] {
        let (segs, st) = read(&pcap(lt, &[framed(fam)], false, false), 1 << 20);
        assert_eq!(segs, vec![p.segment()], "linktype {lt}");
        assert_eq!(st.tcp_segments, 1);
    }
    let (segs, st) = read(&pcap(147, &[(1, ip.clone()), (2, ip)], false, false), 1 << 20);
    assert!(segs.is_empty());
    assert_eq!(st.unsupported_link_type, 2);
    assert_eq!(st.reasons, vec![("unsupported link type 147".to_string(), 2)]);
}

#[test]
fn pcap_byte_orders_and_nanosecond_magic() {
    let ps = handshake_and_request();
    let frames: Vec<(i64, Vec<u8>)> = ps.iter().map(|p| (p.ts, frame(Link::Ethernet, p))).collect();
    let want: Vec<Segment> = ps.iter().map(P::segment).collect();
    for big in [false, true] {
        for nanos in [false, true] {
            let bytes = pcap(1, &frames, big, nanos);
            assert!(imdsguard_capture::is_capture(&bytes));
            let (segs, st) = read(&bytes, 7);
            assert_eq!(segs, want, "big={big} nanos={nanos}");
            assert_eq!(st.bytes, frames.iter().map(|f| f.1.len() as u64).sum::<u64>());
        }
    }
    assert!(!imdsguard_capture::is_capture(b"{\"a\":1}"));
    assert!(!imdsguard_capture::is_capture(b"\xd4"));
}

#[test]
fn pcapng_with_two_interfaces_of_different_link_types_and_resolutions() {
    let a = P::new(1_600_000_000_123_456, C, S, 1, b"x").ack(1);
    let b = P::new(1_600_000_001_000_007, "[fd00::1]:5555", "[fd00::2]:80", 2, b"yz");
    let bytes = pcapng(
        &[(1, 6), (101, 9)],
        &[(0, a.ts, frame(Link::Ethernet, &a)), (1, b.ts, frame(Link::Raw, &b))],
    );
    assert!(imdsguard_capture::is_capture(&bytes));
    for chunk in [1, 3, 64, 1 << 20] {
        let (segs, st) = read(&bytes, chunk);
        assert_eq!(segs, vec![a.segment(), b.segment()]);
        assert_eq!(st.packets, 2);
        assert_eq!(st.corrupt_records, 0);
    }
}

#[test]
fn pcapng_big_endian_and_a_second_section() {
    let a = P::new(1_600_000_000_000_001, C, S, 1, b"be");
    let b = P::new(1_600_000_000_000_002, C, S, 3, b"le");
    // A big-endian section (Linux SLL2, nanoseconds) followed by a little-endian one (raw IP).
    let mut bytes = pcapng_with(true, &[(276, 9)], &[(0, a.ts, frame(Link::Sll2, &a))]);
    bytes.extend_from_slice(&pcapng_with(false, &[(101, 6)], &[(0, b.ts, frame(Link::Raw, &b))]));
    for chunk in [1, 7, 1 << 20] {
        let (segs, st) = read(&bytes, chunk);
        assert_eq!(segs, vec![a.segment(), b.segment()], "{st:?}");
        assert_eq!(st.corrupt_records, 0);
    }
}

#[test]
fn pcapng_corrupt_block_is_skipped_and_counted() {
    let a = P::new(1_000_000, C, S, 1, b"a");
    let b = P::new(2_000_000, C, S, 2, b"b");
    let mut bytes = pcapng(&[(1, 6)], &[(0, a.ts, frame(Link::Ethernet, &a))]);
    // An EPB on an undeclared interface, then a block whose trailing length disagrees.
    let good_len = bytes.len();
    let mut bad = pcapng(&[(1, 6)], &[(0, b.ts, frame(Link::Ethernet, &b))]);
    let epb = bad.split_off(28 + 32);
    let mut undeclared = epb.clone();
    undeclared[8] = 7; // if_id 7
    let mut mismatched = epb.clone();
    let n = mismatched.len();
    mismatched[n - 4] ^= 0x40;
    bytes.extend_from_slice(&undeclared);
    bytes.extend_from_slice(&mismatched);
    bytes.extend_from_slice(&epb);
    assert!(good_len < bytes.len());
    let (segs, st) = read(&bytes, 5);
    assert_eq!(segs, vec![a.segment(), b.segment()]);
    assert_eq!(st.corrupt_records, 2);
    assert_eq!(st.packets, 2);
    assert!(!st.stopped);
}

#[test]
fn pcapng_block_with_impossible_length_resynchronises() {
    let a = P::new(1_000_000, C, S, 1, b"a");
    let b = P::new(2_000_000, C, S, 2, b"b");
    let c = P::new(3_000_000, C, S, 3, b"c");
    let full = pcapng(
        &[(1, 6)],
        &[(0, a.ts, frame(Link::Ethernet, &a)), (0, b.ts, frame(Link::Ethernet, &b)), (0, c.ts, frame(Link::Ethernet, &c))],
    );
    let one = pcapng(&[(1, 6)], &[(0, a.ts, frame(Link::Ethernet, &a))]);
    let epb_len = one.len() - (28 + 32);
    let (head, tail) = full.split_at(one.len());
    let garbage = [6u8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0a, 0x0d];
    for cut in [tail.len(), epb_len] {
        // Garbage before the second block; with `cut == epb_len` the last block follows it.
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(&garbage);
        bytes.extend_from_slice(&tail[tail.len() - cut..]);
        for chunk in [1, 5, 1 << 20] {
            let (segs, st) = read(&bytes, chunk);
            let want = if cut == epb_len { vec![a.segment(), c.segment()] } else { vec![a.segment(), b.segment(), c.segment()] };
            assert_eq!(segs, want, "cut {cut} chunk {chunk}: {st:?}");
            assert_eq!(st.corrupt_records, 1);
            assert_eq!(st.skipped_bytes, garbage.len() as u64);
            assert!(!st.stopped && !st.truncated_file);
        }
    }
}

#[test]
fn request_split_in_three_segments_delivered_out_of_order() {
    let mut ps = handshake_and_request();
    ps.pop();
    let t = 1_700_000_000_000_010;
    ps.push(P::new(t, C, S, 1011, b"HTTP/1.1\r\n\r\n").ack(5001)); // third part first
    ps.push(P::new(t + 1, C, S, 1001, b"GET /late").ack(5001)); // first part
    ps.push(P::new(t + 2, C, S, 1010, b"/").ack(5001)); // second part
    ps.push(P::new(t + 3, S, C, 5001, b"HTTP/1.1 200 OK\r\n\r\n").ack(1023).fin());
    ps.push(P::new(t + 4, C, S, 1023, b"").ack(5021).fin());
    ps.push(P::new(t + 5, S, C, 5021, b"").ack(1024));
    let (segs, _) = read(&pcap_of(Link::Ethernet, &ps), 1 << 20);
    let (ev, st) = reassemble(segs, TcpLimits::default());
    let f = key(C, S);
    assert_eq!(
        ev,
        vec![
            data(f, Direction::ToServer, t + 1, b"GET /late"),
            data(f, Direction::ToServer, t + 2, b"/HTTP/1.1\r\n\r\n"),
            data(f, Direction::ToClient, t + 3, b"HTTP/1.1 200 OK\r\n\r\n"),
            StreamEvent::Close { flow: f, ts_micros: t + 4 },
        ]
    );
    assert_eq!(st.flows_closed, 1);
    assert_eq!(st.segments_after_close, 1);
    assert_eq!(st.gaps, 0);
}

#[test]
fn retransmissions_and_overlaps_keep_the_first_bytes() {
    let f = key(C, S);
    let ps = [
        P::new(1, C, S, 100, b"").syn(),
        P::new(2, C, S, 101, b"0123456789"),
        P::new(3, C, S, 101, b"0123456789"), // exact retransmission
        P::new(4, C, S, 106, b"XXXXXabcde"), // overlaps 5 delivered bytes
        P::new(5, C, S, 121, b"klmno"),      // out of order
        P::new(6, C, S, 119, b"YYYYYY"),     // overlaps the buffered piece on its tail
        P::new(7, C, S, 116, b"fgh"),        // fills up to 119
    ];
    let segs: Vec<Segment> = ps.iter().map(P::segment).collect();
    let (ev, st) = reassemble(segs, TcpLimits::default());
    assert_eq!(
        ev,
        vec![
            data(f, Direction::ToServer, 2, b"0123456789"),
            data(f, Direction::ToServer, 4, b"abcde"),
            data(f, Direction::ToServer, 7, b"fghYYklmno"),
            StreamEvent::Close { flow: f, ts_micros: 7 },
        ]
    );
    assert_eq!(st.duplicate_bytes, 10 + 5 + 4);
    assert_eq!(st.flows_unfinished, 1);
}

#[test]
fn keep_alive_connection_with_five_exchanges() {
    let f = key(C, S);
    let mut ps = vec![
        P::new(1, C, S, 0, b"").syn(),
        P::new(2, S, C, 0, b"").syn().ack(1),
    ];
    let (mut cs, mut ss) = (1u32, 1u32);
    let mut want = Vec::new();
    for i in 0..5 {
        let req = format!("GET /latest/meta-data/{i} HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n");
        let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{i}");
        let t = 10 + i64::from(i) * 10;
        ps.push(P::new(t, C, S, cs, req.as_bytes()).ack(ss));
        ps.push(P::new(t + 1, S, C, ss, resp.as_bytes()).ack(cs + req.len() as u32));
        want.push(data(f, Direction::ToServer, t, req.as_bytes()));
        want.push(data(f, Direction::ToClient, t + 1, resp.as_bytes()));
        cs += req.len() as u32;
        ss += resp.len() as u32;
    }
    ps.push(P::new(100, C, S, cs, b"").fin().ack(ss));
    ps.push(P::new(101, S, C, ss, b"").fin().ack(cs + 1));
    want.push(StreamEvent::Close { flow: f, ts_micros: 101 });
    let (segs, _) = read(&pcap_of(Link::Sll, &ps), 13);
    let (ev, _) = reassemble(segs, TcpLimits::default());
    assert_eq!(ev, want);
}

#[test]
fn missing_start_uses_the_port_heuristic_and_missing_end_closes_at_finish() {
    // Response first, from the server side: the lower port is the server.
    let ps = [
        P::new(5, S, C, 9000, b"tail of a response").ack(1),
        P::new(6, C, S, 77, b"GET / HTTP/1.1\r\n\r\n").ack(9018),
    ];
    let segs: Vec<Segment> = ps.iter().map(P::segment).collect();
    let (ev, st) = reassemble(segs, TcpLimits::default());
    let f = key(C, S);
    assert_eq!(
        ev,
        vec![
            data(f, Direction::ToClient, 5, b"tail of a response"),
            data(f, Direction::ToServer, 6, b"GET / HTTP/1.1\r\n\r\n"),
            StreamEvent::Close { flow: f, ts_micros: 6 },
        ]
    );
    assert_eq!(st.flows_unfinished, 1);
}

#[test]
fn client_and_server_from_syn_ack_or_ports() {
    // The client's SYN was not captured: the SYN-ACK names the server.
    let segs = vec![
        P::new(1, "10.0.0.9:7000", "10.0.0.1:1025", 50, b"").syn().ack(11).segment(),
        P::new(2, "10.0.0.1:1025", "10.0.0.9:7000", 11, b"hi").ack(51).segment(),
        P::new(3, "10.0.0.9:7000", "10.0.0.1:1025", 51, b"").rst().segment(),
    ];
    let (ev, st) = reassemble(segs, TcpLimits::default());
    let f = key("10.0.0.1:1025", "10.0.0.9:7000");
    assert_eq!(ev, vec![data(f, Direction::ToServer, 2, b"hi"), StreamEvent::Close { flow: f, ts_micros: 3 }]);
    assert_eq!(st.flows_closed, 1);
    // No SYN: a well-known port beats a lower ephemeral one; else the lower port.
    for (a, b, server) in [
        ("10.0.0.1:1025", "10.0.0.2:8080", "10.0.0.2:8080"),
        ("10.0.0.1:40000", "10.0.0.2:9000", "10.0.0.2:9000"),
        ("10.0.0.2:443", "10.0.0.1:50000", "10.0.0.2:443"),
    ] {
        let (ev, _) = reassemble(vec![P::new(1, a, b, 1, b"x").segment()], TcpLimits::default());
        let StreamEvent::Data { flow, .. } = &ev[0] else { panic!("{ev:?}") };
        assert_eq!(flow.server, server.parse().unwrap());
    }
}

#[test]
fn sequence_numbers_wrap_around() {
    let f = key(C, S);
    let isn = u32::MAX - 3;
    let ps = [
        P::new(1, C, S, isn, b"").syn(),
        P::new(2, C, S, isn.wrapping_add(6), b"def"), // after the wrap, out of order
        P::new(3, C, S, isn.wrapping_add(1), b"abc"), // before the wrap
        P::new(4, C, S, isn.wrapping_add(4), b"XY"),  // straddles 0
        P::new(5, C, S, 0, b"").rst(),
    ];
    let segs: Vec<Segment> = ps.iter().map(P::segment).collect();
    let (ev, st) = reassemble(segs, TcpLimits::default());
    assert_eq!(
        ev,
        vec![
            data(f, Direction::ToServer, 3, b"abc"),
            data(f, Direction::ToServer, 4, b"XYdef"),
            StreamEvent::Close { flow: f, ts_micros: 5 },
        ]
    );
    assert_eq!(st.flows_closed, 1);
}

#[test]
fn truncated_file_is_counted_not_fatal() {
    let ps = handshake_and_request();
    let bytes = pcap_of(Link::Ethernet, &ps);
    let cut = &bytes[..bytes.len() - 10];
    let (segs, st) = read(cut, 100);
    let want: Vec<Segment> = ps[..3].iter().map(P::segment).collect();
    assert_eq!(segs, want);
    assert!(st.truncated_file);
    assert_eq!(st.corrupt_records, 1);
    assert_eq!(st.packets, 3);
}

#[test]
fn snapped_packet_is_truncated_and_emits_what_was_captured() {
    let p = P::new(1_000_000, C, S, 1, b"0123456789");
    let f = frame(Link::Ethernet, &p);
    let mut bytes = pcap(1, &[], false, false);
    bytes.extend_from_slice(&pcap_record_snapped(p.ts, &f, f.len() - 4));
    bytes.extend_from_slice(&pcap_record_snapped(p.ts, &f, 30)); // TCP header cut
    let (segs, st) = read(&bytes, 1 << 20);
    let mut want = p.segment();
    want.payload.truncate(6);
    assert_eq!(segs, vec![want]);
    assert_eq!(st.truncated_packets, 2);
    assert_eq!(st.corrupt_packets, 0);
}

#[test]
fn corrupt_packets_are_counted_and_skipped() {
    let good = P::new(3_000_000, C, S, 1, b"ok");
    let mut bad_ip = ip_packet(&P::new(1_000_000, C, S, 1, b"x"));
    bad_ip[0] = 0x43; // IHL 3
    let mut bad_tcp = ip_packet(&P::new(2_000_000, C, S, 1, b"x"));
    bad_tcp[20 + 12] = 0x20; // data offset 2
    let udp = {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(53, 53)
            .write(&mut v, b"dns")
            .unwrap();
        v
    };
    let frames = vec![(1_000_000, bad_ip), (2_000_000, bad_tcp), (2_500_000, udp), (3_000_000, ip_packet(&good))];
    let (segs, st) = read(&pcap(101, &frames, false, false), 9);
    assert_eq!(segs, vec![good.segment()]);
    assert_eq!(st.corrupt_packets, 2);
    assert_eq!(st.non_tcp, 1);
    assert_eq!(st.tcp_segments, 1);
    let reasons: Vec<&str> = st.reasons.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(reasons, vec!["bad IPv4 header", "bad TCP header"]);
}

#[test]
fn corrupt_pcap_record_length_resynchronises() {
    let a = P::new(1_000_000, C, S, 1, b"a");
    let b = P::new(2_000_000, C, S, 2, b"b");
    let fa = ip_packet(&a);
    let mut bytes = pcap(101, &[(a.ts, fa.clone())], false, false);
    // A record header claiming 3 GB, then garbage, then a good record.
    bytes.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0xc0, 0xff, 0xff, 0xff]);
    bytes.extend_from_slice(&pcap(101, &[(b.ts, ip_packet(&b))], false, false)[24..]);
    for chunk in [1, 4, 1 << 20] {
        let (segs, st) = read(&bytes, chunk);
        assert_eq!(segs, vec![a.segment(), b.segment()], "{st:?}");
        assert_eq!(st.corrupt_records, 1);
        assert_eq!(st.skipped_bytes, 19);
        assert!(!st.truncated_file);
    }
    // The same with a record after the good one (confirmed by the following header).
    bytes.extend_from_slice(&pcap(101, &[(3_000_000, ip_packet(&P::new(3_000_000, C, S, 3, b"c")))], false, false)[24..]);
    let (segs, st) = read(&bytes, 3);
    assert_eq!(segs.len(), 3);
    assert_eq!(st.corrupt_records, 1);
    assert!(st.corrupt_records >= 1);
    assert!(!st.truncated_file);
}

#[test]
fn not_a_capture_stops_cleanly() {
    let (segs, st) = read(b"this is not a capture at all", 3);
    assert!(segs.is_empty());
    assert!(st.stopped);
    assert_eq!(st.corrupt_records, 1);
}

#[test]
fn ipv4_fragments_are_reassembled() {
    let p = P::new(1_000_000, C, S, 1, &[b'a'; 100]);
    let frags = fragment_v4(&ip_packet(&p), 48, 0x4242);
    assert_eq!(frags.len(), 3);
    // Out of order, plus the first fragment of a datagram that never completes.
    let lone = fragment_v4(&ip_packet(&P::new(1_000_000, C, S, 9, &[b'z'; 100])), 48, 7);
    let frames = vec![
        (1_000_000, frags[2].clone()),
        (1_000_001, lone[0].clone()),
        (1_000_002, frags[0].clone()),
        (1_000_003, frags[1].clone()),
    ];
    let (segs, st) = read(&pcap(228, &frames, false, false), 1 << 20);
    let mut want = p.segment();
    want.ts_micros = 1_000_003;
    assert_eq!(segs, vec![want]);
    assert_eq!(st.fragments, 4);
    assert_eq!(st.fragments_reassembled, 1);
    assert_eq!(st.fragments_dropped, 1);
}

#[test]
fn ipv6_fragments_are_reassembled() {
    let c6 = "[fd00::5]:40000";
    let s6 = "[fd00:ec2::254]:80";
    let p = P::new(5_000_000, c6, s6, 1, &[b'b'; 70]);
    let frags = fragment_v6(&ip_packet(&p), 40, 0xdead_beef);
    assert_eq!(frags.len(), 3);
    let frames = [(5_000_000, frags[1].clone()), (5_000_001, frags[2].clone()), (5_000_002, frags[0].clone())];
    for link in [Link::Raw, Link::Null] {
        let framed: Vec<(i64, Vec<u8>)> = frames
            .iter()
            .map(|(t, f)| {
                let mut v = if link == Link::Null { 30u32.to_le_bytes().to_vec() } else { Vec::new() };
                v.extend_from_slice(f);
                (*t, v)
            })
            .collect();
        let (segs, st) = read(&pcap(link.linktype(), &framed, false, false), 1 << 20);
        let mut want = p.segment();
        want.ts_micros = 5_000_002;
        assert_eq!(segs, vec![want]);
        assert_eq!((st.fragments, st.fragments_reassembled, st.fragments_dropped), (3, 1, 0));
    }
}

#[test]
fn fragment_bounds_drop_the_oldest() {
    let mut r = CaptureReader::new(CaptureLimits { max_frag_datagrams: 2, ..CaptureLimits::default() });
    let mut frames = Vec::new();
    for id in 0..5u16 {
        let f = fragment_v4(&ip_packet(&P::new(1, C, S, 9, &[b'z'; 100])), 48, id);
        frames.push((1_000_000 + i64::from(id), f[0].clone()));
    }
    let mut out = Vec::new();
    r.feed(&pcap(228, &frames, false, false), &mut out);
    assert_eq!(r.stats().fragments_dropped, 3);
    r.finish(&mut out);
    assert_eq!(r.stats().fragments_dropped, 5);
    assert!(out.is_empty());
}

#[test]
fn max_flows_evicts_the_least_recently_active() {
    let limits = TcpLimits { max_flows: 2, ..TcpLimits::default() };
    let c1 = "10.0.0.1:40001";
    let c2 = "10.0.0.2:40002";
    let c3 = "10.0.0.3:40003";
    let segs = vec![
        P::new(1, c1, S, 10, b"one").segment(),
        P::new(2, c2, S, 20, b"two").segment(),
        P::new(3, c1, S, 13, b"!").segment(), // c1 is now more recent than c2
        P::new(4, c3, S, 30, b"three").segment(),
    ];
    let (ev, st) = reassemble(segs, limits);
    assert_eq!(
        ev,
        vec![
            data(key(c1, S), Direction::ToServer, 1, b"one"),
            data(key(c2, S), Direction::ToServer, 2, b"two"),
            data(key(c1, S), Direction::ToServer, 3, b"!"),
            StreamEvent::Close { flow: key(c2, S), ts_micros: 2 },
            data(key(c3, S), Direction::ToServer, 4, b"three"),
            StreamEvent::Close { flow: key(c1, S), ts_micros: 3 },
            StreamEvent::Close { flow: key(c3, S), ts_micros: 4 },
        ]
    );
    assert_eq!(st.flows_evicted, 1);
}

#[test]
fn out_of_order_overflow_emits_a_gap() {
    let limits = TcpLimits { max_ooo_bytes: 8, ..TcpLimits::default() };
    let f = key(C, S);
    let segs = vec![
        P::new(1, C, S, 100, b"").syn().segment(),
        P::new(2, C, S, 101, b"abc").segment(),
        // 104..110 lost
        P::new(3, C, S, 110, b"12345").segment(),
        P::new(4, C, S, 115, b"6789").segment(), // 9 bytes buffered > 8
        P::new(5, C, S, 119, b"Z").segment(),
    ];
    let (ev, st) = reassemble(segs, limits);
    assert_eq!(
        ev,
        vec![
            data(f, Direction::ToServer, 2, b"abc"),
            StreamEvent::Gap { flow: f, dir: Direction::ToServer, ts_micros: 4, len: 6 },
            data(f, Direction::ToServer, 3, b"123456789"),
            data(f, Direction::ToServer, 5, b"Z"),
            StreamEvent::Close { flow: f, ts_micros: 5 },
        ]
    );
    assert_eq!(st.ooo_overflows, 1);
    assert_eq!(st.gap_bytes, 6);
}

#[test]
fn ack_beyond_a_hole_declares_a_gap() {
    let f = key(C, S);
    let segs = vec![
        P::new(1, C, S, 100, b"").syn().segment(),
        P::new(2, S, C, 500, b"").syn().ack(101).segment(),
        P::new(3, C, S, 101, b"ab").ack(501).segment(),
        P::new(4, C, S, 106, b"fg").ack(501).segment(), // 103..106 not captured
        P::new(5, S, C, 501, b"").ack(108).segment(),   // server got it all
    ];
    let (ev, _) = reassemble(segs, TcpLimits::default());
    assert_eq!(
        ev,
        vec![
            data(f, Direction::ToServer, 3, b"ab"),
            StreamEvent::Gap { flow: f, dir: Direction::ToServer, ts_micros: 5, len: 3 },
            data(f, Direction::ToServer, 4, b"fg"),
            StreamEvent::Close { flow: f, ts_micros: 5 },
        ]
    );
}

#[test]
fn idle_flows_expire_in_capture_time() {
    let limits = TcpLimits { idle_timeout_micros: 10, ..TcpLimits::default() };
    let f = key(C, S);
    let other = "10.9.9.9:50000";
    let segs = vec![
        P::new(1, C, S, 1, b"a").segment(),
        P::new(100, other, S, 1, b"b").segment(),
    ];
    let (ev, st) = reassemble(segs, limits);
    assert_eq!(ev[0], data(f, Direction::ToServer, 1, b"a"));
    assert_eq!(ev[1], StreamEvent::Close { flow: f, ts_micros: 1 });
    assert_eq!(st.flows_expired, 1);
}

#[test]
fn chunking_does_not_change_the_result() {
    let ps = handshake_and_request();
    let bytes = pcap_of(Link::Vlan(7), &ps);
    let (whole, _) = read(&bytes, bytes.len());
    for chunk in 1..40 {
        assert_eq!(read(&bytes, chunk).0, whole, "chunk {chunk}");
    }
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn run(bytes: &[u8], chunks: &[usize]) {
        let mut r = CaptureReader::new(CaptureLimits::default());
        let mut t = Reassembler::new(TcpLimits { max_flows: 8, max_ooo_bytes: 64, ..TcpLimits::default() });
        let mut segs = Vec::new();
        let mut ev = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < bytes.len() {
            let n = chunks.get(i % chunks.len().max(1)).copied().unwrap_or(1).max(1);
            let end = (pos + n).min(bytes.len());
            r.feed(&bytes[pos..end], &mut segs);
            pos = end;
            i += 1;
        }
        r.finish(&mut segs);
        for s in segs {
            t.push(s, &mut ev);
        }
        t.finish(&mut ev);
    }

    proptest! {
        /// Any segmentation of a stream, shuffled, with duplicates and overlaps, and a sequence
        /// start anywhere (wraparound included), reassembles to the stream, without gaps.
        #[test]
        fn shuffled_overlapping_segments_reassemble_exactly(
            len in 1usize..600,
            isn in any::<u32>(),
            cuts in proptest::collection::vec((0usize..600, 1usize..80), 1..40),
            order in proptest::collection::vec(any::<u32>(), 40..41),
        ) {
            let stream: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            // Pieces covering the whole stream, plus random extra overlapping pieces.
            let mut pieces: Vec<(usize, usize)> = Vec::new();
            let mut at = 0;
            for (k, &(_, l)) in cuts.iter().enumerate() {
                if at >= len { break; }
                let l = if k + 1 == cuts.len() { len - at } else { l.min(len - at) };
                pieces.push((at, at + l));
                at += l;
            }
            if at < len { pieces.push((at, len)); }
            for &(s0, l) in &cuts {
                let s0 = s0 % len;
                pieces.push((s0, (s0 + l).min(len)));
            }
            let mut keyed: Vec<(u32, (usize, usize))> =
                pieces.iter().enumerate().map(|(i, p)| (order[i % order.len()].wrapping_mul(i as u32 + 1), *p)).collect();
            keyed.sort_by_key(|k| k.0);
            let mut segs = vec![P::new(0, C, S, isn, b"").syn().segment()];
            for (i, (_, (a, b))) in keyed.iter().enumerate() {
                segs.push(P::new(1 + i as i64, C, S, isn.wrapping_add(1).wrapping_add(*a as u32), &stream[*a..*b]).segment());
            }
            let (ev, st) = reassemble(segs, TcpLimits::default());
            let mut got = Vec::new();
            for e in &ev {
                match e {
                    StreamEvent::Data { data, dir: Direction::ToServer, .. } => got.extend_from_slice(data),
                    StreamEvent::Close { .. } => {}
                    other => prop_assert!(false, "unexpected {other:?}"),
                }
            }
            prop_assert_eq!(got, stream);
            prop_assert_eq!(st.gaps, 0);
        }

        /// With pieces lost and a small out-of-order bound, Data and Gap events still describe
        /// the stream up to the last byte received: data bytes in place, gaps of the right size.
        #[test]
        fn lost_segments_become_gaps_of_the_right_size(
            len in 1usize..800,
            isn in any::<u32>(),
            sizes in proptest::collection::vec(1usize..60, 1..60),
            lost in proptest::collection::vec(any::<bool>(), 60..61),
            swap in proptest::collection::vec(any::<bool>(), 60..61),
            max_ooo in 1usize..200,
        ) {
            let stream: Vec<u8> = (0..len).map(|i| (i * 13 % 253) as u8).collect();
            let mut pieces = Vec::new();
            let mut at = 0;
            let mut k = 0;
            while at < len {
                let l = sizes[k % sizes.len()].min(len - at);
                pieces.push((at, at + l));
                at += l;
                k += 1;
            }
            // Keep the first piece (the stream starts with the SYN), lose some, swap neighbours.
            let mut kept: Vec<(usize, usize)> = pieces
                .iter()
                .enumerate()
                .filter(|(i, _)| *i == 0 || !lost[i % lost.len()])
                .map(|(_, p)| *p)
                .collect();
            for i in 1..kept.len().saturating_sub(1) {
                if swap[i % swap.len()] {
                    kept.swap(i, i + 1);
                }
            }
            let end = kept.iter().map(|p| p.1).max().unwrap_or(0);
            let mut segs = vec![P::new(0, C, S, isn, b"").syn().segment()];
            for (i, (a, b)) in kept.iter().enumerate() {
                segs.push(P::new(1 + i as i64, C, S, isn.wrapping_add(1).wrapping_add(*a as u32), &stream[*a..*b]).segment());
            }
            let limits = TcpLimits { max_ooo_bytes: max_ooo, ..TcpLimits::default() };
            let (ev, _) = reassemble(segs, limits);
            let mut pos = 0usize;
            for e in &ev {
                match e {
                    StreamEvent::Data { data, .. } => {
                        prop_assert_eq!(&data[..], &stream[pos..pos + data.len()]);
                        pos += data.len();
                    }
                    StreamEvent::Gap { len, .. } => {
                        prop_assert!(*len > 0);
                        pos += *len as usize;
                    }
                    StreamEvent::Close { .. } => {}
                }
            }
            prop_assert_eq!(pos, end);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000),
                                       chunks in proptest::collection::vec(1usize..300, 1..8)) {
            run(&bytes, &chunks);
        }

        #[test]
        fn mutated_captures_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..20),
                                        chunks in proptest::collection::vec(1usize..300, 1..8),
                                        ng in any::<bool>()) {
            let ps = super::handshake_and_request();
            let mut bytes = if ng {
                let pk: Vec<(u32, i64, Vec<u8>)> = ps.iter().map(|p| (0, p.ts, frame(Link::Ethernet, p))).collect();
                pcapng(&[(1, 6)], &pk)
            } else {
                pcap_of(Link::Ethernet, &ps)
            };
            let n = bytes.len();
            for (i, b) in flips {
                bytes[i % n] = b;
            }
            run(&bytes, &chunks);
        }

        #[test]
        fn arbitrary_segments_never_panic(segs in proptest::collection::vec(
            (0u8..3, any::<u32>(), any::<u32>(), any::<bool>(), any::<bool>(), any::<bool>(), 0usize..40, 0i64..100), 0..60)) {
            let mut t = Reassembler::new(TcpLimits { max_flows: 2, max_ooo_bytes: 32, idle_timeout_micros: 50 });
            let mut ev = Vec::new();
            for (side, seq, ack, syn, fin, rst, len, ts) in segs {
                let (src, dst) = if side == 0 { (C, S) } else if side == 1 { (S, C) } else { ("10.1.1.1:1", S) };
                let mut p = P::new(ts, src, dst, seq, &vec![b'q'; len]).ack(ack);
                p.syn = syn; p.fin = fin; p.rst = rst;
                t.push(p.segment(), &mut ev);
            }
            t.finish(&mut ev);
        }
    }
}
