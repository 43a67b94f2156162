//! Value modifiers: turning one detection item (`Field|mod1|mod2: values`) into a [`Query`].

use crate::query::{parse_wildcards, CmpOp, Position, Query, Test, TimePart, Tok};
use crate::yaml::{Node, Value};

/// How many windash variants one value may expand to.
pub const MAX_WINDASH_VARIANTS: usize = 1024;

/// Why an item cannot be compiled: an invalid rule, or a valid one using what is not supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    pub message: String,
    pub unsupported: bool,
}

fn invalid(m: impl Into<String>) -> ItemError {
    ItemError { message: m.into(), unsupported: false }
}
fn unsupported(m: impl Into<String>) -> ItemError {
    ItemError { message: m.into(), unsupported: true }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Le,
    Be,
    Bom,
}

#[derive(Debug, Default)]
struct Mods {
    position: Option<Position>,
    all: bool,
    cased: bool,
    re: Option<(bool, bool, bool)>,
    cidr: bool,
    base64: bool,
    base64offset: bool,
    encoding: Option<Encoding>,
    windash: bool,
    exists: bool,
    fieldref: bool,
    expand: bool,
    cmp: Option<CmpOp>,
    neq: bool,
    time: Option<TimePart>,
}

fn parse_mods(names: &[&str]) -> Result<Mods, ItemError> {
    let mut m = Mods::default();
    for (i, name) in names.iter().enumerate() {
        let after_re = m.re.is_some();
        let set_pos = |m: &mut Mods, p: Position| -> Result<(), ItemError> {
            if m.position.is_some_and(|q| q != p) {
                return Err(invalid(format!("modifier `{name}` conflicts with an earlier contains/startswith/endswith")));
            }
            m.position = Some(p);
            Ok(())
        };
        match *name {
            "contains" => set_pos(&mut m, Position::Contains)?,
            "startswith" => set_pos(&mut m, Position::StartsWith)?,
            "endswith" => set_pos(&mut m, Position::EndsWith)?,
            "all" => m.all = true,
            "cased" => m.cased = true,
            "re" => m.re = Some((false, false, false)),
            "i" | "ignorecase" if after_re => {
                if let Some(r) = m.re.as_mut() {
                    r.0 = true;
                }
            }
            "m" | "multiline" if after_re => {
                if let Some(r) = m.re.as_mut() {
                    r.1 = true;
                }
            }
            "s" | "dotall" if after_re => {
                if let Some(r) = m.re.as_mut() {
                    r.2 = true;
                }
            }
            "i" | "m" | "s" | "ignorecase" | "multiline" | "dotall" => {
                return Err(invalid(format!("modifier `{name}` is a flag of `re` and must follow it")))
            }
            "cidr" => m.cidr = true,
            "base64" => m.base64 = true,
            "base64offset" => m.base64offset = true,
            "utf16le" | "wide" => m.encoding = Some(Encoding::Le),
            "utf16be" => m.encoding = Some(Encoding::Be),
            "utf16" => m.encoding = Some(Encoding::Bom),
            "windash" => m.windash = true,
            "exists" => m.exists = true,
            "fieldref" => m.fieldref = true,
            "expand" => m.expand = true,
            "gt" => m.cmp = Some(CmpOp::Gt),
            "gte" => m.cmp = Some(CmpOp::Gte),
            "lt" => m.cmp = Some(CmpOp::Lt),
            "lte" => m.cmp = Some(CmpOp::Lte),
            "neq" => m.neq = true,
            "minute" => m.time = Some(TimePart::Minute),
            "hour" => m.time = Some(TimePart::Hour),
            "day" => m.time = Some(TimePart::Day),
            "week" => m.time = Some(TimePart::Week),
            "month" => m.time = Some(TimePart::Month),
            "year" => m.time = Some(TimePart::Year),
            "" => return Err(invalid(format!("empty modifier at position {}", i + 1))),
            other => return Err(invalid(format!("unknown value modifier `{other}`"))),
        }
    }
    if m.encoding.is_some() && !(m.base64 || m.base64offset) {
        return Err(invalid("utf16/utf16le/utf16be/wide only apply together with base64 or base64offset"));
    }
    if m.base64 && m.base64offset {
        return Err(invalid("base64 and base64offset cannot be combined"));
    }
    Ok(m)
}

