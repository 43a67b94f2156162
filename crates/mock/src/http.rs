//! The HTTP/1.x wire format the mock speaks: a bounded request parser (over `httparse`), the
//! [`Request`] and [`Response`] values the pure core works on, and response serialization.
//!
//! Like the real metadata services, every response closes the connection (`Connection: close`),
//! so one connection carries exactly one request and one response.

use std::net::SocketAddr;

/// Largest request head (request line and headers) accepted; larger requests get a 400 and the
/// connection is closed.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Largest request body read (token PUTs and metadata GETs carry none); larger ones get a 400.
pub const MAX_BODY_BYTES: usize = 4 * 1024;
/// Most headers parsed in one request.
pub const MAX_HEADERS: usize = 64;

/// One parsed request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request-target as sent (path and query).
    pub target: String,
    /// The path, without the query (not percent-decoded: metadata paths are plain ASCII).
    pub path: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// Header names as sent, values as (lossy) UTF-8.
    pub headers: Vec<(String, String)>,
    /// HTTP/1.0 request (the response then says HTTP/1.0 too).
    pub http10: bool,
    pub peer: Option<SocketAddr>,
}

impl Request {
    /// A request built in code (tests, benchmarks): `target` is a path with an optional query.
    pub fn new(method: &str, target: &str) -> Request {
        let (path, query) = split_target(target);
        Request { method: method.to_string(), target: target.to_string(), path, query, ..Request::default() }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Splits a request-target into its path and decoded query parameters.
pub fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let params = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(kv), String::new()),
        })
        .collect();
    (path.to_string(), params)
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space, bad escapes kept verbatim).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < b.len() => {
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// What [`parse_head`] found in the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete head of `head_len` bytes; the body has `body_len` more bytes.
    Complete { request: Request, head_len: usize, body_len: usize },
    /// More bytes are needed.
    Partial,
}

/// Why a request was rejected before it reached the core.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("request body larger than {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    #[error("chunked request bodies are not accepted")]
    Chunked,
}

/// Parses a request head from the bytes read so far (bounded: [`MAX_HEAD_BYTES`], [`MAX_HEADERS`],
/// [`MAX_BODY_BYTES`]). Never panics on any input.
pub fn parse_head(buf: &[u8]) -> Result<Parsed, ParseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = req.parse(buf).map_err(|e| ParseError::Malformed(e.to_string()))?;
    let head_len = match status {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => {
            return if buf.len() > MAX_HEAD_BYTES { Err(ParseError::HeadTooLarge) } else { Ok(Parsed::Partial) };
        }
    };
    if head_len > MAX_HEAD_BYTES {
        return Err(ParseError::HeadTooLarge);
    }
    let method = req.method.unwrap_or("").to_string();
    let target = req.path.unwrap_or("").to_string();
    let http10 = req.version == Some(0);
    let mut body_len = 0usize;
    let mut out_headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value).into_owned();
        if h.name.eq_ignore_ascii_case("content-length") {
            body_len = value.trim().parse::<usize>().map_err(|_| ParseError::Malformed(format!("bad Content-Length {value:?}")))?;
            if body_len > MAX_BODY_BYTES {
                return Err(ParseError::BodyTooLarge);
            }
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked") {
            return Err(ParseError::Chunked);
        }
        out_headers.push((h.name.to_string(), value));
    }
    let (path, query) = split_target(&target);
    let request = Request { method, target, path, query, headers: out_headers, http10, peer: None };
    Ok(Parsed::Complete { request, head_len, body_len })
}

/// One response, built by the pure core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Reason phrase of the status line.
    pub reason: &'static str,
    /// Headers in the order they are written (`Content-Length` is among them).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Send this response with the IP TTL / IPv6 hop limit set to this value (the AWS token PUT:
    /// `HttpPutResponseHopLimit`).
    pub hop_limit: Option<u8>,
    /// Omit the body on the wire (a HEAD request); `Content-Length` still gives its length.
    pub head_only: bool,
    /// Write `HTTP/1.0` on the status line.
    pub http10: bool,
    /// What the request log line says about this exchange.
    pub meta: Meta,
}

/// Which service answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[default]
    Aws,
    Ecs,
    Gcp,
    Azure,
    /// The request was refused before routing (malformed, too large).
    None,
}

/// The IMDS protocol version a request used (AWS only): `v2` when it carried a session token or
/// asked for one, `v1` otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImdsVersion {
    V1,
    V2,
    #[default]
    None,
}

/// The request log's view of one exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub provider: Provider,
    pub imds_version: ImdsVersion,
    /// A short stable word: `ok`, `token_issued`, `token_missing`, `token_invalid`, ...
    pub outcome: &'static str,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The bytes written on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(if self.http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
        out.extend_from_slice(self.status.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (n, v) in &self.headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            // Header values come from configuration and the request; never let one break the framing.
            out.extend(v.bytes().filter(|&c| c != b'\r' && c != b'\n'));
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !self.head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// The standard reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_heads_and_bounds_them() {
        let cases: Vec<(&[u8], &str)> = vec![
            (b"GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\n\r\n", "complete GET /latest/meta-data/ body=0"),
            (b"PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 3\r\n\r\nabc", "complete PUT /latest/api/token body=3"),
            (b"GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\n", "partial"),
            (b"GET / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", "error request body larger than 4096 bytes"),
            (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "error malformed request: bad Content-Length \"x\""),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "error chunked request bodies are not accepted"),
            (b"\x00\x01garbage\r\n\r\n", "error malformed request: invalid token"),
        ];
        for (input, want) in cases {
            let got = match parse_head(input) {
                Ok(Parsed::Complete { request, body_len, .. }) => format!("complete {} {} body={body_len}", request.method, request.path),
                Ok(Parsed::Partial) => "partial".to_string(),
                Err(e) => format!("error {e}"),
            };
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(input));
        }
        let mut big = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        big.extend(vec![b'a'; MAX_HEAD_BYTES + 10]);
        assert_eq!(parse_head(&big), Err(ParseError::HeadTooLarge));
    }

    #[test]
    fn query_parameters_are_decoded() {
        let cases = [
            ("/metadata/instance?api-version=2021-02-01&format=text", vec![("api-version", "2021-02-01"), ("format", "text")]),
            ("/x?resource=https%3A%2F%2Fmanagement.azure.com%2F", vec![("resource", "https://management.azure.com/")]),
            ("/x?a=%zz&b=1+2&flag", vec![("a", "%zz"), ("b", "1 2"), ("flag", "")]),
            ("/x?a=%4", vec![("a", "%4")]),
            ("/x", vec![]),
        ];
        for (target, want) in cases {
            let (_, q) = split_target(target);
            let want: Vec<(String, String)> = want.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            assert_eq!(q, want, "{target}");
        }
    }

    #[test]
    fn response_bytes_never_break_framing() {
        let r = Response {
            status: 200,
            reason: "OK",
            headers: vec![("X-Evil", "a\r\nInjected: yes".to_string())],
            body: b"hi".to_vec(),
            hop_limit: None,
            head_only: false,
            http10: false,
            meta: Meta::default(),
        };
        assert_eq!(String::from_utf8_lossy(&r.to_bytes()), "HTTP/1.1 200 OK\r\nX-Evil: aInjected: yes\r\n\r\nhi");
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_head(&bytes);
        }

        #[test]
        fn decode_never_panics(s in ".{0,64}") {
            let _ = split_target(&s);
        }
    }
}
