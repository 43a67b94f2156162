//! One line of an audit log to a [`Record`]: the optional syslog and `node=` prefixes, the record
//! type, the `audit(TIME:SERIAL)` stamp, the `key=value` fields and, in enriched logs, the
//! interpretations after the `\x1d` separator.

use crate::tables;

/// One `key=value` field of a record, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub key: &'a str,
    pub value: &'a str,
    /// The value was written in double quotes: a literal, never hex-encoded.
    pub quoted: bool,
}

/// Where a field lies in its record's text (byte offsets; always on character boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    key: (usize, usize),
    value: (usize, usize),
    quoted: bool,
}

/// One audit record (one line). The line is kept once; fields are offsets into it (one
/// allocation per record instead of two per field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Line number in the input (1-based).
    pub line: u64,
    /// Record type name (`SYSCALL`, `EXECVE`, ...; `UNKNOWN[n]` for unknown numeric types).
    pub rtype: String,
    /// The `node=` prefix, if any.
    pub node: Option<String>,
    /// Event time in milliseconds since the epoch.
    pub ms: i64,
    pub serial: u64,
    text: String,
    spans: Vec<Span>,
    /// Enriched logs (`log_format = ENRICHED`): the interpretations after `\x1d`, keys as written
    /// (upper case, e.g. `UID`, `SYSCALL`). Empty in plain logs.
    interp_spans: Vec<Span>,
    /// Problems with this line (truncated or garbled parts); the record keeps what could be read.
    pub problems: Vec<String>,
}

impl Record {
    fn field(&self, s: &Span) -> Field<'_> {
        let at = |(a, b): (usize, usize)| self.text.get(a..b).unwrap_or("");
        Field { key: at(s.key), value: at(s.value), quoted: s.quoted }
    }
    /// The `key=value` fields, in order (nested `msg='...'` fields included).
    pub fn fields(&self) -> impl Iterator<Item = Field<'_>> + '_ {
        self.spans.iter().map(|s| self.field(s))
    }
    /// The enriched interpretations, in order; none in plain logs.
    pub fn interps(&self) -> impl Iterator<Item = Field<'_>> + '_ {
        self.interp_spans.iter().map(|s| self.field(s))
    }
    pub fn has_interps(&self) -> bool {
        !self.interp_spans.is_empty()
    }
    pub fn get(&self, key: &str) -> Option<Field<'_>> {
        self.fields().find(|f| f.key == key)
    }
    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).map(|f| f.value)
    }
    pub fn interp(&self, key: &str) -> Option<&str> {
        self.interps().find(|f| f.key == key).map(|f| f.value)
    }
}

/// What a line turned out to be.
#[derive(Debug)]
pub enum Line {
    Record(Record),
    /// A line that carries no record by design (ausearch separators, blank lines).
    Ignored,
}

/// Find `pat` at the start of `s` or after whitespace.
fn find_word(s: &str, pat: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(i) = s.get(from..).and_then(|t| t.find(pat)) {
        let at = from + i;
        if at == 0 || b.get(at - 1).is_some_and(|c| c.is_ascii_whitespace()) {
            return Some(at);
        }
        from = at + pat.len();
    }
    None
}

/// Whether a line looks like an audit record (raw log, ausearch --raw, syslog-forwarded, or the
/// kernel's `audit: type=1300 audit(...)` form). Used for format detection.
pub fn looks_like_audit_line(line: &[u8]) -> bool {
    let s = String::from_utf8_lossy(line);
    let Some(t) = find_word(&s, "type=") else { return false };
    let rest = &s[t..];
    match rest.find("audit(") {
        Some(i) => rest.as_bytes().get(i + 6).is_some_and(|c| c.is_ascii_digit()),
        None => false,
    }
}

