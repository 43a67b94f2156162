//! Incremental pcap/pcapng reader: capture bytes in, [`Segment`]s out.
//!
//! Records are framed with `pcap-parser`; link, IP and TCP headers are decoded with `etherparse`
//! (Linux SLL2 and BSD loopback headers, which etherparse does not know, are stripped here).
//! IPv4 and IPv6 fragments are reassembled with etherparse's `IpDefragBuf` under our own bounds.
//! Nothing here panics on input, and memory is bounded by [`Limits`].
//!
//! - Formats: pcap (both byte orders, micro- and nanosecond magic, the "modified" variant) and
//!   pcapng (several sections of either byte order; several interfaces, each with its own link
//!   type, `if_tsresol` and `if_tsoffset`; EPB and SPB). Timestamps become Unix microseconds.
//!   Apple's process information blocks and the EPB option pointing at them (macOS `tcpdump -k`)
//!   name the packet's process ([`ProcessInfo`]).
//! - Link types: Ethernet (802.1Q and QinQ tags), Linux SLL and SLL2, raw IP (101, 12, 14),
//!   IPV4 (228), IPV6 (229), BSD NULL (0, either host byte order) and LOOP (108).
//! - Only TCP becomes a [`Segment`]; everything else is counted in [`CaptureStats`].
//! - A corrupt record never stops the reader. A pcap record header with an impossible length
//!   and a pcapng block with an impossible length start a resynchronisation: bytes are skipped
//!   until a plausible header (confirmed by the header that follows it, except at the end of
//!   input) and counted. A well-framed but unreadable pcapng block is skipped by its length.
//!   Only input that is not a capture at all, or a bad pcap file header, stops the reader.
//! - Packets cut by the snap length are counted as truncated; their TCP payload is emitted as
//!   far as it was captured (reassembly turns the missing tail into a gap).

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use etherparse::defrag::IpDefragBuf;
use etherparse::{EtherType, IpNumber, LaxNetSlice, LaxSlicedPacket, TcpSlice};
use pcap_parser::pcapng::{parse_block_be, parse_block_le, Block};
use pcap_parser::{parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified, parse_pcap_header};

use crate::types::{ProcessInfo, Segment};

/// Apple process information block option: the process name.
const PIB_OPT_NAME: u16 = 2;
/// Apple enhanced packet block option: index of the packet's process information block.
const EPB_OPT_PIB_INDEX: u16 = 0x8001;

/// Bounds of the capture reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest pcap record / pcapng block accepted (bigger ones are corrupt). Also bounds the
    /// internal buffer: after `feed` returns it holds less than one record.
    pub max_record_bytes: usize,
    /// Fragmented IP datagrams being reassembled at once (beyond: the oldest is dropped).
    pub max_frag_datagrams: usize,
    /// Bytes held by all datagrams being reassembled (beyond: the oldest are dropped).
    pub max_frag_bytes: usize,
    /// A datagram whose first fragment is older than this (capture time) is dropped.
    pub frag_timeout_micros: i64,
    /// pcapng interfaces per section.
    pub max_interfaces: usize,
    /// Distinct reasons kept in [`CaptureStats::reasons`].
    pub max_reasons: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 1 << 20,
            max_frag_datagrams: 256,
            max_frag_bytes: 4 << 20,
            frag_timeout_micros: 30_000_000,
            max_interfaces: 256,
            max_reasons: 16,
        }
    }
}

