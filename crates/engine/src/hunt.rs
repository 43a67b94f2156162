//! Running compiled rules over a stream of events with Kibana's detection-engine semantics.
//!
//! Kibana runs a rule every `interval` over the documents of `[from, now]`, sorted by time,
//! raising at most `max_signals` alerts per execution; `new_terms` rules alert on the first
//! document whose term combination was absent from the history window. Hunting historical data
//! emulates those executions over event time:
//! - events are evaluated as they arrive; only matches are kept (they are few);
//! - at [`Hunt::finish`], matches are ordered by event time (then input order), new_terms history
//!   is consulted and updated, and `max_signals` caps each rule per interval of event time;
//! - the same event alerting twice for the same rule and term tuple yields one alert (Kibana's
//!   de-duplication of overlapping executions).

use crate::compile::{CompiledRule, RuleKind};
use crate::history::{is_new, HistoryError, TermsHistory};
use crate::prefilter::Prefilter;
use crate::stream::{carries_events, StreamState};
use imdsguard_ecs::doc::keyword_values;
use imdsguard_ecs::Event;
use std::collections::{HashMap, HashSet};

/// Upper bound on term combinations taken from one event (arrays multiply).
pub const MAX_TUPLES_PER_EVENT: usize = 1000;

/// An event that alerts for a rule.
#[derive(Debug, Clone)]
pub struct Match {
    /// Index of the rule in the hunt's rule list.
    pub rule: usize,
    pub event: Event,
    /// Event time in epoch milliseconds, if the event has one.
    pub time: Option<i64>,
    /// For new_terms rules: the new combination of values.
    pub new_terms: Option<Vec<String>>,
    /// Input order.
    pub seq: u64,
    /// For sequence rules: which sequence and where in it this alert stands.
    pub sequence: Option<SequenceRef>,
    /// For rules with alert suppression: the group this alert stands for.
    pub suppressed: Option<Suppressed>,
    /// For threshold rules: the group (bucket) this synthetic alert stands for; `event` is the
    /// group's first event.
    pub threshold: Option<ThresholdResult>,
    /// For a Sigma correlation's shell alert: what the correlation found (see `correlate`).
    pub correlation: Option<Box<crate::correlate::CorrelationHit>>,
}

/// Kibana's `kibana.alert.threshold_result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdResult {
    /// Each group-by field with the group's value.
    pub terms: Vec<(String, String)>,
    /// Events counted in the group.
    pub count: u64,
    /// Time of the group's earliest counted event (epoch ms).
    pub from: i64,
    /// Each cardinality field with its distinct count.
    pub cardinality: Vec<(String, u64)>,
}

/// What a suppressed alert stands for (Kibana's `kibana.alert.suppression.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    /// Each group-by field with its values (empty when missing).
    pub terms: Vec<(String, Vec<String>)>,
    /// Alerts folded into this one.
    pub docs_count: u64,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// The place of an alert in an EQL sequence.
#[derive(Debug, Clone)]
pub struct SequenceRef {
    /// Shared by every alert of one sequence (`kibana.alert.group.id`).
    pub group_id: String,
    /// Position of the event in the sequence (`kibana.alert.group.index`); `None` for the shell.
    pub index: Option<usize>,
    /// For the shell alert: the keys of every event of the sequence (its ancestors).
    pub members: Vec<Event>,
}

/// Per-rule counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RuleStats {
    /// Events matching the query.
    pub matched: u64,
    pub alerts: u64,
    /// Alerts dropped because `max_signals` was reached in an execution window.
    pub max_signals_dropped: u64,
    /// Execution windows in which `max_signals` was reached.
    pub windows_capped: u64,
    /// Matching events skipped by a new_terms rule for lack of a timestamp.
    pub no_timestamp: u64,
    /// Matching events skipped by a new_terms rule because a term field was missing.
    pub missing_terms: u64,
    /// Term combinations beyond [`MAX_TUPLES_PER_EVENT`] ignored.
    pub tuples_truncated: u64,
    /// Partial sequences dropped because they outlived `maxspan`.
    pub sequences_expired: u64,
    /// Partial sequences dropped to bound memory.
    pub sequences_evicted: u64,
    /// Step-matching events a sequence rule could not keep (over `--max-sequence-events`).
    pub sequence_events_dropped: u64,
}

