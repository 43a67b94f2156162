//! The AWS token response leaves with IP TTL (IPv6 hop limit) = HttpPutResponseHopLimit, and other
//! responses with the system default. Packets are observed on loopback with a raw socket (IPv4:
//! `AF_INET`/`SOCK_RAW`/`IPPROTO_TCP`, which delivers copies of incoming TCP packets with their IP
//! header; IPv6: `AF_PACKET` on the loopback, since IPv6 raw sockets strip the header). Needs root
//! (CAP_NET_RAW).

mod common;

use common::*;
use imdsguard_mock::{Limits, Settings};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// One TCP segment seen on the wire.
#[derive(Debug)]
struct Seen {
    src: SocketAddr,
    ttl: u8,
    payload: Vec<u8>,
}

/// Parses an IPv4 or IPv6 packet carrying TCP (no IPv6 extension headers: loopback TCP has none).
fn parse_ip(p: &[u8]) -> Option<Seen> {
    match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if p.len() < ihl + 20 || p[9] != 6 {
                return None;
            }
            let src = IpAddr::from([p[12], p[13], p[14], p[15]]);
            tcp(src, p[8], &p[ihl..])
        }
        6 => {
            if p.len() < 60 || p[6] != 6 {
                return None;
            }
            let mut a = [0u8; 16];
            a.copy_from_slice(&p[8..24]);
            tcp(IpAddr::from(a), p[7], &p[40..])
        }
        _ => None,
    }
}

fn tcp(src: IpAddr, ttl: u8, t: &[u8]) -> Option<Seen> {
    let port = u16::from_be_bytes([t[0], t[1]]);
    let off = usize::from(t[12] >> 4) * 4;
    let payload = t.get(off..)?.to_vec();
    Some(Seen { src: SocketAddr::new(src, port), ttl, payload })
}

/// Reads packets until `deadline`, keeping those sent from `from` with a payload.
fn collect(sock: &mut Socket, from: SocketAddr, skip: usize, deadline: Instant) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline {
        match sock.read(&mut buf) {
            Ok(n) => {
                if let Some(s) = buf.get(skip..n).and_then(parse_ip) {
                    if s.src == from && !s.payload.is_empty() {
                        out.push(s);
                    }
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading the raw socket: {e}"),
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn default_ttl(path: &str) -> u8 {
    std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(64)
}

/// Runs the PUT and a GET against `listen`, watching with `sock`; returns (token TTL, GET TTL).
fn observe(mut sock: Socket, skip: usize, listen: &str, hop: u8) -> (u8, u8, String) {
    sock.set_read_timeout(Some(Duration::from_millis(100))).expect("read timeout");
    let m = start_with(Settings { hop_limit: hop, ..Settings::default() }, false, &[listen], Limits::default());
    let a = m.addr();
    let token = token(a, "60");
    let got = get(a, "/latest/meta-data/instance-id", &[("X-aws-ec2-metadata-token", &token)]);
    assert_eq!(got.status, 200);
    let seen = collect(&mut sock, a, skip, Instant::now() + Duration::from_secs(2));
    let tok = seen.iter().find(|s| contains(&s.payload, token.as_bytes())).unwrap_or_else(|| panic!("no packet carrying the token seen from {a}: {seen:?}"));
    let other = seen
        .iter()
        .find(|s| contains(&s.payload, b"i-0a1b2c3d4e5f6a7b8"))
        .unwrap_or_else(|| panic!("no packet carrying the GET response seen from {a}"));
    let line = m.log.lines().first().cloned().unwrap_or_default();
    (tok.ttl, other.ttl, line["hop_limit"].to_string())
}

#[test]
fn token_response_ipv4_ttl_is_the_hop_limit() {
    let sock = match Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP)) {
        Ok(s) => s,
        Err(e) => {
            if prerequisite_missing("token_response_ipv4_ttl_is_the_hop_limit", &format!("a raw IPv4 socket needs root or CAP_NET_RAW ({e})")) {
                return;
            }
            unreachable!()
        }
    };
    let (tok_ttl, get_ttl, logged) = observe(sock, 0, "127.0.0.1:0", 3);
    assert_eq!(tok_ttl, 3, "the token response's IP TTL is HttpPutResponseHopLimit");
    assert_eq!(get_ttl, default_ttl("/proc/sys/net/ipv4/ip_default_ttl"), "other responses keep the system default TTL");
    assert_eq!(logged, "3", "the log line records the hop limit applied");
}

#[test]
fn token_response_ipv6_hop_limit_is_the_hop_limit() {
    if std::net::TcpListener::bind("[::1]:0").is_err()
        && prerequisite_missing("token_response_ipv6_hop_limit_is_the_hop_limit", "no IPv6 loopback (::1) on this host")
    {
        return;
    }
    // ETH_P_ALL in network byte order; loopback frames carry a 14-byte Ethernet header.
    let sock = match Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(i32::from(0x0003u16.to_be())))) {
        Ok(s) => s,
        Err(e) => {
            if prerequisite_missing("token_response_ipv6_hop_limit_is_the_hop_limit", &format!("an AF_PACKET socket needs root or CAP_NET_RAW ({e})")) {
                return;
            }
            unreachable!()
        }
    };
    let (tok_hops, get_hops, _) = observe(sock, 14, "[::1]:0", 2);
    assert_eq!(tok_hops, 2, "the token response's IPv6 hop limit is HttpPutResponseHopLimit");
    assert_eq!(get_hops, default_ttl("/proc/sys/net/ipv6/conf/lo/hop_limit"));
}
