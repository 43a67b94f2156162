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
//!
//! Missing events (`![...]`) follow Elasticsearch: the present steps are matched as above with
//! the missing steps skipped (stage `i` extends the closest present stage before it), and each
//! completed sequence is then checked against the events matching the missing steps, with the
//! sequence's join key (the missing step's own keys compared with the sequence's key values).
//! Times compare in milliseconds, strictly:
//!
//! - a missing step between two present steps rejects the sequence if one of its events lies
//!   strictly between the timestamps of the present steps around it;
//! - leading missing steps (before the first present step) look for their latest event strictly
//!   before the sequence's first event, trailing ones (after the last present step) for their
//!   earliest event strictly after the sequence's last event;
//! - with only leading steps the sequence is kept unless such an event lies within `maxspan` of
//!   the sequence's last event; with only trailing steps, unless one lies within `maxspan` of its
//!   first event; with both, unless there is both a leading and a trailing event and the two are
//!   at most `maxspan` apart (some `maxspan` window around the sequence would then hold one of
//!   them wherever it is placed). "Within" means a distance of at most `maxspan`.
//!
//! A missing step contributes no event to the result: [`run`] returns the present events only,
//! in step order (use [`StepSpec::missing`] to put placeholders back).

use super::expr::EqlExpr;
use imdsguard_ecs::Document;
use std::collections::HashMap;

/// One step of a sequence (after `with runs=N` expansion).
#[derive(Debug, Clone)]
pub struct StepSpec {
    pub filter: EqlExpr,
    /// Join keys: the sequence's `by` followed by the step's own `by`.
    pub keys: Vec<EqlExpr>,
    /// `![...]`: a missing event (no event may match it, see the module documentation).
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
    /// Sequences whose present events all matched but which an event of a missing step rejected
    /// (not counted in `completed`).
    pub missing_rejected: u64,
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
    /// Timestamps of `events`.
    times: Vec<i64>,
    start: i64,
    born: u64,
}

type Key = Vec<Option<String>>;

/// Per step, for missing steps only: join key -> timestamps (ascending) of the events matching
/// the step with that key.
struct MissingIndex {
    steps: Vec<Option<HashMap<Key, Vec<i64>>>>,
}

impl MissingIndex {
    fn build(spec: &SequenceSpec, docs: &[&dyn Document], order: &[Ordered]) -> MissingIndex {
        let mut steps: Vec<Option<HashMap<Key, Vec<i64>>>> =
            spec.steps.iter().map(|st| st.missing.then(HashMap::new)).collect();
        for (i, step) in spec.steps.iter().enumerate() {
            let Some(map) = steps[i].as_mut() else { continue };
            for ev in order {
                let doc = docs[ev.index];
                if !step.filter.matches(doc) {
                    continue;
                }
                for key in join_keys(&step.keys, doc) {
                    let times = map.entry(key).or_default();
                    if times.last() != Some(&ev.timestamp) {
                        times.push(ev.timestamp);
                    }
                }
            }
        }
        MissingIndex { steps }
    }

