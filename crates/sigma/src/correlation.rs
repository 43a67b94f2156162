//! Sigma correlation rules (specification v2): the model, its parser, and a streaming evaluator
//! with bounded state.
//!
//! Types: `event_count`, `value_count`, `temporal`, `temporal_ordered` and the newer value
//! aggregations `value_sum`, `value_avg`, `value_min`, `value_max`. Each groups events by the
//! values of `group-by` (through `aliases` per referenced rule) within `timespan`.
//!
//! Windows (the specification leaves the exact windowing to the backend):
//! - a condition that can only become true as events arrive (`gt`, `gte` on counts and sums,
//!   `temporal`, `temporal_ordered`) fires as soon as it holds over a sliding window that ends at
//!   the current event; the group then starts afresh;
//! - any other condition (`lt`, `lte`, `eq`, ranges, averages, minima, maxima) is checked when a
//!   tumbling window closes: a window opens at a group's first event and closes at the first event
//!   `timespan` or more after it (or at the end of the stream, [`Evaluator::finish`]).
//!
//! State is bounded: at most [`MAX_GROUPS`] groups (the least recently seen is evicted and counted)
//! and [`MAX_EVENTS_PER_GROUP`] remembered events per group (older ones are dropped and counted).
//! Events must be fed in time order.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::rule::{ErrorKind, SigmaError};
use crate::yaml::{Node, Value};

/// Most groups tracked at once.
pub const MAX_GROUPS: usize = 100_000;
/// Most events remembered per group.
pub const MAX_EVENTS_PER_GROUP: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrelationType {
    EventCount,
    ValueCount,
    Temporal,
    TemporalOrdered,
    ValueSum,
    ValueAvg,
    ValueMin,
    ValueMax,
}

impl CorrelationType {
    fn parse(s: &str) -> Option<CorrelationType> {
        Some(match s {
            "event_count" => CorrelationType::EventCount,
            "value_count" => CorrelationType::ValueCount,
            "temporal" => CorrelationType::Temporal,
            "temporal_ordered" => CorrelationType::TemporalOrdered,
            "value_sum" => CorrelationType::ValueSum,
            "value_avg" => CorrelationType::ValueAvg,
            "value_min" => CorrelationType::ValueMin,
            "value_max" => CorrelationType::ValueMax,
            _ => return None,
        })
    }
    /// The name used in Sigma (`event_count`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CorrelationType::EventCount => "event_count",
            CorrelationType::ValueCount => "value_count",
            CorrelationType::Temporal => "temporal",
            CorrelationType::TemporalOrdered => "temporal_ordered",
            CorrelationType::ValueSum => "value_sum",
            CorrelationType::ValueAvg => "value_avg",
            CorrelationType::ValueMin => "value_min",
            CorrelationType::ValueMax => "value_max",
        }
    }
    fn needs_field(self) -> bool {
        !matches!(self, CorrelationType::EventCount | CorrelationType::Temporal | CorrelationType::TemporalOrdered)
    }
}

/// The condition: every given bound must hold (`gt: 100` and `lte: 200` is a range).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bounds {
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
    pub eq: Option<f64>,
}

impl Bounds {
    pub fn holds(&self, v: f64) -> bool {
        self.gt.is_none_or(|b| v > b)
            && self.gte.is_none_or(|b| v >= b)
            && self.lt.is_none_or(|b| v < b)
            && self.lte.is_none_or(|b| v <= b)
            && self.eq.is_none_or(|b| v == b)
    }
    /// Only lower bounds: once true, more events keep it true.
    fn monotonic(&self) -> bool {
        self.lt.is_none() && self.lte.is_none() && self.eq.is_none() && (self.gt.is_some() || self.gte.is_some())
    }
    fn is_empty(&self) -> bool {
        self == &Bounds::default()
    }
    /// The bounds as text: `gte 3`, `gt 100 and lte 200`.
    pub fn display(&self) -> String {
        let parts: Vec<String> = [("gt", self.gt), ("gte", self.gte), ("lt", self.lt), ("lte", self.lte), ("eq", self.eq)]
            .iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k} {v}")))
            .collect();
        parts.join(" and ")
    }
}

