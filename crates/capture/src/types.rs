//! Types shared by the capture stages.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A TCP connection, named by its client (the side that sent the first SYN or, when the start is
/// missing, the side talking to the well-known/lower port) and server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub client: SocketAddr,
    pub server: SocketAddr,
}

/// Which way bytes travel on a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    ToServer,
    ToClient,
}

/// One decoded TCP segment (output of the capture reader, input of reassembly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Capture time, microseconds since the Unix epoch.
    pub ts_micros: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub payload: Vec<u8>,
    /// IP TTL (IPv4) or hop limit (IPv6) of the packet.
    pub ttl: u8,
    /// The local process that sent or received the packet, when the capture records it (pcapng
    /// process information blocks, as written by macOS `tcpdump -k` / PKTAP).
    pub process: Option<Arc<ProcessInfo>>,
}

/// A process named by the capture itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub name: Option<String>,
}

impl Segment {
    pub fn src_ip(&self) -> IpAddr {
        self.src.ip()
    }
}

/// What reassembly hands to the application-layer decoder, per flow, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// In-order bytes of one direction; `ts_micros` is the capture time of the segment that
    /// carried the first of them.
    Data { flow: FlowKey, dir: Direction, ts_micros: i64, data: Vec<u8> },
    /// Bytes of one direction are missing (capture loss, bounded buffer overflow, flow started
    /// before the capture); the decoder must resynchronise.
    Gap { flow: FlowKey, dir: Direction, ts_micros: i64, len: u64 },
    /// The flow ended (FIN/RST from both sides, eviction, or end of capture).
    Close { flow: FlowKey, ts_micros: i64 },
}
