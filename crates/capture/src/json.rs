//! A minimal streaming JSON writer for the decoder's events.
//!
//! Building a `serde_json::Value` per transaction (a tree of B-tree maps and owned strings), then
//! serialising it so the reader can prefilter and re-parse it, cost about four times the rest of
//! the decoder. Events are written straight to bytes instead. Redaction happens as values are
//! written, with the same rules as [`imdsguard_ecs::redact`]: a string under a credential key is
//! replaced by `[REDACTED]`, and every string that came off the wire is scanned for embedded
//! secrets ([`imdsguard_ecs::redact::redacted`]).

use imdsguard_ecs::redact::{is_secret_key, redacted};
use imdsguard_ecs::REDACTED;

/// Writes one JSON document into a byte buffer. Objects and arrays are opened and closed
/// explicitly; commas are inserted as needed.
pub struct JsonWriter<'a> {
    out: &'a mut Vec<u8>,
    /// One entry per open container: whether it already has a member.
    stack: Vec<bool>,
    /// The key of the member being written, to redact values of credential keys.
    secret_value: bool,
    /// A key was written and its value has not been yet (no comma before it).
    pending_value: bool,
}

impl<'a> JsonWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        JsonWriter { out, stack: Vec::with_capacity(8), secret_value: false, pending_value: false }
    }

    fn comma(&mut self) {
        if let Some(has) = self.stack.last_mut() {
            if *has {
                self.out.push(b',');
            }
            *has = true;
        }
    }

    pub fn begin_object(&mut self) {
        self.value_prefix();
        self.out.push(b'{');
        self.stack.push(false);
    }

    pub fn end_object(&mut self) {
        self.out.push(b'}');
        self.stack.pop();
        self.secret_value = false;
    }

    pub fn begin_array(&mut self) {
        self.value_prefix();
        self.out.push(b'[');
        self.stack.push(false);
    }

    pub fn end_array(&mut self) {
        self.out.push(b']');
        self.stack.pop();
        self.secret_value = false;
    }

    /// Start a member of the current object.
    pub fn key(&mut self, k: &str) {
        self.comma();
        escape(self.out, k);
        self.out.push(b':');
        // The next value (or array elements) belong to this key; the flag is consumed by
        // string values and cleared when a container closes.
        self.secret_value = is_secret_key(k);
        // Keys are not members of an array: the value that follows must not add a comma.
        if let Some(has) = self.stack.last_mut() {
            *has = true;
        }
        self.pending_value = true;
    }

    fn value_prefix(&mut self) {
        if self.pending_value {
            self.pending_value = false;
        } else {
            self.comma();
        }
    }
}

impl JsonWriter<'_> {
    /// A string produced by the decoder itself (constants, addresses, timestamps): not scanned.
    pub fn str_trusted(&mut self, s: &str) {
        self.value_prefix();
        if self.secret_value && !s.is_empty() {
            escape(self.out, REDACTED);
        } else {
            escape(self.out, s);
        }
    }

    /// A string that came off the wire: redacted under a credential key, scanned otherwise.
    pub fn str(&mut self, s: &str) {
        self.value_prefix();
        if self.secret_value && !s.is_empty() {
            escape(self.out, REDACTED);
        } else {
            escape(self.out, &redacted(s));
        }
    }

    pub fn u64(&mut self, n: u64) {
        self.value_prefix();
        let mut b = itoa::Buffer::new();
        self.out.extend_from_slice(b.format(n).as_bytes());
    }

    pub fn i64(&mut self, n: i64) {
        self.value_prefix();
        let mut b = itoa::Buffer::new();
        self.out.extend_from_slice(b.format(n).as_bytes());
    }

    pub fn bool(&mut self, v: bool) {
        self.value_prefix();
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
    }

    /// `"key": "value"` for a trusted string.
    pub fn kv_trusted(&mut self, k: &str, v: &str) {
        self.key(k);
        self.str_trusted(v);
    }

    /// `"key": "value"` for a wire string.
    pub fn kv(&mut self, k: &str, v: &str) {
        self.key(k);
        self.str(v);
    }

    pub fn kv_u64(&mut self, k: &str, v: u64) {
        self.key(k);
        self.u64(v);
    }

    pub fn kv_bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.bool(v);
    }

    /// Open `"key": {`.
    pub fn object(&mut self, k: &str) {
        self.key(k);
        self.begin_object();
    }

    /// Open `"key": [`.
    pub fn array(&mut self, k: &str) {
        let secret = is_secret_key(k);
        self.key(k);
        self.begin_array();
        // Array elements of a credential key are credentials too.
        self.secret_value = secret;
    }
}

/// Write `s` as a JSON string literal.
pub fn escape(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn written(f: impl FnOnce(&mut JsonWriter<'_>)) -> Value {
        let mut buf = Vec::new();
        let mut w = JsonWriter::new(&mut buf);
        f(&mut w);
        serde_json::from_slice(&buf).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&buf)))
    }

    #[test]
    fn nested_objects_arrays_and_escapes() {
        let v = written(|w| {
            w.begin_object();
            w.kv("a", "x\"y\\z\n\u{1}\u{7f}é");
            w.object("o");
            w.kv_u64("n", 7);
            w.kv_bool("b", false);
            w.array("l");
            w.str_trusted("p");
            w.str_trusted("q");
            w.end_array();
            w.end_object();
            w.key("i");
            w.i64(-3);
            w.end_object();
        });
        assert_eq!(v, json!({"a": "x\"y\\z\n\u{1}\u{7f}é", "o": {"n": 7, "b": false, "l": ["p", "q"]}, "i": -3}));
    }

    #[test]
    fn credentials_are_redacted_as_written() {
        let v = written(|w| {
            w.begin_object();
            w.kv("x-aws-ec2-metadata-token", "AQAEAbcdef==");
            w.kv_trusted("Token", "abc");
            w.array("access_token");
            w.str("t1");
            w.end_array();
            w.kv("note", "AccessKeyId=ASIAQ7XKZ3PLM9VBN2RT");
            w.kv("empty_token_ok", "");
            w.end_object();
        });
        assert_eq!(
            v,
            json!({"x-aws-ec2-metadata-token": "[REDACTED]", "Token": "[REDACTED]", "access_token": ["[REDACTED]"],
                   "note": "AccessKeyId=[REDACTED]", "empty_token_ok": ""})
        );
    }
}
