//! Event sources: turn files and streams into [`Event`]s with provenance.
//!
//! Inputs: files, directories (walked recursively in name order), `.gz` files (also detected by
//! magic bytes) and `-` for stdin. Formats are detected from the content:
//! - NDJSON, one event per line (the common export of Beats, Elastic Agent, Logstash);
//! - a JSON array of events;
//! - an Elasticsearch `_search` response (`hits.hits[]._source`, keeping `_id` and `_index`), either
//!   as one document or one hit per line;
//! - one or several pretty-printed JSON objects;
//! - packet captures (pcap, pcapng), decoded by `imdsguard-capture`;
//! - raw Linux audit logs (`/var/log/audit/audit.log`, `ausearch --raw`, syslog-forwarded),
//!   recognised from their first non-empty lines and decoded by `imdsguard-auditd` into
//!   Auditbeat-shaped events.
//!
//! Contract (shared by every source): every record is either delivered as an event or counted as
//! skipped with its file, line and reason; the rest of the input is still read. Events are parsed
//! into `sonic_rs::Value` (the fast path); credentials are redacted where events leave the process
//! (alert documents, `search` output), see ARCHITECTURE.md. Raw lines are offered to the sink
//! before parsing so that a prefilter can skip events that cannot match (they are counted by the
//! sink, not lost). Only lines that look like a JSON object (`{` ... `}`) are offered; anything
//! else is parsed so that it is reported as malformed.

use imdsguard_ecs::{Event, Provenance};
use serde_json::Value;
use sonic_rs::{JsonContainerTrait, JsonType, JsonValueTrait, Value as Doc};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where events go.
pub trait EventSink {
    /// Offered the raw bytes of a line-oriented record before it is parsed; returning `false`
    /// skips parsing (the sink accounts for it).
    fn wants(&mut self, _raw: &[u8]) -> bool {
        true
    }
    /// A parsed event.
    fn event(&mut self, event: Event);
}

/// One record that could not be turned into an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub provenance: Provenance,
    pub reason: String,
}

/// Counters for a read.
#[derive(Debug, Clone, Default)]
pub struct ReadStats {
    pub files: u64,
    pub bytes: u64,
    /// Records seen (lines or elements), including skipped ones and those the sink declined.
    pub records: u64,
    /// Events delivered to the sink.
    pub events: u64,
    /// Records that could not be read, by reason; `skipped_examples` keeps the first few.
    pub skipped: u64,
    pub skipped_examples: Vec<Skipped>,
    /// Files or directories that could not be opened.
    pub unreadable: Vec<(String, String)>,
    /// One line per packet capture read: what its decoder saw (packets, flows, HTTP messages,
    /// what was dropped and why).
    pub capture_notes: Vec<String>,
    /// One line per audit log read: what the auditd decoder saw (records, events, evictions, defects).
    pub auditd_notes: Vec<String>,
}

/// Keep at most this many skipped-record examples.
pub const MAX_SKIP_EXAMPLES: usize = 50;

impl ReadStats {
    fn skip(&mut self, provenance: Provenance, reason: String) {
        self.skipped += 1;
        if self.skipped_examples.len() < MAX_SKIP_EXAMPLES {
            self.skipped_examples.push(Skipped { provenance, reason });
        }
    }
}

/// Expand inputs into the files to read: directories are walked (sorted, hidden entries skipped).
pub fn expand_inputs(inputs: &[PathBuf], stats: &mut ReadStats) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in inputs {
        if p.as_os_str() == "-" {
            out.push(p.clone());
            continue;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut out, stats),
            Ok(_) => out.push(p.clone()),
            Err(e) => stats.unreadable.push((p.display().to_string(), e.to_string())),
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, stats: &mut ReadStats) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            stats.unreadable.push((dir.display().to_string(), e.to_string()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let hidden = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, out, stats);
        } else {
            out.push(p);
        }
    }
}

/// A reader that counts bytes for progress reporting.
struct Counting<R> {
    inner: R,
    count: u64,
    report: Box<dyn FnMut(u64)>,
    since: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        self.since += n as u64;
        if self.since >= 1 << 20 || n == 0 {
            (self.report)(self.since);
            self.since = 0;
        }
        Ok(n)
    }
}

