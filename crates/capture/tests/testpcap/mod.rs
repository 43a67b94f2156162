//! Test-only capture writer: pcap and pcapng files built in memory, packets built with
//! etherparse's `PacketBuilder`. Nothing is sent anywhere.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};

use etherparse::{LinuxSllPacketType, PacketBuilder, VlanId};
use imdsguard_capture::Segment;

pub const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// One TCP packet to write.
#[derive(Debug, Clone)]
pub struct P {
    pub ts: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: Option<u32>,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub payload: Vec<u8>,
}

impl P {
    pub fn new(ts: i64, src: &str, dst: &str, seq: u32, payload: &[u8]) -> P {
        P {
            ts,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            seq,
            ack: None,
            syn: false,
            fin: false,
            rst: false,
            payload: payload.to_vec(),
        }
    }
    pub fn ack(mut self, a: u32) -> P {
        self.ack = Some(a);
        self
    }
    pub fn syn(mut self) -> P {
        self.syn = true;
        self
    }
    pub fn fin(mut self) -> P {
        self.fin = true;
        self
    }
    pub fn rst(mut self) -> P {
        self.rst = true;
        self
    }
    /// The segment the reader must produce for this packet.
    pub fn segment(&self) -> Segment {
        Segment {
            ts_micros: self.ts,
            src: self.src,
            dst: self.dst,
            seq: self.seq,
            ack: self.ack.unwrap_or(0),
            syn: self.syn,
            fin: self.fin,
            rst: self.rst,
            payload: self.payload.clone(),
            ttl: 64,
            process: None,
        }
    }
}

macro_rules! finish_tcp {
    ($b:expr, $p:expr) => {{
        let p: &P = $p;
        let mut t = $b.tcp(p.src.port(), p.dst.port(), p.seq, 65535);
        if p.syn {
            t = t.syn();
        }
        if let Some(a) = p.ack {
            t = t.ack(a);
        }
        if p.fin {
            t = t.fin();
        }
        if p.rst {
            t = t.rst();
        }
        let mut v = Vec::new();
        t.write(&mut v, &p.payload).unwrap();
        v
    }};
}

macro_rules! with_ip {
    ($b:expr, $p:expr) => {{
        let p: &P = $p;
        match (p.src.ip(), p.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => finish_tcp!($b.ipv4(s.octets(), d.octets(), 64), p),
            (IpAddr::V6(s), IpAddr::V6(d)) => finish_tcp!($b.ipv6(s.octets(), d.octets(), 64), p),
            _ => panic!("mixed address families"),
        }
    }};
}

/// Link-layer framings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Ethernet,
    Vlan(u16),
    QinQ(u16, u16),
    Sll,
    Sll2,
    Raw,
    Null,
}

impl Link {
    pub fn linktype(self) -> u32 {
        match self {
            Link::Ethernet | Link::Vlan(_) | Link::QinQ(..) => 1,
            Link::Sll => 113,
            Link::Sll2 => 276,
            Link::Raw => 101,
            Link::Null => 0,
        }
    }
}

/// The bare IP packet (no link header).
pub fn ip_packet(p: &P) -> Vec<u8> {
    match (p.src.ip(), p.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => finish_tcp!(PacketBuilder::ipv4(s.octets(), d.octets(), 64), p),
        (IpAddr::V6(s), IpAddr::V6(d)) => finish_tcp!(PacketBuilder::ipv6(s.octets(), d.octets(), 64), p),
        _ => panic!("mixed address families"),
    }
}

/// The packet framed for `link`.
pub fn frame(link: Link, p: &P) -> Vec<u8> {
    match link {
        Link::Ethernet => with_ip!(PacketBuilder::ethernet2(MAC_A, MAC_B), p),
        Link::Vlan(id) => {
            with_ip!(PacketBuilder::ethernet2(MAC_A, MAC_B).single_vlan(VlanId::try_new(id).unwrap()), p)
        }
        Link::QinQ(o, i) => with_ip!(
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .double_vlan(VlanId::try_new(o).unwrap(), VlanId::try_new(i).unwrap()),
            p
        ),
        Link::Sll => with_ip!(PacketBuilder::linux_sll(LinuxSllPacketType::OUTGOING, 6, [2, 0, 0, 0, 0, 1, 0, 0]), p),
        Link::Sll2 => {
            let ip = ip_packet(p);
            let proto: u16 = if p.src.is_ipv4() { 0x0800 } else { 0x86dd };
            let mut v = proto.to_be_bytes().to_vec();
            v.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
            v.extend_from_slice(&ip);
            v
        }
        Link::Raw => ip_packet(p),
        Link::Null => {
            let fam: u32 = if p.src.is_ipv4() { 2 } else { 30 };
            let mut v = fam.to_le_bytes().to_vec();
            v.extend_from_slice(&ip_packet(p));
            v
        }
    }
}

