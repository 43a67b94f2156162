//! Required literals: byte strings an event's raw JSON must contain for an expression to match.
//!
//! Like ripgrep's literal extraction for regexes, this lets the engine scan raw event bytes for a
//! handful of needles and parse only the events that contain one. The extraction is conservative:
//! whenever a predicate could match a value whose JSON text does not contain a fixed string
//! (numbers, CIDR blocks, dates, negations, non-ASCII case folding), it answers [`Needles::Any`].
//!
//! Needles are written as they appear inside a JSON string (JSON-escaped, so `C:\Users` becomes
//! `C:\\Users`). JSON allows other spellings of the same text (`\u0041`, `\/`); the engine treats
//! any event containing such an escape as a candidate, so escapes never cause a miss.

use crate::expr::{Expr, IpPred, Pred, TypedPreds};
use crate::glob::GlobToken;
use std::net::IpAddr;

/// One string to look for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Needle {
    /// JSON-escaped text.
    pub text: String,
    /// Compare ASCII letters case-insensitively.
    pub case_insensitive: bool,
}

/// What an event must contain to possibly match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needles {
    /// No usable literal: every event is a candidate.
    Any,
    /// At least one of these (an empty list means the expression can never match).
    AnyOf(Vec<Needle>),
}

fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or("").to_string()
}

fn needle(s: &str, case_insensitive: bool) -> Needles {
    if s.is_empty() || (case_insensitive && !s.is_ascii()) {
        return Needles::Any;
    }
    Needles::AnyOf(vec![Needle { text: json_escape(s), case_insensitive }])
}

fn looks_numeric(s: &str) -> bool {
    s.trim().parse::<f64>().is_ok()
}

fn longest_literal(tokens: &[GlobToken]) -> Option<&str> {
    tokens
        .iter()
        .filter_map(|t| if let GlobToken::Lit(l) = t { Some(l.as_str()) } else { None })
        .max_by_key(|l| l.len())
}

impl Pred {
    /// Needles for one value-level predicate.
    pub fn needles(&self) -> Needles {
        match self {
            Pred::StrEq { value, case_insensitive } => {
                if looks_numeric(value) || value == "true" || value == "false" {
                    // The document may hold a JSON number or boolean spelled differently.
                    Needles::Any
                } else {
                    needle(value, *case_insensitive)
                }
            }
            Pred::StrGlob(g) => match longest_literal(g.tokens()) {
                Some(l) => needle(l, g.is_case_insensitive()),
                None => Needles::Any,
            },
            Pred::Ip(IpPred::Eq(IpAddr::V4(v4))) => ipv4_needles(*v4),
            Pred::Ip(IpPred::Eq(IpAddr::V6(v6))) => match v6.to_ipv4_mapped() {
                Some(v4) => ipv4_needles(v4),
                None => ipv6_needles(*v6),
            },
            Pred::TextAny(tokens) => {
                let mut all = Vec::new();
                for t in tokens {
                    match needle(t, true) {
                        Needles::AnyOf(mut n) => all.append(&mut n),
                        Needles::Any => return Needles::Any,
                    }
                }
                Needles::AnyOf(all)
            }
            Pred::TextPhrase(tokens) => match tokens.iter().max_by_key(|t| t.len()) {
                Some(t) => needle(t, true),
                None => Needles::AnyOf(vec![]),
            },
            Pred::TextGlob(g) => match longest_literal(g.tokens()) {
                Some(l) => needle(l, true),
                None => Needles::Any,
            },
            Pred::AnyOf(preds) => union(preds.iter().map(Pred::needles)),
            Pred::StrRange(_)
            | Pred::VersionRange(_)
            | Pred::NumEq { .. }
            | Pred::NumRange(_)
            | Pred::BoolEq(_)
            | Pred::Ip(_)
            | Pred::DateRange { .. } => Needles::Any,
        }
    }
}

/// Every spelling of an IPv4 address that Elasticsearch's `ip` type equates with it contains its
/// dotted quad (`169.254.169.254`, `::ffff:169.254.169.254`) or, for IPv4-mapped IPv6 written in
/// hex, its two 16-bit groups (`::ffff:a9fe:a9fe`, any case, optional leading zeros).
fn ipv4_needles(v4: std::net::Ipv4Addr) -> Needles {
    let o = v4.octets();
    let g1 = u16::from_be_bytes([o[0], o[1]]);
    let g2 = u16::from_be_bytes([o[2], o[3]]);
    let forms = |g: u16| -> Vec<String> {
        let min = format!("{g:x}");
        (min.len()..=4).map(|w| format!("{g:0w$x}")).collect()
    };
    let mut out = vec![Needle { text: v4.to_string(), case_insensitive: false }];
    for a in forms(g1) {
        for b in forms(g2) {
            out.push(Needle { text: format!("{a}:{b}"), case_insensitive: true });
        }
    }
    Needles::AnyOf(out)
}

/// Needles of an `and`: the most selective part's (any part must match, so any part's needles
/// are required; one that can never match makes the whole never match).
pub fn conjunction(parts: impl IntoIterator<Item = Needles>) -> Needles {
    let mut best: Option<Vec<Needle>> = None;
    for part in parts {
        if let Needles::AnyOf(n) = part {
            if n.is_empty() {
                return Needles::AnyOf(n);
            }
            if best.as_ref().is_none_or(|b| score(&n) > score(b)) {
                best = Some(n);
            }
        }
    }
    best.map_or(Needles::Any, Needles::AnyOf)
}

