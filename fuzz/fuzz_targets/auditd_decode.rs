#![no_main]
//! Arbitrary bytes, split into lines, through the auditd decoder with small bounds (so window and
//! buffer-limit eviction, late records and incomplete events run too). It must never panic, and
//! every line must be accounted for.

use imdsguard_auditd::{AuditDecoder, DecoderConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = AuditDecoder::new(DecoderConfig { window_ms: 50, max_pending: 4, ..DecoderConfig::default() });
    let mut out = Vec::new();
    let mut lines = 0u64;
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        d.feed_line(i as u64 + 1, line, &mut out);
        lines += 1;
        out.clear();
    }
    d.finish(&mut out);
    let s = d.stats().clone();
    assert_eq!(s.lines, lines);
    assert_eq!(s.records + s.ignored_lines + s.bad_lines, s.lines);
    assert_eq!(d.take_problems().len() as u64, s.problems);
});