/// What the reader saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packet records read (pcap records, pcapng EPB/SPB).
    pub packets: u64,
    /// Captured bytes of those packets.
    pub bytes: u64,
    /// TCP segments emitted.
    pub tcp_segments: u64,
    /// IP packets carrying something else than TCP (UDP, ICMP, ...).
    pub non_tcp: u64,
    /// Link-layer frames carrying no IP (ARP, LLDP, ...).
    pub non_ip: u64,
    /// Packets cut by the snap length (their TCP payload is emitted as far as captured, or the
    /// packet is skipped when the TCP header itself is cut).
    pub truncated_packets: u64,
    /// Unreadable records or blocks (bad length, bad block, cut at end of file).
    pub corrupt_records: u64,
    /// Packets whose link, IP or TCP header is invalid.
    pub corrupt_packets: u64,
    /// Packets on a link type this reader does not decode.
    pub unsupported_link_type: u64,
    /// IP fragments seen.
    pub fragments: u64,
    /// Datagrams rebuilt from fragments.
    pub fragments_reassembled: u64,
    /// Datagrams given up: timeout, bounds, inconsistent or truncated fragments, end of capture.
    pub fragments_dropped: u64,
    /// Bytes skipped while resynchronising after a corrupt record, or after stopping.
    pub skipped_bytes: u64,
    /// The capture ended in the middle of a record.
    pub truncated_file: bool,
    /// The input is not a capture, or a corrupt header made the reader stop.
    pub stopped: bool,
    /// First distinct reasons for corrupt records/packets and drops, with their counts.
    pub reasons: Vec<(String, u64)>,
}

/// `true` when `prefix` (at least 4 bytes) starts like a pcap (either byte order, micro- or
/// nanosecond, or the "modified" format) or pcapng file.
pub fn is_capture(prefix: &[u8]) -> bool {
    magic(prefix).is_some()
}

enum Magic {
    Pcap,
    Pcapng,
}

fn magic(prefix: &[u8]) -> Option<Magic> {
    let m: [u8; 4] = prefix.get(..4)?.try_into().ok()?;
    match u32::from_le_bytes(m) {
        0xa1b2_c3d4 | 0xa1b2_3c4d | 0xd4c3_b2a1 | 0x4d3c_b2a1 | 0xa1b2_cd34 => Some(Magic::Pcap),
        0x0a0d_0d0a => Some(Magic::Pcapng),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy)]
struct Iface {
    linktype: i32,
    units_per_sec: u64,
    offset_secs: i64,
}

#[derive(Debug)]
enum State {
    Start,
    /// `modified`: Kuznetzov's format (little-endian, 24-byte record headers).
    Pcap { big_endian: bool, nanos: bool, modified: bool, linktype: i32, snaplen: u32 },
    /// `processes`: the section's process information blocks, in order (their index is what
    /// packets refer to).
    Pcapng { big_endian: bool, ifaces: Vec<Iface>, processes: Vec<Arc<ProcessInfo>> },
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

#[derive(Debug)]
struct FragEntry {
    buf: IpDefragBuf,
    first_ts: i64,
    bytes: usize,
}

/// Incremental capture reader. Feed bytes in any chunking; get TCP segments.
#[derive(Debug)]
pub struct CaptureReader {
    limits: Limits,
    state: State,
    buf: Vec<u8>,
    stats: CaptureStats,
    frags: HashMap<FragKey, FragEntry>,
    frag_bytes: usize,
    last_ts: i64,
    /// Looking for the next plausible pcap record header after a corrupt one.
    resync: bool,
    /// `finish` is draining the buffer: no more input will come.
    at_end: bool,
    /// The process the capture names for the packet being decoded.
    current_process: Option<Arc<ProcessInfo>>,
}

const HDR_PCAP: usize = 24;

fn read_u32(b: &[u8], big: bool) -> Option<u32> {
    let a: [u8; 4] = b.get(..4)?.try_into().ok()?;
    Some(if big { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) })
}

impl CaptureReader {
    pub fn new(limits: Limits) -> Self {
        CaptureReader {
            limits,
            state: State::Start,
            buf: Vec::new(),
            stats: CaptureStats::default(),
            frags: HashMap::default(),
            frag_bytes: 0,
            last_ts: 0,
            resync: false,
            at_end: false,
            current_process: None,
        }
    }

    pub fn stats(&self) -> &CaptureStats {
        &self.stats
    }