/// Options of the readers.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Settings of the packet-capture decoder.
    pub capture: imdsguard_capture::DecoderConfig,
    /// Settings of the audit-log decoder (host identity for logs without `node=`, reordering bounds).
    pub auditd: imdsguard_auditd::DecoderConfig,
}

/// Read one input (a file path or `-`) into the sink. `progress` receives byte increments of the
/// (possibly compressed) input.
pub fn read_input(path: &Path, sink: &mut dyn EventSink, stats: &mut ReadStats, progress: Box<dyn FnMut(u64)>) {
    read_input_with(path, sink, stats, progress, &ReadOptions::default())
}

/// [`read_input`] with options.
pub fn read_input_with(path: &Path, sink: &mut dyn EventSink, stats: &mut ReadStats, progress: Box<dyn FnMut(u64)>, opts: &ReadOptions) {
    let origin: Arc<str> = Arc::from(if path.as_os_str() == "-" { "-".to_string() } else { path.display().to_string() });
    let raw: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        match File::open(path) {
            Ok(f) => Box::new(f),
            Err(e) => {
                stats.unreadable.push((origin.to_string(), e.to_string()));
                return;
            }
        }
    };
    stats.files += 1;
    let counting = Counting { inner: raw, count: 0, report: progress, since: 0 };
    let mut buffered = BufReader::with_capacity(1 << 20, counting);
    let gz = match buffered.fill_buf() {
        Ok(b) => b.starts_with(&[0x1f, 0x8b]),
        Err(e) => {
            stats.skip(Provenance { origin: origin.clone(), line: 0 }, format!("cannot read: {e}"));
            return;
        }
    };
    if gz {
        let decoder = flate2::read::MultiGzDecoder::new(buffered);
        let mut r = BufReader::with_capacity(1 << 20, decoder);
        read_stream_with(&mut r, &origin, sink, stats, opts);
        stats.bytes += r.get_ref().get_ref().get_ref().count;
    } else {
        read_stream_with(&mut buffered, &origin, sink, stats, opts);
        stats.bytes += buffered.get_ref().count;
    }
}

/// Read events from any buffered stream (format detected from content).
pub fn read_stream(r: &mut dyn BufRead, origin: &Arc<str>, sink: &mut dyn EventSink, stats: &mut ReadStats) {
    read_stream_with(r, origin, sink, stats, &ReadOptions::default())
}

/// [`read_stream`] with options.
pub fn read_stream_with(r: &mut dyn BufRead, origin: &Arc<str>, sink: &mut dyn EventSink, stats: &mut ReadStats, opts: &ReadOptions) {
    // Packet captures (pcap, pcapng) are recognised by their magic number.
    if let Ok(prefix) = r.fill_buf() {
        if imdsguard_capture::is_capture(prefix) {
            read_capture(r, origin, sink, stats, opts);
            return;
        }
    }
    // Find the first non-whitespace byte (counting the blank lines skipped on the way).
    let mut skipped_lines = 0u64;
    let first = loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) => {
                stats.skip(Provenance { origin: origin.clone(), line: 0 }, format!("cannot read: {e}"));
                return;
            }
        };
        if buf.is_empty() {
            return; // empty input
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => break buf[i],
            None => {
                let n = buf.len();
                skipped_lines += memchr::memchr_iter(b'\n', buf).count() as u64;
                r.consume(n);
            }
        }
    };
    if first != b'[' && first != b'{' && looks_like_audit_log(r) {
        read_auditd(r, origin, sink, stats, opts, skipped_lines);
        return;
    }
    if first == b'[' {
        let mut all = Vec::new();
        if let Err(e) = r.read_to_end(&mut all) {
            stats.skip(Provenance { origin: origin.clone(), line: 0 }, format!("cannot read: {e}"));
            return;
        }
        read_whole(&all, origin, sink, stats);
        return;
    }
    read_lines(r, origin, sink, stats, true, skipped_lines);
}

