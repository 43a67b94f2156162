//! HTTP/1.x over reassembled TCP streams: incremental request and response parsing (heads with
//! `httparse`, bodies by `Content-Length`, chunked encoding or connection close), pipelining and
//! keep-alive (requests queue per flow, responses pair in order), resynchronisation after gaps,
//! and detection of streams that are not HTTP.
//!
//! Credentials never leave this module: header values of [`SECRET_HEADERS`] (and of every header
//! whose name is a credential key), `Key=value` secrets in targets and header values, and the
//! credential values in response bodies are replaced with [`REDACTED`] before an
//! [`HttpTransaction`] is returned. Request bodies are counted, never kept. A response body is
//! kept only up to [`HttpConfig::max_body_bytes`], only when it has no content coding, and the body
//! of an IMDSv2 token response (the token itself) is never kept.
//!
//! Everything is bounded: flows, pending requests per flow, head size, header count and length,
//! body capture.
//!
//! Transactions come out when their response completes (or, without a response, when the flow
//! closes, at [`HttpDecoder::finish`], or when the pending queue overflows), so the output is in
//! completion order per flow, not globally sorted by time; callers that need time order sort by
//! `request_ts_micros`. A gap drops the partial message of its direction (a lost response also
//! emits its request alone; a lost request makes the next response count as unmatched) and the
//! direction resynchronises at the next line that starts a request or a status line.

use std::collections::VecDeque;
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use imdsguard_ecs::redact::{is_secret_key, redact_string, REDACTED};

use crate::types::{Direction, FlowKey, StreamEvent};

/// Header names whose values are always replaced (compared case-insensitively), in addition to
/// [`imdsguard_ecs::redact::SECRET_KEYS`].
pub const SECRET_HEADERS: &[&str] =
    &["authorization", "proxy-authorization", "cookie", "set-cookie", "x-aws-ec2-metadata-token", "x-amz-security-token"];

/// Limits of the decoder.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request or response head (start line and headers), bytes.
    pub max_head_bytes: usize,
    /// Most headers parsed per message.
    pub max_headers: usize,
    /// Header values longer than this are truncated (on a character boundary).
    pub max_header_value_len: usize,
    /// Response body bytes kept (decoded from chunked encoding) per message; the rest is counted.
    pub max_body_bytes: usize,
    /// Requests waiting for their response per flow; beyond it the oldest is emitted alone.
    pub max_pending_requests: usize,
    /// Flows tracked at once; beyond it the least recently active flow is flushed.
    pub max_flows: usize,
    /// When set, response bodies are kept only for requests to these metadata endpoints (the
    /// only bodies the events use, for `imds.credentials.*`); others are counted, not copied or
    /// scanned. `None` keeps every body.
    pub body_endpoints: Option<crate::imds::ImdsConfig>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_head_bytes: 16 * 1024,
            max_headers: 64,
            max_header_value_len: 1024,
            max_body_bytes: 64 * 1024,
            max_pending_requests: 32,
            max_flows: 65_536,
            body_endpoints: None,
        }
    }
}

/// Counters of the decoder (no data, only numbers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpStats {
    pub requests: u64,
    pub responses: u64,
    pub transactions: u64,
    /// Requests emitted without a response (close, finish, queue overflow, lost response).
    pub unmatched_requests: u64,
    /// Responses with no pending request (dropped).
    pub unmatched_responses: u64,
    /// `1xx` interim responses skipped.
    pub interim_responses: u64,
    pub gaps: u64,
    /// Partial messages dropped because of a gap.
    pub messages_dropped_by_gap: u64,
    /// Bytes skipped while resynchronising after a gap.
    pub resync_bytes_skipped: u64,
    /// Flows whose bytes are not HTTP/1.x (ignored from then on).
    pub non_http_flows: u64,
    /// Flows that switched protocols (`101`) or tunnelled (`CONNECT`); ignored from then on.
    pub upgraded_flows: u64,
    /// Heads larger than `max_head_bytes`.
    pub oversized_heads: u64,
    /// Messages cut by the end of the flow.
    pub truncated_messages: u64,
    /// Body bytes seen but not kept (beyond `max_body_bytes`, content-coded, request bodies).
    pub body_bytes_not_kept: u64,
    /// Headers beyond `max_headers` or truncated values.
    pub headers_truncated: u64,
    /// Values replaced with `[REDACTED]`.
    pub secrets_redacted: u64,
    /// Flows flushed because `max_flows` was reached.
    pub flows_evicted: u64,
}