/// A correlation rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Correlation {
    pub title: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub level: Option<String>,
    #[serde(default)]
    pub meta: CorrelationMeta,
    pub kind: CorrelationType,
    /// Referenced rules (ids or names), in order.
    pub rules: Vec<String>,
    pub group_by: Vec<String>,
    pub timespan_ms: i64,
    pub condition: Bounds,
    /// The aggregated field (value_* types).
    pub field: Option<String>,
    /// alias -> (rule name -> field)
    pub aliases: Vec<(String, Vec<(String, String)>)>,
    pub generate: bool,
}

/// The descriptive metadata of a correlation rule.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CorrelationMeta {
    pub description: Option<String>,
    pub status: Option<String>,
    pub author: Option<String>,
    pub date: Option<String>,
    pub modified: Option<String>,
    pub tags: Vec<String>,
    pub references: Vec<String>,
    pub falsepositives: Vec<String>,
    /// SigmaHQ's `regression_tests_path`.
    #[serde(default)]
    pub regression_tests_path: Option<String>,
}

impl Correlation {
    /// Whether `reference` (an entry of `rules`) names the rule with this id or name.
    pub fn refers_to(reference: &str, id: Option<&str>, name: Option<&str>) -> bool {
        id == Some(reference) || name == Some(reference)
    }

    /// The field that holds group-by `name` in events of the referenced rule `rule`.
    pub fn group_field<'a>(&'a self, name: &'a str, rule: &str) -> &'a str {
        self.aliases
            .iter()
            .find(|(a, _)| a == name)
            .and_then(|(_, m)| m.iter().find(|(r, _)| r == rule).map(|(_, f)| f.as_str()))
            .unwrap_or(name)
    }
}

/// Parse a Sigma timespan (`30s`, `5m`, `1h`, `2d`; also `w`, `M`, `y` as pySigma does).
pub fn parse_timespan(s: &str) -> Option<i64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: i64 = s.get(..s.len() - unit.len_utf8())?.parse().ok()?;
    let ms = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        'M' => 30 * 86_400_000,
        'y' => 365 * 86_400_000,
        _ => return None,
    };
    n.checked_mul(ms).filter(|v| *v > 0)
}

fn err(m: impl Into<String>, line: usize) -> SigmaError {
    SigmaError::new(ErrorKind::Invalid, m, Some(line))
}