/// Build the query of one detection item. `field` is `None` for keywords.
pub fn item_query(field: Option<&str>, modifiers: &[&str], values: &Node) -> Result<Query, ItemError> {
    let m = parse_mods(modifiers)?;
    let list: Vec<&Node> = match &values.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![values],
    };
    if list.is_empty() {
        return Err(invalid("an empty list of values matches nothing; remove the item or give values"));
    }
    if m.exists {
        let [v] = list.as_slice() else { return Err(invalid("`exists` takes one boolean")) };
        let want = match &v.value {
            Value::Bool(b) => *b,
            Value::Str(s) if s.eq_ignore_ascii_case("true") => true,
            Value::Str(s) if s.eq_ignore_ascii_case("false") => false,
            _ => return Err(invalid(format!("`exists` takes true or false, not {}", v.kind()))),
        };
        if field.is_none() {
            return Err(invalid("`exists` needs a field"));
        }
        return Ok(Query::leaf(field, Test::Exists { value: want }));
    }
    let mut parts = Vec::with_capacity(list.len());
    for v in &list {
        let q = value_query(field, &m, v)?;
        parts.push(if m.neq { Query::Not(Box::new(q)) } else { q });
    }
    Ok(if m.all { Query::and(parts) } else { Query::or(parts) })
}

fn value_query(field: Option<&str>, m: &Mods, v: &Node) -> Result<Query, ItemError> {
    let text = match &v.value {
        Value::Null => {
            if field.is_none() {
                return Err(invalid("a null keyword matches nothing"));
            }
            return Ok(Query::leaf(field, Test::Null));
        }
        Value::Seq(_) | Value::Map(_) => return Err(invalid(format!("a value must be a scalar, not {}", v.kind()))),
        Value::Str(s) => s.clone(),
        _ => v.scalar_text().unwrap_or_default(),
    };
    if let Some(part) = m.time {
        let value: i64 = text.trim().parse().map_err(|_| invalid(format!("time modifier needs a whole number, not {text:?}")))?;
        return Ok(Query::leaf(field, Test::TimePart { part, cmp: m.cmp.unwrap_or(CmpOp::Eq), value }));
    }
    if let Some(cmp) = m.cmp {
        let value: f64 = match &v.value {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            _ => text.trim().parse().map_err(|_| invalid(format!("`{}` needs a number, not {text:?}", cmp_name(cmp))))?,
        };
        return Ok(Query::leaf(field, Test::Cmp { cmp, value }));
    }
    if m.fieldref {
        let Some(_) = field else { return Err(invalid("`fieldref` needs a field")) };
        return Ok(Query::leaf(field, Test::FieldRef { other: text, position: m.position.unwrap_or(Position::Equals), cased: m.cased }));
    }
    if m.expand {
        if !text.contains('%') {
            return Err(invalid(format!("`expand` value {text:?} has no %placeholder%")));
        }
        return Ok(Query::leaf(field, Test::Placeholder { value: text, position: m.position.unwrap_or(Position::Equals), cased: m.cased }));
    }
    if let Some((i, mm, s)) = m.re {
        if m.position.is_some() || m.base64 || m.base64offset || m.windash || m.cidr {
            return Err(invalid("`re` cannot be combined with contains/startswith/endswith, encodings, windash or cidr"));
        }
        return Ok(Query::leaf(field, Test::Re { pattern: text, i, m: mm, s }));
    }
    if m.cidr {
        if text.parse::<ipnet::IpNet>().is_err() {
            return Err(invalid(format!("{text:?} is not a CIDR block")));
        }
        return Ok(Query::leaf(field, Test::Cidr { net: text }));
    }
    if let (Value::Int(_) | Value::Float(_), None, false, false, false) = (&v.value, m.position, m.base64, m.base64offset, m.windash) {
        if let Some(value) = match &v.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        } {
            if field.is_some() {
                return Ok(Query::leaf(field, Test::Num { value }));
            }
        }
    }
    // Strings: encodings first (they yield plain strings), then windash variants, then position.
    let mut variants: Vec<Vec<Tok>> = if m.base64 || m.base64offset {
        if parse_wildcards(&text).iter().any(|t| !matches!(t, Tok::Lit(_))) {
            return Err(unsupported("wildcards inside a base64-encoded value cannot be encoded"));
        }
        let raw = match parse_wildcards(&text).into_iter().next() {
            Some(Tok::Lit(s)) => s,
            _ => String::new(),
        };
        let bytes = encode(&raw, m.encoding);
        if m.base64 {
            vec![vec![Tok::Lit(base64(&bytes))]]
        } else {
            base64_offsets(&bytes).into_iter().map(|s| vec![Tok::Lit(s)]).collect()
        }
    } else if m.windash {
        windash(&text)?.into_iter().map(|s| parse_wildcards(&s)).collect()
    } else {
        vec![parse_wildcards(&text)]
    };
    // Keywords are searched anywhere in the event's values.
    let position = m.position.or(if field.is_none() { Some(Position::Contains) } else { None });
    for p in &mut variants {
        match position {
            Some(Position::Contains) => {
                p.insert(0, Tok::Star);
                p.push(Tok::Star);
            }
            Some(Position::StartsWith) => p.push(Tok::Star),
            Some(Position::EndsWith) => p.insert(0, Tok::Star),
            _ => {}
        }
    }
    let cased = m.cased || m.base64 || m.base64offset;
    Ok(Query::or(variants.into_iter().map(|pattern| Query::leaf(field, Test::Str { pattern, cased })).collect()))
}

