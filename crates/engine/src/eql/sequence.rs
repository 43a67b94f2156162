//! EQL sequences with Elasticsearch's semantics.
//!
//! Events that match any step (or `until`) are taken in order of timestamp, then tiebreaker, then
//! input order. Per stage and join key only the most recent partial sequence is kept (a newer
//! start replaces an older one, as Elasticsearch's sequence matcher does); an event matching
//! stage `i` extends the partial sequence of stage `i - 1` with the same key if it is within
//! `maxspan` of the sequence's first event; `until` with a key discards that key's partial
//! sequences. Stages are tried from the last to the first so that one event never fills two
//! stages of the same sequence. Partial sequences are bounded by [`SequenceLimits`]; what is
//! dropped is counted.

use super::expr::EqlExpr;
use imdsguard_ecs::Document;
use std::collections::HashMap;

/// One step of a sequence (after `with runs=N` expansion).
#[derive(Debug, Clone)]
pub struct StepSpec {
    pub filter: EqlExpr,
    /// Join keys: the sequence's `by` followed by the step's own `by`.
    pub keys: Vec<EqlExpr>,
    /// `![...]`: a missing event (not supported yet by the matcher).
    pub missing: bool,
}

#[derive(Debug, Clone)]
pub struct SequenceSpec {
    pub steps: Vec<StepSpec>,
    pub until: Option<StepSpec>,
    pub maxspan_ms: Option<i64>,
}

/// Bounds on the matcher's state.
#[derive(Debug, Clone, Copy)]
pub struct SequenceLimits {
    /// Most partial sequences kept at once; beyond it the oldest are dropped.
    pub max_partial: usize,
}

impl Default for SequenceLimits {
    fn default() -> Self {
        SequenceLimits { max_partial: 100_000 }
    }
}

/// An event offered to the matcher: its position in the caller's list and its order keys.
#[derive(Debug, Clone, Copy)]
pub struct Ordered {
    pub index: usize,
    pub timestamp: i64,
    pub tiebreaker: f64,
    pub seq: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SequenceStats {
    pub completed: u64,
    /// Partial sequences dropped because they outlived `maxspan`.
    pub expired: u64,
    /// Partial sequences dropped by `until`.
    pub until_dropped: u64,
    /// Partial sequences dropped to respect `max_partial`.
    pub evicted: u64,
}

/// Upper bound on the join-key combinations taken from one event (multi-valued keys multiply).
pub const MAX_KEY_COMBINATIONS: usize = 256;

/// The join keys of an event for a step. A multi-valued key yields one join key per value (the
/// Cartesian product over all keys, duplicates removed); an absent `?optional` key is `null`; an
/// event missing a non-optional key joins nothing (empty result).
pub fn join_keys(keys: &[EqlExpr], doc: &dyn Document) -> Vec<Vec<Option<String>>> {
    use super::value::Scalar;
    let mut combos: Vec<Vec<Option<String>>> = vec![Vec::new()];
    for k in keys {
        let mut vals: Vec<Option<String>> = k
            .values(doc)
            .into_iter()
            .filter_map(|v| match v {
                Scalar::Null => None,
                Scalar::Str(s) => Some(Some(s)),
                Scalar::Int(i) => Some(Some(i.to_string())),
                Scalar::Float(f) => Some(Some(f.to_string())),
                Scalar::Bool(b) => Some(Some(b.to_string())),
            })
            .collect();
        vals.sort();
        vals.dedup();
        if vals.is_empty() {
            match k {
                EqlExpr::Field { optional: true, .. } => vals.push(None),
                _ => return Vec::new(),
            }
        }
        let mut next = Vec::new();
        for c in &combos {
            for v in &vals {
                if next.len() >= MAX_KEY_COMBINATIONS {
                    break;
                }
                let mut c = c.clone();
                c.push(v.clone());
                next.push(c);
            }
        }
        combos = next;
    }
    combos
}

struct Partial {
    events: Vec<usize>,
    start: i64,
    born: u64,
}

/// Run a sequence over events (already filtered to those that match some step or `until`, in
/// any order); returns completed sequences as lists of indices into `docs`, in completion order.
pub fn run(
    spec: &SequenceSpec,
    docs: &[&dyn Document],
    mut order: Vec<Ordered>,
    limits: SequenceLimits,
) -> (Vec<Vec<usize>>, SequenceStats) {
    order.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.tiebreaker.total_cmp(&b.tiebreaker)).then(a.seq.cmp(&b.seq)));
    let n = spec.steps.len();
    let mut stages: Vec<HashMap<Vec<Option<String>>, Partial>> = (0..n).map(|_| HashMap::new()).collect();
    let mut out = Vec::new();
    let mut stats = SequenceStats::default();
    let mut live = 0usize;
    let mut born = 0u64;
    for ev in &order {
        let doc = docs[ev.index];
        for i in (0..n).rev() {
            let step = &spec.steps[i];
            if !step.filter.matches(doc) {
                continue;
            }
            for key in join_keys(&step.keys, doc) {
                let partial = if i == 0 {
                    born += 1;
                    Some(Partial { events: vec![ev.index], start: ev.timestamp, born })
                } else {
                    match stages[i - 1].remove(&key) {
                        Some(mut p) => {
                            live -= 1;
                            if spec.maxspan_ms.is_some_and(|m| ev.timestamp.saturating_sub(p.start) > m) {
                                stats.expired += 1;
                                None
                            } else {
                                p.events.push(ev.index);
                                Some(p)
                            }
                        }
                        None => None,
                    }
                };
                let Some(p) = partial else { continue };
                if i == n - 1 {
                    stats.completed += 1;
                    out.push(p.events);
                } else {
                    if stages[i].insert(key, p).is_none() {
                        live += 1;
                    }
                    if live > limits.max_partial {
                        // Evict the oldest partial sequence.
                        let oldest = stages
                            .iter()
                            .enumerate()
                            .flat_map(|(s, m)| m.iter().map(move |(k, p)| (p.born, s, k.clone())))
                            .min_by_key(|(b, _, _)| *b);
                        if let Some((_, s, k)) = oldest {
                            stages[s].remove(&k);
                            live -= 1;
                            stats.evicted += 1;
                        }
                    }
                }
            }
        }
        // `until` closes the key's pending sequences (after this event had its chance to complete one).
        if let Some(until) = &spec.until {
            if until.filter.matches(doc) {
                for key in join_keys(&until.keys, doc) {
                    for stage in stages.iter_mut() {
                        if stage.remove(&key).is_some() {
                            stats.until_dropped += 1;
                            live -= 1;
                        }
                    }
                }
            }
        }
    }
    (out, stats)
}