    /// Feed the next bytes of the capture; decoded segments are appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Segment>) {
        if matches!(self.state, State::Stopped) {
            self.stats.skipped_bytes += bytes.len() as u64;
            return;
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.extend_from_slice(bytes);
        let mut pos = 0usize;
        while pos < buf.len() {
            let rest = &buf[pos..];
            let step = match self.state {
                State::Stopped => {
                    self.stats.skipped_bytes += rest.len() as u64;
                    pos = buf.len();
                    break;
                }
                State::Start => self.step_start(rest),
                State::Pcap { .. } => self.step_pcap(rest, out),
                State::Pcapng { .. } => self.step_pcapng(rest, out),
            };
            match step {
                Some(n) => pos += n,
                None => break,
            }
        }
        buf.drain(..pos.min(buf.len()));
        self.buf = buf;
    }

    /// End of input: a partial record left over is counted, pending fragments are dropped.
    pub fn finish(&mut self, out: &mut Vec<Segment>) {
        if self.resync && !self.buf.is_empty() {
            // Records after a resynchronisation point that could not be confirmed yet.
            self.at_end = true;
            self.feed(&[], out);
        }
        if !self.buf.is_empty() {
            let n = self.buf.len();
            if !matches!(self.state, State::Stopped) {
                self.stats.truncated_file = true;
                self.stats.corrupt_records += 1;
                self.reason("capture ends in the middle of a record");
            }
            self.stats.skipped_bytes += n as u64;
            self.buf.clear();
        }
        let n = self.frags.len();
        if n > 0 {
            self.stats.fragments_dropped += n as u64;
            for _ in 0..n {
                self.reason("incomplete fragmented datagram at end of capture");
            }
            self.frags.clear();
            self.frag_bytes = 0;
        }
    }

    fn reason(&mut self, r: &str) {
        if let Some(e) = self.stats.reasons.iter_mut().find(|(s, _)| s == r) {
            e.1 += 1;
        } else if self.stats.reasons.len() < self.limits.max_reasons {
            self.stats.reasons.push((r.to_string(), 1));
        }
    }

    fn start_resync(&mut self, r: &str) {
        self.stats.corrupt_records += 1;
        self.reason(r);
        self.resync = true;
    }

    fn stop(&mut self, r: &str) {
        self.stats.corrupt_records += 1;
        self.stats.stopped = true;
        self.reason(r);
        self.state = State::Stopped;
    }

    /// Each step returns the bytes consumed, or None when more input is needed.
    fn step_start(&mut self, rest: &[u8]) -> Option<usize> {
        if rest.len() < 4 {
            return None;
        }
        match magic(rest) {
            Some(Magic::Pcap) => {
                if rest.len() < HDR_PCAP {
                    return None;
                }
                match parse_pcap_header(rest) {
                    Ok((_, h)) => {
                        self.state = State::Pcap {
                            big_endian: h.is_bigendian(),
                            nanos: h.is_nanosecond_precision(),
                            modified: h.is_modified_format(),
                            linktype: h.network.0,
                            snaplen: h.snaplen,
                        };
                        Some(HDR_PCAP)
                    }
                    Err(_) => {
                        self.stop("bad pcap header");
                        Some(0)
                    }
                }
            }
            Some(Magic::Pcapng) => {
                // The section header block is then parsed like any other block.
                self.state = State::Pcapng { big_endian: false, ifaces: Vec::new(), processes: Vec::new() };
                Some(0)
            }
            None => {
                self.stop("not a pcap or pcapng capture");
                Some(0)
            }
        }
    }