/// Parse a correlation rule document (a YAML map with a `correlation:` section).
pub fn parse_correlation(doc: &Node) -> Result<Correlation, SigmaError> {
    let title = doc.get("title").and_then(Node::scalar_text).ok_or_else(|| err("missing `title`", doc.line))?;
    let c = doc.get("correlation").ok_or_else(|| err("missing `correlation`", doc.line))?;
    let ty = c.get("type").and_then(Node::scalar_text).ok_or_else(|| err("correlation without `type`", c.line))?;
    let kind = CorrelationType::parse(&ty).ok_or_else(|| {
        SigmaError::new(
            ErrorKind::Unsupported,
            format!("correlation type `{ty}` is not supported (supported: event_count, value_count, temporal, temporal_ordered, value_sum, value_avg, value_min, value_max)"),
            Some(c.line),
        )
    })?;
    let rules = c.get("rules").map(Node::str_list).unwrap_or_default();
    if rules.is_empty() {
        return Err(err("correlation without `rules`", c.line));
    }
    let group_by = c.get("group-by").map(Node::str_list).unwrap_or_default();
    let ts = c.get("timespan").or_else(|| c.get("timeframe"));
    let timespan_ms = ts
        .and_then(Node::scalar_text)
        .and_then(|s| parse_timespan(&s))
        .ok_or_else(|| err("correlation needs a `timespan` such as 5m, 1h or 1d", ts.map_or(c.line, |n| n.line)))?;
    let mut condition = Bounds::default();
    let mut field = None;
    if let Some(cond) = c.get("condition") {
        let Value::Map(m) = &cond.value else { return Err(err("`condition` must be a map such as {gte: 10}", cond.line)) };
        for (k, v) in m {
            let num = || -> Result<f64, SigmaError> {
                match &v.value {
                    Value::Int(i) => Ok(*i as f64),
                    Value::Float(f) => Ok(*f),
                    _ => v.scalar_text().and_then(|s| s.parse().ok()).ok_or_else(|| err(format!("`{k}` needs a number"), v.line)),
                }
            };
            match k.as_str() {
                "gt" => condition.gt = Some(num()?),
                "gte" => condition.gte = Some(num()?),
                "lt" => condition.lt = Some(num()?),
                "lte" => condition.lte = Some(num()?),
                "eq" => condition.eq = Some(num()?),
                "field" => field = v.scalar_text(),
                other => return Err(err(format!("unknown condition key `{other}`"), v.line)),
            }
        }
    }
    if kind.needs_field() && field.is_none() {
        return Err(err(format!("`{ty}` needs `field` in its condition"), c.line));
    }
    if condition.is_empty() && !matches!(kind, CorrelationType::Temporal | CorrelationType::TemporalOrdered) {
        return Err(err(format!("`{ty}` needs a condition such as {{gte: 10}}"), c.line));
    }
    let aliases = match c.get("aliases").map(|n| &n.value) {
        Some(Value::Map(m)) => m
            .iter()
            .map(|(alias, per)| {
                let pairs = match &per.value {
                    Value::Map(pm) => pm.iter().filter_map(|(r, f)| f.scalar_text().map(|f| (r.clone(), f))).collect(),
                    _ => Vec::new(),
                };
                (alias.clone(), pairs)
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Correlation {
        title,
        id: doc.get("id").and_then(Node::scalar_text),
        name: doc.get("name").and_then(Node::scalar_text),
        level: doc.get("level").and_then(Node::scalar_text),
        meta: CorrelationMeta {
            description: doc.get("description").and_then(Node::scalar_text),
            status: doc.get("status").and_then(Node::scalar_text),
            author: doc.get("author").and_then(Node::scalar_text),
            date: doc.get("date").and_then(Node::scalar_text),
            modified: doc.get("modified").and_then(Node::scalar_text),
            tags: doc.get("tags").map(Node::str_list).unwrap_or_default(),
            references: doc.get("references").map(Node::str_list).unwrap_or_default(),
            falsepositives: doc.get("falsepositives").map(Node::str_list).unwrap_or_default(),
            regression_tests_path: doc.get("regression_tests_path").and_then(Node::scalar_text),
        },
        kind,
        rules,
        group_by,
        timespan_ms,
        condition,
        field,
        aliases,
        generate: matches!(c.get("generate").or_else(|| doc.get("generate")).map(|n| &n.value), Some(Value::Bool(true))),
    })
}

/// One event a referenced rule matched, reduced to what the correlation needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// Index of the referenced rule in [`Correlation::rules`].
    pub rule: usize,
    pub time_ms: i64,
    /// The group-by values (resolved through aliases by the caller), in `group_by` order.
    pub group: Vec<String>,
    /// The value of the aggregated field (value_* types), as text.
    pub value: Option<String>,
    /// The caller's handle on the event (to list the events of a hit); an event matching several
    /// referenced rules is pushed once per rule with the same handle.
    pub event: u64,
}

/// A correlation that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub group: Vec<String>,
    pub first_ms: i64,
    pub last_ms: i64,
    /// The aggregated value: event count, distinct values, sum/avg/min/max, or rules seen.
    pub value: f64,
    /// Events of the window (at most [`MAX_EVENTS_PER_GROUP`]).
    pub events: Vec<u64>,
}

#[derive(Debug, Default)]
struct Group {
    /// (time, rule, value, event) in time order.
    events: VecDeque<(i64, usize, Option<String>, u64)>,
    window_start: Option<i64>,
    /// temporal_ordered: per prefix length k, the latest start time of a partial sequence.
    prefix: Vec<Option<(i64, Vec<u64>)>>,
    last_seen: u64,
    /// Sliding windows: how many events of the window hold each value / come from each rule,
    /// kept as events enter and leave so distinct counts cost nothing per event.
    values: HashMap<String, u32>,
    rules: HashMap<usize, u32>,
}

