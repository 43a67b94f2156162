#![no_main]
//! Arbitrary bytes, in chunks chosen by the first input byte, through the capture reader and the
//! TCP reassembler (small bounds, so eviction, gaps and overflow paths run too).

use imdsguard_capture::{CaptureLimits, CaptureReader, Reassembler, TcpLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (chunk, bytes) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c).max(1), rest),
        None => (1, data),
    };
    let mut reader = CaptureReader::new(CaptureLimits {
        max_record_bytes: 1 << 16,
        max_frag_datagrams: 4,
        max_frag_bytes: 4096,
        ..CaptureLimits::default()
    });
    let mut tcp = Reassembler::new(TcpLimits { max_flows: 4, max_ooo_bytes: 256, idle_timeout_micros: 1_000_000 });
    let mut segs = Vec::new();
    let mut events = Vec::new();
    for c in bytes.chunks(chunk) {
        reader.feed(c, &mut segs);
        for s in segs.drain(..) {
            tcp.push(s, &mut events);
        }
        events.clear();
    }
    reader.finish(&mut segs);
    for s in segs.drain(..) {
        tcp.push(s, &mut events);
    }
    tcp.finish(&mut events);
});