    fn plausible_pcap_hdr(&self, b: &[u8], big: bool, nanos: bool, snaplen: u32) -> bool {
        let (Some(ts_sec), Some(ts_frac), Some(caplen), Some(origlen)) = (
            read_u32(b, big),
            b.get(4..).and_then(|b| read_u32(b, big)),
            b.get(8..).and_then(|b| read_u32(b, big)),
            b.get(12..).and_then(|b| read_u32(b, big)),
        ) else {
            return false;
        };
        let max_frac = if nanos { 1_000_000_000 } else { 1_000_000 };
        let cap_max = (self.limits.max_record_bytes as u64).min(u64::from(snaplen.max(65_535)));
        let last_sec = self.last_ts.div_euclid(1_000_000);
        let ts_ok = self.last_ts == 0 || (i64::from(ts_sec) - last_sec).abs() <= 86_400;
        ts_frac < max_frac
            && u64::from(caplen) <= cap_max
            && origlen >= caplen
            && origlen <= 0x0400_0000
            && ts_ok
    }

    fn step_pcap(&mut self, rest: &[u8], out: &mut Vec<Segment>) -> Option<usize> {
        let State::Pcap { big_endian, nanos, modified, linktype, snaplen } = self.state else {
            return None;
        };
        let hdr = if modified { 24 } else { 16 };
        if rest.len() < hdr {
            return None;
        }
        let caplen = read_u32(&rest[8..], big_endian)? as usize;
        if self.resync || caplen > self.limits.max_record_bytes {
            // Resynchronise: skip bytes until a plausible record header.
            if !self.resync {
                self.start_resync("bad pcap record header; resynchronising");
            }
            let mut ok = caplen <= self.limits.max_record_bytes
                && self.plausible_pcap_hdr(rest, big_endian, nanos, snaplen);
            if ok && !self.at_end {
                // Confirm with the header that follows (or wait for it).
                let next = hdr + caplen;
                if rest.len() < next + hdr {
                    return None;
                }
                ok = self.plausible_pcap_hdr(&rest[next..], big_endian, nanos, snaplen);
            }
            if ok && self.at_end && rest.len() < hdr + caplen {
                ok = false;
            }
            if ok {
                self.resync = false;
            } else {
                self.stats.skipped_bytes += 1;
                return Some(1);
            }
        }
        if rest.len() < hdr + caplen {
            return None;
        }
        let parsed = if modified {
            parse_pcap_frame_modified(rest)
        } else if big_endian {
            parse_pcap_frame_be(rest)
        } else {
            parse_pcap_frame(rest)
        };
        let Ok((_, blk)) = parsed else {
            self.stats.corrupt_records += 1;
            self.reason("unreadable pcap record");
            return Some(hdr + caplen);
        };
        let frac = i64::from(blk.ts_usec);
        let ts = i64::from(blk.ts_sec) * 1_000_000 + if nanos { frac / 1000 } else { frac };
        self.packet(linktype, ts, blk.data, blk.origlen as usize, out);
        Some(hdr + caplen)
    }

    /// Whether a whole, well-formed-looking pcapng block starts at `rest[0]` (None: need more).
    fn pcapng_block_at(&self, rest: &[u8], section_big: bool) -> Option<bool> {
        let need = |s: &Self| if s.at_end { Some(false) } else { None };
        if rest.len() < 12 {
            return need(self);
        }
        let big = if read_u32(rest, false)? == 0x0a0d_0d0a {
            match read_u32(&rest[8..], false)? {
                0x1a2b_3c4d => false,
                0x4d3c_2b1a => true,
                _ => return Some(false),
            }
        } else {
            section_big
        };
        let btype = read_u32(rest, big)?;
        const KNOWN: [u32; 10] =
            [0x0a0d_0d0a, 1, 2, 3, 4, 5, 6, 10, 0x0bad, 0x4000_0bad];
        if !KNOWN.contains(&btype) {
            return Some(false);
        }
        let blen = read_u32(&rest[4..], big)? as usize;
        if blen < 12 || !blen.is_multiple_of(4) || blen > self.limits.max_record_bytes {
            return Some(false);
        }
        if rest.len() < blen {
            return need(self);
        }
        Some(read_u32(&rest[blen - 4..], big)? as usize == blen)
    }

