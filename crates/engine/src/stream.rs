//! State that rules carry from one batch of a stream to the next.
//!
//! `hunt` over files sees every event at once. Streams (`serve`'s `_bulk` requests, the live
//! sensor's micro-batches, Kafka batches) see a few at a time, yet a sequence's steps, a
//! threshold's counted events, an alert-suppression window or a `max_signals` execution window
//! can span batches. [`StreamState`] keeps what the next batch needs:
//!
//! - **sequence and sample rules**: the matching events not yet consumed by an emitted sequence,
//!   as far back as the rule can reach (its `maxspan`, bounded by its look-back `from`), so a
//!   sequence whose steps arrive in different batches is assembled; the ids of the sequences
//!   already emitted, so a sequence is never raised twice;
//! - **threshold rules**: the matching events of the windows still open. In a stream an execution
//!   runs once its window has closed (its end is at or before the newest event time, or the clock
//!   the caller advances with [`StreamState::advance_clock`]), as Kibana's execution at `end` sees
//!   what arrived by then; the signal history in the `TermsHistory` store keeps alerted events from
//!   being counted again;
//! - **alert suppression**: the open group windows (a later alert inside the window of an alert
//!   emitted by an earlier batch is folded: counted, not raised);
//! - **`max_signals`**: the alerts raised per recent execution window;
//! - **Sigma correlations**: the referenced rules' matches back to the longest `timespan` that
//!   references them, and the ids of the hits already raised.
//!
//! Everything is bounded: carried events expire with the rule's reach behind the newest event
//! time seen and are capped per rule ([`StreamState::set_max_carried`]); evictions are counted.
//! The state serialises to JSON ([`StreamState::to_json`] / [`StreamState::from_json`]) so a
//! consumer can hand it over (a Kafka changelog) or keep it across restarts; carried documents
//! are redacted of credentials in it (a restored event holds `[REDACTED]` where a secret was).

use crate::compile::{CompiledRule, RuleKind};
use crate::hunt::Match;
use imdsguard_ecs::{Event, Provenance};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Default cap on the events carried per rule.
pub const DEFAULT_MAX_CARRIED: usize = 100_000;

/// Rules' state between batches of one stream. See the module documentation.
#[derive(Debug, Clone)]
pub struct StreamState {
    /// Sequence numbers already used (input order continues across batches).
    pub(crate) next_seq: u64,
    pub(crate) rules: BTreeMap<String, RuleStream>,
    /// The caller's clock (epoch ms), when it has one: threshold windows ending by then are
    /// closed even if no later event has arrived.
    pub(crate) clock: Option<i64>,
    max_carried: usize,
    /// Counters over the life of the state.
    pub stats: StreamStats,
}

impl Default for StreamState {
    fn default() -> Self {
        StreamState { next_seq: 0, rules: BTreeMap::new(), clock: None, max_carried: DEFAULT_MAX_CARRIED, stats: StreamStats::default() }
    }
}

/// Counters of a [`StreamState`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamStats {
    /// Events dropped from a rule's carry because the cap was reached (oldest first).
    pub carry_evicted: u64,
    /// Alerts folded into an alert emitted by an earlier batch (suppression across batches).
    pub suppressed_across_batches: u64,
    /// Carried events that could not be restored from JSON (a corrupt or foreign snapshot).
    pub restore_errors: u64,
}

/// One rule's part of the state.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleStream {
    /// Matching events kept for the next batch (sequence, sample and threshold rules).
    pub carried: Vec<Match>,
    /// This rule's matches kept for the correlations that reference it (Sigma), back to their
    /// longest `timespan`.
    pub corr_inputs: Vec<Match>,
    /// Sequence (and correlation) group ids already emitted, with the time of their last event.
    pub emitted_groups: HashMap<String, i64>,
    /// Open suppression windows: group values -> window start.
    pub suppression: HashMap<Vec<Vec<String>>, i64>,
    /// Alerts raised per execution window (window index -> count).
    pub windows: BTreeMap<i64, u32>,
    /// Newest event time seen by the rule.
    pub high_water: Option<i64>,
}

impl StreamState {
    pub fn new() -> StreamState {
        StreamState::default()
    }

    /// Cap the events carried per rule (memory bound); the oldest are dropped first.
    pub fn set_max_carried(&mut self, n: usize) {
        self.max_carried = n.max(1);
    }

    /// Move the clock to `now_ms` (never backwards). Live streams (the sensor) call this before
    /// each batch, so a threshold window closes on time even when no later event arrives; without
    /// it windows close by event time (the newest event seen), which suits replays.
    pub fn advance_clock(&mut self, now_ms: i64) {
        self.clock = Some(self.clock.map_or(now_ms, |c| c.max(now_ms)));
    }

