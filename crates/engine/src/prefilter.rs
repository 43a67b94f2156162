//! The raw-byte prefilter: skip parsing events that cannot match any rule, and skip the rules an
//! event cannot match.
//!
//! Each rule yields [`Needles`]: strings one of which the event's JSON text must contain for the
//! rule to possibly match (see `imdsguard_ir::literals`). The union over all rules is searched with
//! SIMD `memmem` (or Aho-Corasick for many needles); case-insensitive needles are searched in a
//! lower-cased copy of the event. An event is a candidate when
//! - some rule has no usable literal ([`Needles::Any`]), or
//! - a needle occurs in its bytes, or
//! - it contains a JSON escape that could spell a needle differently (`\uXXXX`, `\/`).
//!
//! Per rule: for a candidate event without such escapes, an overlapping Aho-Corasick pass finds
//! every needle present, and only the rules owning one of them (plus the rules without needles)
//! are evaluated ([`Prefilter::gate`]). The claim is the same one per rule: a rule whose needles
//! are all absent cannot match. So one rule without literals no longer makes every rule run on
//! every event.
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

/// Per-rule gating: which rules each needle stands for.
#[derive(Debug, Clone)]
struct Gating {
    /// Overlapping automata over the case-sensitive needles and the lower-cased
    /// case-insensitive ones (pattern ids index `cs_rules` / `ci_rules`).
    cs: Option<AhoCorasick>,
    ci: Option<AhoCorasick>,
    cs_rules: Vec<Vec<u32>>,
    ci_rules: Vec<Vec<u32>>,
    /// Rules evaluated whatever the needles: those without needles ([`Needles::Any`]).
    base: Vec<bool>,
}

#[derive(Debug, Clone)]
pub struct Prefilter {
    always: bool,
    /// Searchers failed to build: every event and every rule.
    broken: bool,
    cs: Option<Searcher>,
    /// Case-insensitive needles, lower-cased, searched in a lower-cased copy of the event.
    ci: Option<Searcher>,
    needles: Vec<Needle>,
    scratch: Vec<u8>,
    gating: Option<Gating>,
    /// The rules the last candidate event can match (valid while `gate_set`).
    gate: Vec<bool>,
    gate_set: bool,
}

impl Prefilter {
    /// The needles of each rule, in rule order.
    pub fn new(per_rule: impl IntoIterator<Item = Needles>) -> Prefilter {
        let per_rule: Vec<Needles> = per_rule.into_iter().collect();
        let always = per_rule.iter().any(|n| matches!(n, Needles::Any));
        let mut needles: Vec<Needle> = per_rule
            .iter()
            .flat_map(|n| match n {
                Needles::Any => Vec::new(),
                Needles::AnyOf(v) => v.clone(),
            })
            .collect();
        needles.sort();
        needles.dedup();
        // A case-insensitive needle without ASCII letters is the same as a case-sensitive one.
        let is_ci = |n: &Needle| n.case_insensitive && n.text.bytes().any(|b| b.is_ascii_alphabetic());
        let pattern = |n: &Needle| if is_ci(n) { n.text.to_ascii_lowercase().into_bytes() } else { n.text.as_bytes().to_vec() };
        let mut cs_pats: Vec<Vec<u8>> = needles.iter().filter(|n| !is_ci(n)).map(pattern).collect();
        let mut ci_pats: Vec<Vec<u8>> = needles.iter().filter(|n| is_ci(n)).map(pattern).collect();
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
        // Gating pays off when some rules can be skipped: more than one rule, some with needles.
        let gated = per_rule.len() > 1 && per_rule.iter().any(|n| matches!(n, Needles::AnyOf(_)));
        let gating = if gated {
            let mut cs_rules = vec![Vec::new(); cs_pats.len()];
            let mut ci_rules = vec![Vec::new(); ci_pats.len()];
            let mut base = vec![false; per_rule.len()];
            for (r, n) in per_rule.iter().enumerate() {
                match n {
                    Needles::Any => base[r] = true,
                    Needles::AnyOf(v) => {
                        for needle in v {
                            let p = pattern(needle);
                            let (pats, rules) = if is_ci(needle) { (&ci_pats, &mut ci_rules) } else { (&cs_pats, &mut cs_rules) };
                            if let Ok(i) = pats.binary_search(&p) {
                                if rules[i].last() != Some(&(r as u32)) {
                                    rules[i].push(r as u32);
                                }
                            }
                        }
                    }
                }
            }
            let automaton = |pats: &[Vec<u8>]| -> Result<Option<AhoCorasick>, ()> {
                if pats.is_empty() {
                    return Ok(None);
                }
                AhoCorasick::builder().match_kind(MatchKind::Standard).build(pats).map(Some).map_err(|_| ())
            };
            match (automaton(&cs_pats), automaton(&ci_pats)) {
                (Ok(cs), Ok(ci)) => Some(Gating { cs, ci, cs_rules, ci_rules, base }),
                // Without the automata every candidate runs every rule, as before gating.
                _ => None,
            }
        } else {
            None
        };
        let n = per_rule.len();
        Prefilter { always, broken: false, cs, ci, needles, scratch: Vec::new(), gating, gate: vec![false; n], gate_set: false }
    }