    /// Whether the missing steps let a sequence of present events (at `times`, one per present
    /// step, in step order) with join key `key` stand (Elasticsearch's rules, module docs).
    fn allows(&self, spec: &SequenceSpec, key: &Key, times: &[i64]) -> bool {
        let n = spec.steps.len();
        // Timestamp of each present step; `None` for missing steps.
        let mut at: Vec<Option<i64>> = Vec::with_capacity(n);
        let mut next = times.iter();
        for st in &spec.steps {
            at.push(if st.missing { None } else { next.next().copied() });
        }
        let first = at.iter().flatten().next().copied();
        let last = at.iter().rev().flatten().next().copied();
        let (Some(first), Some(last)) = (first, last) else { return true };
        let mut leading_step = false;
        let mut trailing_step = false;
        let mut last_leading: Option<i64> = None;
        let mut first_trailing: Option<i64> = None;
        for i in 0..n {
            let Some(Some(map)) = self.steps.get(i) else { continue };
            let before = at[..i].iter().rev().flatten().next().copied();
            let after = at[i + 1..].iter().flatten().next().copied();
            let ts: &[i64] = map.get(key).map(Vec::as_slice).unwrap_or(&[]);
            match (before, after) {
                (Some(b), Some(a)) => {
                    let from = ts.partition_point(|t| *t <= b);
                    if ts.get(from).is_some_and(|t| *t < a) {
                        return false;
                    }
                }
                (None, _) => {
                    leading_step = true;
                    let k = ts.partition_point(|t| *t < first);
                    if k > 0 {
                        last_leading = last_leading.max(Some(ts[k - 1]));
                    }
                }
                (_, None) => {
                    trailing_step = true;
                    let k = ts.partition_point(|t| *t <= last);
                    if let Some(t) = ts.get(k) {
                        first_trailing = Some(first_trailing.map_or(*t, |f| f.min(*t)));
                    }
                }
            }
        }
        // Two instants farther apart than maxspan (an absent one is "far").
        let far = |from: Option<i64>, to: Option<i64>| match (from, to) {
            (Some(f), Some(t)) => spec.maxspan_ms.is_some_and(|m| t.saturating_sub(f) > m),
            _ => true,
        };
        match (leading_step, trailing_step) {
            (false, false) => true,
            (true, false) => far(last_leading, Some(last)),
            (false, true) => far(Some(first), first_trailing),
            (true, true) => far(last_leading, first_trailing),
        }
    }
}