    fn step_pcapng(&mut self, rest: &[u8], out: &mut Vec<Segment>) -> Option<usize> {
        if self.resync {
            let section_big = matches!(self.state, State::Pcapng { big_endian: true, .. });
            if self.pcapng_block_at(rest, section_big)? {
                self.resync = false;
            } else {
                self.stats.skipped_bytes += 1;
                return Some(1);
            }
        }
        if rest.len() < 12 {
            return None;
        }
        let btype = read_u32(rest, false)?;
        let big = if btype == 0x0a0d_0d0a {
            // Section header: its byte-order magic decides.
            match read_u32(&rest[8..], false)? {
                0x1a2b_3c4d => false,
                0x4d3c_2b1a => true,
                _ => {
                    self.start_resync("pcapng section header with a bad byte-order magic");
                    return Some(0);
                }
            }
        } else {
            match self.state {
                State::Pcapng { big_endian, .. } => big_endian,
                _ => false,
            }
        };
        let blen = read_u32(&rest[4..], big)? as usize;
        if blen < 12 || !blen.is_multiple_of(4) || blen > self.limits.max_record_bytes {
            self.start_resync("pcapng block with an impossible length; resynchronising");
            return Some(0);
        }
        if rest.len() < blen {
            return None;
        }
        let block = &rest[..blen];
        let parsed = if big { parse_block_be(block) } else { parse_block_le(block) };
        let mut packet: Option<(i32, i64, &[u8], usize)> = None;
        let mut process: Option<Arc<ProcessInfo>> = None;
        let mut bad: Option<&'static str> = None;
        let max_ifaces = self.limits.max_interfaces;
        let last_ts = self.last_ts;
        match parsed {
            Err(_) => bad = Some("corrupt pcapng block skipped"),
            Ok((_, b)) => {
                let State::Pcapng { big_endian, ifaces, processes } = &mut self.state else {
                    return None;
                };
                match b {
                    Block::SectionHeader(_) => {
                        *big_endian = big;
                        ifaces.clear();
                        processes.clear();
                    }
                    // Apple's process information block (macOS `tcpdump -k`, PKTAP): a pid and
                    // options, option 2 being the process name.
                    Block::ProcessInformation(pib) => {
                        if processes.len() < max_ifaces {
                            let name = pib
                                .options
                                .iter()
                                .find(|o| o.code.0 == PIB_OPT_NAME)
                                .and_then(|o| o.as_str().ok())
                                .map(|s| s.trim_end_matches('\0').to_string())
                                .filter(|s| !s.is_empty());
                            processes.push(Arc::new(ProcessInfo { pid: pib.process_id, name }));
                        } else {
                            bad = Some("too many pcapng process information blocks");
                        }
                    }
                    Block::InterfaceDescription(idb) => {
                        if ifaces.len() < max_ifaces {
                            ifaces.push(Iface {
                                linktype: idb.linktype.0,
                                units_per_sec: idb.ts_resolution().unwrap_or(0),
                                offset_secs: idb.ts_offset(),
                            });
                        } else {
                            bad = Some("too many pcapng interfaces");
                        }
                    }
                    Block::EnhancedPacket(epb) => match ifaces.get(epb.if_id as usize).copied() {
                        Some(ifc) => {
                            let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                            let ts = if ifc.units_per_sec == 0 {
                                0
                            } else {
                                let micros = i128::from(raw) * 1_000_000
                                    / i128::from(ifc.units_per_sec)
                                    + i128::from(ifc.offset_secs) * 1_000_000;
                                i64::try_from(micros).unwrap_or(0)
                            };
                            let data = epb.data.get(..epb.caplen as usize).unwrap_or(epb.data);
                            packet = Some((ifc.linktype, ts, data, epb.origlen as usize));
                            // The packet's process: option 0x8001 indexes the section's process
                            // information blocks (an out-of-range index names none).
                            process = epb
                                .options
                                .iter()
                                .find(|o| o.code.0 == EPB_OPT_PIB_INDEX)
                                .and_then(|o| {
                                    let v = o.value().get(..4)?;
                                    let a: [u8; 4] = v.try_into().ok()?;
                                    Some(if big { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) })
                                })
                                .and_then(|i| processes.get(i as usize).cloned());
                        }
                        None => bad = Some("pcapng packet on an undeclared interface"),
                    },
                    Block::SimplePacket(spb) => match ifaces.first().copied() {
                        Some(ifc) => {
                            let data = spb.data.get(..spb.origlen as usize).unwrap_or(spb.data);
                            packet = Some((ifc.linktype, last_ts, data, spb.origlen as usize));
                        }
                        None => bad = Some("pcapng packet on an undeclared interface"),
                    },
                    _ => {}
                }
            }
        }
        if let Some(r) = bad {
            self.stats.corrupt_records += 1;
            self.reason(r);
        }
        if let Some((lt, ts, data, orig)) = packet {
            self.current_process = process;
            self.packet(lt, ts, data, orig, out);
            self.current_process = None;
        }
        Some(blen)
    }

    /// Decode one link-layer frame that did not come from a capture file (a live socket): the same
    /// link, IP and TCP decoding as a pcap record of link type `linktype` (1 Ethernet, 113 Linux
    /// SLL, 276 SLL2, 101 raw IP, ...) captured at `ts_micros`, `origlen` bytes long on the wire.
    pub fn frame(&mut self, linktype: i32, ts_micros: i64, data: &[u8], origlen: usize, out: &mut Vec<Segment>) {
        self.packet(linktype, ts_micros, data, origlen.max(data.len()), out);
    }

    fn packet(&mut self, linktype: i32, ts: i64, data: &[u8], origlen: usize, out: &mut Vec<Segment>) {
        self.stats.packets += 1;
        self.stats.bytes += data.len() as u64;
        self.last_ts = ts;
        let cut = data.len() < origlen;
        let sliced = match linktype {
            // Ethernet (802.1Q/QinQ tags are link extensions in etherparse).
            1 => match LaxSlicedPacket::from_ethernet(data) {
                Ok(p) => p,
                Err(_) => return self.corrupt_packet(cut, "bad Ethernet header"),
            },
            // Linux cooked capture v1: 16-byte header, protocol last.
            113 => {
                let (Ok(_), Some(et), Some(rest)) = (
                    etherparse::LinuxSllHeaderSlice::from_slice(data),
                    data.get(14..16),
                    data.get(16..),
                ) else {
                    return self.corrupt_packet(cut, "bad Linux SLL header");
                };
                LaxSlicedPacket::from_ether_type(EtherType(u16::from_be_bytes([et[0], et[1]])), rest)
            }
            // Linux cooked capture v2: 20-byte header, protocol first.
            276 => {
                let (Some(et), Some(rest)) = (data.get(0..2), data.get(20..)) else {
                    return self.corrupt_packet(cut, "bad Linux SLL2 header");
                };
                LaxSlicedPacket::from_ether_type(EtherType(u16::from_be_bytes([et[0], et[1]])), rest)
            }
            // Raw IP (LINKTYPE_RAW and its aliases, IPV4, IPV6).
            101 | 12 | 14 | 228 | 229 => match LaxSlicedPacket::from_ip(data) {
                Ok(p) => p,
                Err(_) => {
                    let r = match data.first().map(|b| b >> 4) {
                        Some(4) => "bad IPv4 header",
                        Some(6) => "bad IPv6 header",
                        _ => "bad IP header",
                    };
                    return self.corrupt_packet(cut, r);
                }
            },
            // BSD loopback: 4-byte address family, host (NULL) or network (LOOP) byte order.
            0 | 108 => {
                let (Some(f), Some(rest)) = (data.get(0..4), data.get(4..)) else {
                    return self.corrupt_packet(cut, "bad loopback header");
                };
                let f: [u8; 4] = [f[0], f[1], f[2], f[3]];
                let fam = if linktype == 108 {
                    u32::from_be_bytes(f)
                } else {
                    // Host order of the capturing machine: accept either.
                    let le = u32::from_le_bytes(f);
                    if le < 256 {
                        le
                    } else {
                        u32::from_be_bytes(f)
                    }
                };
                match fam {
                    2 => LaxSlicedPacket::from_ether_type(EtherType::IPV4, rest),
                    10 | 24 | 28 | 30 => LaxSlicedPacket::from_ether_type(EtherType::IPV6, rest),
                    _ => {
                        self.stats.non_ip += 1;
                        return;
                    }
                }
            }
            _ => {
                self.stats.unsupported_link_type += 1;
                self.reason(&format!("unsupported link type {linktype}"));
                return;
            }
        };
        self.net(sliced, ts, cut, out);
    }

    fn corrupt_packet(&mut self, cut: bool, r: &str) {
        if cut {
            self.stats.truncated_packets += 1;
        } else {
            self.stats.corrupt_packets += 1;
            self.reason(r);
        }
    }

    fn net(&mut self, p: LaxSlicedPacket<'_>, ts: i64, cut: bool, out: &mut Vec<Segment>) {
        match p.net {
            Some(LaxNetSlice::Ipv4(v4)) => {
                let h = v4.header();
                let (src, dst, ttl) = (h.source_addr(), h.destination_addr(), h.ttl());
                let pl = v4.payload();
                if pl.fragmented {
                    self.stats.fragments += 1;
                    let (s, d) = (IpAddr::V4(src), IpAddr::V4(dst));
                    let id = u32::from(h.identification());
                    let key = FragKey { src: s, dst: d, id, proto: pl.ip_number.0 };
                    if pl.incomplete {
                        self.stats.truncated_packets += 1;
                        self.drop_frag(key, "truncated fragment");
                        return;
                    }
                    let (off, more) = (h.fragments_offset(), h.more_fragments());
                    if let Some(data) = self.fragment(key, off, more, pl.payload, ts) {
                        self.transport(s, d, ttl, key.proto, &data, false, ts, out);
                    }
                    return;
                }
                let incomplete = pl.incomplete || cut;
                let (s, d) = (IpAddr::V4(src), IpAddr::V4(dst));
                self.transport(s, d, ttl, pl.ip_number.0, pl.payload, incomplete, ts, out);
            }
            Some(LaxNetSlice::Ipv6(v6)) => {
                let h = v6.header();
                let pl = v6.payload();
                let (s, d) = (IpAddr::V6(h.source_addr()), IpAddr::V6(h.destination_addr()));
                if pl.fragmented {
                    self.stats.fragments += 1;
                    let frag = v6.extensions().clone().into_iter().find_map(|e| match e {
                        etherparse::Ipv6ExtensionSlice::Fragment(f) => Some(f.to_header()),
                        _ => None,
                    });
                    let Some(fh) = frag else {
                        self.stats.fragments_dropped += 1;
                        self.reason("IPv6 fragment without a fragment header");
                        return;
                    };
                    let key = FragKey { src: s, dst: d, id: fh.identification, proto: pl.ip_number.0 };
                    if pl.incomplete {
                        self.stats.truncated_packets += 1;
                        self.drop_frag(key, "truncated fragment");
                        return;
                    }
                    let (off, more) = (fh.fragment_offset, fh.more_fragments);
                    if let Some(data) = self.fragment(key, off, more, pl.payload, ts) {
                        self.transport(s, d, h.hop_limit(), key.proto, &data, false, ts, out);
                    }
                    return;
                }
                let incomplete = pl.incomplete || cut;
                self.transport(s, d, h.hop_limit(), pl.ip_number.0, pl.payload, incomplete, ts, out);
            }
            Some(LaxNetSlice::Arp(_)) => self.stats.non_ip += 1,
            None => match p.stop_err {
                Some((e, _)) => {
                    use etherparse::err::packet::SliceError as E;
                    let r = match e {
                        E::Len(_) => "truncated link or IP header",
                        E::Ipv4(_) | E::Ipv4Exts(_) => "bad IPv4 header",
                        E::Ipv6(_) | E::Ipv6Exts(_) => "bad IPv6 header",
                        E::Ip(_) => "bad IP header",
                        _ => "bad link header",
                    };
                    self.corrupt_packet(cut, r);
                }
                None => self.stats.non_ip += 1,
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn transport(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        ttl: u8,
        proto: u8,
        payload: &[u8],
        incomplete: bool,
        ts: i64,
        out: &mut Vec<Segment>,
    ) {
        if proto != IpNumber::TCP.0 {
            self.stats.non_tcp += 1;
            return;
        }
        match TcpSlice::from_slice(payload) {
            Ok(t) => {
                if incomplete {
                    self.stats.truncated_packets += 1;
                }
                self.stats.tcp_segments += 1;
                out.push(Segment {
                    ts_micros: ts,
                    src: SocketAddr::new(src, t.source_port()),
                    dst: SocketAddr::new(dst, t.destination_port()),
                    seq: t.sequence_number(),
                    ack: t.acknowledgment_number(),
                    syn: t.syn(),
                    fin: t.fin(),
                    rst: t.rst(),
                    payload: t.payload().to_vec(),
                    ttl,
                    process: self.current_process.clone(),
                });
            }
            Err(_) if incomplete => self.stats.truncated_packets += 1,
            Err(_) => {
                self.stats.corrupt_packets += 1;
                self.reason("bad TCP header");
            }
        }
    }

    fn drop_frag(&mut self, key: FragKey, r: &str) {
        if let Some(e) = self.frags.remove(&key) {
            self.frag_bytes = self.frag_bytes.saturating_sub(e.bytes);
        }
        self.stats.fragments_dropped += 1;
        self.reason(r);
    }

    fn fragment(
        &mut self,
        key: FragKey,
        off: etherparse::IpFragOffset,
        more: bool,
        data: &[u8],
        ts: i64,
    ) -> Option<Vec<u8>> {
        // Expire old datagrams (capture time).
        let timeout = self.limits.frag_timeout_micros;
        let expired: Vec<FragKey> = self
            .frags
            .iter()
            .filter(|(_, e)| ts.saturating_sub(e.first_ts) > timeout)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            self.drop_frag(k, "fragmented datagram timed out");
        }
        if !self.frags.contains_key(&key) {
            while self.frags.len() >= self.limits.max_frag_datagrams.max(1) {
                let Some(oldest) =
                    self.frags.iter().min_by_key(|(_, e)| e.first_ts).map(|(k, _)| *k)
                else {
                    break;
                };
                self.drop_frag(oldest, "too many fragmented datagrams");
            }
            let buf = IpDefragBuf::new(IpNumber(key.proto), Vec::new(), Vec::new());
            self.frags.insert(key, FragEntry { buf, first_ts: ts, bytes: 0 });
        }
        while self.frag_bytes + data.len() > self.limits.max_frag_bytes {
            let Some(oldest) = self
                .frags
                .iter()
                .filter(|(k, _)| **k != key)
                .min_by_key(|(_, e)| e.first_ts)
                .map(|(k, _)| *k)
            else {
                self.drop_frag(key, "fragment bytes exceed the limit");
                return None;
            };
            self.drop_frag(oldest, "fragment bytes exceed the limit");
        }
        let e = self.frags.get_mut(&key)?;
        if e.buf.add(off, more, data).is_err() {
            self.drop_frag(key, "inconsistent IP fragments");
            return None;
        }
        e.bytes += data.len();
        self.frag_bytes += data.len();
        if e.buf.is_complete() {
            let e = self.frags.remove(&key)?;
            self.frag_bytes = self.frag_bytes.saturating_sub(e.bytes);
            self.stats.fragments_reassembled += 1;
            let (d, _) = e.buf.take_bufs();
            return Some(d);
        }
        None
    }
}