/// Parse one line. `Err` is a line that cannot be read as a record, with the reason.
pub fn parse_line(line_no: u64, raw: &[u8]) -> Result<Line, String> {
    let text = String::from_utf8_lossy(raw);
    let s = text.trim();
    if s.is_empty() || s.starts_with("----") || s.starts_with("<no matches>") || s.starts_with("time->") {
        return Ok(Line::Ignored);
    }
    let mut problems = Vec::new();
    if matches!(text, std::borrow::Cow::Owned(_)) {
        problems.push("invalid UTF-8 replaced".to_string());
    }
    let t = find_word(s, "type=").ok_or_else(|| "not an audit record: no type= field".to_string())?;
    let node = find_word(&s[..t], "node=").map(|n| {
        let v = &s[n + 5..t];
        v.split_whitespace().next().unwrap_or("").to_string()
    });
    let after_type = &s[t + 5..];
    let tend = after_type.find(|c: char| c.is_ascii_whitespace()).unwrap_or(after_type.len());
    let type_tok = &after_type[..tend];
    if type_tok.is_empty() {
        return Err("empty record type".into());
    }
    let rtype = match type_tok.parse::<u32>() {
        Ok(n) => tables::type_name(n).map(str::to_string).unwrap_or_else(|| format!("UNKNOWN[{n}]")),
        Err(_) => {
            if !type_tok.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'[' || c == b']') {
                return Err(format!("garbled record type {:?}", truncate(type_tok, 40)));
            }
            type_tok.to_string()
        }
    };
    let rest = after_type[tend..].trim_start();
    let rest = rest.strip_prefix("msg=").unwrap_or(rest);
    let rest = rest
        .strip_prefix("audit(")
        .ok_or_else(|| format!("{rtype} record without an audit(TIME:SERIAL) stamp (truncated or garbled)"))?;
    let close = rest.find(')').ok_or_else(|| format!("{rtype} record: audit stamp not closed (truncated line)"))?;
    let stamp = &rest[..close];
    if stamp.contains('/') {
        // `ausearch -i` prints `audit(11/30/2026 16:00:00.123:456)` and rewrites the fields.
        return Err(format!("{rtype} record: interpreted `ausearch -i` output (local date in the stamp) cannot be decoded; use `ausearch --raw`"));
    }
    let (ms, serial) = parse_stamp(stamp).ok_or_else(|| format!("{rtype} record: malformed audit stamp {:?}", truncate(stamp, 40)))?;
    let body = rest[close + 1..].strip_prefix(':').unwrap_or(&rest[close + 1..]);
    let (plain, enriched) = match body.find('\x1d') {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let strict = tables::is_interpreted(&rtype);
    let offset = |sub: &str| sub.as_ptr() as usize - s.as_ptr() as usize;
    let mut spans = Vec::with_capacity(32);
    parse_fields(plain, offset(plain), &mut spans, &mut problems, strict, 0);
    let mut interp_spans = Vec::new();
    if let Some(e) = enriched {
        parse_fields(e, offset(e), &mut interp_spans, &mut problems, false, 0);
    }
    Ok(Line::Record(Record { line: line_no, rtype, node, ms, serial, text: s.to_string(), spans, interp_spans, problems }))
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// `1700000000.123:456` → (milliseconds, serial).
fn parse_stamp(s: &str) -> Option<(i64, u64)> {
    let (time, serial) = s.split_once(':')?;
    let serial: u64 = serial.parse().ok()?;
    let (secs, frac) = match time.split_once('.') {
        Some((a, b)) => (a, b),
        None => (time, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|c| c.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    let mut millis = 0i64;
    for (i, c) in frac.bytes().take(3).enumerate() {
        millis += i64::from(c - b'0') * [100, 10, 1][i];
    }
    secs.checked_mul(1000)?.checked_add(millis).map(|ms| (ms, serial))
}

/// Parse `key=value` pairs. Values: `"quoted"`, `'nested key=value list'` (merged, as auparse
/// does for the `msg='...'` of user-space records), `{ braced }` (enriched SADDR) or bare up to
/// whitespace. `strict`: a token without `=` is reported (the interpreted record types have
/// none; AVC and others do).
fn parse_fields(s: &str, base: usize, out: &mut Vec<Span>, problems: &mut Vec<String>, strict: bool, depth: u32) {
    let b = s.as_bytes();
    let mut i = 0;
    let n = b.len();
    while i < n {
        while i < n && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            break;
        }
        let start = i;
        while i < n && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n || b[i] != b'=' {
            if strict {
                problems.push(format!("token without '=': {:?} (truncated or garbled)", truncate(&s[start..i], 40)));
            }
            continue;
        }
        let key = &s[start..i];
        let kspan = (base + start, base + i);
        i += 1; // '='
        let ((vs, ve), quoted, next) = match b.get(i) {
            Some(b'"') => match s[i + 1..].find('"') {
                Some(j) => ((i + 1, i + 1 + j), true, i + 2 + j),
                None => {
                    problems.push(format!("unterminated quoted value of {key} (truncated line)"));
                    ((i + 1, n), true, n)
                }
            },
            Some(b'\'') => {
                let ((vs, ve), next) = match s[i + 1..].find('\'') {
                    Some(j) => ((i + 1, i + 1 + j), i + 2 + j),
                    None => {
                        problems.push(format!("unterminated '...' value of {key} (truncated line)"));
                        ((i + 1, n), n)
                    }
                };
                if depth == 0 {
                    parse_fields(&s[vs..ve], base + vs, out, problems, false, depth + 1);
                } else {
                    out.push(Span { key: kspan, value: (base + vs, base + ve), quoted: true });
                }
                i = next;
                continue;
            }
            Some(b'{') => match s[i..].find('}') {
                Some(j) => ((i, i + j + 1), true, i + j + 1),
                None => {
                    problems.push(format!("unterminated {{...}} value of {key} (truncated line)"));
                    ((i, n), true, n)
                }
            },
            _ => {
                let mut j = i;
                while j < n && !b[j].is_ascii_whitespace() {
                    j += 1;
                }
                ((i, j), false, j)
            }
        };
        if key.is_empty() {
            if strict {
                problems.push("field with an empty key (garbled)".into());
            }
        } else {
            out.push(Span { key: kspan, value: (base + vs, base + ve), quoted });
        }
        i = next;
    }
}

/// Decode an even-length hex string; `None` if it is not one.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.is_empty() || !b.len().is_multiple_of(2) {
        return None;
    }
    let val = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    b.chunks(2).map(|p| Some(val(p[0])? << 4 | val(p[1])?)).collect()
}