/// One header, name as sent, value redacted and bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// A request and (when seen) its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTransaction {
    pub flow: FlowKey,
    /// Capture time of the segment carrying the request's first byte, microseconds.
    pub request_ts_micros: i64,
    /// Capture time of the segment carrying the response's last byte, microseconds.
    pub response_end_ts_micros: Option<i64>,
    /// Method as sent on the wire (case kept).
    pub method: String,
    /// Request target as sent (secrets redacted).
    pub target: String,
    /// Path of the target (for absolute-form targets, the path part).
    pub path: String,
    /// Query string without `?`.
    pub query: Option<String>,
    /// `"1.0"` or `"1.1"`.
    pub version: String,
    pub request_headers: Vec<Header>,
    /// Request head plus body bytes.
    pub request_bytes: u64,
    pub request_body_bytes: u64,
    pub status_code: Option<u16>,
    pub status_phrase: Option<String>,
    pub response_headers: Vec<Header>,
    pub response_bytes: u64,
    /// Decoded body length (after chunked decoding), counted in full.
    pub response_body_bytes: u64,
    /// The kept prefix of the decoded response body, lossily UTF-8, credentials redacted.
    pub response_body: Option<String>,
    /// Whether the kept body is shorter than the body.
    pub response_body_truncated: bool,
    /// Anomalies (fixed strings: never data).
    pub notes: Vec<&'static str>,
    /// The local process of the connection, when the capture names it.
    pub process: Option<std::sync::Arc<crate::types::ProcessInfo>>,
}

impl HttpTransaction {
    /// First request header with this name (case-insensitive).
    pub fn request_header(&self, name: &str) -> Option<&str> {
        self.request_headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
    }