/// Counters for a whole hunt.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HuntStats {
    /// Events whose document was evaluated.
    pub evaluated: u64,
    /// Events skipped by the prefilter (they cannot match any rule).
    pub prefiltered: u64,
    pub rules: Vec<RuleStats>,
}

/// One hunt over a set of rules.
pub struct Hunt {
    rules: Vec<CompiledRule>,
    prefilter: Prefilter,
    matches: Vec<Vec<Match>>,
    stats: HuntStats,
    seq: u64,
    max_sequence_events: usize,
}

/// Default for [`Hunt::set_max_sequence_events`].
pub const DEFAULT_MAX_SEQUENCE_EVENTS: usize = 2_000_000;

impl Hunt {
    pub fn new(rules: Vec<CompiledRule>) -> Hunt {
        let prefilter = Prefilter::new(rules.iter().map(|r| r.matcher.needles()));
        let n = rules.len();
        Hunt {
            rules,
            prefilter,
            matches: vec![Vec::new(); n],
            stats: HuntStats { rules: vec![RuleStats::default(); n], ..HuntStats::default() },
            seq: 0,
            max_sequence_events: DEFAULT_MAX_SEQUENCE_EVENTS,
        }
    }

    /// Cap on the events a sequence rule keeps until the end of the hunt (memory bound); events
    /// beyond it are dropped and counted in [`RuleStats::sequence_events_dropped`].
    pub fn set_max_sequence_events(&mut self, n: usize) {
        self.max_sequence_events = n;
    }

    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    pub fn prefilter(&self) -> &Prefilter {
        &self.prefilter
    }

    /// Whether the raw JSON bytes of an event could match some rule. `false` means the event can
    /// be counted and dropped without parsing.
    pub fn is_candidate(&mut self, raw: &[u8]) -> bool {
        let c = self.prefilter.is_candidate(raw);
        if !c {
            self.stats.prefiltered += 1;
            self.seq += 1;
        }
        c
    }

    /// Evaluate one parsed event against every rule.
    pub fn evaluate(&mut self, event: &Event) {
        self.stats.evaluated += 1;
        let seq = self.seq;
        self.seq += 1;
        // Per-rule prefilter gate (prefilter.rs): the rules whose needles this event lacks are skipped.
        let gate = self.prefilter.gate();
        for (i, rule) in self.rules.iter().enumerate() {
            if gate.is_some_and(|g| !g[i]) || !rule.matcher.matches(event.doc.as_ref()) {
                continue;
            }
            self.stats.rules[i].matched += 1;
            if matches!(rule.kind, RuleKind::Sequence(_) | RuleKind::Sample(_)) && self.matches[i].len() >= self.max_sequence_events {
                self.stats.rules[i].sequence_events_dropped += 1;
                continue;
            }
            let time = rule.event_time(event.doc.as_ref());
            self.matches[i].push(Match {
                rule: i,
                event: event.clone(),
                time,
                new_terms: None,
                seq,
                sequence: None,
                suppressed: None,
                threshold: None,
                correlation: None,
            });
        }
        self.prefilter.clear_gate();
    }

    /// Which rules an event matches, without keeping state (for `search`).
    pub fn matching_rules(&self, event: &Event) -> Vec<usize> {
        self.rules.iter().enumerate().filter(|(_, r)| r.matcher.matches(event.doc.as_ref())).map(|(i, _)| i).collect()
    }

    /// Apply new_terms history and `max_signals`; return the alerts in event-time order.
    pub fn finish(self, history: &mut dyn TermsHistory) -> Result<(Vec<Match>, HuntStats, Vec<CompiledRule>), HistoryError> {
        self.finish_inner(history, None)
    }

