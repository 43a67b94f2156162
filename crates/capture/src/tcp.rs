//! TCP reassembly: segments in capture order → per-flow, per-direction ordered byte streams.
//!
//! Sequence numbers are unwrapped into 64-bit stream offsets relative to the expected next byte,
//! so wraparound is transparent. Overlapping data keeps the bytes seen first (as Linux does).
//! Memory is bounded by [`Limits`]: number of flows (least recently active evicted), buffered
//! out-of-order bytes per direction (beyond: a `Gap` and skip ahead), idle timeout.
//!
//! Event rules:
//! - `Data` coalesces every byte that became in-order during one `push`; its time is that of the
//!   segment that carried the first byte.
//! - A hole becomes a `Gap` when the buffer overflows, when the other side acknowledges data past
//!   the hole (the receiver got bytes the capture missed), or when the flow ends.
//! - `Close` comes once per connection: after both FINs are reached in stream order, on RST, on
//!   eviction or idle expiry (at the flow's last capture time), or at `finish`; flows that never
//!   produced `Data` or `Gap` (handshake only, pure ACKs) produce no events at all. A closed
//!   connection is remembered (late ACKs and retransmitted FINs are ignored) until a new SYN
//!   reuses its ports or it ages out.
//! - Client and server: the sender of a SYN without ACK number is the client, the sender of a
//!   SYN-ACK the server; without a SYN, the side on a well-known port (< 1024 or a common service
//!   port), else on the lower port, is the server.

use std::collections::BTreeMap;
/// Flow tables use foldhash: several times faster than SipHash on socket addresses, and
/// randomly seeded per process, so crafted captures cannot aim at collisions.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::net::SocketAddr;

use crate::types::{Direction, FlowKey, Segment, StreamEvent};

/// Bounds of the reassembler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Flows tracked at once; beyond, the least recently active flow is closed and forgotten.
    pub max_flows: usize,
    /// Out-of-order bytes buffered per direction; beyond, the hole is declared a `Gap`.
    pub max_ooo_bytes: usize,
    /// A flow without segments for this long (capture time) is closed.
    pub idle_timeout_micros: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_flows: 65_536, max_ooo_bytes: 256 * 1024, idle_timeout_micros: 300_000_000 }
    }
}

/// Counters of the reassembler.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    pub segments: u64,
    pub flows_created: u64,
    /// Flows closed by FIN from both sides or RST.
    pub flows_closed: u64,
    /// Flows closed because `max_flows` was reached.
    pub flows_evicted: u64,
    /// Flows closed by the idle timeout.
    pub flows_expired: u64,
    /// Flows still open at `finish`.
    pub flows_unfinished: u64,
    pub bytes_delivered: u64,
    /// Retransmitted bytes already delivered or buffered (dropped; first seen wins).
    pub duplicate_bytes: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Times the out-of-order buffer of a direction overflowed.
    pub ooo_overflows: u64,
    /// Segments for a flow already closed (late ACKs, retransmitted FINs).
    pub segments_after_close: u64,
}

#[derive(Debug, Default)]
struct Half {
    started: bool,
    /// Sequence number of stream offset 0.
    base: u32,
    /// Next expected stream offset.
    next: u64,
    /// Out-of-order data: offset → (capture time, bytes); non-overlapping.
    pending: BTreeMap<u64, (i64, Vec<u8>)>,
    pending_bytes: usize,
    /// Stream offset of the FIN, once seen.
    fin: Option<u64>,
}

impl Half {
    fn done(&self) -> bool {
        matches!(self.fin, Some(f) if self.next >= f)
    }

    /// Stream offset of `seq` (relative to `next`; half-window either way).
    fn offset(&self, seq: u32) -> Option<u64> {
        let next_seq = self.base.wrapping_add(self.next as u32);
        let d = i64::from(seq.wrapping_sub(next_seq) as i32);
        let o = self.next as i64 + d;
        u64::try_from(o).ok()
    }
}

#[derive(Debug)]
struct Flow {
    key: FlowKey,
    to_server: Half,
    to_client: Half,
    last_ts: i64,
    touch: u64,
    emitted: bool,
    closed: bool,
}

impl Flow {
    fn half(&mut self, d: Direction) -> &mut Half {
        match d {
            Direction::ToServer => &mut self.to_server,
            Direction::ToClient => &mut self.to_client,
        }
    }
}

type Canon = (SocketAddr, SocketAddr);