    /// First response header with this name (case-insensitive).
    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkPhase {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

#[derive(Debug, Default)]
struct Message {
    ts: i64,
    end_ts: i64,
    head_bytes: u64,
    // Request.
    method: String,
    target: String,
    // Response.
    status: u16,
    phrase: String,
    version: String,
    headers: Vec<Header>,
    body_bytes: u64,
    body: Vec<u8>,
    keep_body: bool,
    body_truncated: bool,
    notes: Vec<&'static str>,
}

#[derive(Debug)]
enum Phase {
    Head,
    Body { msg: Box<Message>, kind: BodyKind, chunk: ChunkPhase },
}

#[derive(Debug)]
struct DirState {
    buf: Vec<u8>,
    /// Capture time of the first byte in `buf`.
    buf_ts: i64,
    phase: Phase,
    resync: bool,
    /// Whether a head parse can make progress: a line end arrived since the last partial parse
    /// (re-parsing a head per byte-sized segment would be quadratic).
    parse_pending: bool,
}

impl DirState {
    fn new() -> Self {
        DirState { buf: Vec::new(), buf_ts: 0, phase: Phase::Head, resync: false, parse_pending: true }
    }
}

#[derive(Debug)]
struct Flow {
    req: DirState,
    resp: DirState,
    pending: VecDeque<Message>,
    /// Responses to drop because their request was lost in a gap.
    skip_responses: u32,
    ignored: bool,
    last_ts: i64,
}

impl Flow {
    fn new() -> Self {
        Flow {
            req: DirState::new(),
            resp: DirState::new(),
            pending: VecDeque::new(),
            skip_responses: 0,
            ignored: false,
            last_ts: 0,
        }
    }
}

/// Incremental HTTP/1.x decoder over [`StreamEvent`]s of many flows.
#[derive(Debug)]
pub struct HttpDecoder {
    config: HttpConfig,
    flows: HashMap<FlowKey, Flow>,
    stats: HttpStats,
}

const METHODS: &[&[u8]] =
    &[b"GET", b"PUT", b"POST", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE"];

impl HttpDecoder {
    pub fn new(config: HttpConfig) -> Self {
        HttpDecoder { config, flows: HashMap::default(), stats: HttpStats::default() }
    }

    pub fn stats(&self) -> &HttpStats {
        &self.stats
    }

    /// Feed one stream event; completed transactions are appended to `out`.
    pub fn on_event(&mut self, ev: &StreamEvent, out: &mut Vec<HttpTransaction>) {
        match ev {
            StreamEvent::Data { flow, dir, ts_micros, data } => {
                if data.is_empty() {
                    return;
                }
                self.ensure_flow(*flow, out);
                let Some(mut f) = self.flows.remove(flow) else { return };
                f.last_ts = f.last_ts.max(*ts_micros);
                if !f.ignored {
                    self.on_data(&mut f, *flow, *dir, *ts_micros, data, out);
                }
                if f.ignored {
                    f.req.buf = Vec::new();
                    f.resp.buf = Vec::new();
                }
                self.flows.insert(*flow, f);
            }
            StreamEvent::Gap { flow, dir, ts_micros, .. } => {
                self.stats.gaps += 1;
                self.ensure_flow(*flow, out);
                let Some(mut f) = self.flows.remove(flow) else { return };
                f.last_ts = f.last_ts.max(*ts_micros);
                if !f.ignored {
                    self.on_gap(&mut f, *flow, *dir, out);
                }
                self.flows.insert(*flow, f);
            }
            StreamEvent::Close { flow, ts_micros } => {
                if let Some(f) = self.flows.remove(flow) {
                    self.close_flow(f, *flow, *ts_micros, out);
                }
            }
        }
    }

    /// End of input: every flow is closed (in a deterministic order).
    pub fn finish(&mut self, out: &mut Vec<HttpTransaction>) {
        let mut keys: Vec<FlowKey> = self.flows.keys().copied().collect();
        keys.sort();
        for k in keys {
            if let Some(f) = self.flows.remove(&k) {
                let ts = f.last_ts;
                self.close_flow(f, k, ts, out);
            }
        }
    }

    fn ensure_flow(&mut self, key: FlowKey, out: &mut Vec<HttpTransaction>) {
        if self.flows.contains_key(&key) {
            return;
        }
        if self.flows.len() >= self.config.max_flows.max(1) {
            let oldest = self.flows.iter().min_by_key(|(k, f)| (f.last_ts, **k)).map(|(k, _)| *k);
            if let Some(old) = oldest.and_then(|k| self.flows.remove(&k).map(|f| (k, f))) {
                self.stats.flows_evicted += 1;
                let ts = old.1.last_ts;
                self.close_flow(old.1, old.0, ts, out);
            }
        }
        self.flows.insert(key, Flow::new());
    }

    fn on_gap(&mut self, f: &mut Flow, key: FlowKey, dir: Direction, out: &mut Vec<HttpTransaction>) {
        let st = match dir {
            Direction::ToServer => &mut f.req,
            Direction::ToClient => &mut f.resp,
        };
        let had_partial = !st.resync && (!st.buf.is_empty() || matches!(st.phase, Phase::Body { .. }));
        st.buf = Vec::new();
        st.phase = Phase::Head;
        st.resync = true;
        st.parse_pending = true;
        if had_partial {
            self.stats.messages_dropped_by_gap += 1;
            match dir {
                // The server probably answered the lost request: drop that answer.
                Direction::ToServer => f.skip_responses = f.skip_responses.saturating_add(1),
                // The oldest request lost its response.
                Direction::ToClient => {
                    if let Some(mut req) = f.pending.pop_front() {
                        req.notes.push("response lost in a capture gap");
                        self.emit(key, req, None, out);
                    }
                }
            }
        }
    }

    fn on_data(
        &mut self,
        f: &mut Flow,
        key: FlowKey,
        dir: Direction,
        ts: i64,
        data: &[u8],
        out: &mut Vec<HttpTransaction>,
    ) {
        {
            let st = match dir {
                Direction::ToServer => &mut f.req,
                Direction::ToClient => &mut f.resp,
            };
            if st.buf.is_empty() {
                st.buf_ts = ts;
            }
            st.buf.extend_from_slice(data);
            if memchr::memchr(b'\n', data).is_some() || st.buf.len() > self.config.max_head_bytes {
                st.parse_pending = true;
            }
        }
        let mut pos = 0usize;
        loop {
            if f.ignored {
                return;
            }
            let st = match dir {
                Direction::ToServer => &mut f.req,
                Direction::ToClient => &mut f.resp,
            };
            if st.resync {
                let start = resync_point(&st.buf[pos..], dir);
                match start {
                    Some(off) => {
                        self.stats.resync_bytes_skipped += off as u64;
                        pos += off;
                        st.resync = false;
                        st.buf_ts = ts;
                    }
                    None => {
                        // Keep a short tail in case a start line is split.
                        let keep = st.buf.len().saturating_sub(pos).min(16);
                        let skip = st.buf.len() - pos - keep;
                        self.stats.resync_bytes_skipped += skip as u64;
                        pos += skip;
                        break;
                    }
                }
            }
            if pos >= st.buf.len() {
                break;
            }
            let progressed = match dir {
                Direction::ToServer => self.step_request(f, key, &mut pos, ts, out),
                Direction::ToClient => self.step_response(f, key, &mut pos, ts, out),
            };
            if !progressed {
                break;
            }
        }
        let st = match dir {
            Direction::ToServer => &mut f.req,
            Direction::ToClient => &mut f.resp,
        };
        let pos = pos.min(st.buf.len());
        st.buf.drain(..pos);
        if st.buf.is_empty() {
            // Idle flows (most of a capture's open flows) keep no buffer.
            st.buf = Vec::new();
        }
        if !st.buf.is_empty() && pos > 0 {
            st.buf_ts = ts;
        }
    }

    /// Consume bytes of the request direction from `buf[*pos..]`; false when more input is needed.
    fn step_request(
        &mut self,
        f: &mut Flow,
        key: FlowKey,
        pos: &mut usize,
        ts: i64,
        out: &mut Vec<HttpTransaction>,
    ) -> bool {
        if let Phase::Head = f.req.phase {
            if !f.req.parse_pending {
                if !plausible_request_prefix(&f.req.buf[*pos..]) {
                    self.not_http(f);
                }
                return false;
            }
            let input = &f.req.buf[*pos..];
            let mut storage = vec![httparse::EMPTY_HEADER; header_slots(&self.config)];
            let mut req = httparse::Request::new(&mut storage);
            match parser_config().parse_request(&mut req, input) {
                Ok(httparse::Status::Complete(n)) => {
                    let mut msg = Message {
                        ts: f.req.buf_ts,
                        end_ts: ts,
                        head_bytes: n as u64,
                        method: bounded(req.method.unwrap_or_default().to_string(), 64),
                        version: format!("1.{}", req.version.unwrap_or(1)),
                        ..Message::default()
                    };
                    let mut target = req.path.unwrap_or_default().to_string();
                    self.stats.secrets_redacted += redact_target(&mut target) as u64;
                    msg.target = bounded(target, self.config.max_head_bytes);
                    msg.headers = self.collect_headers(req.headers);
                    let kind = match body_kind(&msg.headers, true) {
                        Some(k) => k,
                        None => {
                            self.not_http(f);
                            return false;
                        }
                    };
                    *pos += n;
                    f.req.buf_ts = ts;
                    self.stats.requests += 1;
                    if msg.method.eq_ignore_ascii_case("CONNECT") {
                        self.push_request(f, key, msg, out);
                        self.stats.upgraded_flows += 1;
                        f.ignored = true;
                        return false;
                    }
                    if kind == BodyKind::None {
                        self.push_request(f, key, msg, out);
                    } else {
                        f.req.phase = Phase::Body { msg: Box::new(msg), kind, chunk: ChunkPhase::Size };
                    }
                    true
                }
                Ok(httparse::Status::Partial) => {
                    f.req.parse_pending = false;
                    if input.len() > self.config.max_head_bytes {
                        self.stats.oversized_heads += 1;
                        self.not_http(f);
                    } else if !plausible_request_prefix(input) {
                        self.not_http(f);
                    }
                    false
                }
                Err(_) => {
                    self.not_http(f);
                    false
                }
            }
        } else {
            let done = self.consume_body(Direction::ToServer, f, pos, ts);
            if done {
                if let Phase::Body { msg, .. } = std::mem::replace(&mut f.req.phase, Phase::Head) {
                    f.req.buf_ts = ts;
                    self.push_request(f, key, *msg, out);
                }
                true
            } else {
                false
            }
        }
    }

    fn step_response(
        &mut self,
        f: &mut Flow,
        key: FlowKey,
        pos: &mut usize,
        ts: i64,
        out: &mut Vec<HttpTransaction>,
    ) -> bool {
        if let Phase::Head = f.resp.phase {
            if !f.resp.parse_pending {
                if !plausible_response_prefix(&f.resp.buf[*pos..]) {
                    self.not_http(f);
                }
                return false;
            }
            let input = &f.resp.buf[*pos..];
            let mut storage = vec![httparse::EMPTY_HEADER; header_slots(&self.config)];
            let mut resp = httparse::Response::new(&mut storage);
            match parser_config().parse_response(&mut resp, input) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = resp.code.unwrap_or(0);
                    let mut msg = Message {
                        ts: f.resp.buf_ts,
                        end_ts: ts,
                        head_bytes: n as u64,
                        status,
                        phrase: self.clean(resp.reason.unwrap_or_default(), 256),
                        version: format!("1.{}", resp.version.unwrap_or(1)),
                        ..Message::default()
                    };
                    msg.headers = self.collect_headers(resp.headers);
                    *pos += n;
                    f.resp.buf_ts = ts;
                    if (100..200).contains(&status) && status != 101 {
                        self.stats.interim_responses += 1;
                        return true;
                    }
                    let head_req = f.pending.front().is_some_and(|r| r.method.eq_ignore_ascii_case("HEAD"));
                    let kind = if head_req || status == 204 || status == 304 || status == 101 {
                        BodyKind::None
                    } else {
                        match body_kind(&msg.headers, false) {
                            Some(k) => k,
                            None => {
                                self.not_http(f);
                                return false;
                            }
                        }
                    };
                    let coded = msg.headers.iter().any(|h| {
                        h.name.eq_ignore_ascii_case("content-encoding")
                            && !h.value.trim().eq_ignore_ascii_case("identity")
                            && !h.value.trim().is_empty()
                    });
                    let token_resp = f.pending.front().is_some_and(is_token_request);
                    let wanted = match &self.config.body_endpoints {
                        None => true,
                        Some(cfg) => {
                            let host = f.pending.front().and_then(|r| {
                                r.headers.iter().find(|h| h.name.eq_ignore_ascii_case("host")).map(|h| crate::imds::host_without_port(&h.value))
                            });
                            cfg.endpoint_of(key.server.ip(), host).is_some()
                        }
                    };
                    msg.keep_body = !coded && !token_resp && wanted;
                    self.stats.responses += 1;
                    if status == 101 {
                        self.finish_response(f, key, msg, out);
                        self.stats.upgraded_flows += 1;
                        f.ignored = true;
                        return false;
                    }
                    if kind == BodyKind::None {
                        self.finish_response(f, key, msg, out);
                    } else {
                        f.resp.phase = Phase::Body { msg: Box::new(msg), kind, chunk: ChunkPhase::Size };
                    }
                    true
                }
                Ok(httparse::Status::Partial) => {
                    f.resp.parse_pending = false;
                    if input.len() > self.config.max_head_bytes {
                        self.stats.oversized_heads += 1;
                        self.not_http(f);
                    } else if !plausible_response_prefix(input) {
                        self.not_http(f);
                    }
                    false
                }
                Err(_) => {
                    self.not_http(f);
                    false
                }
            }
        } else {
            let done = self.consume_body(Direction::ToClient, f, pos, ts);
            if done {
                if let Phase::Body { msg, .. } = std::mem::replace(&mut f.resp.phase, Phase::Head) {
                    f.resp.buf_ts = ts;
                    self.finish_response(f, key, *msg, out);
                }
                true
            } else {
                false
            }
        }
    }

    /// Consume body bytes; true when the body is complete.
    fn consume_body(&mut self, dir: Direction, f: &mut Flow, pos: &mut usize, ts: i64) -> bool {
        let max_body = self.config.max_body_bytes;
        let st = match dir {
            Direction::ToServer => &mut f.req,
            Direction::ToClient => &mut f.resp,
        };
        let Phase::Body { msg, kind, chunk } = &mut st.phase else { return true };
        let buf = &st.buf;
        let mut not_kept = 0u64;
        let mut take = |msg: &mut Message, bytes: &[u8]| {
            msg.body_bytes += bytes.len() as u64;
            msg.end_ts = ts;
            let room = if msg.keep_body { max_body.saturating_sub(msg.body.len()) } else { 0 };
            let n = room.min(bytes.len());
            msg.body.extend_from_slice(&bytes[..n]);
            if n < bytes.len() {
                if msg.keep_body {
                    msg.body_truncated = true;
                }
                not_kept += (bytes.len() - n) as u64;
            }
        };
        let done = loop {
            let rest = &buf[(*pos).min(buf.len())..];
            match kind {
                BodyKind::None => break true,
                BodyKind::Length(rem) => {
                    let n = (*rem).min(rest.len() as u64) as usize;
                    take(msg, &rest[..n]);
                    *rem -= n as u64;
                    *pos += n;
                    break *rem == 0;
                }
                BodyKind::UntilClose => {
                    take(msg, rest);
                    *pos += rest.len();
                    break false;
                }
                BodyKind::Chunked => match chunk {
                    ChunkPhase::Size => {
                        let Some(nl) = memchr::memchr(b'\n', rest) else {
                            if rest.len() > 1024 {
                                break true; // malformed; treated as the end of the body
                            }
                            break false;
                        };
                        let line = &rest[..nl];
                        msg.head_bytes += (nl + 1) as u64;
                        *pos += nl + 1;
                        match parse_chunk_size(line) {
                            Some(0) => *chunk = ChunkPhase::Trailers,
                            Some(n) => *chunk = ChunkPhase::Data(n),
                            None => {
                                msg.notes.push("malformed chunk size");
                                break true;
                            }
                        }
                    }
                    ChunkPhase::Data(rem) => {
                        if rest.is_empty() {
                            break false;
                        }
                        let n = (*rem).min(rest.len() as u64) as usize;
                        take(msg, &rest[..n]);
                        *rem -= n as u64;
                        *pos += n;
                        if *rem == 0 {
                            *chunk = ChunkPhase::DataEnd;
                        }
                    }
                    ChunkPhase::DataEnd => {
                        let Some(nl) = memchr::memchr(b'\n', rest) else {
                            if rest.len() > 2 {
                                break true;
                            }
                            break false;
                        };
                        msg.head_bytes += (nl + 1) as u64;
                        *pos += nl + 1;
                        *chunk = ChunkPhase::Size;
                    }
                    ChunkPhase::Trailers => {
                        let Some(nl) = memchr::memchr(b'\n', rest) else {
                            if rest.len() > 4096 {
                                break true;
                            }
                            break false;
                        };
                        msg.head_bytes += (nl + 1) as u64;
                        *pos += nl + 1;
                        let line = &rest[..nl];
                        if line.is_empty() || line == b"\r" {
                            msg.end_ts = ts;
                            break true;
                        }
                    }
                },
            }
        };
        self.stats.body_bytes_not_kept += not_kept;
        done
    }

    fn collect_headers(&mut self, raw: &[httparse::Header<'_>]) -> Vec<Header> {
        let mut out = Vec::with_capacity(raw.len().min(self.config.max_headers));
        let present = raw.iter().filter(|h| !h.name.is_empty()).count();
        if present > self.config.max_headers {
            self.stats.headers_truncated += (present - self.config.max_headers) as u64;
        }
        for h in raw.iter().filter(|h| !h.name.is_empty()).take(self.config.max_headers) {
            let name = bounded(h.name.to_string(), 256);
            let mut value = String::from_utf8_lossy(h.value).into_owned();
            if is_secret_header(&name) {
                value = mask_secret_header(&value);
                self.stats.secrets_redacted += 1;
            } else {
                self.stats.secrets_redacted += redact_string(&mut value) as u64;
                self.stats.secrets_redacted += redact_extra_keys(&mut value) as u64;
            }
            if value.len() > self.config.max_header_value_len {
                self.stats.headers_truncated += 1;
                value = bounded(value, self.config.max_header_value_len);
            }
            out.push(Header { name, value });
        }
        out
    }

    /// A redacted, bounded copy of free text from the wire.
    fn clean(&mut self, text: &str, max: usize) -> String {
        let mut t = text.to_string();
        self.stats.secrets_redacted += redact_string(&mut t) as u64;
        self.stats.secrets_redacted += redact_extra_keys(&mut t) as u64;
        bounded(t, max)
    }

    fn not_http(&mut self, f: &mut Flow) {
        if !f.ignored {
            self.stats.non_http_flows += 1;
        }
        f.ignored = true;
    }

    fn push_request(&mut self, f: &mut Flow, key: FlowKey, mut msg: Message, out: &mut Vec<HttpTransaction>) {
        // Request bodies are never kept.
        self.stats.body_bytes_not_kept += msg.body.len() as u64;
        msg.body = Vec::new();
        if f.pending.len() >= self.config.max_pending_requests.max(1) {
            if let Some(mut old) = f.pending.pop_front() {
                old.notes.push("pending request queue full");
                self.emit(key, old, None, out);
            }
        }
        f.pending.push_back(msg);
    }

    fn finish_response(&mut self, f: &mut Flow, key: FlowKey, resp: Message, out: &mut Vec<HttpTransaction>) {
        if f.skip_responses > 0 {
            f.skip_responses -= 1;
            self.stats.unmatched_responses += 1;
            return;
        }
        match f.pending.pop_front() {
            Some(req) => self.emit(key, req, Some(resp), out),
            None => self.stats.unmatched_responses += 1,
        }
    }

    fn emit(&mut self, flow: FlowKey, req: Message, resp: Option<Message>, out: &mut Vec<HttpTransaction>) {
        let (path, query) = split_target(&req.target);
        let mut notes = req.notes;
        let mut tx = HttpTransaction {
            flow,
            request_ts_micros: req.ts,
            response_end_ts_micros: None,
            method: req.method,
            target: req.target.clone(),
            path,
            query,
            version: req.version,
            request_headers: req.headers,
            request_bytes: req.head_bytes + req.body_bytes,
            request_body_bytes: req.body_bytes,
            status_code: None,
            status_phrase: None,
            response_headers: Vec::new(),
            response_bytes: 0,
            response_body_bytes: 0,
            response_body: None,
            response_body_truncated: false,
            notes: Vec::new(),
            process: None,
        };
        match resp {
            Some(r) => {
                self.stats.transactions += 1;
                tx.response_end_ts_micros = Some(r.end_ts.max(r.ts));
                tx.status_code = Some(r.status);
                tx.status_phrase = Some(r.phrase);
                tx.response_headers = r.headers;
                tx.response_bytes = r.head_bytes + r.body_bytes;
                tx.response_body_bytes = r.body_bytes;
                tx.response_body_truncated = r.body_truncated;
                if r.keep_body && !r.body.is_empty() {
                    let mut body = String::from_utf8_lossy(&r.body).into_owned();
                    self.stats.secrets_redacted += redact_string(&mut body) as u64;
                    self.stats.secrets_redacted += redact_extra_keys(&mut body) as u64;
                    tx.response_body = Some(body);
                } else if !r.keep_body && r.body_bytes > 0 {
                    self.stats.body_bytes_not_kept += r.body.len() as u64;
                }
                notes.extend(r.notes);
            }
            None => self.stats.unmatched_requests += 1,
        }
        tx.notes = notes;
        out.push(tx);
    }

    fn close_flow(&mut self, mut f: Flow, key: FlowKey, _ts: i64, out: &mut Vec<HttpTransaction>) {
        if !f.ignored {
            // A request cut by the end of the flow.
            match std::mem::replace(&mut f.req.phase, Phase::Head) {
                Phase::Body { mut msg, .. } => {
                    self.stats.truncated_messages += 1;
                    msg.notes.push("request truncated");
                    f.pending.push_back(*msg);
                }
                Phase::Head => {
                    if !f.req.buf.is_empty() && !f.req.resync {
                        self.stats.truncated_messages += 1;
                        if let Some(mut msg) = self.partial_request(&f.req.buf, f.req.buf_ts) {
                            msg.notes.push("request truncated");
                            f.pending.push_back(msg);
                        }
                    }
                }
            }
            // A response read until close, or cut.
            match std::mem::replace(&mut f.resp.phase, Phase::Head) {
                Phase::Body { mut msg, kind, .. } => {
                    if kind != BodyKind::UntilClose {
                        self.stats.truncated_messages += 1;
                        msg.notes.push("response truncated");
                    }
                    self.finish_response(&mut f, key, *msg, out);
                }
                Phase::Head => {
                    if !f.resp.buf.is_empty() && !f.resp.resync {
                        self.stats.truncated_messages += 1;
                    }
                }
            }
        }
        while let Some(req) = f.pending.pop_front() {
            self.emit(key, req, None, out);
        }
    }

    /// The complete lines of a cut request head, when its request line is complete.
    fn partial_request(&mut self, buf: &[u8], ts: i64) -> Option<Message> {
        let last_nl = memchr::memrchr(b'\n', buf)?;
        let mut head = buf[..=last_nl].to_vec();
        head.extend_from_slice(b"\r\n");
        let mut storage = vec![httparse::EMPTY_HEADER; header_slots(&self.config)];
        let mut req = httparse::Request::new(&mut storage);
        match parser_config().parse_request(&mut req, &head) {
            Ok(httparse::Status::Complete(_)) => {
                let mut target = req.path.unwrap_or_default().to_string();
                self.stats.secrets_redacted += redact_target(&mut target) as u64;
                let headers = self.collect_headers(req.headers);
                self.stats.requests += 1;
                Some(Message {
                    ts,
                    end_ts: ts,
                    head_bytes: buf.len() as u64,
                    method: bounded(req.method.unwrap_or_default().to_string(), 64),
                    target: bounded(target, self.config.max_head_bytes),
                    version: format!("1.{}", req.version.unwrap_or(1)),
                    headers,
                    ..Message::default()
                })
            }
            _ => None,
        }
    }
}

/// Credential keys of metadata services beyond [`imdsguard_ecs::redact::SECRET_KEYS`] (Alibaba's
/// `AccessKeySecret`/`SecurityToken`, key material), compared case-insensitively.
pub const EXTRA_SECRET_KEYS: &[&str] = &["AccessKeySecret", "SecurityToken", "private_key", "password"];

/// Replace the values of `"Key": "value"` / `Key=value` for [`EXTRA_SECRET_KEYS`]; an
/// unterminated quoted value is replaced to the end.
fn redact_extra_keys(s: &mut String) -> usize {
    let b = s.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hit = EXTRA_SECRET_KEYS.iter().find(|k| {
            b.get(i..i + k.len()).is_some_and(|c| c.eq_ignore_ascii_case(k.as_bytes()))
                && (i == 0 || !ident(b[i - 1]))
                && !b.get(i + k.len()).copied().is_some_and(ident)
        });
        let Some(k) = hit else {
            i += 1;
            continue;
        };
        let mut j = i + k.len();
        if matches!(b.get(j), Some(b'"' | b'\'')) {
            j += 1;
        } else if b.get(j) == Some(&b'\\') && b.get(j + 1) == Some(&b'"') {
            j += 2;
        }
        while matches!(b.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        if !matches!(b.get(j), Some(b':' | b'=')) {
            i = j.max(i + 1);
            continue;
        }
        j += 1;
        while matches!(b.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        let (start, end) = if b.get(j) == Some(&b'\\') && b.get(j + 1) == Some(&b'"') {
            let st = j + 2;
            let mut e = st;
            while e < b.len() && !(b[e] == b'\\' && b.get(e + 1) == Some(&b'"')) {
                e += 1;
            }
            (st, e.min(b.len()))
        } else if let Some(&q @ (b'"' | b'\'')) = b.get(j) {
            let st = j + 1;
            let mut e = st;
            while e < b.len() && b[e] != q {
                e += if b[e] == b'\\' { 2 } else { 1 };
            }
            (st, e.min(b.len()))
        } else {
            let mut e = j;
            while e < b.len() && !(b[e].is_ascii_whitespace() || matches!(b[e], b'&' | b';' | b',' | b'"' | b'}' | b'\'')) {
                e += 1;
            }
            (j, e)
        };
        if end > start && b.get(start..end) != Some(REDACTED.as_bytes()) {
            ranges.push((start, end));
        }
        i = end.max(i + 1);
    }
    if ranges.is_empty() {
        return 0;
    }
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for &(st, e) in &ranges {
        // Ranges start after ASCII bytes; move an end inside a character forward to its end.
        let mut e = e;
        while e < s.len() && !s.is_char_boundary(e) {
            e += 1;
        }
        out.push_str(s.get(last..st).unwrap_or(""));
        out.push_str(REDACTED);
        last = e;
    }
    out.push_str(s.get(last..).unwrap_or(""));
    *s = out;
    ranges.len()
}

/// Redact a request target: `Key=value` secrets in the query, and the user information of an
/// absolute-form target (`http://user:password@host/`).
fn redact_target(target: &mut String) -> usize {
    let mut n = redact_string(target) + redact_extra_keys(target);
    let scheme_end = ["http://", "https://"]
        .iter()
        .find(|p| target.len() >= p.len() && target.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes()))
        .map(|p| p.len());
    if let Some(start) = scheme_end {
        let rest = &target[start..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            if &rest[..at] != REDACTED {
                *target = format!("{}{REDACTED}{}", &target[..start], &rest[at..]);
                n += 1;
            }
        }
    }
    n
}

/// Header slots given to `httparse`: more than are kept, so a message with a few too many headers
/// is still parsed (the extra ones are counted, not kept). Bounded by the head size anyway.
fn header_slots(config: &HttpConfig) -> usize {
    config.max_headers.clamp(1, 1024).saturating_mul(4)
}

/// Lenient parsing, as real clients and servers are: invalid header lines are skipped, extra
/// spaces in start lines and obsolete line folding in responses are accepted.
fn parser_config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.ignore_invalid_headers_in_requests(true)
        .ignore_invalid_headers_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true);
    c
}