/// A pcap file. `nanos` selects the nanosecond magic; `big` the byte order.
pub fn pcap(linktype: u32, frames: &[(i64, Vec<u8>)], big: bool, nanos: bool) -> Vec<u8> {
    let w32 = |v: &mut Vec<u8>, x: u32| {
        if big {
            v.extend_from_slice(&x.to_be_bytes())
        } else {
            v.extend_from_slice(&x.to_le_bytes())
        }
    };
    let w16 = |v: &mut Vec<u8>, x: u16| {
        if big {
            v.extend_from_slice(&x.to_be_bytes())
        } else {
            v.extend_from_slice(&x.to_le_bytes())
        }
    };
    let mut v = Vec::new();
    w32(&mut v, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    w16(&mut v, 2);
    w16(&mut v, 4);
    w32(&mut v, 0);
    w32(&mut v, 0);
    w32(&mut v, 262_144);
    w32(&mut v, linktype);
    for (ts, f) in frames {
        w32(&mut v, (ts / 1_000_000) as u32);
        let frac = (ts % 1_000_000) as u32;
        w32(&mut v, if nanos { frac * 1000 } else { frac });
        w32(&mut v, f.len() as u32);
        w32(&mut v, f.len() as u32);
        v.extend_from_slice(f);
    }
    v
}

/// A pcap record with a snap length: `caplen` bytes of `f` kept, original length `f.len()`.
pub fn pcap_record_snapped(ts: i64, f: &[u8], caplen: usize) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
    v.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
    v.extend_from_slice(&(caplen as u32).to_le_bytes());
    v.extend_from_slice(&(f.len() as u32).to_le_bytes());
    v.extend_from_slice(&f[..caplen]);
    v
}

fn block(v: &mut Vec<u8>, big: bool, btype: u32, body: &[u8]) {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let len = (body.len() + 12) as u32;
    v.extend_from_slice(&u32b(btype, big));
    v.extend_from_slice(&u32b(len, big));
    v.extend_from_slice(&body);
    v.extend_from_slice(&u32b(len, big));
}

fn u32b(x: u32, big: bool) -> [u8; 4] {
    if big {
        x.to_be_bytes()
    } else {
        x.to_le_bytes()
    }
}

fn u16b(x: u16, big: bool) -> [u8; 2] {
    if big {
        x.to_be_bytes()
    } else {
        x.to_le_bytes()
    }
}

/// pcapng (little-endian): `ifaces` are (linktype, if_tsresol); `packets` are
/// (interface, capture time in microseconds, frame).
pub fn pcapng(ifaces: &[(u32, u8)], packets: &[(u32, i64, Vec<u8>)]) -> Vec<u8> {
    pcapng_with(false, ifaces, packets)
}

/// pcapng in either byte order.
pub fn pcapng_with(big: bool, ifaces: &[(u32, u8)], packets: &[(u32, i64, Vec<u8>)]) -> Vec<u8> {
    let mut v = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&u32b(0x1a2b_3c4d, big));
    shb.extend_from_slice(&u16b(1, big));
    shb.extend_from_slice(&u16b(0, big));
    shb.extend_from_slice(&[0xff; 8]);
    block(&mut v, big, 0x0a0d_0d0a, &shb);
    for &(lt, resol) in ifaces {
        let mut idb = Vec::new();
        idb.extend_from_slice(&u16b(lt as u16, big));
        idb.extend_from_slice(&u16b(0, big));
        idb.extend_from_slice(&u32b(262_144, big));
        // if_tsresol option, then opt_endofopt.
        idb.extend_from_slice(&u16b(9, big));
        idb.extend_from_slice(&u16b(1, big));
        idb.extend_from_slice(&[resol, 0, 0, 0]);
        idb.extend_from_slice(&[0, 0, 0, 0]);
        block(&mut v, big, 1, &idb);
    }
    for (iface, ts, f) in packets {
        let resol = ifaces[*iface as usize].1;
        let units = ((*ts as u128) * 10u128.pow(u32::from(resol)) / 1_000_000) as u64;
        let mut epb = Vec::new();
        epb.extend_from_slice(&u32b(*iface, big));
        epb.extend_from_slice(&u32b((units >> 32) as u32, big));
        epb.extend_from_slice(&u32b(units as u32, big));
        epb.extend_from_slice(&u32b(f.len() as u32, big));
        epb.extend_from_slice(&u32b(f.len() as u32, big));
        epb.extend_from_slice(f);
        block(&mut v, big, 6, &epb);
    }
    v
}

