//! The whole decoder in one piece: capture bytes in, ECS events out.
//!
//! [`CaptureDecoder`] chains [`CaptureReader`] -> [`Reassembler`] -> [`HttpDecoder`] ->
//! [`write_ecs`]. Feed it the capture in chunks of any size; it returns the events (JSON bytes) completed so far
//! (ordered as transactions complete), and the rest at [`CaptureDecoder::finish`]. Counters of
//! every stage are available for the caller's summary.

use crate::ecs::write_ecs;
use crate::http::{HttpConfig, HttpDecoder, HttpStats, HttpTransaction};
use crate::imds::ImdsConfig;
use crate::pcap::{CaptureReader, CaptureStats, Limits as CaptureLimits};
use crate::tcp::{Limits as TcpLimits, ReassemblyStats, Reassembler};
use crate::types::{Segment, StreamEvent};

/// Settings of a decoder.
#[derive(Debug, Clone, Default)]
pub struct DecoderConfig {
    pub capture: CaptureLimits,
    pub tcp: TcpLimits,
    pub http: HttpConfig,
    pub imds: ImdsConfig,
    /// Put every request and response header into the events (Packetbeat's `send_all_headers`).
    pub send_all_headers: bool,
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
    segments: Vec<Segment>,
    stream: Vec<StreamEvent>,
    txs: Vec<HttpTransaction>,
    events: u64,
}

impl CaptureDecoder {
    pub fn new(config: DecoderConfig) -> Self {
        CaptureDecoder {
            reader: CaptureReader::new(config.capture),
            tcp: Reassembler::new(config.tcp),
            http: HttpDecoder::new(config.http),
            imds: config.imds,
            send_all_headers: config.send_all_headers,
            segments: Vec::new(),
            stream: Vec::new(),
            txs: Vec::new(),
            events: 0,
        }
    }

    fn drain(&mut self, out: &mut Vec<Vec<u8>>) {
        for seg in self.segments.drain(..) {
            self.tcp.push(seg, &mut self.stream);
        }
        for ev in self.stream.drain(..) {
            self.http.on_event(&ev, &mut self.txs);
        }
        for tx in self.txs.drain(..) {
            let mut doc = Vec::with_capacity(1024);
            write_ecs(&tx, &self.imds, self.send_all_headers, &mut doc);
            out.push(doc);
            self.events += 1;
        }
    }

    /// Feed capture bytes; completed events are appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        self.reader.feed(bytes, &mut self.segments);
        self.drain(out);
    }

    /// End of the capture: flush every stage.
    pub fn finish(&mut self, out: &mut Vec<Vec<u8>>) {
        self.reader.finish(&mut self.segments);
        for seg in self.segments.drain(..) {
            self.tcp.push(seg, &mut self.stream);
        }
        self.tcp.finish(&mut self.stream);
        for ev in self.stream.drain(..) {
            self.http.on_event(&ev, &mut self.txs);
        }
        self.http.finish(&mut self.txs);
        for tx in self.txs.drain(..) {
            let mut doc = Vec::with_capacity(1024);
            write_ecs(&tx, &self.imds, self.send_all_headers, &mut doc);
            out.push(doc);
            self.events += 1;
        }
    }

    pub fn stats(&self) -> DecoderStats<'_> {
        DecoderStats { capture: self.reader.stats(), tcp: self.tcp.stats(), http: self.http.stats(), events: self.events }
    }
}
