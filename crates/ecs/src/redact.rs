//! Redaction of cloud credentials from events.
//!
//! Events about instance-metadata access can carry the very credentials the metadata service
//! handed out: an HTTP response body with `AccessKeyId`/`SecretAccessKey`/`Token`, an Azure or GCP
//! token response with `access_token`, an IMDSv2 `X-aws-ec2-metadata-token` request header, a
//! query string with `access_token=...`. [`redact`] replaces those values with `"[REDACTED]"`
//! before an event leaves the process (alerts, logs, stores), keeping the keys and the surrounding
//! text so an analyst still sees *which* credentials were exposed.
//!
//! What is redacted:
//! - the string values (or arrays of strings) of object keys named like a credential
//!   ([`SECRET_KEYS`], case-insensitive, also as the last segment of a dotted key), and the
//!   `value` of `{"name": "<credential key>", "value": ...}` header entries;
//! - inside any other string: `"Key": "value"`, `Key=value` and `Key: value` occurrences of those
//!   key names, AWS access key ids (`AKIA`/`ASIA` + 16 characters), JSON Web Tokens and the token
//!   after `Bearer `.
//!
//! Fields such as `token_type`, `expires_in`, `Type`, `Code`, `Expiration` and `LastUpdated` are
//! kept. Redaction is idempotent: a second pass finds nothing more.

use serde_json::{Map, Value};

/// What replaces every secret.
pub const REDACTED: &str = "[REDACTED]";

/// Key names whose values are credentials (compared case-insensitively).
pub const SECRET_KEYS: &[&str] = &[
    "AccessKeyId",
    "SecretAccessKey",
    "Token",
    "SessionToken",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "X-aws-ec2-metadata-token",
];

/// Replace every credential in `v` with `"[REDACTED]"`; returns how many values were replaced.
pub fn redact(v: &mut Value) -> usize {
    match v {
        Value::Object(map) => redact_object(map),
        Value::Array(items) => items.iter_mut().map(redact).sum(),
        Value::String(s) => redact_string(s),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

/// Redact secrets embedded in a free-text string (see the module docs); returns how many values
/// were replaced.
pub fn redact_string(s: &mut String) -> usize {
    let mut n = 0;
    for pass in [redact_key_values, redact_bearer, redact_jwts, redact_aws_key_ids] {
        if let Some((out, k)) = pass(s) {
            *s = out;
            n += k;
        }
    }
    n
}

/// [`redact_string`] without a copy when there is nothing to redact: the text with its embedded
/// secrets replaced.
pub fn redacted(s: &str) -> std::borrow::Cow<'_, str> {
    let mut cur: std::borrow::Cow<'_, str> = std::borrow::Cow::Borrowed(s);
    for pass in [redact_key_values, redact_bearer, redact_jwts, redact_aws_key_ids] {
        if let Some((out, _)) = pass(&cur) {
            cur = std::borrow::Cow::Owned(out);
        }
    }
    cur
}

/// Whether an object key names a credential (its last dotted segment, case-insensitively).
pub fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    SECRET_KEYS.iter().any(|k| k.eq_ignore_ascii_case(last))
}

fn redact_object(map: &mut Map<String, Value>) -> usize {
    // Header entries shaped `{"name": "X-aws-ec2-metadata-token", "value": "..."}`.
    let header_entry =
        ["name", "key", "header"].iter().any(|k| map.get(*k).and_then(Value::as_str).is_some_and(is_secret_key));
    let mut n = 0;
    for (k, v) in map.iter_mut() {
        if is_secret_key(k) || (header_entry && matches!(k.as_str(), "value" | "values")) {
            n += replace_strings(v);
        } else {
            n += redact(v);
        }
    }
    n
}

/// Replace a string (or the strings of an array, recursively) with [`REDACTED`]; other values are
/// redacted as usual.
fn replace_strings(v: &mut Value) -> usize {
    match v {
        Value::String(s) => {
            if s == REDACTED {
                0
            } else {
                *s = REDACTED.to_string();
                1
            }
        }
        Value::Array(items) => items.iter_mut().map(replace_strings).sum(),
        other => redact(other),
    }
}

/// Characters that continue an identifier: a key match must not be preceded or followed by one.
fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Builds a copy of `s` with some byte ranges (always on ASCII boundaries) replaced.
struct Splicer<'a> {
    src: &'a str,
    out: String,
    last: usize,
    count: usize,
}

impl<'a> Splicer<'a> {
    fn new(src: &'a str) -> Self {
        Splicer { src, out: String::new(), last: 0, count: 0 }
    }