/// The text of a possibly hex-encoded field (the kernel hex-encodes untrusted strings that contain
/// spaces, quotes or control characters and writes them unquoted). `(null)` and `?` stay as they are.
pub fn text_of(f: Field<'_>) -> String {
    if f.quoted {
        return f.value.to_string();
    }
    match unhex(f.value) {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => f.value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(s: &str) -> Record {
        match parse_line(1, s.as_bytes()) {
            Ok(Line::Record(r)) => r,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn prefixes_and_stamps() {
        let cases: &[(&str, &str, Option<&str>, i64, u64)] = &[
            ("type=EOE msg=audit(1700000000.123:45):", "EOE", None, 1_700_000_000_123, 45),
            ("node=web-1 type=CWD msg=audit(1700000000.5:7): cwd=\"/\"", "CWD", Some("web-1"), 1_700_000_000_500, 7),
            (
                "Nov 30 16:00:00 web-1 audispd: node=web-1 type=SYSCALL msg=audit(1700000000.010:8): arch=c000003e syscall=59",
                "SYSCALL",
                Some("web-1"),
                1_700_000_000_010,
                8,
            ),
            ("Nov 30 16:00:00 h kernel: audit: type=1327 audit(1700000001.000:9): proctitle=6C73", "PROCTITLE", None, 1_700_000_001_000, 9),
            ("type=1334 msg=audit(1.000:1): x=1", "UNKNOWN[1334]", None, 1000, 1),
        ];
        for (line, ty, node, ms, serial) in cases {
            let r = rec(line);
            assert_eq!((r.rtype.as_str(), r.node.as_deref(), r.ms, r.serial), (*ty, *node, *ms, *serial), "{line}");
            assert!(r.problems.is_empty(), "{line}: {:?}", r.problems);
        }
    }

    #[test]
    fn values_quoted_hex_nested_enriched() {
        let r = rec("type=USER_START msg=audit(1.0:2): pid=9 uid=0 auid=1000 ses=3 msg='op=PAM:session_open acct=\"ubuntu\" exe=\"/usr/sbin/sshd\" res=success'\x1dUID=\"root\" AUID=\"ubuntu\"");
        assert_eq!(r.value("op"), Some("PAM:session_open"));
        assert_eq!(r.value("acct"), Some("ubuntu"));
        assert_eq!(r.value("res"), Some("success"));
        assert_eq!(r.interp("AUID"), Some("ubuntu"));
        let r = rec("type=SOCKADDR msg=audit(1.0:2): saddr=02000050A9FEA9FE0000000000000000\x1dSADDR={ saddr_fam=inet laddr=169.254.169.254 lport=80 }");
        assert_eq!(r.interp("SADDR"), Some("{ saddr_fam=inet laddr=169.254.169.254 lport=80 }"));
        let f = Field { key: "a1", value: "6869207468657265", quoted: false };
        assert_eq!(text_of(f), "hi there");
        let f = Field { key: "name", value: "(null)", quoted: false };
        assert_eq!(text_of(f), "(null)");
    }

    #[test]
    fn bad_lines() {
        let cases: &[(&str, &str)] = &[
            ("garbage here", "no type= field"),
            ("type=SYSCALL arch=c000003e", "without an audit(TIME:SERIAL) stamp"),
            ("type=SYSCALL msg=audit(1700000000.12", "not closed"),
            ("type=SYSCALL msg=audit(17x:1): a=1", "malformed audit stamp"),
            ("type=SY\u{1}S msg=audit(1.0:1):", "garbled record type"),
            ("type=PROCTITLE msg=audit(11/30/2026 16:00:00.123:456) : proctitle=curl", "use `ausearch --raw`"),
        ];
        for (line, want) in cases {
            match parse_line(3, line.as_bytes()) {
                Err(e) => assert!(e.contains(want), "{line}: {e}"),
                Ok(other) => panic!("{line}: {other:?}"),
            }
        }
        let r = rec("type=EXECVE msg=audit(1.0:1): argc=2 a0=\"curl");
        assert!(r.problems[0].contains("unterminated quoted value of a0"), "{:?}", r.problems);
        let r = rec("type=SYSCALL msg=audit(1.0:1): arch=c000003e sysc");
        assert!(r.problems[0].contains("token without '='"), "{:?}", r.problems);
        assert!(matches!(parse_line(1, b"----"), Ok(Line::Ignored)));
    }

    #[test]
    fn detection() {
        assert!(looks_like_audit_line(b"type=SYSCALL msg=audit(1700000000.123:45): arch=c000003e"));
        assert!(looks_like_audit_line(b"Nov 30 16:00:00 h audispd: node=h type=EOE msg=audit(1.2:3):"));
        assert!(!looks_like_audit_line(b"{\"type\":\"x\",\"msg\":\"audit(1)\"}"));
        assert!(!looks_like_audit_line(b"hello world"));
    }
}
