//! The raw-byte prefilter: skip parsing events that cannot match any rule.
//!
//! Each rule yields [`Needles`]: strings one of which the event's JSON text must contain for the
//! rule to possibly match (see `imdsguard_ir::literals`). The union over all rules is searched with
//! SIMD `memmem` (or Aho-Corasick for many needles); case-insensitive needles are searched in a
//! lower-cased copy of the event. An event is a candidate when
//! - some rule has no usable literal ([`Needles::Any`]), or
//! - a needle occurs in its bytes, or
//! - it contains a JSON escape that could spell a needle differently (`\uXXXX`, `\/`).
//!
//! A differential test (prefilter on vs off) guards the claim that this never loses an alert.

use aho_corasick::{AhoCorasick, MatchKind};
use imdsguard_ir::literals::{Needle, Needles};
use memchr::memmem::Finder;

/// Up to this many needles are searched one by one with SIMD `memmem`; more use the SIMD
/// "Teddy" packed searcher (up to 64 needles), then an Aho-Corasick automaton. On event-sized
/// haystacks a general automaton was ~10x slower than either (see docs/performance.md).
const MAX_FINDERS: usize = 2;

#[derive(Debug, Clone)]
enum Searcher {
    Finders(Vec<Finder<'static>>),
    Packed(aho_corasick::packed::Searcher),
    Automaton(AhoCorasick),
}

impl Searcher {
    fn new(pats: &[Vec<u8>]) -> Option<Searcher> {
        if pats.is_empty() {
            return None;
        }
        if pats.len() <= MAX_FINDERS {
            return Some(Searcher::Finders(pats.iter().map(|p| Finder::new(p).into_owned()).collect()));
        }
        let mut builder = aho_corasick::packed::Config::new().builder();
        for p in pats {
            builder.add(p);
        }
        if let Some(s) = builder.build() {
            return Some(Searcher::Packed(s));
        }
        AhoCorasick::builder().match_kind(MatchKind::LeftmostFirst).build(pats).ok().map(Searcher::Automaton)
    }

    fn is_match(&self, hay: &[u8]) -> bool {
        match self {
            Searcher::Finders(fs) => fs.iter().any(|f| f.find(hay).is_some()),
            Searcher::Packed(s) => s.find(hay).is_some(),
            Searcher::Automaton(a) => a.is_match(hay),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Prefilter {
    always: bool,
    cs: Option<Searcher>,
    /// Case-insensitive needles, lower-cased, searched in a lower-cased copy of the event.
    ci: Option<Searcher>,
    needles: Vec<Needle>,
    scratch: Vec<u8>,
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
        // A case-insensitive needle without ASCII letters is the same as a case-sensitive one.
        let is_ci = |n: &&Needle| n.case_insensitive && n.text.bytes().any(|b| b.is_ascii_alphabetic());
        let mut cs_pats: Vec<Vec<u8>> = needles.iter().filter(|n| !is_ci(n)).map(|n| n.text.as_bytes().to_vec()).collect();
        let mut ci_pats: Vec<Vec<u8>> = needles.iter().filter(is_ci).map(|n| n.text.to_ascii_lowercase().into_bytes()).collect();
        for v in [&mut cs_pats, &mut ci_pats] {
            v.sort();
            v.dedup();
        }
        let cs = Searcher::new(&cs_pats);
        let ci = Searcher::new(&ci_pats);
        // If a searcher failed to build, fall back to parsing everything.
        if (cs.is_none() && !cs_pats.is_empty()) || (ci.is_none() && !ci_pats.is_empty()) {
            return Prefilter::disabled();
        }
        Prefilter { always: false, cs, ci, needles, scratch: Vec::new() }
    }

    /// A prefilter that lets every event through.
    pub fn disabled() -> Prefilter {
        Prefilter { always: true, cs: None, ci: None, needles: Vec::new(), scratch: Vec::new() }
    }

    pub fn is_disabled(&self) -> bool {
        self.always
    }

    /// The needles in use.
    pub fn needles(&self) -> &[Needle] {
        &self.needles
    }

    /// Whether the event could match some rule.
    pub fn is_candidate(&mut self, raw: &[u8]) -> bool {
        if self.always {
            return true;
        }
        if self.cs.as_ref().is_some_and(|s| s.is_match(raw)) {
            return true;
        }
        if let Some(ci) = &self.ci {
            self.scratch.clear();
            self.scratch.extend(raw.iter().map(u8::to_ascii_lowercase));
            if ci.is_match(&self.scratch) {
                return true;
            }
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
        let mut p = pf(&[("169.254.169.254", false), ("a9fe:a9fe", true)]);
        assert!(p.is_candidate(br#"{"destination":{"ip":"169.254.169.254"}}"#));
        assert!(p.is_candidate(br#"{"ip":"::FFFF:A9fe:a9FE"}"#));
        assert!(!p.is_candidate(br#"{"ip":"10.0.0.1"}"#));
        assert!(p.is_candidate(br#"{"ip":"169.254.169.\u0032\u0035\u0034"}"#));
        assert!(p.is_candidate(br#"{"u":"http:\/\/x"}"#));
        assert!(!p.is_candidate(br#"{"p":"C:\\users\\x"}"#), "escaped backslash followed by u is not an escape");
        assert!(!p.is_candidate(br#"{"p":"a\\"}"#));
    }

    #[test]
    fn any_rule_disables() {
        let mut p = Prefilter::new([Needles::AnyOf(vec![]), Needles::Any]);
        assert!(p.is_candidate(b"{}"));
        let mut never = Prefilter::new([Needles::AnyOf(vec![])]);
        assert!(!never.is_candidate(b"{}"));
    }
}