/// Splits an IPv4 packet (no options) into fragments of `chunk` payload bytes (multiple of 8).
pub fn fragment_v4(ip: &[u8], chunk: usize, id: u16) -> Vec<Vec<u8>> {
    let (h, payload) = etherparse::Ipv4Header::from_slice(ip).unwrap();
    let payload = &payload[..usize::from(h.total_len) - h.header_len()];
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let end = (off + chunk).min(payload.len());
        let mut fh = h.clone();
        fh.identification = id;
        fh.dont_fragment = false;
        fh.more_fragments = end < payload.len();
        fh.fragment_offset = etherparse::IpFragOffset::try_new((off / 8) as u16).unwrap();
        fh.total_len = (fh.header_len() + end - off) as u16;
        fh.header_checksum = fh.calc_header_checksum();
        let mut v = fh.to_bytes().to_vec();
        v.extend_from_slice(&payload[off..end]);
        out.push(v);
        off = end;
    }
    out
}

/// Splits an IPv6 packet (no extension headers) into fragments of `chunk` payload bytes
/// (multiple of 8), each with a fragment header.
pub fn fragment_v6(ip: &[u8], chunk: usize, id: u32) -> Vec<Vec<u8>> {
    let (h, rest) = etherparse::Ipv6Header::from_slice(ip).unwrap();
    let payload = &rest[..usize::from(h.payload_length)];
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let end = (off + chunk).min(payload.len());
        let mut fh = h.clone();
        fh.next_header = etherparse::IpNumber::IPV6_FRAGMENTATION_HEADER;
        fh.payload_length = (8 + end - off) as u16;
        let mut v = Vec::new();
        fh.write(&mut v).unwrap();
        let more = u16::from(end < payload.len());
        v.push(h.next_header.0);
        v.push(0);
        v.extend_from_slice(&((((off / 8) as u16) << 3) | more).to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&payload[off..end]);
        out.push(v);
        off = end;
    }
    out
}

/// pcapng (little-endian, one section) with Apple process information blocks: `processes` are
/// (pid, name); each packet is (interface, time, frame, index of its process block).
pub fn pcapng_with_processes(ifaces: &[(u32, u8)], processes: &[(u32, &str)], packets: &[(u32, i64, Vec<u8>, Option<u32>)]) -> Vec<u8> {
    let plain: Vec<(u32, i64, Vec<u8>)> = Vec::new();
    let mut v = pcapng_with(false, ifaces, &plain);
    for (pid, name) in processes {
        let mut pib = Vec::new();
        pib.extend_from_slice(&pid.to_le_bytes());
        // option 2: process name, padded to 32 bits; then opt_endofopt.
        pib.extend_from_slice(&2u16.to_le_bytes());
        pib.extend_from_slice(&(name.len() as u16).to_le_bytes());
        pib.extend_from_slice(name.as_bytes());
        while !pib.len().is_multiple_of(4) {
            pib.push(0);
        }
        pib.extend_from_slice(&[0, 0, 0, 0]);
        block(&mut v, false, 0x8000_0001, &pib);
    }
    for (iface, ts, f, proc_index) in packets {
        let resol = ifaces[*iface as usize].1;
        let units = ((*ts as u128) * 10u128.pow(u32::from(resol)) / 1_000_000) as u64;
        let mut epb = Vec::new();
        epb.extend_from_slice(&iface.to_le_bytes());
        epb.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(units as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(f);
        while !epb.len().is_multiple_of(4) {
            epb.push(0);
        }
        if let Some(i) = proc_index {
            epb.extend_from_slice(&0x8001u16.to_le_bytes());
            epb.extend_from_slice(&4u16.to_le_bytes());
            epb.extend_from_slice(&i.to_le_bytes());
            epb.extend_from_slice(&[0, 0, 0, 0]);
        }
        block(&mut v, false, 6, &epb);
    }
    v
}