/// Line mode. With `detect`, a first line that is not a complete JSON value but starts a JSON
/// document that parses (pretty-printed JSON) switches to whole-document mode; if the document
/// does not parse either, the file is NDJSON with a malformed first line.
fn read_lines(r: &mut dyn BufRead, origin: &Arc<str>, sink: &mut dyn EventSink, stats: &mut ReadStats, detect: bool, start_line: u64) {
    if detect {
        match detect_pretty(r) {
            Ok(false) => {}
            Ok(true) => {
                // The first line starts a JSON document that spans lines: read it all.
                let mut all = Vec::new();
                if let Err(e) = r.read_to_end(&mut all) {
                    stats.skip(Provenance { origin: origin.clone(), line: start_line + 1 }, format!("cannot read: {e}"));
                    return;
                }
                let first_value_parses = serde_json::Deserializer::from_slice(&all)
                    .into_iter::<serde::de::IgnoredAny>()
                    .next()
                    .is_some_and(|v| v.is_ok());
                if first_value_parses {
                    read_whole(&all, origin, sink, stats);
                } else {
                    // NDJSON whose first line is malformed: read it line by line from the start.
                    read_lines(&mut io::Cursor::new(all), origin, sink, stats, false, start_line);
                }
                return;
            }
            Err(e) => {
                stats.skip(Provenance { origin: origin.clone(), line: start_line + 1 }, format!("cannot read: {e}"));
                return;
            }
        }
    }
    let mut lineno = start_line;
    let result = for_each_line(r, &mut |raw| {
        lineno += 1;
        let l = trim_ascii(raw);
        if l.is_empty() {
            return;
        }
        stats.records += 1;
        // Only lines shaped like a JSON object may skip parsing; anything else is parsed so that a
        // malformed record is always reported, never silently dropped by a prefilter.
        let plausible = l.first() == Some(&b'{') && l.last() == Some(&b'}');
        if plausible && !sink.wants(l) {
            return;
        }
        let prov = Provenance { origin: origin.clone(), line: lineno };
        match parse_object(l) {
            Ok(v) => deliver_value(v, Some(l), prov, sink, stats),
            Err(reason) => stats.skip(prov, reason),
        }
    });
    if let Err(e) = result {
        stats.skip(Provenance { origin: origin.clone(), line: lineno + 1 }, format!("read error: {e}; the rest of this input cannot be read"));
    }
}

fn trim_ascii(mut l: &[u8]) -> &[u8] {
    while let Some((first, rest)) = l.split_first() {
        if first.is_ascii_whitespace() {
            l = rest;
        } else {
            break;
        }
    }
    while let Some((last, rest)) = l.split_last() {
        if last.is_ascii_whitespace() {
            l = rest;
        } else {
            break;
        }
    }
    l
}

/// Whether the input is pretty-printed JSON: its first line starts an object but is not a
/// complete JSON value by itself. Looks only at buffered bytes; consumes nothing.
fn detect_pretty(r: &mut dyn BufRead) -> io::Result<bool> {
    let buf = r.fill_buf()?;
    let first = match memchr::memchr(b'\n', buf) {
        Some(i) => &buf[..i],
        None => buf,
    };
    let first = trim_ascii(first);
    Ok(first.first() == Some(&b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(first).is_err())
}

/// Call `f` with every line (without its `\n`), in place in the reader's buffer where possible:
/// only a line that straddles two buffer fills is copied.
pub fn for_each_line(r: &mut dyn BufRead, f: &mut dyn FnMut(&[u8])) -> io::Result<()> {
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let buf = r.fill_buf()?;
        let len = buf.len();
        if len == 0 {
            if !carry.is_empty() {
                f(&carry);
            }
            return Ok(());
        }
        let mut start = 0;
        if !carry.is_empty() {
            match memchr::memchr(b'\n', buf) {
                Some(i) => {
                    carry.extend_from_slice(&buf[..i]);
                    f(&carry);
                    carry.clear();
                    start = i + 1;
                }
                None => {
                    carry.extend_from_slice(buf);
                    r.consume(len);
                    continue;
                }
            }
        }
        let rest = &buf[start..];
        let mut line_start = 0;
        for i in memchr::memchr_iter(b'\n', rest) {
            f(&rest[line_start..i]);
            line_start = i + 1;
        }
        carry.extend_from_slice(&rest[line_start..]);
        r.consume(len);
    }
}