impl Group {
    fn push(&mut self, e: (i64, usize, Option<String>, u64)) {
        if let Some(v) = &e.2 {
            *self.values.entry(v.clone()).or_insert(0) += 1;
        }
        *self.rules.entry(e.1).or_insert(0) += 1;
        self.events.push_back(e);
    }
    fn pop_front(&mut self) {
        let Some((_, rule, value, _)) = self.events.pop_front() else { return };
        if let Some(v) = value {
            if let Some(n) = self.values.get_mut(&v) {
                *n -= 1;
                if *n == 0 {
                    self.values.remove(&v);
                }
            }
        }
        if let Some(n) = self.rules.get_mut(&rule) {
            *n -= 1;
            if *n == 0 {
                self.rules.remove(&rule);
            }
        }
    }
    fn clear(&mut self) {
        self.events.clear();
        self.values.clear();
        self.rules.clear();
    }
}

/// Counters of what bounded state forgot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    pub groups_evicted: u64,
    pub events_dropped: u64,
}

/// Streaming evaluation of one correlation.
#[derive(Debug)]
pub struct Evaluator {
    pub correlation: Correlation,
    groups: HashMap<Vec<String>, Group>,
    tick: u64,
    pub dropped: Dropped,
    last_time: Option<i64>,
}

impl Evaluator {
    pub fn new(correlation: Correlation) -> Evaluator {
        Evaluator { correlation, groups: HashMap::new(), tick: 0, dropped: Dropped::default(), last_time: None }
    }

    fn sliding(&self) -> bool {
        match self.correlation.kind {
            CorrelationType::Temporal | CorrelationType::TemporalOrdered => true,
            CorrelationType::EventCount | CorrelationType::ValueCount | CorrelationType::ValueSum => {
                self.correlation.condition.monotonic()
            }
            // Averages, minima and maxima can go either way.
            _ => false,
        }
    }

    /// Aggregate of a window.
    fn aggregate(&self, events: &VecDeque<(i64, usize, Option<String>, u64)>) -> Option<f64> {
        let nums = || events.iter().filter_map(|(_, _, v, _)| v.as_deref().and_then(|s| s.trim().parse::<f64>().ok()));
        Some(match self.correlation.kind {
            CorrelationType::EventCount => events.len() as f64,
            CorrelationType::ValueCount => {
                events.iter().filter_map(|(_, _, v, _)| v.as_deref()).collect::<BTreeSet<_>>().len() as f64
            }
            CorrelationType::ValueSum => nums().sum(),
            CorrelationType::ValueAvg => {
                let (s, n) = nums().fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
                if n == 0 {
                    return None;
                }
                s / n as f64
            }
            CorrelationType::ValueMin => nums().reduce(f64::min)?,
            CorrelationType::ValueMax => nums().reduce(f64::max)?,
            CorrelationType::Temporal | CorrelationType::TemporalOrdered => {
                events.iter().map(|(_, r, _, _)| *r).collect::<BTreeSet<_>>().len() as f64
            }
        })
    }

    fn temporal_holds(&self, distinct: f64) -> bool {
        let c = &self.correlation.condition;
        if c.is_empty() {
            distinct >= self.correlation.rules.len() as f64
        } else {
            c.holds(distinct)
        }
    }