fn canon(a: SocketAddr, b: SocketAddr) -> Canon {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// TCP reassembler over many flows.
#[derive(Debug)]
pub struct Reassembler {
    limits: Limits,
    flows: HashMap<Canon, Flow>,
    lru: BTreeMap<u64, Canon>,
    clock: u64,
    stats: ReassemblyStats,
}

impl Reassembler {
    pub fn new(limits: Limits) -> Self {
        Reassembler {
            limits,
            flows: HashMap::default(),
            lru: BTreeMap::new(),
            clock: 0,
            stats: ReassemblyStats::default(),
        }
    }

    pub fn stats(&self) -> &ReassemblyStats {
        &self.stats
    }

    /// Add one segment (in capture order); events are appended to `out`.
    pub fn push(&mut self, seg: Segment, out: &mut Vec<StreamEvent>) {
        self.stats.segments += 1;
        let now = seg.ts_micros;
        self.expire(now, out);
        let ck = canon(seg.src, seg.dst);

        // A SYN (without ACK) on a known flow whose sequence differs starts a new connection.
        if seg.syn && seg.ack == 0 {
            if let Some(f) = self.flows.get(&ck) {
                let same = f.key.client == seg.src
                    && f.to_server.started
                    && f.to_server.base == seg.seq.wrapping_add(1);
                if !same {
                    self.remove(ck, out);
                }
            }
        }

        if !self.flows.contains_key(&ck) {
            if seg.rst {
                return;
            }
            while self.flows.len() >= self.limits.max_flows.max(1) {
                let Some((_, &victim)) = self.lru.iter().next() else { break };
                if self.flows.get(&victim).is_some_and(|f| !f.closed) {
                    self.stats.flows_evicted += 1;
                }
                self.remove(victim, out);
            }
            // A SYN names the client (a SYN with an ACK number is the server's SYN-ACK);
            // otherwise the well-known, else the lower, port is the server's.
            let client_is_src = if seg.syn {
                seg.ack == 0
            } else {
                let (sp, dp) = (seg.src.port(), seg.dst.port());
                match (well_known(sp), well_known(dp)) {
                    (false, true) => true,
                    (true, false) => false,
                    _ => sp > dp || (sp == dp && seg.src <= seg.dst),
                }
            };
            let key = if client_is_src {
                FlowKey { client: seg.src, server: seg.dst }
            } else {
                FlowKey { client: seg.dst, server: seg.src }
            };
            self.stats.flows_created += 1;
            self.flows.insert(
                ck,
                Flow {
                    key,
                    to_server: Half::default(),
                    to_client: Half::default(),
                    last_ts: now,
                    touch: 0,
                    emitted: false,
                    closed: false,
                },
            );
        }
        self.clock += 1;
        let clock = self.clock;
        let Some(flow) = self.flows.get_mut(&ck) else { return };
        self.lru.remove(&flow.touch);
        flow.touch = clock;
        flow.last_ts = now;
        self.lru.insert(clock, ck);

        if flow.closed {
            self.stats.segments_after_close += 1;
            return;
        }
        let dir = if seg.src == flow.key.client { Direction::ToServer } else { Direction::ToClient };
        let key = flow.key;
        let max_ooo = self.limits.max_ooo_bytes;
        let st = &mut self.stats;

        if seg.rst {
            // Tear down: whatever is buffered is delivered (with gaps), then Close.
            self.remove(ck, out);
            self.stats.flows_closed += 1;
            return;
        }

        // The other side's ACK proves the receiver got bytes we did not capture: if it covers
        // a hole before buffered data, declare the hole a gap.
        {
            let other = flow.half(opposite(dir));
            if other.started && !other.pending.is_empty() {
                if let (Some(a), Some((&first, _))) = (other.offset(seg.ack), other.pending.iter().next()) {
                    if a > other.next && a >= first && a - other.next <= (1 << 30) {
                        let mut emitted = false;
                        fill_hole(other, key, opposite(dir), now, st, out, &mut emitted);
                        flow.emitted |= emitted;
                    }
                }
            }
        }

        let half = flow.half(dir);
        if !half.started {
            half.started = true;
            half.base = if seg.syn { seg.seq.wrapping_add(1) } else { seg.seq };
            half.next = 0;
        }
        let Some(mut start) = half.offset(if seg.syn { seg.seq.wrapping_add(1) } else { seg.seq })
        else {
            // Before the start of the stream: old retransmission.
            st.duplicate_bytes += seg.payload.len() as u64;
            return;
        };
        let mut data: &[u8] = &seg.payload;
        let end = start + data.len() as u64;
        if seg.fin && half.fin.is_none() {
            half.fin = Some(end);
        }
        if end <= half.next {
            st.duplicate_bytes += data.len() as u64;
        } else {
            if start < half.next {
                let cut = (half.next - start) as usize;
                st.duplicate_bytes += cut as u64;
                data = data.get(cut..).unwrap_or(&[]);
                start = half.next;
            }
            insert_pending(half, start, now, data, st);
            let mut emitted = false;
            drain(half, key, dir, st, out, &mut emitted);
            if half.pending_bytes > max_ooo {
                st.ooo_overflows += 1;
                while half.pending_bytes > max_ooo {
                    fill_hole(half, key, dir, now, st, out, &mut emitted);
                }
            }
            flow.emitted |= emitted;
        }
        if flow.to_server.done() && flow.to_client.done() {
            self.stats.flows_closed += 1;
            if let Some(f) = self.flows.get_mut(&ck) {
                f.closed = true;
                if f.emitted {
                    out.push(StreamEvent::Close { flow: f.key, ts_micros: now });
                }
            }
        }
    }

    /// End of capture: every open flow is flushed (gaps for holes) and closed.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        let order: Vec<Canon> = self.lru.values().copied().collect();
        for ck in order {
            if self.flows.get(&ck).is_some_and(|f| !f.closed) {
                self.stats.flows_unfinished += 1;
            }
            self.remove(ck, out);
        }
    }

    fn expire(&mut self, now: i64, out: &mut Vec<StreamEvent>) {
        loop {
            let Some((_, &ck)) = self.lru.iter().next() else { return };
            let Some(f) = self.flows.get(&ck) else {
                self.lru.pop_first();
                continue;
            };
            if now.saturating_sub(f.last_ts) <= self.limits.idle_timeout_micros {
                return;
            }
            if !f.closed {
                self.stats.flows_expired += 1;
            }
            self.remove(ck, out);
        }
    }

    /// Forget a flow; if still open, flush its buffers and emit Close (at its last time).
    fn remove(&mut self, ck: Canon, out: &mut Vec<StreamEvent>) {
        let Some(mut f) = self.flows.remove(&ck) else { return };
        self.lru.remove(&f.touch);
        if f.closed {
            return;
        }
        let ts = f.last_ts;
        let key = f.key;
        let mut emitted = f.emitted;
        for dir in [Direction::ToServer, Direction::ToClient] {
            let h = f.half(dir);
            while !h.pending.is_empty() {
                fill_hole(h, key, dir, ts, &mut self.stats, out, &mut emitted);
            }
        }
        if emitted {
            out.push(StreamEvent::Close { flow: key, ts_micros: ts });
        }
    }
}