    /// Events currently carried, over all rules.
    pub fn carried(&self) -> usize {
        self.rules.values().map(|r| r.carried.len() + r.corr_inputs.len()).sum()
    }

    pub(crate) fn max_carried(&self) -> usize {
        self.max_carried
    }

    pub(crate) fn rule_mut(&mut self, rule_id: &str) -> &mut RuleStream {
        self.rules.entry(rule_id.to_string()).or_default()
    }

    /// Forget the rules not in `keep` (disabled or removed rules).
    pub(crate) fn retain_rules(&mut self, keep: &[&str]) {
        self.rules.retain(|id, _| keep.contains(&id.as_str()));
    }

    /// After a batch: keep what the next batch can still need and drop the rest.
    pub(crate) fn expire(&mut self, rule: &CompiledRule) {
        let reach = reach_ms(rule);
        let max = self.max_carried;
        let Some(r) = self.rules.get_mut(&rule.rule.rule_id) else { return };
        let Some(mut hw) = r.high_water else { return };
        if matches!(rule.kind, RuleKind::Threshold(_)) {
            // Windows up to the clock have run: their events are needed no longer.
            hw = hw.max(self.clock.unwrap_or(i64::MIN));
        }
        let horizon = hw.saturating_sub(reach);
        // An event exactly `reach` behind the newest can still pair with it ("within" = at most).
        r.carried.retain(|m| m.time.is_some_and(|t| t >= horizon));
        if r.carried.len() > max {
            r.carried.sort_by_key(|m| (m.time.unwrap_or(i64::MIN), m.seq));
            let cut = r.carried.len() - max;
            r.carried.drain(..cut);
            self.stats.carry_evicted += cut as u64;
        }
        r.emitted_groups.retain(|_, t| *t >= horizon);
        let duration = rule.suppression.as_ref().and_then(|s| s.duration_ms).unwrap_or(rule.interval_ms);
        let interval = rule.interval_ms.max(1);
        r.suppression.retain(|_, start| start.saturating_add(duration.max(interval)) > hw);
        let current = hw.div_euclid(interval);
        r.windows.retain(|w, _| *w >= current.saturating_sub(1));
    }

    /// The state as JSON (for a changelog or a snapshot file).
    pub fn to_json(&self) -> serde_json::Value {
        let rules: serde_json::Map<String, serde_json::Value> = self
            .rules
            .iter()
            .map(|(id, r)| {
                let carried: Vec<serde_json::Value> = r.carried.iter().map(match_json).collect();
                let corr_inputs: Vec<serde_json::Value> = r.corr_inputs.iter().map(match_json).collect();
                let suppression: Vec<serde_json::Value> =
                    r.suppression.iter().map(|(values, start)| serde_json::json!({"values": values, "start": start})).collect();
                let windows: Vec<serde_json::Value> = r.windows.iter().map(|(w, n)| serde_json::json!([w, n])).collect();
                (
                    id.clone(),
                    serde_json::json!({
                        "carried": carried,
                        "corr_inputs": corr_inputs,
                        "emitted_groups": r.emitted_groups,
                        "suppression": suppression,
                        "windows": windows,
                        "high_water": r.high_water,
                    }),
                )
            })
            .collect();
        serde_json::json!({"version": 1, "next_seq": self.next_seq, "clock": self.clock, "rules": rules, "stats": self.stats})
    }