/// Hand an event a decoder wrote (JSON bytes) to the sink: prefiltered on its bytes like a line
/// of NDJSON, then parsed once.
fn deliver_decoded(bytes: &[u8], prov: Provenance, sink: &mut dyn EventSink, stats: &mut ReadStats) {
    if !sink.wants(bytes) {
        return;
    }
    match sonic_rs::from_slice::<Doc>(bytes) {
        Ok(doc) => {
            let key = key_of(Some(bytes), &doc);
            finish(doc, key, None, prov, sink, stats);
        }
        Err(e) => stats.skip(prov, format!("decoded event could not be re-read: {e}")),
    }
}

/// Decode a packet capture into Packetbeat-style HTTP events (see `imdsguard-capture`).
fn read_capture(r: &mut dyn BufRead, origin: &Arc<str>, sink: &mut dyn EventSink, stats: &mut ReadStats, opts: &ReadOptions) {
    let mut decoder = imdsguard_capture::CaptureDecoder::new(opts.capture.clone());
    let mut events = Vec::new();
    let mut index = 0u64;
    let deliver = |events: &mut Vec<Vec<u8>>, index: &mut u64, stats: &mut ReadStats, sink: &mut dyn EventSink| {
        for bytes in events.drain(..) {
            *index += 1;
            stats.records += 1;
            let prov = Provenance { origin: origin.clone(), line: *index };
            deliver_decoded(&bytes, prov, sink, stats);
        }
    };
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) => {
                stats.skip(Provenance { origin: origin.clone(), line: index + 1 }, format!("read error: {e}"));
                break;
            }
        };
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        decoder.feed(buf, &mut events);
        r.consume(n);
        deliver(&mut events, &mut index, stats, sink);
    }
    decoder.finish(&mut events);
    deliver(&mut events, &mut index, stats, sink);
    let s = decoder.stats();
    let bad = s.capture.corrupt_records + s.capture.corrupt_packets;
    if bad > 0 {
        let reasons: Vec<String> = s.capture.reasons.iter().map(|(r, n)| format!("{r} ({n})")).collect();
        stats.skipped += bad;
        if stats.skipped_examples.len() < MAX_SKIP_EXAMPLES {
            stats.skipped_examples.push(Skipped {
                provenance: Provenance { origin: origin.clone(), line: 0 },
                reason: format!("{bad} corrupt capture record(s)/packet(s): {}", reasons.join("; ")),
            });
        }
    }
    stats.capture_notes.push(format!(
        "{origin}: {} packets, {} TCP segments, {} flows, {} HTTP requests, {} responses, {} events; \
         dropped: {} corrupt, {} truncated packets, {} stream gaps, {} messages lost to gaps, {} non-HTTP flows, {} flows evicted",
        s.capture.packets,
        s.capture.tcp_segments,
        s.tcp.flows_created,
        s.http.requests,
        s.http.responses,
        s.events,
        bad,
        s.capture.truncated_packets,
        s.tcp.gaps,
        s.http.messages_dropped_by_gap,
        s.http.non_http_flows,
        s.tcp.flows_evicted + s.http.flows_evicted,
    ));
}

/// Whether the buffered start of the input is an audit log: the first non-empty line is an audit
/// record, or (the first line being damaged) one of the next few is and none looks like JSON.
/// Looks only at buffered bytes; consumes nothing.
fn looks_like_audit_log(r: &mut dyn BufRead) -> bool {
    let Ok(buf) = r.fill_buf() else { return false };
    let mut lines = buf.split(|&b| b == b'\n').map(trim_ascii).filter(|l| !l.is_empty()).take(8);
    let Some(first) = lines.next() else { return false };
    if imdsguard_auditd::looks_like_audit_line(first) {
        return true;
    }
    let rest: Vec<&[u8]> = lines.collect();
    !rest.iter().any(|l| l.first() == Some(&b'{')) && rest.iter().any(|l| imdsguard_auditd::looks_like_audit_line(l))
}

