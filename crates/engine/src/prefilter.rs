//! The raw-byte prefilter: skip parsing events that cannot match any rule.
//!
//! Each rule yields [`Needles`]: strings one of which the event's JSON text must contain for the
//! rule to possibly match (see `imdsguard_ir::literals`). The union over all rules is compiled into
//! Aho-Corasick automata. An event is a candidate when
//! - some rule has no usable literal ([`Needles::Any`]), or
//! - a needle occurs in its bytes, or
//! - it contains a JSON escape that could spell a needle differently (`\uXXXX`, `\/`).
//!
//! A differential test (prefilter on vs off) guards the claim that this never loses an alert.

use aho_corasick::AhoCorasick;
use imdsguard_ir::literals::{Needle, Needles};

#[derive(Debug, Clone)]
pub struct Prefilter {
    always: bool,
    cs: Option<AhoCorasick>,
    ci: Option<AhoCorasick>,
    needles: Vec<Needle>,
}

impl Prefilter {
    /// Union of the needles of all rules.
    pub fn new(per_rule: impl IntoIterator<Item = Needles>) -> Prefilter {
        let mut always = false;
        let mut needles = Vec::new();
        for n in per_rule {
            match n {
                Needles::Any => always = true,
                Needles::AnyOf(mut v) => needles.append(&mut v),
            }
        }
        needles.sort();
        needles.dedup();
        if always {
            return Prefilter::disabled();
        }
        let build = |ci: bool| {
            let pats: Vec<&str> =
                needles.iter().filter(|n| n.case_insensitive == ci).map(|n| n.text.as_str()).collect();
            if pats.is_empty() {
                return None;
            }
            AhoCorasick::builder().ascii_case_insensitive(ci).build(pats).ok()
        };
        let cs = build(false);
        let ci = build(true);
        // If an automaton failed to build, fall back to parsing everything.
        let failed = (cs.is_none() && needles.iter().any(|n| !n.case_insensitive))
            || (ci.is_none() && needles.iter().any(|n| n.case_insensitive));
        if failed {
            return Prefilter::disabled();
        }
        Prefilter { always: false, cs, ci, needles }
    }

    /// A prefilter that lets every event through.
    pub fn disabled() -> Prefilter {
        Prefilter { always: true, cs: None, ci: None, needles: Vec::new() }
    }

    pub fn is_disabled(&self) -> bool {
        self.always
    }

    /// The needles in use.
    pub fn needles(&self) -> &[Needle] {
        &self.needles
    }

    /// Whether the event could match some rule.
    pub fn is_candidate(&self, raw: &[u8]) -> bool {
        if self.always {
            return true;
        }
        if self.cs.as_ref().is_some_and(|a| a.is_match(raw)) || self.ci.as_ref().is_some_and(|a| a.is_match(raw)) {
            return true;
        }
        has_ambiguous_escape(raw)
    }
}

/// Whether the bytes contain `\u` or `\/` escapes (which could spell a needle differently).
pub fn has_ambiguous_escape(raw: &[u8]) -> bool {
    let mut from = 0;
    while let Some(off) = memchr::memchr(b'\\', &raw[from..]) {
        let i = from + off;
        match raw.get(i + 1) {
            Some(b'u') | Some(b'/') => return true,
            Some(_) => from = i + 2,
            None => return false,
        }
        if from >= raw.len() {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf(needles: &[(&str, bool)]) -> Prefilter {
        Prefilter::new([Needles::AnyOf(
            needles.iter().map(|(t, ci)| Needle { text: t.to_string(), case_insensitive: *ci }).collect(),
        )])
    }

    #[test]
    fn needles_and_escapes() {
        let p = pf(&[("169.254.169.254", false), ("ffff:", true)]);
        assert!(p.is_candidate(br#"{"destination":{"ip":"169.254.169.254"}}"#));
        assert!(p.is_candidate(br#"{"ip":"::FFFF:a9fe:a9fe"}"#));
        assert!(!p.is_candidate(br#"{"ip":"10.0.0.1"}"#));
        assert!(p.is_candidate(br#"{"ip":"169.254.169.\u0032\u0035\u0034"}"#));
        assert!(p.is_candidate(br#"{"u":"http:\/\/x"}"#));
        assert!(!p.is_candidate(br#"{"p":"C:\\users\\x"}"#), "escaped backslash followed by u is not an escape");
        assert!(!p.is_candidate(br#"{"p":"a\\"}"#));
    }

    #[test]
    fn any_rule_disables() {
        let p = Prefilter::new([Needles::AnyOf(vec![]), Needles::Any]);
        assert!(p.is_candidate(b"{}"));
        let never = Prefilter::new([Needles::AnyOf(vec![])]);
        assert!(!never.is_candidate(b"{}"));
    }
}