    /// [`Hunt::finish`] for one batch of a stream: sequences, samples and thresholds also see the
    /// events `state` carried from earlier batches, sequences already raised are not raised again,
    /// suppression windows and `max_signals` counts continue, and `state` is updated for the next
    /// batch (see [`crate::stream`]).
    pub fn finish_stream(
        self,
        history: &mut dyn TermsHistory,
        state: &mut StreamState,
    ) -> Result<(Vec<Match>, HuntStats, Vec<CompiledRule>), HistoryError> {
        self.finish_inner(history, Some(state))
    }

    fn finish_inner(
        mut self,
        history: &mut dyn TermsHistory,
        mut state: Option<&mut StreamState>,
    ) -> Result<(Vec<Match>, HuntStats, Vec<CompiledRule>), HistoryError> {
        let mut alerts = Vec::new();
        let mut matches = std::mem::take(&mut self.matches);
        let base = state.as_ref().map(|s| s.next_seq).unwrap_or(0);
        // Input order continues across the batches of a stream.
        for m in matches.iter_mut().flatten() {
            m.seq = m.seq.saturating_add(base);
        }
        if let Some(st) = state.as_deref_mut() {
            let ids: Vec<&str> = self.rules.iter().map(|r| r.rule.rule_id.as_str()).collect();
            st.retain_rules(&ids);
        }
        // Sigma correlation rules: their alerts from the referenced rules' matches (correlate.rs);
        // in a stream also from the matches earlier batches carried.
        let matches = match state.as_deref_mut() {
            Some(st) => crate::correlate::apply_stream(&self.rules, matches, &mut self.stats, st),
            None => crate::correlate::apply(&self.rules, matches, &mut self.stats),
        };
        for (i, mut ms) in matches.into_iter().enumerate() {
            let rule = &self.rules[i];
            let stats = &mut self.stats.rules[i];
            // This rule's state from earlier batches (taken out, put back updated below).
            let mut carry = state.as_deref_mut().map(|st| std::mem::take(st.rule_mut(&rule.rule.rule_id)));
            if let Some(rs) = carry.as_mut() {
                if let Some(newest) = ms.iter().filter_map(|m| m.time).max() {
                    rs.high_water = Some(rs.high_water.map_or(newest, |h| h.max(newest)));
                }
                if carries_events(&rule.kind) {
                    let mut carried = std::mem::take(&mut rs.carried);
                    for m in &mut carried {
                        m.rule = i;
                    }
                    carried.extend(ms);
                    ms = carried;
                }
            }
            ms.sort_by_key(|m| (m.time.unwrap_or(i64::MIN), m.seq));
            let mut emitted: Vec<Match> = match &rule.kind {
                RuleKind::Query | RuleKind::Correlation(_) => ms,
                RuleKind::Sequence(_) | RuleKind::Sample(_) => {
                    use crate::eql::sequence::{run, Ordered, SequenceLimits};
                    let docs: Vec<&dyn imdsguard_ecs::Document> = ms.iter().map(|m| m.event.doc.as_ref() as &dyn imdsguard_ecs::Document).collect();
                    let order: Vec<Ordered> = ms
                        .iter()
                        .enumerate()
                        .map(|(i, m)| Ordered { index: i, timestamp: m.time.unwrap_or(i64::MIN), tiebreaker: 0.0, seq: m.seq })
                        .collect();
                    let groups = match &rule.kind {
                        RuleKind::Sequence(spec) => {
                            let (seqs, sstats) = run(spec, &docs, order, SequenceLimits::default());
                            stats.sequences_expired += sstats.expired;
                            stats.sequences_evicted += sstats.evicted;
                            seqs
                        }
                        RuleKind::Sample(spec) => {
                            let (samples, sstats) = crate::eql::sample::run(spec, &docs, order, 1, Default::default());
                            stats.sequences_evicted += sstats.keys_evicted + sstats.refused;
                            samples
                        }
                        _ => Vec::new(),
                    };
                    let mut out = Vec::new();
                    let mut consumed = vec![false; ms.len()];
                    for events in groups {
                        let members: Vec<Event> = events.iter().map(|i| ms[*i].event.clone()).collect();
                        let group_id = sequence_group_id(&rule.rule.rule_id, &members);
                        for i in &events {
                            consumed[*i] = true;
                        }
                        if let Some(rs) = carry.as_mut() {
                            // Raised by an earlier batch: its events are spent, nothing to raise.
                            let last = events.last().and_then(|i| ms[*i].time).unwrap_or(i64::MIN);
                            if rs.emitted_groups.insert(group_id.clone(), last).is_some() {
                                continue;
                            }
                        }
                        for (pos, i) in events.iter().enumerate() {
                            let m = &ms[*i];
                            out.push(Match {
                                sequence: Some(SequenceRef { group_id: group_id.clone(), index: Some(pos), members: Vec::new() }),
                                ..m.clone()
                            });
                        }
                        if let Some(last) = events.last().map(|i| &ms[*i]) {
                            out.push(Match { sequence: Some(SequenceRef { group_id, index: None, members }), ..last.clone() });
                        }
                    }
                    if let Some(rs) = carry.as_mut() {
                        // Events not used by a sequence may still start or continue one.
                        rs.carried = ms.into_iter().zip(consumed).filter(|(_, c)| !c).map(|(m, _)| m).collect();
                    }
                    out
                }
                RuleKind::Threshold(spec) => {
                    // In a stream, only executions whose window has closed (ends at or before the
                    // newest event time, or the caller's clock) run; later ones wait for the next
                    // batch, as Kibana's execution at `end` sees only what arrived by then.
                    let close_at = match carry.as_mut() {
                        Some(rs) => {
                            rs.carried = ms.clone();
                            let clock = state.as_ref().and_then(|st| st.clock);
                            Some(rs.high_water.max(clock).unwrap_or(i64::MIN))
                        }
                        None => None,
                    };
                    threshold_alerts(spec, &rule.rule.rule_id, rule.interval_ms, ms, stats, history, close_at)?
                }
                RuleKind::NewTerms { fields, history_window_ms } => {
                    let mut out = Vec::new();
                    // Tuples this hunt already alerted on, and when: a second event with the same
                    // tuple in the same millisecond is not new either (Kibana alerts once per new
                    // tuple), which first/last sightings alone cannot tell.
                    let mut alerted: HashMap<String, i64> = HashMap::new();
                    for m in ms {
                        let Some(t) = m.time else {
                            stats.no_timestamp += 1;
                            continue;
                        };
                        let values: Vec<Vec<String>> = fields
                            .iter()
                            .map(|f| distinct_values(m.event.doc.as_ref(), f))
                            .collect();
                        if values.iter().any(|v| v.is_empty()) {
                            stats.missing_terms += 1;
                            continue;
                        }
                        let (tuples, truncated) = combinations(&values, MAX_TUPLES_PER_EVENT);
                        stats.tuples_truncated += truncated as u64;
                        for tuple in tuples {
                            let key = serde_json::to_string(&tuple).unwrap_or_default();
                            let seen = history.get(&rule.rule.rule_id, &key)?;
                            let repeated = alerted.get(&key).is_some_and(|t0| t.saturating_sub(*t0) < *history_window_ms);
                            if !repeated && is_new(seen, t, *history_window_ms) {
                                alerted.insert(key.clone(), t);
                                out.push(Match { new_terms: Some(tuple), ..m.clone() });
                            }
                            history.record(&rule.rule.rule_id, &key, t)?;
                        }
                    }
                    out
                }
            };
            // One alert per (event, tuple) — per (event, sequence) for sequences.
            let mut seen_keys = HashSet::new();
            emitted.retain(|m| {
                let group = m.sequence.as_ref().map(|s| (s.group_id.clone(), s.index));
                let bucket = m.threshold.as_ref().map(|t| (t.terms.clone(), t.from));
                seen_keys.insert((m.event.key.clone(), m.new_terms.clone(), group, bucket))
            });
            // Alert suppression: one alert per group-by value within the duration (or execution).
            if let Some(sup) = &rule.suppression {
                let prior = carry.as_mut().map(|rs| &mut rs.suppression);
                let (kept, folded) = suppress(emitted, sup, rule.interval_ms, prior);
                emitted = kept;
                if let Some(st) = state.as_deref_mut() {
                    st.stats.suppressed_across_batches += folded;
                }
            }
            // max_signals per execution window of event time.
            let mut per_window: HashMap<i64, u32> =
                carry.as_ref().map(|rs| rs.windows.iter().map(|(w, n)| (*w, *n)).collect()).unwrap_or_default();
            let mut capped = HashSet::new();
            for m in emitted {
                let window = m.time.map(|t| t.div_euclid(rule.interval_ms)).unwrap_or(i64::MIN);
                let n = per_window.entry(window).or_insert(0);
                if *n >= rule.max_signals {
                    stats.max_signals_dropped += 1;
                    if capped.insert(window) {
                        stats.windows_capped += 1;
                    }
                    continue;
                }
                *n += 1;
                stats.alerts += 1;
                alerts.push(m);
            }
            if let (Some(st), Some(mut rs)) = (state.as_deref_mut(), carry) {
                rs.windows = per_window.into_iter().collect();
                st.rules.insert(rule.rule.rule_id.clone(), rs);
                st.expire(rule);
            }
        }
        if let Some(st) = state {
            st.next_seq = base.saturating_add(self.seq);
        }
        alerts.sort_by_key(|m| (m.time.unwrap_or(i64::MIN), m.seq, m.rule));
        Ok((alerts, self.stats, self.rules))
    }
}