    /// Feed one matched event (in time order). Returns the hits it completes.
    pub fn push(&mut self, input: Input) -> Vec<Hit> {
        self.tick += 1;
        // Out-of-order input is treated as arriving now (never moves windows backwards).
        let t = self.last_time.map_or(input.time_ms, |l| input.time_ms.max(l));
        self.last_time = Some(t);
        if !self.groups.contains_key(&input.group) && self.groups.len() >= MAX_GROUPS {
            if let Some(oldest) = self.groups.iter().min_by_key(|(_, g)| g.last_seen).map(|(k, _)| k.clone()) {
                self.groups.remove(&oldest);
                self.dropped.groups_evicted += 1;
            }
        }
        let span = self.correlation.timespan_ms;
        let sliding = self.sliding();
        let n_rules = self.correlation.rules.len();
        let kind = self.correlation.kind;
        let tick = self.tick;
        let mut group = self.groups.remove(&input.group).unwrap_or_default();
        group.last_seen = tick;
        let mut hits = Vec::new();

        if kind == CorrelationType::TemporalOrdered {
            if group.prefix.len() != n_rules + 1 {
                group.prefix = vec![None; n_rules + 1];
            }
            // Steps are applied from the last to the first so one event never fills two steps.
            for step in (0..n_rules).rev() {
                if input.rule != step {
                    continue;
                }
                let extended = if step == 0 {
                    Some((t, vec![input.event]))
                } else {
                    match &group.prefix[step] {
                        // A step needs an event of its own: one event matching several rules
                        // never fills two steps.
                        Some((start, evs)) if t - start < span && !evs.contains(&input.event) => {
                            let mut e = evs.clone();
                            if e.len() < MAX_EVENTS_PER_GROUP {
                                e.push(input.event);
                            }
                            Some((*start, e))
                        }
                        _ => None,
                    }
                };
                if let Some((start, evs)) = extended {
                    let better = group.prefix[step + 1].as_ref().is_none_or(|(s, _)| start >= *s);
                    if better {
                        group.prefix[step + 1] = Some((start, evs));
                    }
                }
            }
            if let Some(Some((start, evs))) = group.prefix.get(n_rules).cloned() {
                hits.push(Hit { group: input.group.clone(), first_ms: start, last_ms: t, value: n_rules as f64, events: evs });
                group.prefix = vec![None; n_rules + 1];
            }
            self.groups.insert(input.group, group);
            return hits;
        }

        if sliding {
            group.push((t, input.rule, input.value, input.event));
            while group.events.front().is_some_and(|(et, _, _, _)| t - et >= span) {
                group.pop_front();
            }
            if group.events.len() > MAX_EVENTS_PER_GROUP {
                group.pop_front();
                self.dropped.events_dropped += 1;
            }
            let value = match kind {
                CorrelationType::EventCount => Some(group.events.len() as f64),
                CorrelationType::ValueCount => Some(group.values.len() as f64),
                CorrelationType::Temporal => Some(group.rules.len() as f64),
                _ => self.aggregate(&group.events),
            };
            let holds = match (kind, value) {
                (CorrelationType::Temporal, Some(v)) => self.temporal_holds(v),
                (_, Some(v)) => self.correlation.condition.holds(v),
                _ => false,
            };
            if holds {
                let first = group.events.front().map_or(t, |e| e.0);
                hits.push(Hit {
                    group: input.group.clone(),
                    first_ms: first,
                    last_ms: t,
                    value: value.unwrap_or(0.0),
                    events: group.events.iter().map(|e| e.3).collect(),
                });
                group.clear();
            }
        } else {
            if let Some(start) = group.window_start {
                if t - start >= span {
                    if let Some(h) = self.close(&input.group, &group) {
                        hits.push(h);
                    }
                    group.events.clear();
                    group.window_start = None;
                }
            }
            if group.window_start.is_none() {
                group.window_start = Some(t);
            }
            if group.events.len() >= MAX_EVENTS_PER_GROUP {
                group.events.pop_front();
                self.dropped.events_dropped += 1;
            }
            group.events.push_back((t, input.rule, input.value, input.event));
        }
        self.groups.insert(input.group, group);
        hits
    }

    fn close(&self, key: &[String], g: &Group) -> Option<Hit> {
        let v = self.aggregate(&g.events)?;
        if !self.correlation.condition.holds(v) {
            return None;
        }
        Some(Hit {
            group: key.to_vec(),
            first_ms: g.window_start.unwrap_or(0),
            last_ms: g.events.back().map_or(0, |e| e.0),
            value: v,
            events: g.events.iter().map(|e| e.3).collect(),
        })
    }