fn is_token_request(m: &Message) -> bool {
    m.method.eq_ignore_ascii_case("PUT") && split_target(&m.target).0.ends_with("/api/token")
}

fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.iter().any(|s| s.eq_ignore_ascii_case(name)) || is_secret_key(name)
}

/// Keep the authentication scheme (`Bearer`, `Basic`) and the fixed `Bearer Oracle` of Oracle's
/// metadata service; replace everything else.
fn mask_secret_header(value: &str) -> String {
    let v = value.trim();
    if v.eq_ignore_ascii_case("Bearer Oracle") {
        return v.to_string();
    }
    match v.split_once(' ') {
        Some((scheme, _)) if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphabetic()) && scheme.len() <= 16 => {
            format!("{scheme} {REDACTED}")
        }
        _ => REDACTED.to_string(),
    }
}

/// Truncate to at most `max` bytes on a character boundary.
fn bounded(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while end > 0 && !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// How the body of a message is delimited; `None` when the framing is invalid.
fn body_kind(headers: &[Header], is_request: bool) -> Option<BodyKind> {
    let te = headers.iter().rev().find(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    if let Some(te) = te {
        let last = te.value.rsplit(',').next().unwrap_or("").trim();
        if last.eq_ignore_ascii_case("chunked") {
            return Some(BodyKind::Chunked);
        }
        return Some(if is_request { BodyKind::None } else { BodyKind::UntilClose });
    }
    if let Some(cl) = headers.iter().find(|h| h.name.eq_ignore_ascii_case("content-length")) {
        let v = cl.value.split(',').next().unwrap_or("").trim();
        let n: u64 = v.parse().ok()?;
        return Some(if n == 0 { BodyKind::None } else { BodyKind::Length(n) });
    }
    Some(if is_request { BodyKind::None } else { BodyKind::UntilClose })
}

fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let hex = line.split(|&b| b == b';').next().unwrap_or(b"");
    let hex = hex.trim_ascii();
    if hex.is_empty() || hex.len() > 15 {
        return None;
    }
    let mut n = 0u64;
    for &b in hex {
        let d = (b as char).to_digit(16)?;
        n = n * 16 + u64::from(d);
    }
    Some(n)
}

/// Split a (redacted) request target into path and query.
pub fn split_target(target: &str) -> (String, Option<String>) {
    let mut t = target;
    // Absolute form: `http://host[:port]/path?query`.
    if let Some(rest) = t.strip_prefix("http://").or_else(|| t.strip_prefix("https://")) {
        t = match rest.find(['/', '?']) {
            Some(i) => &rest[i..],
            None => "/",
        };
    }
    let t = t.split('#').next().unwrap_or(t);
    match t.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (t.to_string(), None),
    }
}

/// Whether the bytes so far can still become a request line.
fn plausible_request_prefix(input: &[u8]) -> bool {
    let tok_end = input.iter().position(|&b| b == b' ').unwrap_or(input.len());
    tok_end <= 24 && input[..tok_end].iter().all(|b| b.is_ascii_alphabetic() || *b == b'-' || *b == b'_')
}

fn plausible_response_prefix(input: &[u8]) -> bool {
    let n = input.len().min(5);
    input[..n] == b"HTTP/"[..n]
}

/// Offset of the first plausible message start after a gap.
fn resync_point(buf: &[u8], dir: Direction) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if i == 0 || buf[i - 1] == b'\n' {
            let rest = &buf[i..];
            let ok = match dir {
                Direction::ToServer => METHODS.iter().any(|m| {
                    rest.len() > m.len() && rest[..m.len()].eq_ignore_ascii_case(m) && rest[m.len()] == b' '
                }),
                Direction::ToClient => rest.starts_with(b"HTTP/1."),
            };
            if ok {
                return Some(i);
            }
        }
        match memchr::memchr(b'\n', &buf[i..]) {
            Some(nl) => i += nl + 1,
            None => return None,
        }
    }
    None
}