/// Kibana's threshold executions replayed over event time. Execution `k` ends at `k * interval`
/// and counts the matching events of `(end - lookback, end]`, grouped by the values of the
/// threshold fields (a document with several values counts in each of their combinations; a
/// document missing a field counts in no group). A group with at least `value` events whose
/// cardinality conditions hold raises one alert, and its "signal history" then remembers the
/// time of the group's latest counted event: later executions do not count that group's events at
/// or before that time again, so overlapping windows never alert twice on the same events.
/// The state-store namespace of a threshold rule's signal history (kept beside new_terms
/// history: the last alerted event time of each bucket, as a tuple's `last` sighting).
pub fn threshold_history_key(rule_id: &str) -> String {
    format!("threshold-signal:{rule_id}")
}

fn threshold_alerts(
    spec: &crate::compile::ThresholdSpec,
    rule_id: &str,
    interval_ms: i64,
    ms: Vec<Match>,
    stats: &mut RuleStats,
    store: &mut dyn TermsHistory,
    close_at: Option<i64>,
) -> Result<Vec<Match>, HistoryError> {
    // Events with a time, in time order (the caller sorted them), each with its group keys.
    let mut timed: Vec<(i64, Vec<Vec<String>>, Match)> = Vec::with_capacity(ms.len());
    for m in ms {
        let Some(t) = m.time else {
            stats.no_timestamp += 1;
            continue;
        };
        let values: Vec<Vec<String>> = spec
            .fields
            .iter()
            .map(|(_, p)| distinct_values(m.event.doc.as_ref(), p))
            .collect();
        if values.iter().any(|v| v.is_empty()) {
            stats.missing_terms += 1;
            continue;
        }
        let (keys, truncated) = combinations(&values, MAX_TUPLES_PER_EVENT);
        stats.tuples_truncated += truncated as u64;
        timed.push((t, keys, m));
    }
    if timed.is_empty() {
        return Ok(Vec::new());
    }
    let interval = interval_ms.max(1);
    let lookback = spec.lookback_ms.max(interval);
    // Execution ends whose window holds at least one event: for an event at t, the ends E with
    // E - lookback < t <= E, i.e. the multiples of the interval in [t, t + lookback).
    let mut ends: Vec<i64> = Vec::new();
    for (t, _, _) in &timed {
        let first = t.div_euclid(interval) * interval + if t.rem_euclid(interval) == 0 { 0 } else { interval };
        let mut e = first;
        while e < t.saturating_add(lookback) {
            ends.push(e);
            e = e.saturating_add(interval);
        }
    }
    ends.sort_unstable();
    ends.dedup();
    if let Some(close) = close_at {
        ends.retain(|e| *e <= close);
    }

    struct Bucket {
        count: u64,
        first: usize,
        min_t: i64,
        max_t: i64,
        distinct: Vec<HashSet<String>>,
    }
    // The signal history of every bucket this hunt meets, seeded from the store (earlier hunts'
    // threshold alerts), and written back as buckets alert.
    let namespace = threshold_history_key(rule_id);
    let mut history: HashMap<Vec<String>, i64> = HashMap::new();
    for (_, keys, _) in &timed {
        for key in keys {
            if !history.contains_key(key) {
                let tuple = serde_json::to_string(key).unwrap_or_default();
                if let Some(seen) = store.get(&namespace, &tuple)? {
                    history.insert(key.clone(), seen.last);
                }
            }
        }
    }
    let mut out = Vec::new();
    let (mut lo, mut hi) = (0usize, 0usize);
    for end in ends {
        let start = end.saturating_sub(lookback);
        while lo < timed.len() && timed[lo].0 <= start {
            lo += 1;
        }
        while hi < timed.len() && timed[hi].0 <= end {
            hi += 1;
        }
        let mut buckets: HashMap<&[String], Bucket> = HashMap::new();
        let mut order: Vec<&[String]> = Vec::new();
        for (idx, (t, keys, m)) in timed.iter().enumerate().take(hi).skip(lo) {
            for key in keys {
                if history.get(key).is_some_and(|last| t <= last) {
                    continue;
                }
                let b = buckets.entry(key.as_slice()).or_insert_with(|| {
                    order.push(key.as_slice());
                    Bucket { count: 0, first: idx, min_t: *t, max_t: *t, distinct: vec![HashSet::new(); spec.cardinality.len()] }
                });
                b.count += 1;
                b.min_t = b.min_t.min(*t);
                b.max_t = b.max_t.max(*t);
                for (j, (_, path, _)) in spec.cardinality.iter().enumerate() {
                    b.distinct[j].extend(keyword_values(m.event.doc.as_ref(), path));
                }
            }
        }
        for key in order {
            let Some(b) = buckets.get(key) else { continue };
            if b.count < spec.value {
                continue;
            }
            if spec.cardinality.iter().zip(&b.distinct).any(|((_, _, min), seen)| (seen.len() as u64) < *min) {
                continue;
            }
            let result = ThresholdResult {
                terms: spec.fields.iter().map(|(n, _)| n.clone()).zip(key.iter().cloned()).collect(),
                count: b.count,
                from: b.min_t,
                cardinality: spec.cardinality.iter().zip(&b.distinct).map(|((n, _, _), s)| (n.clone(), s.len() as u64)).collect(),
            };
            let base = &timed[b.first].2;
            out.push(Match { time: Some(b.max_t), threshold: Some(result), ..base.clone() });
            history.insert(key.to_vec(), b.max_t);
            store.record(&namespace, &serde_json::to_string(key).unwrap_or_default(), b.max_t)?;
        }
    }
    out.sort_by_key(|m| (m.time.unwrap_or(i64::MIN), m.seq));
    Ok(out)
}