/// Needles of an `or`: the union (any part without needles makes the whole need none).
pub fn disjunction(parts: impl IntoIterator<Item = Needles>) -> Needles {
    union(parts)
}

/// Every spelling of an IPv6 address contains each of its first six 16-bit groups that is not
/// zero, in hex without leading zeros (padding only adds zeros on the left; the last two groups
/// may be written as a dotted quad, zero groups may be compressed away). The longest is used.
fn ipv6_needles(v6: std::net::Ipv6Addr) -> Needles {
    let groups = v6.segments();
    match groups[..6].iter().filter(|g| **g != 0).map(|g| format!("{g:x}")).max_by_key(|s| s.len()) {
        Some(g) => Needles::AnyOf(vec![Needle { text: g, case_insensitive: true }]),
        None => Needles::Any,
    }
}

fn union(parts: impl IntoIterator<Item = Needles>) -> Needles {
    let mut all = Vec::new();
    for p in parts {
        match p {
            Needles::Any => return Needles::Any,
            Needles::AnyOf(mut n) => all.append(&mut n),
        }
    }
    all.sort();
    all.dedup();
    Needles::AnyOf(all)
}

fn typed_needles(t: &TypedPreds) -> Needles {
    if t.exists {
        return Needles::Any;
    }
    union(t.preds.iter().filter_map(|(_, p)| p.as_ref().map(Pred::needles)))
}

/// Values so common in ECS events that scanning for them selects almost everything.
const COMMON: &[&str] = &[
    "network", "process", "file", "start", "end", "info", "connection", "protocol", "linux", "windows", "macos",
    "true", "false", "tcp", "udp", "ipv4", "ipv6", "event", "host", "http", "https", "allowed", "success", "get",
];

/// How rare a needle is likely to be in event text: longer, and with digits or punctuation, is rarer.
fn weight(n: &Needle) -> usize {
    if COMMON.iter().any(|c| c.eq_ignore_ascii_case(&n.text)) {
        return 1;
    }
    n.text.len() + n.text.bytes().filter(|b| !b.is_ascii_alphabetic()).count()
}

/// Selectivity score of a needle set: its weakest needle decides, then fewer needles win.
fn score(n: &[Needle]) -> (usize, std::cmp::Reverse<usize>) {
    (n.iter().map(weight).min().unwrap_or(usize::MAX), std::cmp::Reverse(n.len()))
}

impl Expr {
    /// What an event must contain for this expression to possibly match.
    pub fn needles(&self) -> Needles {
        match self {
            Expr::Const(true) => Needles::Any,
            Expr::Const(false) => Needles::AnyOf(vec![]),
            Expr::And(items) => conjunction(items.iter().map(Expr::needles)),
            Expr::Or(items) => disjunction(items.iter().map(Expr::needles)),
            Expr::Not(_) | Expr::Exists(_) => Needles::Any,
            Expr::Match(_, p) => p.needles(),
            Expr::MatchGlob { typed, .. } | Expr::AnyField(typed) => typed_needles(typed),
            Expr::Nested(_, inner) => inner.needles(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glob::Glob;
    use imdsguard_ecs::FieldPath;

    fn m(p: Pred) -> Expr {
        Expr::Match(FieldPath::new("f"), p)
    }
    fn texts(n: Needles) -> Option<Vec<String>> {
        match n {
            Needles::Any => None,
            Needles::AnyOf(v) => Some(v.into_iter().map(|n| n.text).collect()),
        }
    }

    #[test]
    fn and_picks_most_selective_or_unions() {
        let e = Expr::And(vec![
            m(Pred::StrEq { value: "network".into(), case_insensitive: false }),
            m(Pred::NumEq { value: 80.0, integer: true }),
            Expr::Or(vec![
                m(Pred::Ip(IpPred::Eq("169.254.169.254".parse().unwrap()))),
                m(Pred::StrEq { value: "169.254.169.254".into(), case_insensitive: false }),
            ]),
        ]);
        assert_eq!(texts(e.needles()), Some(vec!["169.254.169.254".into(), "a9fe:a9fe".into()]));
        assert_eq!(texts(Expr::Not(Box::new(e)).needles()), None);
    }

    #[test]
    fn ipv6_needles_survive_every_spelling() {
        let n = texts(m(Pred::Ip(IpPred::Eq("fd00:ec2::254".parse().unwrap()))).needles());
        assert_eq!(n, Some(vec!["fd00".to_string()]));
        for spelling in ["fd00:ec2::254", "FD00:0EC2:0000:0000:0000:0000:0000:0254", "fd00:ec2:0:0:0:0:0.0.2.84"] {
            assert!(spelling.to_ascii_lowercase().contains("fd00"), "{spelling}");
        }
        assert_eq!(texts(m(Pred::Ip(IpPred::Eq("::1".parse().unwrap()))).needles()), None);
    }

    #[test]
    fn escapes_and_globs() {
        let g = Glob::parse("C:\\\\Users\\\\*\\\\AppData*", false, false);
        assert_eq!(texts(m(Pred::StrGlob(g)).needles()), Some(vec!["C:\\\\Users\\\\".into()]));
        assert_eq!(texts(m(Pred::StrGlob(Glob::parse("*", false, false))).needles()), None);
        assert_eq!(texts(m(Pred::StrEq { value: "80".into(), case_insensitive: false }).needles()), None);
        assert_eq!(texts(Expr::Const(false).needles()), Some(vec![]));
    }
}
