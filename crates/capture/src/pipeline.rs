//! The whole decoder in one piece: capture bytes in, ECS events out.
//!
//! [`CaptureDecoder`] chains [`CaptureReader`] -> [`Reassembler`] -> [`HttpDecoder`] ->
//! [`write_ecs`]. Feed it the capture in chunks of any size; it returns the events (JSON bytes) completed so far
//! (ordered as transactions complete), and the rest at [`CaptureDecoder::finish`]. Counters of
//! every stage are available for the caller's summary.

use crate::ecs::{write_ecs_with, HostIdentity};
use crate::http::{HttpConfig, HttpDecoder, HttpStats, HttpTransaction};
use crate::imds::ImdsConfig;
use crate::pcap::{CaptureReader, CaptureStats, Limits as CaptureLimits};
use crate::tcp::{Limits as TcpLimits, ReassemblyStats, Reassembler};
use crate::types::{ProcessInfo, Segment, StreamEvent};
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::net::SocketAddr;
use std::sync::Arc;

/// Settings of a decoder.
#[derive(Debug, Clone, Default)]
pub struct DecoderConfig {
    pub capture: CaptureLimits,
    pub tcp: TcpLimits,
    pub http: HttpConfig,
    pub imds: ImdsConfig,
    /// Put every request and response header into the events (Packetbeat's `send_all_headers`).
    pub send_all_headers: bool,
    /// `host.name` / `host.id` of the capturing host, written into every event (as Packetbeat
    /// writes its own host), so host-scoped rules can tell captures of several hosts apart.
    pub host_name: Option<String>,
    pub host_id: Option<String>,
}

/// Counters of all stages.
#[derive(Debug, Clone)]
pub struct DecoderStats<'a> {
    pub capture: &'a CaptureStats,
    pub tcp: &'a ReassemblyStats,
    pub http: &'a HttpStats,
    pub events: u64,
}

pub struct CaptureDecoder {
    reader: CaptureReader,
    tcp: Reassembler,
    http: HttpDecoder,
    imds: ImdsConfig,
    send_all_headers: bool,
    host: HostIdentity,
    segments: Vec<Segment>,
    stream: Vec<StreamEvent>,
    txs: Vec<HttpTransaction>,
    events: u64,
    /// The process the capture names for each connection (both endpoints, ordered), bounded by
    /// the reassembler's flow limit; entries go when their flow closes.
    processes: HashMap<(SocketAddr, SocketAddr), Arc<ProcessInfo>>,
    max_processes: usize,
    closed: Vec<(SocketAddr, SocketAddr)>,
}

fn endpoints(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

impl CaptureDecoder {
    pub fn new(config: DecoderConfig) -> Self {
        let max_processes = config.tcp.max_flows.max(1);
        CaptureDecoder {
            processes: HashMap::default(),
            max_processes,
            closed: Vec::new(),
            reader: CaptureReader::new(config.capture),
            tcp: Reassembler::new(config.tcp),
            http: HttpDecoder::new(HttpConfig { body_endpoints: Some(config.imds.clone()), ..config.http }),
            imds: config.imds,
            send_all_headers: config.send_all_headers,
            host: HostIdentity { name: config.host_name, id: config.host_id },
            segments: Vec::new(),
            stream: Vec::new(),
            txs: Vec::new(),
            events: 0,
        }
    }

    fn note_process(&mut self, seg: &Segment) {
        if let Some(p) = &seg.process {
            let key = endpoints(seg.src, seg.dst);
            if !self.processes.contains_key(&key) && self.processes.len() >= self.max_processes {
                // Flows whose close was never seen: forget an arbitrary one rather than grow.
                if let Some(k) = self.processes.keys().next().copied() {
                    self.processes.remove(&k);
                }
            }
            self.processes.entry(key).or_insert_with(|| p.clone());
        }
    }

    fn write_all(&mut self, out: &mut Vec<Vec<u8>>) {
        for mut tx in self.txs.drain(..) {
            if !self.processes.is_empty() {
                tx.process = self.processes.get(&endpoints(tx.flow.client, tx.flow.server)).cloned();
            }
            let mut doc = Vec::with_capacity(1024);
            write_ecs_with(&tx, &self.imds, self.send_all_headers, &self.host, &mut doc);
            out.push(doc);
            self.events += 1;
        }
        for k in self.closed.drain(..) {
            self.processes.remove(&k);
        }
    }

    fn stream_to_http(&mut self) {
        for ev in self.stream.drain(..) {
            if let StreamEvent::Close { flow, .. } = &ev {
                if !self.processes.is_empty() {
                    self.closed.push(endpoints(flow.client, flow.server));
                }
            }
            self.http.on_event(&ev, &mut self.txs);
        }
    }

    fn drain(&mut self, out: &mut Vec<Vec<u8>>) {
        let segments = std::mem::take(&mut self.segments);
        for seg in &segments {
            self.note_process(seg);
        }
        for seg in segments {
            self.tcp.push(seg, &mut self.stream);
        }
        self.stream_to_http();
        self.write_all(out);
    }

    /// Feed capture bytes; completed events are appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        self.reader.feed(bytes, &mut self.segments);
        self.drain(out);
    }

    /// Feed one live link-layer frame (see [`CaptureReader::frame`]); completed events are
    /// appended to `out`. For sensors that read packets from a socket rather than a file.
    pub fn feed_frame(&mut self, linktype: i32, ts_micros: i64, frame: &[u8], origlen: usize, out: &mut Vec<Vec<u8>>) {
        self.reader.frame(linktype, ts_micros, frame, origlen, &mut self.segments);
        self.drain(out);
    }

    /// End of the capture: flush every stage.
    pub fn finish(&mut self, out: &mut Vec<Vec<u8>>) {
        self.reader.finish(&mut self.segments);
        self.drain(out);
        self.tcp.finish(&mut self.stream);
        self.stream_to_http();
        self.http.finish(&mut self.txs);
        self.write_all(out);
        self.processes.clear();
    }

    pub fn stats(&self) -> DecoderStats<'_> {
        DecoderStats { capture: self.reader.stats(), tcp: self.tcp.stats(), http: self.http.stats(), events: self.events }
    }
}