/// Fold alerts with equal group-by values into the first of each group (per `duration`, or per
/// execution window of `interval_ms` when the rule sets no duration). Input is in time order.
///
/// `prior` holds the windows opened by alerts of earlier batches of a stream: an alert inside one
/// is folded into that (already emitted) alert, i.e. dropped and counted in the second value
/// returned; windows opened here are added to it.
fn suppress(
    alerts: Vec<Match>,
    sup: &crate::compile::Suppression,
    interval_ms: i64,
    mut prior: Option<&mut HashMap<Vec<Vec<String>>, i64>>,
) -> (Vec<Match>, u64) {
    let mut folded = 0u64;
    let mut out: Vec<Match> = Vec::new();
    // group key -> (index in out, window start)
    let mut open: HashMap<Vec<Vec<String>>, (usize, i64)> = HashMap::new();
    for mut m in alerts {
        let values: Vec<Vec<String>> = match &m.threshold {
            // A threshold alert stands for its bucket: group by the bucket's terms.
            Some(t) => t.terms.iter().map(|(_, v)| vec![v.clone()]).collect(),
            None => sup
                .group_by
                .iter()
                .map(|(_, p)| distinct_values(m.event.doc.as_ref(), p))
                .collect(),
        };
        let terms: Vec<(String, Vec<String>)> = sup.group_by.iter().map(|(n, _)| n.clone()).zip(values.iter().cloned()).collect();
        if !sup.suppress_missing && values.iter().any(|v| v.is_empty()) {
            m.suppressed = None;
            out.push(m);
            continue;
        }
        let t = m.time.unwrap_or(i64::MIN);
        let window_start = match sup.duration_ms {
            Some(_) => t,
            None => t.div_euclid(interval_ms).saturating_mul(interval_ms),
        };
        let same_window = |start: i64| match sup.duration_ms {
            Some(d) => t.saturating_sub(start) < d,
            None => window_start == start,
        };
        if !open.contains_key(&values) {
            if let Some(start) = prior.as_ref().and_then(|p| p.get(&values)).copied() {
                if same_window(start) {
                    folded += 1;
                    continue;
                }
            }
        }
        if let Some((idx, start)) = open.get(&values).copied() {
            if same_window(start) {
                if let Some(s) = out[idx].suppressed.as_mut() {
                    s.docs_count += 1;
                    s.end = m.time.or(s.end);
                }
                continue;
            }
        }
        if let Some(p) = prior.as_deref_mut() {
            p.insert(values.clone(), window_start);
        }
        open.insert(values, (out.len(), window_start));
        m.suppressed = Some(Suppressed { terms, docs_count: 0, start: m.time, end: m.time });
        out.push(m);
    }
    (out, folded)
}