/// Run a sequence over events (already filtered to those that match some step, missing ones
/// included, or `until`, in any order); returns completed sequences as lists of indices into
/// `docs`, in completion order, one per present (not missing) step.
pub fn run(
    spec: &SequenceSpec,
    docs: &[&dyn Document],
    mut order: Vec<Ordered>,
    limits: SequenceLimits,
) -> (Vec<Vec<usize>>, SequenceStats) {
    order.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.tiebreaker.total_cmp(&b.tiebreaker)).then(a.seq.cmp(&b.seq)));
    // Stages are the present steps; missing steps are checked once a sequence completes.
    let present: Vec<&StepSpec> = spec.steps.iter().filter(|st| !st.missing).collect();
    let missing = (present.len() < spec.steps.len()).then(|| MissingIndex::build(spec, docs, &order));
    let n = present.len();
    let mut stages: Vec<HashMap<Key, Partial>> = (0..n).map(|_| HashMap::new()).collect();
    let mut out = Vec::new();
    let mut stats = SequenceStats::default();
    let mut live = 0usize;
    let mut born = 0u64;
    for ev in &order {
        let doc = docs[ev.index];
        for i in (0..n).rev() {
            let step = present[i];
            if !step.filter.matches(doc) {
                continue;
            }
            for key in join_keys(&step.keys, doc) {
                let partial = if i == 0 {
                    born += 1;
                    Some(Partial { events: vec![ev.index], times: vec![ev.timestamp], start: ev.timestamp, born })
                } else {
                    match stages[i - 1].remove(&key) {
                        Some(mut p) => {
                            live -= 1;
                            if spec.maxspan_ms.is_some_and(|m| ev.timestamp.saturating_sub(p.start) > m) {
                                stats.expired += 1;
                                None
                            } else {
                                p.events.push(ev.index);
                                p.times.push(ev.timestamp);
                                Some(p)
                            }
                        }
                        None => None,
                    }
                };
                let Some(p) = partial else { continue };
                if i == n - 1 {
                    if missing.as_ref().is_some_and(|m| !m.allows(spec, &key, &p.times)) {
                        stats.missing_rejected += 1;
                        continue;
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eql::lower::{EqlLowering, EqlSettings};
    use imdsguard_ecs::FieldTable;
    use serde_json::{json, Value};

    fn spec(query: &str) -> SequenceSpec {
        let q = imdsguard_eql::parse(query).expect("parses");
        let imdsguard_eql::ast::QueryBody::Sequence(s) = &q.body else { panic!("not a sequence") };
        let table = std::sync::Arc::new(FieldTable::ecs());
        let settings = EqlSettings::default();
        EqlLowering::new(&table, &settings).sequence(s).expect("lowers")
    }

    /// Events as (time in ms, tag, key); returns each sequence as its tags' times, with -1 in
    /// place of a missing step.
    fn matches(query: &str, events: &[(i64, &str, &str)]) -> Vec<Vec<i64>> {
        let spec = spec(query);
        let docs: Vec<Value> = events
            .iter()
            .map(|(t, tag, key)| json!({"@timestamp": t, "event": {"category": "process"}, "tags": tag, "host": {"id": key}}))
            .collect();
        let refs: Vec<&dyn Document> = docs.iter().map(|d| d as &dyn Document).collect();
        let order = events
            .iter()
            .enumerate()
            .map(|(i, (t, _, _))| Ordered { index: i, timestamp: *t, tiebreaker: 0.0, seq: i as u64 })
            .collect();
        let (seqs, _) = run(&spec, &refs, order, SequenceLimits::default());
        seqs.iter()
            .map(|s| {
                let mut present = s.iter();
                spec.steps.iter().map(|st| if st.missing { -1 } else { present.next().map_or(-1, |i| events[*i].0) }).collect()
            })
            .collect()
    }

    const BETWEEN: &str = r#"sequence by host.id with maxspan=10s
        [process where tags == "a"] ![process where tags == "m"] [process where tags == "b"]"#;

    #[test]
    fn missing_between_rejects_only_strictly_between_with_the_same_key() {
        // No `m`: matched.
        assert_eq!(matches(BETWEEN, &[(1, "a", "h"), (5, "b", "h")]), vec![vec![1, -1, 5]]);
        // `m` between a and b with the same key: rejected.
        assert_eq!(matches(BETWEEN, &[(1, "a", "h"), (3, "m", "h"), (5, "b", "h")]), Vec::<Vec<i64>>::new());
        // `m` of another key does not count.
        assert_eq!(matches(BETWEEN, &[(1, "a", "h"), (3, "m", "x"), (5, "b", "h")]), vec![vec![1, -1, 5]]);
        // At the same millisecond as a or b it is not between them.
        assert_eq!(matches(BETWEEN, &[(1, "a", "h"), (1, "m", "h"), (5, "m", "h"), (5, "b", "h")]), vec![vec![1, -1, 5]]);
        // Outside the sequence it does not matter.
        assert_eq!(matches(BETWEEN, &[(0, "m", "h"), (1, "a", "h"), (5, "b", "h"), (6, "m", "h")]), vec![vec![1, -1, 5]]);
        // maxspan still bounds the present events.
        assert_eq!(matches(BETWEEN, &[(1, "a", "h"), (20_000, "b", "h")]), Vec::<Vec<i64>>::new());
    }

    #[test]
    fn a_rejected_sequence_consumes_its_partial_sequence() {
        // As in Elasticsearch, b at 5 completes (and the `m` at 3 rejects) the sequence started by
        // a at 1; b at 6 has nothing left to complete.
        assert_eq!(matches(BETWEEN, &[(1, "a", "h"), (3, "m", "h"), (5, "b", "h"), (6, "b", "h")]), Vec::<Vec<i64>>::new());
        // A newer start after the missing event still matches.
        assert_eq!(matches(BETWEEN, &[(1, "a", "h"), (3, "m", "h"), (4, "a", "h"), (5, "b", "h")]), vec![vec![4, -1, 5]]);
    }

    #[test]
    fn trailing_missing_looks_within_maxspan_of_the_first_event() {
        let q = r#"sequence by host.id with maxspan=10s [process where tags == "a"] ![process where tags == "m"]"#;
        assert_eq!(matches(q, &[(1000, "a", "h")]), vec![vec![1000, -1]]);
        assert_eq!(matches(q, &[(1000, "a", "h"), (11_000, "m", "h")]), Vec::<Vec<i64>>::new());
        assert_eq!(matches(q, &[(1000, "a", "h"), (11_001, "m", "h")]), vec![vec![1000, -1]]);
        assert_eq!(matches(q, &[(1000, "a", "h"), (2000, "m", "x")]), vec![vec![1000, -1]]);
        // Several starts: each is judged on its own.
        assert_eq!(matches(q, &[(1000, "a", "h"), (5000, "a", "h"), (12_000, "m", "h")]), vec![vec![1000, -1]]);
    }

    #[test]
    fn leading_missing_looks_within_maxspan_of_the_last_event() {
        let q = r#"sequence by host.id with maxspan=10s ![process where tags == "m"] [process where tags == "a"] [process where tags == "b"]"#;
        assert_eq!(matches(q, &[(20_000, "a", "h"), (25_000, "b", "h")]), vec![vec![-1, 20_000, 25_000]]);
        // m 10s before b (the sequence's last event): rejected; just over 10s: kept.
        assert_eq!(matches(q, &[(15_000, "m", "h"), (20_000, "a", "h"), (25_000, "b", "h")]), Vec::<Vec<i64>>::new());
        assert_eq!(matches(q, &[(14_999, "m", "h"), (20_000, "a", "h"), (25_000, "b", "h")]), vec![vec![-1, 20_000, 25_000]]);
        // Only the latest m before the first event counts; one at the first event's millisecond does not.
        assert_eq!(matches(q, &[(1000, "m", "h"), (20_000, "m", "h"), (20_000, "a", "h"), (25_000, "b", "h")]), vec![vec![-1, 20_000, 25_000]]);
    }

    #[test]
    fn leading_and_trailing_missing_need_a_free_window() {
        let q = r#"sequence by host.id with maxspan=10s ![process where tags == "m"] [process where tags == "a"] ![process where tags == "m"]"#;
        // m on both sides, 10s apart: no 10s window around a is free of m.
        assert_eq!(matches(q, &[(10_000, "m", "h"), (15_000, "a", "h"), (20_000, "m", "h")]), Vec::<Vec<i64>>::new());
        // More than 10s apart: kept.
        assert_eq!(matches(q, &[(10_000, "m", "h"), (15_000, "a", "h"), (20_001, "m", "h")]), vec![vec![-1, 15_000, -1]]);
        // m on one side only, however close: kept (the window can sit on the other side).
        assert_eq!(matches(q, &[(14_000, "m", "h"), (15_000, "a", "h")]), vec![vec![-1, 15_000, -1]]);
        assert_eq!(matches(q, &[(15_000, "a", "h"), (16_000, "m", "h")]), vec![vec![-1, 15_000, -1]]);
    }

    #[test]
    fn missing_step_with_runs_and_its_own_keys() {
        let q = r#"sequence with maxspan=10s
            [process where tags == "a"] by host.id
            ![process where tags == "m"] by user.name with runs=2
            [process where tags == "b"] by host.id"#;
        let spec = spec(q);
        assert_eq!(spec.steps.iter().filter(|s| s.missing).count(), 2);
        let docs = [
            json!({"@timestamp": 1, "event": {"category": "process"}, "tags": "a", "host": {"id": "h"}}),
            json!({"@timestamp": 2, "event": {"category": "process"}, "tags": "m", "user": {"name": "h"}}),
            json!({"@timestamp": 3, "event": {"category": "process"}, "tags": "b", "host": {"id": "h"}}),
            json!({"@timestamp": 4, "event": {"category": "process"}, "tags": "a", "host": {"id": "g"}}),
            json!({"@timestamp": 5, "event": {"category": "process"}, "tags": "m", "user": {"name": "x"}, "host": {"id": "g"}}),
            json!({"@timestamp": 6, "event": {"category": "process"}, "tags": "b", "host": {"id": "g"}}),
        ];
        let refs: Vec<&dyn Document> = docs.iter().map(|d| d as &dyn Document).collect();
        let order = (0..docs.len()).map(|i| Ordered { index: i, timestamp: i as i64 + 1, tiebreaker: 0.0, seq: i as u64 }).collect();
        let (seqs, stats) = run(&spec, &refs, order, SequenceLimits::default());
        // The m whose user.name equals the key "h" rejects h's sequence; g's m has user.name "x".
        assert_eq!(seqs, vec![vec![3, 5]]);
        assert_eq!(stats.completed, 1);
        assert_eq!(stats.missing_rejected, 1);
    }
}