/// Ports below 1024 and common service ports above it.
fn well_known(port: u16) -> bool {
    port < 1024 || matches!(port, 1080 | 3128 | 5000 | 8000 | 8008 | 8080 | 8443 | 8888 | 9200)
}

fn opposite(d: Direction) -> Direction {
    match d {
        Direction::ToServer => Direction::ToClient,
        Direction::ToClient => Direction::ToServer,
    }
}

/// Buffer `data` at `start` (≥ next), keeping bytes already buffered (first seen wins).
fn insert_pending(h: &mut Half, start: u64, ts: i64, data: &[u8], st: &mut ReassemblyStats) {
    let end = start + data.len() as u64;
    let mut cur = start;
    // Existing pieces overlapping [start, end), in order (including one starting before).
    let mut pieces: Vec<(u64, u64)> = Vec::new();
    if let Some((&k, (_, v))) = h.pending.range(..start).next_back() {
        pieces.push((k, k + v.len() as u64));
    }
    for (&k, (_, v)) in h.pending.range(start..end) {
        pieces.push((k, k + v.len() as u64));
    }
    for (ps, pe) in pieces {
        if pe <= cur {
            continue;
        }
        if ps > cur {
            let a = (cur - start) as usize;
            let b = (ps.min(end) - start) as usize;
            if let Some(slice) = data.get(a..b) {
                h.pending_bytes += slice.len();
                h.pending.insert(cur, (ts, slice.to_vec()));
            }
        }
        let covered = pe.min(end).saturating_sub(ps.max(cur));
        st.duplicate_bytes += covered;
        cur = cur.max(pe);
        if cur >= end {
            return;
        }
    }
    if cur < end {
        if let Some(slice) = data.get((cur - start) as usize..) {
            if !slice.is_empty() {
                h.pending_bytes += slice.len();
                h.pending.insert(cur, (ts, slice.to_vec()));
            }
        }
    }
}

/// Deliver the contiguous prefix of the buffer as one Data event.
fn drain(
    h: &mut Half,
    key: FlowKey,
    dir: Direction,
    st: &mut ReassemblyStats,
    out: &mut Vec<StreamEvent>,
    emitted: &mut bool,
) {
    let mut acc: Option<(i64, Vec<u8>)> = None;
    while let Some(entry) = h.pending.first_entry() {
        if *entry.key() != h.next {
            break;
        }
        let (ts, bytes) = entry.remove();
        h.pending_bytes = h.pending_bytes.saturating_sub(bytes.len());
        h.next += bytes.len() as u64;
        st.bytes_delivered += bytes.len() as u64;
        match &mut acc {
            Some((_, v)) => v.extend_from_slice(&bytes),
            None => acc = Some((ts, bytes)),
        }
    }
    if let Some((ts, data)) = acc {
        *emitted = true;
        out.push(StreamEvent::Data { flow: key, dir, ts_micros: ts, data });
    }
}

/// Declare the hole before the first buffered piece a gap, then deliver what follows it.
fn fill_hole(
    h: &mut Half,
    key: FlowKey,
    dir: Direction,
    ts: i64,
    st: &mut ReassemblyStats,
    out: &mut Vec<StreamEvent>,
    emitted: &mut bool,
) {
    let Some((&first, _)) = h.pending.iter().next() else { return };
    if first > h.next {
        let len = first - h.next;
        st.gaps += 1;
        st.gap_bytes += len;
        *emitted = true;
        out.push(StreamEvent::Gap { flow: key, dir, ts_micros: ts, len });
        h.next = first;
    }
    drain(h, key, dir, st, out, emitted);
}