/// Decode a raw audit log into Auditbeat-style events (see `imdsguard-auditd`). Every line the
/// decoder cannot read, and every event it cannot complete, is a skipped record with its line.
fn read_auditd(r: &mut dyn BufRead, origin: &Arc<str>, sink: &mut dyn EventSink, stats: &mut ReadStats, opts: &ReadOptions, start_line: u64) {
    let mut decoder = imdsguard_auditd::AuditDecoder::new(opts.auditd.clone());
    let mut out: Vec<imdsguard_auditd::Decoded> = Vec::new();
    let deliver = |decoder: &mut imdsguard_auditd::AuditDecoder, out: &mut Vec<imdsguard_auditd::Decoded>, stats: &mut ReadStats, sink: &mut dyn EventSink| {
        for p in decoder.take_problems() {
            stats.records += 1;
            stats.skip(Provenance { origin: origin.clone(), line: p.line }, p.reason);
        }
        for d in out.drain(..) {
            stats.records += 1;
            let prov = Provenance { origin: origin.clone(), line: d.line };
            let bytes = match serde_json::to_vec(&d.event) {
                Ok(b) => b,
                Err(e) => {
                    stats.skip(prov, format!("decoded event could not be encoded: {e}"));
                    continue;
                }
            };
            deliver_decoded(&bytes, prov, sink, stats);
        }
    };
    let mut lineno = start_line;
    let result = for_each_line(r, &mut |raw| {
        lineno += 1;
        decoder.feed_line(lineno, raw, &mut out);
        if !out.is_empty() || decoder.has_problems() {
            deliver(&mut decoder, &mut out, stats, sink);
        }
    });
    if let Err(e) = result {
        stats.skip(Provenance { origin: origin.clone(), line: lineno + 1 }, format!("read error: {e}; the rest of this input cannot be read"));
    }
    decoder.finish(&mut out);
    deliver(&mut decoder, &mut out, stats, sink);
    stats.auditd_notes.push(format!("{origin}: {}", decoder.summary()));
}

fn parse_object(bytes: &[u8]) -> Result<Doc, String> {
    match sonic_rs::from_slice::<Doc>(bytes) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(other) => Err(format!("not a JSON object (found {})", kind(&other))),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

fn kind(v: &Doc) -> &'static str {
    match v.get_type() {
        JsonType::Null => "null",
        JsonType::Boolean => "a boolean",
        JsonType::Number => "a number",
        JsonType::String => "a string",
        JsonType::Array => "an array",
        JsonType::Object => "an object",
    }
}