    /// Replace `src[start..end]` unless it already is [`REDACTED`] or empty.
    fn replace(&mut self, start: usize, end: usize) {
        let (Some(before), Some(value)) = (self.src.get(self.last..start), self.src.get(start..end)) else {
            return;
        };
        if value.is_empty() || value == REDACTED {
            return;
        }
        self.out.push_str(before);
        self.out.push_str(REDACTED);
        self.last = end;
        self.count += 1;
    }

    fn finish(mut self) -> Option<(String, usize)> {
        if self.count == 0 {
            return None;
        }
        self.out.push_str(self.src.get(self.last..).unwrap_or(""));
        Some((self.out, self.count))
    }
}

/// `"Key": "value"`, `Key=value`, `Key: value` for every [`SECRET_KEYS`] name.
fn redact_key_values(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let mut sp = Splicer::new(s);
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphabetic() || (i > 0 && is_ident(b[i - 1])) {
            i += 1;
            continue;
        }
        match match_key_value(b, i) {
            Some((start, end)) => {
                sp.replace(start, end);
                i = end.max(i + 1);
            }
            None => i += 1,
        }
    }
    sp.finish()
}

/// At `i` (a key start), the byte range of the value if a secret key with a separator is here.
fn match_key_value(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let key_len = SECRET_KEYS.iter().find_map(|k| {
        let end = i + k.len();
        let cand = b.get(i..end)?;
        (cand.eq_ignore_ascii_case(k.as_bytes()) && !b.get(end).copied().is_some_and(is_ident)).then_some(k.len())
    })?;
    let mut j = i + key_len;
    // A closing quote of a quoted key: `"`, `'` or an escaped `\"`.
    if b.get(j) == Some(&b'\\') && b.get(j + 1) == Some(&b'"') {
        j += 2;
    } else if matches!(b.get(j), Some(b'"' | b'\'')) {
        j += 1;
    }
    while matches!(b.get(j), Some(b' ' | b'\t')) {
        j += 1;
    }
    if !matches!(b.get(j), Some(b':' | b'=')) {
        return None;
    }
    j += 1;
    while matches!(b.get(j), Some(b' ' | b'\t')) {
        j += 1;
    }
    // Quoted value: `"..."`, `'...'` or (double-encoded JSON) `\"...\"`.
    let (escaped, quote) = match (b.get(j), b.get(j + 1)) {
        (Some(b'\\'), Some(b'"')) => (true, Some(b'"')),
        (Some(q @ (b'"' | b'\'')), _) => (false, Some(*q)),
        _ => (false, None),
    };
    if let Some(q) = quote {
        let start = j + if escaped { 2 } else { 1 };
        let mut k = start;
        while k < b.len() {
            if escaped && b[k] == b'\\' && b.get(k + 1) == Some(&q) {
                break;
            }
            if !escaped && b[k] == b'\\' {
                k += 2;
                continue;
            }
            if !escaped && b[k] == q {
                break;
            }
            k += 1;
        }
        // An unterminated value (a truncated body) is redacted to the end.
        let end = k.min(b.len());
        // Never split a multi-byte character (the `\` skip may land inside one).
        let end = (start..=end).rev().find(|&e| e == b.len() || b[e].is_ascii()).unwrap_or(start);
        return Some((start, end));
    }
    let start = j;
    let mut k = start;
    while k < b.len() && !is_value_terminator(b[k]) {
        k += 1;
    }
    let value = &b[start..k];
    // JSON literals, and shell variables / command substitutions (`TOKEN=$(curl -X PUT ...)` in a
    // command line is evidence, not a secret).
    if value == b"null" || value == b"true" || value == b"false" || matches!(value.first(), Some(b'$' | b'`')) {
        return None;
    }
    Some((start, k))
}

fn is_value_terminator(c: u8) -> bool {
    c.is_ascii_whitespace() || matches!(c, b'&' | b';' | b',' | b'"' | b'\'' | b'<' | b'>' | b'}' | b')' | b'\\')
}

/// Characters of an opaque bearer token (RFC 6750 `b64token`).
fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// `Bearer <token>` (case-insensitive), for tokens of at least 16 characters.
fn redact_bearer(s: &str) -> Option<(String, usize)> {
    const BEARER: &[u8] = b"bearer";
    let b = s.as_bytes();
    let mut sp = Splicer::new(s);
    let mut i = 0;
    while i + BEARER.len() < b.len() {
        let is_word =
            b[i..i + BEARER.len()].eq_ignore_ascii_case(BEARER) && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
        if !is_word || b[i + BEARER.len()] != b' ' {
            i += 1;
            continue;
        }
        let mut start = i + BEARER.len();
        while b.get(start) == Some(&b' ') {
            start += 1;
        }
        let mut end = start;
        while end < b.len() && is_token_char(b[end]) {
            end += 1;
        }
        while b.get(end) == Some(&b'=') {
            end += 1;
        }
        if end - start >= 16 {
            sp.replace(start, end);
        }
        i = end.max(i + 1);
    }
    sp.finish()
}

fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// JSON Web Tokens: `eyJ...` `.` `eyJ...` `.` signature.
fn redact_jwts(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let mut sp = Splicer::new(s);
    let mut i = 0;
    let seg = |from: usize| {
        let mut k = from;
        while k < b.len() && is_b64url(b[k]) {
            k += 1;
        }
        k
    };
    while i + 3 <= b.len() {
        if &b[i..i + 3] != b"eyJ" || (i > 0 && is_b64url(b[i - 1])) {
            i += 1;
            continue;
        }
        let h_end = seg(i);
        let is_jwt = b.get(h_end) == Some(&b'.') && b.get(h_end + 1..h_end + 4) == Some(b"eyJ".as_slice());
        if !is_jwt {
            i = h_end.max(i + 1);
            continue;
        }
        let p_end = seg(h_end + 1);
        let end = if b.get(p_end) == Some(&b'.') { seg(p_end + 1) } else { p_end };
        sp.replace(i, end);
        i = end;
    }
    sp.finish()
}

/// AWS access key ids: `AKIA` (long-term) or `ASIA` (temporary) and 16 uppercase alphanumerics.
fn redact_aws_key_ids(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let mut sp = Splicer::new(s);
    let mut i = 0;
    while i + 20 <= b.len() {
        let prefix = &b[i..i + 4];
        let candidate = (prefix == b"AKIA" || prefix == b"ASIA")
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            && b[i + 4..i + 20].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && !b.get(i + 20).is_some_and(|c| c.is_ascii_alphanumeric());
        if candidate {
            sp.replace(i, i + 20);
            i += 20;
        } else {
            i += 1;
        }
    }
    sp.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const AWS_BODY: &str = r#"{
  "Code" : "Success",
  "LastUpdated" : "2024-05-01T12:00:00Z",
  "Type" : "AWS-HMAC",
  "AccessKeyId" : "ASIAIOSFODNN7EXAMPLE",
  "SecretAccessKey" : "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  "Token" : "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==",
  "Expiration" : "2024-05-01T18:00:00Z"
}"#;

    fn redacted(mut v: Value) -> (Value, usize) {
        let n = redact(&mut v);
        let again = redact(&mut v);
        assert_eq!(again, 0, "not idempotent: {v}");
        (v, n)
    }

    fn text(s: &str) -> (String, usize) {
        let (v, n) = redacted(Value::String(s.to_string()));
        (v.as_str().unwrap_or_default().to_string(), n)
    }

    #[test]
    fn aws_credentials_object() {
        let body: Value = serde_json::from_str(AWS_BODY).expect("valid json");
        let (v, n) = redacted(body);
        assert_eq!(n, 3);
        assert_eq!(
            v,
            json!({"Code": "Success", "LastUpdated": "2024-05-01T12:00:00Z", "Type": "AWS-HMAC",
                   "AccessKeyId": REDACTED, "SecretAccessKey": REDACTED, "Token": REDACTED,
                   "Expiration": "2024-05-01T18:00:00Z"})
        );
    }

    #[test]
    fn aws_credentials_in_response_body_string() {
        let ev = json!({
            "event": {"type": ["access"], "category": "network"},
            "http": {"response": {"body": {"content": AWS_BODY}, "status_code": 200}},
            "url": {"path": "/latest/meta-data/iam/security-credentials/role"}
        });
        let (v, n) = redacted(ev);
        assert_eq!(n, 3);
        let content = v["http"]["response"]["body"]["content"].as_str().unwrap_or_default();
        assert!(content.contains(r#""AccessKeyId" : "[REDACTED]""#), "{content}");
        assert!(content.contains(r#""SecretAccessKey" : "[REDACTED]""#), "{content}");
        assert!(content.contains(r#""Token" : "[REDACTED]""#), "{content}");
        for kept in [
            "\"Code\" : \"Success\"",
            "\"Type\" : \"AWS-HMAC\"",
            "\"Expiration\" : \"2024-05-01T18:00:00Z\"",
            "LastUpdated",
        ] {
            assert!(content.contains(kept), "{kept} in {content}");
        }
        assert!(!content.contains("wJalr") && !content.contains("IQoJ") && !content.contains("ASIAIOSF"));
        assert_eq!(v["event"]["type"], json!(["access"]));
        assert_eq!(v["http"]["response"]["status_code"], 200);
    }

    #[test]
    fn compact_and_double_encoded_json() {
        let (s, n) = text(
            r#"{"Code":"Success","AccessKeyId":"ASIAIOSFODNN7EXAMPLE","SecretAccessKey":"abc/def+ghi","Token":"IQoJ..."}"#,
        );
        assert_eq!(n, 3);
        assert_eq!(
            s,
            r#"{"Code":"Success","AccessKeyId":"[REDACTED]","SecretAccessKey":"[REDACTED]","Token":"[REDACTED]"}"#
        );
        let (s, n) = text(r#"{\"SecretAccessKey\":\"abc/def\",\"Type\":\"AWS-HMAC\"}"#);
        assert_eq!((s.as_str(), n), (r#"{\"SecretAccessKey\":\"[REDACTED]\",\"Type\":\"AWS-HMAC\"}"#, 1));
        let (s, n) = text(r#"{"Token":"a\"b","x":1}"#);
        assert_eq!((s.as_str(), n), (r#"{"Token":"[REDACTED]","x":1}"#, 1));
        let (s, n) = text(r#"{"Token": "truncated bo"#);
        assert_eq!((s.as_str(), n), (r#"{"Token": "[REDACTED]"#, 1));
    }

    #[test]
    fn azure_and_gcp_token_responses() {
        let azure = json!({"access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQifQ.sig",
                           "client_id": "1234", "expires_in": "3599", "expires_on": "1714568400",
                           "resource": "https://management.azure.com/", "token_type": "Bearer",
                           "refresh_token": "", "id_token": ["a", "b"]});
        let (v, n) = redacted(azure);
        assert_eq!(n, 4);
        assert_eq!(v["access_token"], REDACTED);
        assert_eq!(v["refresh_token"], REDACTED);
        assert_eq!(v["id_token"], json!([REDACTED, REDACTED]));
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["expires_in"], "3599");
        assert_eq!(v["client_id"], "1234");

        let gcp = r#"{"access_token":"ya29.c.b0AXv0zTOpaque-token_value","expires_in":3599,"token_type":"Bearer"}"#;
        let (s, n) = text(gcp);
        assert_eq!((s.as_str(), n), (r#"{"access_token":"[REDACTED]","expires_in":3599,"token_type":"Bearer"}"#, 1));
    }

    #[test]
    fn headers_query_strings_and_bearer() {
        let ev = json!({"http": {"request": {"headers": {
            "X-aws-ec2-metadata-token": ["AQAEAJ3x=="],
            "x-aws-ec2-metadata-token-ttl-seconds": "21600",
            "Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc-DEF_123",
            "User-Agent": "curl/8.0"
        }}}});
        let (v, n) = redacted(ev);
        assert_eq!(n, 2);
        let h = &v["http"]["request"]["headers"];
        assert_eq!(h["X-aws-ec2-metadata-token"], json!([REDACTED]));
        assert_eq!(h["x-aws-ec2-metadata-token-ttl-seconds"], "21600");
        assert_eq!(h["Authorization"], "Bearer [REDACTED]");
        assert_eq!(h["User-Agent"], "curl/8.0");

        // Header lists and dotted keys.
        let (v, n) = redacted(json!({
            "headers": [{"name": "X-aws-ec2-metadata-token", "value": "AQAE"}, {"name": "Host", "value": "169.254.169.254"}],
            "aws.credentials.SessionToken": "FwoG",
        }));
        assert_eq!(n, 2);
        assert_eq!(v["headers"][0]["value"], REDACTED);
        assert_eq!(v["headers"][1]["value"], "169.254.169.254");
        assert_eq!(v["aws.credentials.SessionToken"], REDACTED);

        let cases: &[(&str, &str, usize)] = &[
            ("/cb?code=1&access_token=eyJabc.def&x=1", "/cb?code=1&access_token=[REDACTED]&x=1", 1),
            (
                "grant_type=refresh_token&refresh_token=0.AXoA-xyz&client_secret=s3cr3t~",
                "grant_type=refresh_token&refresh_token=[REDACTED]&client_secret=[REDACTED]",
                2,
            ),
            (
                "PUT /latest/api/token\r\nX-aws-ec2-metadata-token: AQAEAFs=\r\nHost: x",
                "PUT /latest/api/token\r\nX-aws-ec2-metadata-token: [REDACTED]\r\nHost: x",
                1,
            ),
            (
                "curl -H 'X-aws-ec2-metadata-token: AQAEA' http://169.254.169.254/",
                "curl -H 'X-aws-ec2-metadata-token: [REDACTED]' http://169.254.169.254/",
                1,
            ),
            ("TOKEN=`curl -X PUT ...` && echo $TOKEN", "TOKEN=`curl -X PUT ...` && echo $TOKEN", 0),
            (
                "TOKEN=$(curl -X PUT http://169.254.169.254/latest/api/token)",
                "TOKEN=$(curl -X PUT http://169.254.169.254/latest/api/token)",
                0,
            ),
            ("TOKEN=AQAEAabc== && echo $TOKEN", "TOKEN=[REDACTED] && echo $TOKEN", 1),
            ("authorization: Bearer ya29.a0AfB_byC1234567890abcdef", "authorization: Bearer [REDACTED]", 1),
            ("key AKIAIOSFODNN7EXAMPLE used", "key [REDACTED] used", 1),
            ("ids:ASIAIOSFODNN7EXAMPLE,AKIAIOSFODNN7EXAMPL", "ids:[REDACTED],AKIAIOSFODNN7EXAMPL", 1),
            ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig! done", "jwt [REDACTED]! done", 1),
            // Kept.
            ("token_type=Bearer&expires_in=3599", "token_type=Bearer&expires_in=3599", 0),
            ("invalid token: expired", "invalid token: [REDACTED]", 1),
            ("token validation failed", "token validation failed", 0),
            ("Bearer realm", "Bearer realm", 0),
            ("{\"Token\": null}", "{\"Token\": null}", 0),
            ("AKIAIOSFODNN7EXAMPLEX", "AKIAIOSFODNN7EXAMPLEX", 0),
            ("mytoken=abc x_token=abc", "mytoken=abc x_token=abc", 0),
            ("Token=[REDACTED]", "Token=[REDACTED]", 0),
            ("é Token=é☃ ok", "é Token=[REDACTED] ok", 1),
        ];
        for (input, want, count) in cases {
            assert_eq!(text(input), (want.to_string(), *count), "{input}");
        }
    }

    #[test]
    fn nested_arrays_and_non_strings() {
        let (v, n) = redacted(json!({
            "a": [{"b": {"Token": "x"}}, {"AccessKeyId": ["ASIA1", ["ASIA2"]]}],
            "Token": 42,
            "SessionToken": {"inner": "plain", "access_token": "y"},
            "event": {"type": "info", "kind": "event"}
        }));
        assert_eq!(n, 4);
        assert_eq!(v["a"][0]["b"]["Token"], REDACTED);
        assert_eq!(v["a"][1]["AccessKeyId"], json!([REDACTED, [REDACTED]]));
        assert_eq!(v["Token"], 42);
        assert_eq!(v["SessionToken"], json!({"inner": "plain", "access_token": REDACTED}));
        assert_eq!(v["event"], json!({"type": "info", "kind": "event"}));
    }

    #[test]
    fn already_redacted_is_untouched() {
        let v = json!({"Token": REDACTED, "body": "{\"AccessKeyId\":\"[REDACTED]\"} Bearer [REDACTED]"});
        let mut w = v.clone();
        assert_eq!(redact(&mut w), 0);
        assert_eq!(w, v);
    }

    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,12}",
            prop::sample::select(vec![
                "Token",
                "\"Token\"",
                "access_token",
                "AccessKeyId",
                "X-aws-ec2-metadata-token",
                ":",
                "=",
                " ",
                "\"",
                "'",
                "\\",
                "\\\"",
                "&",
                "Bearer ",
                "eyJ",
                ".",
                "AKIA",
                "ASIA",
                "IOSFODNN7EXAMPLE",
                "[REDACTED]",
                "é",
                "null",
                "\n",
                "token_type",
                "abc/def+g==",
            ])
            .prop_map(str::to_string),
        ]
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(fragment(), 0..12).prop_map(|v| v.concat())
    }

    fn json_strategy() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            text_strategy().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((text_strategy(), inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn text_redaction_is_idempotent(s in text_strategy()) {
            let mut a = s.clone();
            let n = redact_string(&mut a);
            let mut b = a.clone();
            prop_assert_eq!(redact_string(&mut b), 0, "first pass {} -> {:?}", n, a);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn json_redaction_is_idempotent(v in json_strategy()) {
            let mut a = v.clone();
            redact(&mut a);
            let mut b = a.clone();
            prop_assert_eq!(redact(&mut b), 0);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC*") {
            let mut a = s.clone();
            redact_string(&mut a);
            let mut b = a.clone();
            prop_assert_eq!(redact_string(&mut b), 0);
        }
    }
}