    /// End of the stream: close every open tumbling window. Hits in group order.
    pub fn finish(&mut self) -> Vec<Hit> {
        if self.sliding() || self.correlation.kind == CorrelationType::TemporalOrdered {
            self.groups.clear();
            return Vec::new();
        }
        let mut keys: Vec<Vec<String>> = self.groups.keys().cloned().collect();
        keys.sort();
        let mut hits = Vec::new();
        for k in keys {
            if let Some(g) = self.groups.get(&k) {
                if g.window_start.is_some() {
                    if let Some(h) = self.close(&k, g) {
                        hits.push(h);
                    }
                }
            }
        }
        self.groups.clear();
        hits
    }

    /// Groups currently held (for tests of bounded state).
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corr(yaml: &str) -> Correlation {
        let docs = crate::yaml::parse(yaml).unwrap_or_default();
        match docs.first().map(parse_correlation) {
            Some(Ok(c)) => c,
            other => panic!("{other:?}"),
        }
    }

    const MIN: i64 = 60_000;

    fn input(rule: usize, minute: i64, group: &str, value: Option<&str>, event: u64) -> Input {
        Input { rule, time_ms: minute * MIN, group: vec![group.to_string()], value: value.map(str::to_string), event }
    }

    fn run(c: Correlation, inputs: Vec<Input>) -> Vec<Hit> {
        let mut e = Evaluator::new(c);
        let mut hits: Vec<Hit> = inputs.into_iter().flat_map(|i| e.push(i)).collect();
        hits.extend(e.finish());
        hits
    }

    #[test]
    fn timespans() {
        for (s, want) in [("30s", Some(30_000)), ("5m", Some(300_000)), ("1h", Some(3_600_000)), ("2d", Some(172_800_000)), ("0m", None), ("5x", None), ("m", None), ("", None)] {
            assert_eq!(parse_timespan(s), want, "{s}");
        }
    }