fn kind_serde(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde_json value (whole-document inputs, parsed with line numbers for errors) to the event
/// representation.
fn to_doc(v: &Value) -> Result<Doc, String> {
    let bytes = serde_json::to_vec(v).map_err(|e| format!("cannot re-encode: {e}"))?;
    sonic_rs::from_slice(&bytes).map_err(|e| format!("cannot re-encode: {e}"))
}

/// A whole-document input: an array, a `_search` response, or concatenated objects.
fn read_whole(all: &[u8], origin: &Arc<str>, sink: &mut dyn EventSink, stats: &mut ReadStats) {
    let mut index: u64 = 0;
    let stream = serde_json::Deserializer::from_slice(all).into_iter::<Value>();
    let deliver = |v: &Value, prov: Provenance, sink: &mut dyn EventSink, stats: &mut ReadStats| match to_doc(v) {
        Ok(d) => deliver_value(d, None, prov, sink, stats),
        Err(reason) => stats.skip(prov, reason),
    };
    for item in stream {
        match item {
            Ok(Value::Array(items)) => {
                for v in items {
                    index += 1;
                    stats.records += 1;
                    let prov = Provenance { origin: origin.clone(), line: index };
                    match v {
                        Value::Object(_) => deliver(&v, prov, sink, stats),
                        other => stats.skip(prov, format!("array element is not a JSON object (found {})", kind_serde(&other))),
                    }
                }
            }
            Ok(v @ Value::Object(_)) => {
                index += 1;
                stats.records += 1;
                deliver(&v, Provenance { origin: origin.clone(), line: index }, sink, stats);
            }
            Ok(other) => {
                index += 1;
                stats.records += 1;
                stats.skip(Provenance { origin: origin.clone(), line: index }, format!("not a JSON object (found {})", kind_serde(&other)));
            }
            Err(e) => {
                stats.records += 1;
                let line = e.line() as u64;
                stats.skip(Provenance { origin: origin.clone(), line }, format!("invalid JSON: {e}; the rest of this file cannot be read"));
                break;
            }
        }
    }
}

fn key_of(raw: Option<&[u8]>, v: &Doc) -> String {
    let mut h = Sha256::new();
    match raw {
        Some(b) => h.update(b),
        None => h.update(sonic_rs::to_vec(v).unwrap_or_default()),
    }
    h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Deliver an object: a `_search` response yields its hits, a hit yields its `_source`.
fn deliver_value(v: Doc, raw: Option<&[u8]>, prov: Provenance, sink: &mut dyn EventSink, stats: &mut ReadStats) {
    if let Some(hits) = v.get("hits").and_then(|h| h.get("hits")).and_then(|h| h.as_array()) {
        for (i, hit) in hits.iter().enumerate() {
            let p = Provenance { origin: prov.origin.clone(), line: prov.line };
            if hit.get("_source").is_some() {
                deliver_hit(hit, p, sink, stats);
            } else {
                stats.skip(p, format!("search hit {} has no _source", i + 1));
            }
        }
        return;
    }
    if v.get("_source").is_some_and(|s| s.is_object()) && (v.get("_id").is_some() || v.get("_index").is_some()) {
        deliver_hit(&v, prov, sink, stats);
        return;
    }
    let key = key_of(raw, &v);
    finish(v, key, None, prov, sink, stats);
}

fn deliver_hit(hit: &Doc, prov: Provenance, sink: &mut dyn EventSink, stats: &mut ReadStats) {
    let source = match hit.get("_source") {
        Some(s) if s.is_object() => s.clone(),
        _ => {
            stats.skip(prov, "search hit _source is not an object".into());
            return;
        }
    };
    let id = hit.get("_id").and_then(|v| v.as_str()).map(str::to_string);
    let index = hit.get("_index").and_then(|v| v.as_str()).map(str::to_string);
    let key = match (&index, &id) {
        (Some(ix), Some(id)) => format!("{ix}/{id}"),
        (None, Some(id)) => id.clone(),
        _ => key_of(None, &source),
    };
    finish(source, key, index, prov, sink, stats);
}

fn finish(doc: Doc, key: String, index: Option<String>, prov: Provenance, sink: &mut dyn EventSink, stats: &mut ReadStats) {
    stats.events += 1;
    sink.event(Event { doc: Arc::new(doc), provenance: prov, key, index });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Vec<Event>);
    impl EventSink for Collect {
        fn event(&mut self, e: Event) {
            self.0.push(e);
        }
    }

    fn read(text: &str) -> (Vec<Event>, ReadStats) {
        let mut sink = Collect::default();
        let mut stats = ReadStats::default();
        let origin: Arc<str> = Arc::from("t");
        read_stream(&mut io::Cursor::new(text.as_bytes()), &origin, &mut sink, &mut stats);
        (sink.0, stats)
    }

    #[test]
    fn ndjson_with_bad_lines_continues() {
        let (evs, st) = read("{\"a\":1}\n\n{bad\n[1]\n{\"a\":2}\r\n");
        assert_eq!(evs.len(), 2);
        assert_eq!(st.skipped, 2);
        assert_eq!(st.skipped_examples[0].provenance.line, 3);
        assert!(st.skipped_examples[0].reason.starts_with("invalid JSON"), "{:?}", st.skipped_examples);
        assert!(st.skipped_examples[1].reason.contains("not a JSON object"));
        assert_eq!(evs[1].provenance.line, 5);
    }

    #[test]
    fn array_and_search_response_and_pretty() {
        let (evs, _) = read(" [ {\"a\":1}, {\"a\":2} ]");
        assert_eq!(evs.len(), 2);
        let (evs, _) = read("{\"took\":1,\"hits\":{\"total\":{\"value\":1},\"hits\":[{\"_index\":\"logs\",\"_id\":\"x1\",\"_source\":{\"a\":1}}]}}");
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].key, "logs/x1");
        assert_eq!(evs[0].index.as_deref(), Some("logs"));
        let (evs, _) = read("{\n  \"a\": 1\n}\n{\n  \"a\": 2\n}\n");
        assert_eq!(evs.len(), 2);
    }

    #[test]
    fn keys_are_stable_and_distinct() {
        let (a, _) = read("{\"a\":1}\n{\"a\":2}\n{\"a\":1}\n");
        assert_eq!(a[0].key, a[2].key);
        assert_ne!(a[0].key, a[1].key);
    }

    #[test]
    fn gzip_is_detected() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("e.ndjson.gz");
        let mut enc = GzEncoder::new(File::create(&p).expect("create"), flate2::Compression::default());
        enc.write_all(b"{\"a\":1}\n{\"a\":2}\n").expect("write");
        enc.finish().expect("finish");
        let mut sink = Collect::default();
        let mut stats = ReadStats::default();
        read_input(&p, &mut sink, &mut stats, Box::new(|_| {}));
        assert_eq!(sink.0.len(), 2);
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Vec<Event>);
    impl EventSink for Collect {
        fn event(&mut self, e: Event) {
            self.0.push(e);
        }
    }

    #[test]
    fn malformed_first_line_is_ndjson_not_pretty_json() {
        let mut sink = Collect::default();
        let mut stats = ReadStats::default();
        let origin: Arc<str> = Arc::from("t");
        read_stream(&mut io::Cursor::new(&b"\n\n{not json\n{\"a\":1}\n"[..]), &origin, &mut sink, &mut stats);
        assert_eq!(sink.0.len(), 1);
        assert_eq!(sink.0[0].provenance.line, 4);
        assert_eq!(stats.skipped_examples[0].provenance.line, 3);
    }

    #[test]
    fn audit_logs_are_detected_and_decoded_with_line_numbers() {
        let log = "\n\ntype=SYSCALL msg=audit(1777629600.124:7): arch=c000003e syscall=42 success=no exit=-115 a0=3 a1=7ffd a2=10 a3=0 items=0 ppid=1 pid=9 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=2 comm=\"curl\" exe=\"/usr/bin/curl\" key=(null)\n\
type=SOCKADDR msg=audit(1777629600.124:7): saddr=02000050A9FEA9FE0000000000000000\n\
garbled line\n\
type=EOE msg=audit(1777629600.124:7): \n";
        for prefix in ["", "May  1 10:00:00 web-3 audisp-syslog: node=web-3 "] {
            let text: String = log.lines().map(|l| if l.starts_with("type=") { format!("{prefix}{l}\n") } else { format!("{l}\n") }).collect();
            let mut sink = Collect::default();
            let mut stats = ReadStats::default();
            let origin: Arc<str> = Arc::from("audit.log");
            let opts = ReadOptions { auditd: imdsguard_auditd::DecoderConfig { host_id: Some("i-1".into()), ..Default::default() }, ..Default::default() };
            read_stream_with(&mut io::Cursor::new(text.as_bytes()), &origin, &mut sink, &mut stats, &opts);
            assert_eq!(sink.0.len(), 1, "{prefix}: {stats:?}");
            let ev = &sink.0[0];
            assert_eq!(ev.provenance.line, 3);
            assert_eq!(ev.doc.get("destination").and_then(|d| d.get("ip")).and_then(|v| v.as_str()), Some("169.254.169.254"));
            let host_id = ev.doc.get("host").and_then(|h| h.get("id")).and_then(|v| v.as_str());
            assert_eq!(host_id, Some(if prefix.is_empty() { "i-1" } else { "web-3" }));
            assert_eq!(stats.skipped, 1);
            assert_eq!(stats.skipped_examples[0].provenance.line, 5);
            assert!(stats.skipped_examples[0].reason.contains("no type= field"), "{:?}", stats.skipped_examples);
            assert_eq!(stats.auditd_notes.len(), 1);
            assert!(stats.auditd_notes[0].starts_with("audit.log: auditd: 6 lines, 3 records, 1 events (0 process starts, 1 connects)"), "{:?}", stats.auditd_notes);
        }
    }

    #[test]
    fn a_damaged_first_line_still_detects_an_audit_log_but_json_stays_json() {
        let mut sink = Collect::default();
        let mut stats = ReadStats::default();
        let origin: Arc<str> = Arc::from("t");
        read_stream(&mut io::Cursor::new(&b"\x00\x01junk\ntype=CWD msg=audit(1.0:1): cwd=\"/\"\n"[..]), &origin, &mut sink, &mut stats);
        assert_eq!(stats.auditd_notes.len(), 1);
        assert_eq!(stats.skipped, 2, "the junk line and the CWD record without its SYSCALL: {:?}", stats.skipped_examples);
        let mut stats = ReadStats::default();
        read_stream(&mut io::Cursor::new(&b"{bad\n{\"message\":\"type=CWD msg=audit(1.0:1):\"}\n"[..]), &origin, &mut sink, &mut stats);
        assert!(stats.auditd_notes.is_empty());
        assert_eq!(stats.events, 1);
    }
}