/// The keyword values of a field, sorted and without repeats (the terms a group or a new-terms
/// tuple is made of).
fn distinct_values(doc: &dyn imdsguard_ecs::Document, path: &imdsguard_ecs::FieldPath) -> Vec<String> {
    let mut v = keyword_values(doc, path);
    v.sort();
    v.dedup();
    v
}

/// A stable id for a sequence: hash of the rule and its events' keys.
fn sequence_group_id(rule_id: &str, members: &[Event]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(rule_id.as_bytes());
    for m in members {
        h.update([0]);
        h.update(m.key.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Cartesian product of the value lists, at most `cap` combinations; returns how many were cut.
fn combinations(values: &[Vec<String>], cap: usize) -> (Vec<Vec<String>>, usize) {
    let total: usize = values.iter().map(|v| v.len()).fold(1usize, |a, b| a.saturating_mul(b));
    let mut out: Vec<Vec<String>> = vec![Vec::new()];
    for vs in values {
        let mut next = Vec::new();
        'outer: for prefix in &out {
            for v in vs {
                if next.len() >= cap {
                    break 'outer;
                }
                let mut p = prefix.clone();
                p.push(v.clone());
                next.push(p);
            }
        }
        out = next;
    }
    let truncated = total.saturating_sub(out.len());
    (out, truncated)
}

#[cfg(test)]
mod tests {
    use super::combinations;

    #[test]
    fn product_of_arrays() {
        let v = vec![vec!["h1".to_string(), "h2".to_string()], vec!["/bin/a".to_string()]];
        let (c, cut) = combinations(&v, 10);
        assert_eq!(c, vec![vec!["h1", "/bin/a"], vec!["h2", "/bin/a"]]);
        assert_eq!(cut, 0);
        let (c, cut) = combinations(&[vec!["a".into(), "b".into()], vec!["c".into(), "d".into()]], 3);
        assert_eq!(c.len(), 3);
        assert_eq!(cut, 1);
    }
}