fn cmp_name(c: CmpOp) -> &'static str {
    match c {
        CmpOp::Gt => "gt",
        CmpOp::Gte => "gte",
        CmpOp::Lt => "lt",
        CmpOp::Lte => "lte",
        CmpOp::Eq => "eq",
    }
}

fn encode(s: &str, e: Option<Encoding>) -> Vec<u8> {
    match e {
        None => s.as_bytes().to_vec(),
        Some(Encoding::Le) => s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect(),
        Some(Encoding::Be) => s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect(),
        Some(Encoding::Bom) => [0xFF, 0xFE].into_iter().chain(s.encode_utf16().flat_map(|u| u.to_le_bytes())).collect(),
    }
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk.first().copied().unwrap_or(0), chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let idx = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (k, ix) in idx.iter().enumerate() {
            if k <= chunk.len() {
                out.push(char::from(A[*ix as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The three forms a value takes inside a longer base64 text, depending on its offset modulo 3
/// (pySigma's `base64offset`): encode with 0, 1, 2 leading bytes and cut the characters that
/// depend on the unknown neighbours.
pub fn base64_offsets(bytes: &[u8]) -> Vec<String> {
    let starts = [0usize, 2, 3];
    let ends = [0usize, 3, 2]; // characters cut from the end, by (len + shift) % 3
    let mut out = Vec::new();
    for shift in 0..3 {
        let mut b = vec![b' '; shift];
        b.extend_from_slice(bytes);
        let enc = base64(&b);
        let cut = ends[(bytes.len() + shift) % 3];
        let end = enc.len().saturating_sub(cut);
        if let Some(s) = enc.get(starts[shift]..end) {
            if !s.is_empty() && !out.iter().any(|x| x == s) {
                out.push(s.to_string());
            }
        }
    }
    out
}

/// The dash characters windash substitutes (pySigma: `-`, `/`, en dash, em dash, horizontal bar).
pub const WINDASH_CHARS: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every variant of `s` with each `-` or `/` that starts a word (not preceded by a word
/// character, followed by one) replaced by each of [`WINDASH_CHARS`].
pub fn windash(s: &str) -> Result<Vec<String>, ItemError> {
    let chars: Vec<char> = s.chars().collect();
    let positions: Vec<usize> = (0..chars.len())
        .filter(|&i| {
            matches!(chars[i], '-' | '/')
                && (i == 0 || !is_word(chars[i - 1]))
                && chars.get(i + 1).is_some_and(|c| is_word(*c))
        })
        .collect();
    let total = WINDASH_CHARS.len().checked_pow(positions.len() as u32).unwrap_or(usize::MAX);
    if total > MAX_WINDASH_VARIANTS {
        return Err(unsupported(format!("windash on {s:?} would expand to {total} variants (limit {MAX_WINDASH_VARIANTS})")));
    }
    let mut out = Vec::with_capacity(total);
    for n in 0..total {
        let mut v = chars.clone();
        let mut k = n;
        for &p in &positions {
            v[p] = WINDASH_CHARS[k % WINDASH_CHARS.len()];
            k /= WINDASH_CHARS.len();
        }
        out.push(v.into_iter().collect());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_table() {
        for (i, o) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("http://", "aHR0cDovLw==")] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn base64offset_matches_pysigma() {
        // pySigma documents `/bin/bash` as L2Jpbi9iYXNo, 9iaW4vYmFza, vYmluL2Jhc2
        assert_eq!(base64_offsets(b"/bin/bash"), vec!["L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"]);
    }

    #[test]
    fn windash_variants() {
        let v = windash("-enc").unwrap_or_default();
        assert_eq!(v.len(), 5);
        assert!(v.contains(&"/enc".to_string()) && v.contains(&"\u{2013}enc".to_string()));
        // Not at a word start: unchanged.
        assert_eq!(windash("a-b").unwrap_or_default(), vec!["a-b".to_string()]);
        assert_eq!(windash(" -a -b").map(|v| v.len()), Ok(25));
    }

    #[test]
    fn utf16_encodings() {
        assert_eq!(encode("cmd", Some(Encoding::Le)), vec![0x63, 0, 0x6d, 0, 0x64, 0]);
        assert_eq!(encode("cmd", Some(Encoding::Be)), vec![0, 0x63, 0, 0x6d, 0, 0x64]);
        assert_eq!(encode("cmd", Some(Encoding::Bom)), vec![0xFF, 0xFE, 0x63, 0, 0x6d, 0, 0x64, 0]);
    }
}