    #[test]
    fn event_count_gte_fires_on_the_third_event_within_five_minutes() {
        let c = corr("title: t\ncorrelation:\n  type: event_count\n  rules: [a]\n  group-by: [host]\n  timespan: 5m\n  condition:\n    gte: 3\n");
        // host h1: minutes 0, 1, 7, 8, 9 -> the window [7, 9] holds 3 events (0 and 1 expired by minute 7).
        // host h2: minutes 0, 2 -> 2 events, never 3.
        let hits = run(
            c,
            vec![
                input(0, 0, "h1", None, 1),
                input(0, 0, "h2", None, 2),
                input(0, 1, "h1", None, 3),
                input(0, 2, "h2", None, 4),
                input(0, 7, "h1", None, 5),
                input(0, 8, "h1", None, 6),
                input(0, 9, "h1", None, 7),
            ],
        );
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].group, vec!["h1".to_string()]);
        assert_eq!((hits[0].first_ms, hits[0].last_ms, hits[0].value), (7 * MIN, 9 * MIN, 3.0));
        assert_eq!(hits[0].events, vec![5, 6, 7]);
    }

    #[test]
    fn event_count_window_edge_is_exclusive() {
        // Events exactly `timespan` apart are not in one window: 0, 5, 10 with 5m never hold 2.
        let c = corr("title: t\ncorrelation:\n  type: event_count\n  rules: [a]\n  group-by: [host]\n  timespan: 5m\n  condition:\n    gte: 2\n");
        let hits = run(c.clone(), vec![input(0, 0, "h", None, 1), input(0, 5, "h", None, 2), input(0, 10, "h", None, 3)]);
        assert!(hits.is_empty(), "{hits:?}");
        let hits = run(c, vec![input(0, 0, "h", None, 1), input(0, 4, "h", None, 2)]);
        assert_eq!(hits.len(), 1);
    }

    #[test]
    fn event_count_lt_is_checked_on_tumbling_windows() {
        // lt 3 per 10m: windows open at a group's first event. h1: 0,1 | 12 -> two windows (2 and 1 events): both hit.
        // h2: 0,1,2 -> 3 events: no hit.
        let c = corr("title: t\ncorrelation:\n  type: event_count\n  rules: [a]\n  group-by: [host]\n  timespan: 10m\n  condition:\n    lt: 3\n");
        let hits = run(
            c,
            vec![
                input(0, 0, "h1", None, 1),
                input(0, 0, "h2", None, 2),
                input(0, 1, "h1", None, 3),
                input(0, 1, "h2", None, 4),
                input(0, 2, "h2", None, 5),
                input(0, 12, "h1", None, 6),
            ],
        );
        let summary: Vec<(String, i64, f64)> = hits.iter().map(|h| (h.group[0].clone(), h.first_ms / MIN, h.value)).collect();
        assert_eq!(summary, vec![("h1".to_string(), 0, 2.0), ("h1".to_string(), 12, 1.0)]);
    }

    #[test]
    fn value_count_counts_distinct_values() {
        // Distinct users per source within 10m, gte 3: alice, bob, alice, carol -> 3 distinct at minute 6.
        let c = corr("title: t\ncorrelation:\n  type: value_count\n  rules: [a]\n  group-by: [src]\n  timespan: 10m\n  condition:\n    field: user\n    gte: 3\n");
        let hits = run(
            c,
            vec![
                input(0, 0, "s", Some("alice"), 1),
                input(0, 2, "s", Some("bob"), 2),
                input(0, 4, "s", Some("alice"), 3),
                input(0, 6, "s", Some("carol"), 4),
            ],
        );
        assert_eq!(hits.len(), 1);
        assert_eq!((hits[0].value, hits[0].last_ms / MIN), (3.0, 6));
    }

    #[test]
    fn temporal_needs_every_rule_in_the_window() {
        let c = corr("title: t\ncorrelation:\n  type: temporal\n  rules: [a, b, c]\n  group-by: [host]\n  timespan: 5m\n");
        // a@0 b@2 c@6: a expired (6-0 >= 5) -> no hit; a@7 completes {b@2? no, expired at 7}, so a@7 b@8 c@9 -> hit at 9.
        let hits = run(
            c,
            vec![
                input(0, 0, "h", None, 1),
                input(1, 2, "h", None, 2),
                input(2, 6, "h", None, 3),
                input(0, 7, "h", None, 4),
                input(1, 8, "h", None, 5),
            ],
        );
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!((hits[0].first_ms / MIN, hits[0].last_ms / MIN), (6, 8));
        assert_eq!(hits[0].events, vec![3, 4, 5]);
    }

    #[test]
    fn temporal_ordered_needs_the_order() {
        let c = corr("title: t\ncorrelation:\n  type: temporal_ordered\n  rules: [fail, success]\n  group-by: [user]\n  timespan: 10m\n");
        // success@0 then fail@1: wrong order, no hit; success@3 after fail@1: hit (1 -> 3).
        let hits = run(c.clone(), vec![input(1, 0, "u", None, 1), input(0, 1, "u", None, 2), input(1, 3, "u", None, 3)]);
        assert_eq!(hits.len(), 1);
        assert_eq!((hits[0].first_ms / MIN, hits[0].last_ms / MIN), (1, 3));
        assert_eq!(hits[0].events, vec![2, 3]);
        // fail@0, success@10: outside 10m -> none. fail@0, fail@5, success@12: the later start fits.
        assert!(run(c.clone(), vec![input(0, 0, "u", None, 1), input(1, 10, "u", None, 2)]).is_empty());
        let hits = run(c, vec![input(0, 0, "u", None, 1), input(0, 5, "u", None, 2), input(1, 12, "u", None, 3)]);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].first_ms / MIN, 5);
    }

    #[test]
    fn temporal_ordered_steps_need_distinct_events() {
        let c = corr("title: t\ncorrelation:\n  type: temporal_ordered\n  rules: [a, b]\n  group-by: [u]\n  timespan: 10m\n");
        // Event 1 matches both a and b (pushed once per rule with one handle): not a sequence by
        // itself; event 2 (b) at minute 2 completes it.
        let hits = run(c, vec![input(0, 0, "u", None, 1), input(1, 0, "u", None, 1), input(1, 2, "u", None, 2)]);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].events, vec![1, 2]);
    }

    #[test]
    fn value_aggregations() {
        // Bytes per host per 10m window (tumbling): 100 + 300 + 200 = 600, avg 200, min 100, max 300.
        let base = "title: t\ncorrelation:\n  rules: [a]\n  group-by: [host]\n  timespan: 10m\n  condition:\n    field: bytes\n";
        let evs = || vec![input(0, 0, "h", Some("100"), 1), input(0, 1, "h", Some("300"), 2), input(0, 2, "h", Some("200"), 3)];
        for (ty, cond, want) in [
            ("value_sum", "gte: 600", Some(600.0)),
            ("value_sum", "gt: 600", None),
            ("value_avg", "eq: 200", Some(200.0)),
            ("value_min", "lte: 100", Some(100.0)),
            ("value_max", "gte: 300", Some(300.0)),
        ] {
            let c = corr(&format!("{}    {cond}\n", base.replace("correlation:\n", &format!("correlation:\n  type: {ty}\n"))));
            let hits = run(c, evs());
            assert_eq!(hits.first().map(|h| h.value), want, "{ty} {cond}");
        }
    }

    #[test]
    fn sliding_counts_follow_the_window() {
        // The distinct values and rules kept as events enter and leave equal a recount of the
        // window after every event (a pseudo-random stream over 3 groups, 4 values, 2 rules).
        let c = corr("title: t\ncorrelation:\n  type: value_count\n  rules: [a, b]\n  group-by: [h]\n  timespan: 3m\n  condition:\n    field: v\n    gte: 4\n");
        let mut e = Evaluator::new(c);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut minute = 0;
        for i in 0..2000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            minute += (x % 3) as i64;
            let value = if x.is_multiple_of(11) { None } else { Some(format!("v{}", (x >> 8) % 4)) };
            e.push(Input { rule: ((x >> 4) % 2) as usize, time_ms: minute * MIN, group: vec![format!("h{}", (x >> 12) % 3)], value, event: i });
            for g in e.groups.values() {
                let values: BTreeSet<&str> = g.events.iter().filter_map(|ev| ev.2.as_deref()).collect();
                let rules: BTreeSet<usize> = g.events.iter().map(|ev| ev.1).collect();
                assert_eq!(g.values.len(), values.len());
                assert_eq!(g.rules.len(), rules.len());
                assert_eq!(g.values.values().map(|n| *n as usize).sum::<usize>(), g.events.iter().filter(|ev| ev.2.is_some()).count());
            }
        }
    }

    #[test]
    fn groups_are_bounded() {
        let c = corr("title: t\ncorrelation:\n  type: event_count\n  rules: [a]\n  group-by: [host]\n  timespan: 5m\n  condition:\n    gte: 2\n");
        let mut e = Evaluator::new(c);
        for i in 0..(MAX_GROUPS as u64 + 10) {
            e.push(Input { rule: 0, time_ms: 0, group: vec![i.to_string()], value: None, event: i });
        }
        assert_eq!(e.group_count(), MAX_GROUPS);
        assert_eq!(e.dropped.groups_evicted, 10);
    }

    #[test]
    fn invalid_correlations_have_reasons() {
        for (yaml, want) in [
            ("title: t\ncorrelation:\n  type: event_count\n  rules: [a]\n  timespan: 5m\n", "needs a condition"),
            ("title: t\ncorrelation:\n  type: value_count\n  rules: [a]\n  timespan: 5m\n  condition:\n    gte: 2\n", "needs `field`"),
            ("title: t\ncorrelation:\n  type: event_count\n  rules: [a]\n  timespan: soon\n  condition:\n    gte: 2\n", "timespan"),
            ("title: t\ncorrelation:\n  type: nope\n  rules: [a]\n  timespan: 5m\n", "not supported"),
            ("title: t\ncorrelation:\n  type: temporal\n  timespan: 5m\n", "without `rules`"),
        ] {
            let docs = crate::yaml::parse(yaml).unwrap_or_default();
            let e = docs.first().map(parse_correlation).and_then(Result::err).map(|e| e.message).unwrap_or_default();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }
}
