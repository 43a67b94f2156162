//! Packet captures to ECS events, as a pure library (no I/O: callers feed bytes), so the same
//! decoder serves capture files (`imdsguard decode`, `hunt`) and, later, the live sensor.
//!
//! Pipeline: [`pcap`] reads pcap/pcapng records and decodes link, IP (with fragment reassembly)
//! and TCP headers into [`Segment`]s; [`tcp`] reassembles each flow's two byte streams into
//! ordered [`StreamEvent`]s (bounded memory per flow and number of flows, drops counted);
//! [`http`] parses HTTP/1.x requests and responses from those streams, pairs them, and builds
//! Packetbeat-compatible ECS events with the `imds.*` field set ([`imds`]); credentials are
//! removed before an event exists.

pub mod ecs;
pub mod http;
pub mod imds;
pub mod json;
pub mod pcap;
pub mod pipeline;
pub mod tcp;
pub mod types;

pub use pcap::{is_capture, CaptureReader, CaptureStats, Limits as CaptureLimits};
pub use tcp::{Limits as TcpLimits, ReassemblyStats, Reassembler};
pub use ecs::{to_ecs, write_ecs, write_ecs_with, HostIdentity};
pub use http::{Header, HttpConfig, HttpDecoder, HttpStats, HttpTransaction};
pub use imds::{ImdsConfig, ImdsEndpoint, ImdsInfo};
pub use pipeline::{CaptureDecoder, DecoderConfig, DecoderStats};
pub use types::{Direction, FlowKey, ProcessInfo, Segment, StreamEvent};