    /// Restore a state written by [`StreamState::to_json`]. Entries that cannot be read are
    /// skipped and counted in [`StreamStats::restore_errors`]; a document of another shape is an
    /// error.
    pub fn from_json(v: &serde_json::Value) -> Result<StreamState, String> {
        if v.get("version").and_then(|x| x.as_u64()) != Some(1) {
            return Err("stream state: unknown or missing \"version\" (expected 1)".to_string());
        }
        let mut st = StreamState {
            next_seq: v.get("next_seq").and_then(|x| x.as_u64()).unwrap_or(0),
            clock: v.get("clock").and_then(|x| x.as_i64()),
            stats: v.get("stats").and_then(|s| serde_json::from_value(s.clone()).ok()).unwrap_or_default(),
            ..StreamState::default()
        };
        let Some(rules) = v.get("rules").and_then(|r| r.as_object()) else {
            return Err("stream state: \"rules\" is not an object".to_string());
        };
        for (id, r) in rules {
            let mut rs = RuleStream { high_water: r.get("high_water").and_then(|x| x.as_i64()), ..RuleStream::default() };
            for c in r.get("carried").and_then(|x| x.as_array()).map(|a| a.as_slice()).unwrap_or(&[]) {
                match restore_match(c) {
                    Some(m) => rs.carried.push(m),
                    None => st.stats.restore_errors += 1,
                }
            }
            for c in r.get("corr_inputs").and_then(|x| x.as_array()).map(|a| a.as_slice()).unwrap_or(&[]) {
                match restore_match(c) {
                    Some(m) => rs.corr_inputs.push(m),
                    None => st.stats.restore_errors += 1,
                }
            }
            if let Some(g) = r.get("emitted_groups").and_then(|x| x.as_object()) {
                for (gid, t) in g {
                    match t.as_i64() {
                        Some(t) => {
                            rs.emitted_groups.insert(gid.clone(), t);
                        }
                        None => st.stats.restore_errors += 1,
                    }
                }
            }
            for s in r.get("suppression").and_then(|x| x.as_array()).map(|a| a.as_slice()).unwrap_or(&[]) {
                let values: Option<Vec<Vec<String>>> = s.get("values").and_then(|x| serde_json::from_value(x.clone()).ok());
                match (values, s.get("start").and_then(|x| x.as_i64())) {
                    (Some(values), Some(start)) => {
                        rs.suppression.insert(values, start);
                    }
                    _ => st.stats.restore_errors += 1,
                }
            }
            for w in r.get("windows").and_then(|x| x.as_array()).map(|a| a.as_slice()).unwrap_or(&[]) {
                match (w.get(0).and_then(|x| x.as_i64()), w.get(1).and_then(|x| x.as_u64())) {
                    (Some(win), Some(n)) => {
                        rs.windows.insert(win, u32::try_from(n).unwrap_or(u32::MAX));
                    }
                    _ => st.stats.restore_errors += 1,
                }
            }
            st.rules.insert(id.clone(), rs);
        }
        Ok(st)
    }
}

/// A carried match as JSON. The document is redacted of credentials first: the state is written
/// out (state store, changelog), and nothing leaves the process unredacted.
fn match_json(m: &Match) -> serde_json::Value {
    let text = sonic_rs::to_string(m.event.doc.as_ref()).unwrap_or_else(|_| "{}".to_string());
    let doc = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(mut v) => {
            if imdsguard_ecs::redact::redact(&mut v) > 0 {
                v.to_string()
            } else {
                text
            }
        }
        Err(_) => "{}".to_string(),
    };
    serde_json::json!({
        "doc": doc,
        "key": m.event.key,
        "index": m.event.index,
        "origin": &*m.event.provenance.origin,
        "line": m.event.provenance.line,
        "time": m.time,
        "seq": m.seq,
    })
}

fn restore_match(c: &serde_json::Value) -> Option<Match> {
    let doc: sonic_rs::Value = sonic_rs::from_str(c.get("doc")?.as_str()?).ok()?;
    let event = Event {
        doc: Arc::new(doc),
        provenance: Provenance { origin: Arc::from(c.get("origin").and_then(|x| x.as_str()).unwrap_or("stream state")), line: c.get("line").and_then(|x| x.as_u64()).unwrap_or(0) },
        key: c.get("key")?.as_str()?.to_string(),
        index: c.get("index").and_then(|x| x.as_str()).map(str::to_string),
    };
    Some(Match {
        rule: 0,
        event,
        time: c.get("time").and_then(|x| x.as_i64()),
        new_terms: None,
        seq: c.get("seq")?.as_u64()?,
        sequence: None,
        suppressed: None,
        threshold: None,
        correlation: None,
    })
}

/// How far back a rule can reach from its newest event: the look-back of one execution (`from`),
/// and for sequences at most their `maxspan`.
pub fn reach_ms(rule: &CompiledRule) -> i64 {
    let lookback = imdsguard_ecs::time::parse_date_math(&rule.rule.from, 0)
        .ok()
        .filter(|t| *t < 0)
        .map(|t| -t)
        .unwrap_or(6 * 60 * 1000)
        .max(rule.interval_ms);
    match &rule.kind {
        RuleKind::Sequence(spec) => spec.maxspan_ms.map(|m| m.min(lookback)).unwrap_or(lookback),
        RuleKind::Threshold(spec) => spec.lookback_ms.max(lookback),
        // A hit's id must be remembered as long as its events can be seen again.
        RuleKind::Correlation(c) => c.timespan_ms.max(lookback),
        _ => lookback,
    }
}

/// Whether a rule kind carries matching events between batches.
pub(crate) fn carries_events(kind: &RuleKind) -> bool {
    matches!(kind, RuleKind::Sequence(_) | RuleKind::Sample(_) | RuleKind::Threshold(_))
}