    /// A prefilter that lets every event through.
    pub fn disabled() -> Prefilter {
        Prefilter {
            always: true,
            broken: true,
            cs: None,
            ci: None,
            needles: Vec::new(),
            scratch: Vec::new(),
            gating: None,
            gate: Vec::new(),
            gate_set: false,
        }
    }

    /// Whether every event is a candidate (some rule has no needles, or the searchers could not
    /// be built). Rules may still be skipped per event ([`Prefilter::gate`]).
    pub fn is_disabled(&self) -> bool {
        self.always
    }

    /// The needles in use.
    pub fn needles(&self) -> &[Needle] {
        &self.needles
    }

    /// Whether the event could match some rule. For a candidate, also decides which rules it
    /// could match ([`Prefilter::gate`]), until the next call or [`Prefilter::clear_gate`].
    pub fn is_candidate(&mut self, raw: &[u8]) -> bool {
        self.gate_set = false;
        if self.broken {
            return true;
        }
        let ambiguous = has_ambiguous_escape(raw);
        let mut lowered = false;
        if !self.always && !ambiguous {
            let mut hit = self.cs.as_ref().is_some_and(|s| s.is_match(raw));
            if !hit {
                if let Some(ci) = &self.ci {
                    self.scratch.clear();
                    self.scratch.extend(raw.iter().map(u8::to_ascii_lowercase));
                    lowered = true;
                    hit = ci.is_match(&self.scratch);
                }
            }
            if !hit {
                return false;
            }
        }
        // An escape could spell any needle: every rule may match.
        if ambiguous {
            return true;
        }
        if let Some(g) = &self.gating {
            self.gate.copy_from_slice(&g.base);
            if let Some(ac) = &g.cs {
                for m in ac.find_overlapping_iter(raw) {
                    for r in &g.cs_rules[m.pattern().as_usize()] {
                        self.gate[*r as usize] = true;
                    }
                }
            }
            if let Some(ac) = &g.ci {
                if !lowered {
                    self.scratch.clear();
                    self.scratch.extend(raw.iter().map(u8::to_ascii_lowercase));
                }
                for m in ac.find_overlapping_iter(&self.scratch) {
                    for r in &g.ci_rules[m.pattern().as_usize()] {
                        self.gate[*r as usize] = true;
                    }
                }
            }
            self.gate_set = true;
        }
        true
    }

    /// For the event of the last [`Prefilter::is_candidate`] call: per rule (in the order given
    /// to [`Prefilter::new`]), whether it could match. `None`: every rule could.
    pub fn gate(&self) -> Option<&[bool]> {
        self.gate_set.then_some(self.gate.as_slice())
    }

    /// Forget the last event's gate (the next evaluated event runs every rule unless it goes
    /// through [`Prefilter::is_candidate`] first).
    pub fn clear_gate(&mut self) {
        self.gate_set = false;
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

    #[test]
    fn gates_rules_by_their_own_needles() {
        let n = |t: &str, ci: bool| Needle { text: t.to_string(), case_insensitive: ci };
        let mut p = Prefilter::new([
            Needles::AnyOf(vec![n("169.254.169.254", false)]),
            Needles::AnyOf(vec![n("Security-Credentials", true), n("token", true)]),
            Needles::Any,
            Needles::AnyOf(vec![]),
            Needles::AnyOf(vec![n("169.254.169.254", false), n("curl", false)]),
        ]);
        assert!(p.is_disabled(), "a rule without needles makes every event a candidate");
        let gate = |p: &mut Prefilter, raw: &[u8]| {
            assert!(p.is_candidate(raw));
            p.gate().map(<[bool]>::to_vec)
        };
        assert_eq!(gate(&mut p, br#"{"ip":"10.0.0.1"}"#), Some(vec![false, false, true, false, false]));
        assert_eq!(gate(&mut p, br#"{"ip":"169.254.169.254"}"#), Some(vec![true, false, true, false, true]));
        assert_eq!(gate(&mut p, br#"{"p":"/latest/SECURITY-credentials/","n":"curl"}"#), Some(vec![false, true, true, false, true]));
        // Overlapping needles are all found.
        assert_eq!(gate(&mut p, br#"{"p":"curl169.254.169.254token"}"#), Some(vec![true, true, true, false, true]));
        // An escape could spell any needle: no gate, every rule runs.
        assert_eq!(gate(&mut p, br#"{"ip":"169.254.169.\u0032\u0035\u0034"}"#), None);
        p.clear_gate();
        assert_eq!(p.gate(), None);
        // Without a needle-less rule, events with no needle are not candidates at all.
        let mut q = Prefilter::new([Needles::AnyOf(vec![n("abc", false)]), Needles::AnyOf(vec![n("xyz", true)])]);
        assert!(!q.is_candidate(b"{}"));
        assert_eq!(q.gate(), None);
        assert_eq!(gate(&mut q, br#"{"a":"XYZ"}"#), Some(vec![false, true]));
    }
}
