//! EQL samples with Elasticsearch's semantics.
//!
//! A sample is a set of events, one per filter, that share a join key (the sample's `by`
//! followed by each filter's own `by`), in any order and with no time constraint. Elasticsearch
//! finds them with one composite aggregation per filter, so:
//!
//! - a join key is the tuple of the key fields' *indexed* values: a multi-valued field gives one
//!   key per value (the Cartesian product over the keys), a date is its epoch milliseconds, an
//!   `ip` its address; an event without a value for a non-optional key joins nothing, and an
//!   absent `?optional` key is `null` (composite `missing_bucket`);
//! - a key forms samples only if every filter has at least one event with that key;
//! - samples come out in ascending order of join key (composite order: per key part, `null`
//!   first, then the values in their type's order: numbers numerically, addresses as addresses,
//!   strings by bytes);
//! - for each key and filter Elasticsearch reads the first `filters + max_samples_per_key - 1`
//!   matching events in index order (no sort), then picks distinct events depth-first: filter 1's
//!   first candidate, then filter 2's first candidate that is not already in the sample, and so
//!   on, backtracking, until `max_samples_per_key` samples (default 1) are found. One event never
//!   fills two filters of the same sample, but may appear in several samples of the same key.
//!   Events within a sample are in filter order.
//!
//! Offline, "index order" is the order in which events were offered (`Ordered::seq`).
//!
//! State is bounded by [`SampleLimits::max_keys`]: when more keys are kept, the greatest key is
//! dropped, and from then on every key at or above the least key ever dropped is refused (counted).
//! The samples returned are therefore exactly the first ones of the unbounded result (those of all
//! keys below that floor): only the tail is lost.

use super::expr::EqlExpr;
use super::sequence::{Ordered, MAX_KEY_COMBINATIONS};
use super::value::Scalar;
use imdsguard_ecs::{Document, FieldType};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One join key expression, with the mapped type of its field (if it is a field).
#[derive(Debug, Clone)]
pub struct SampleKey {
    pub expr: EqlExpr,
    pub ty: Option<FieldType>,
}

/// One filter of a sample.
#[derive(Debug, Clone)]
pub struct SampleStep {
    pub filter: EqlExpr,
    /// Join keys: the sample's `by` followed by the step's own `by`.
    pub keys: Vec<SampleKey>,
}

#[derive(Debug, Clone)]
pub struct SampleSpec {
    pub steps: Vec<SampleStep>,
}

/// Bounds on the matcher's state.
#[derive(Debug, Clone, Copy)]
pub struct SampleLimits {
    /// Most join keys kept at once; beyond it the greatest keys are dropped.
    pub max_keys: usize,
}

impl Default for SampleLimits {
    fn default() -> Self {
        SampleLimits { max_keys: 100_000 }
    }
}

/// Elasticsearch's default `max_samples_per_key`.
pub const DEFAULT_MAX_SAMPLES_PER_KEY: usize = 1;

/// Largest `max_samples_per_key` honoured (it sizes the per-key candidate lists).
pub const MAX_SAMPLES_PER_KEY: usize = 10_000;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SampleStats {
    /// Samples returned.
    pub samples: u64,
    /// Distinct join keys seen (kept or not).
    pub keys: u64,
    /// Keys dropped to respect `max_keys`.
    pub keys_evicted: u64,
    /// (event, filter, key) entries refused because the key was at or above the eviction floor.
    pub refused: u64,
}

/// One part of a join key, ordered as a composite aggregation orders its buckets: `null` first,
/// then values. (Within one key position all values normally have one type, the mapped one.)
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyPart {
    Null,
    Bool(bool),
    Int(i64),
    /// A non-integral number, by its order-preserving bit pattern.
    Float(OrdF64),
    /// An address, IPv4 mapped into IPv6 (Elasticsearch's `ip` doc values).
    Ip(u128),
    Str(String),
}

/// An `f64` with a total order (IEEE total order, as `f64::total_cmp`).
#[derive(Debug, Clone, Copy)]
pub struct OrdF64(pub f64);

impl PartialEq for OrdF64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl std::hash::Hash for OrdF64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}

impl std::fmt::Display for KeyPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyPart::Null => f.write_str("null"),
            KeyPart::Bool(b) => write!(f, "{b}"),
            KeyPart::Int(i) => write!(f, "{i}"),
            KeyPart::Float(x) => write!(f, "{}", x.0),
            KeyPart::Ip(a) => {
                let v6 = std::net::Ipv6Addr::from(*a);
                match v6.to_ipv4_mapped() {
                    Some(v4) => write!(f, "{v4}"),
                    None => write!(f, "{v6}"),
                }
            }
            KeyPart::Str(s) => f.write_str(s),
        }
    }
}

fn number(x: f64) -> KeyPart {
    if x.fract() == 0.0 && x >= i64::MIN as f64 && x < i64::MAX as f64 {
        KeyPart::Int(x as i64)
    } else {
        KeyPart::Float(OrdF64(x))
    }
}

fn plain(v: &Scalar) -> String {
    match v {
        Scalar::Null => "null".into(),
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(f) => f.to_string(),
        Scalar::Str(s) => s.clone(),
    }
}

/// The indexed value of `v` for a key of type `ty`, as the composite aggregation reports it; `None`
/// when the value would not be indexed (a malformed date, address or number).
pub fn key_part(ty: Option<FieldType>, v: &Scalar) -> Option<KeyPart> {
    use FieldType::*;
    Some(match (ty, v) {
        (_, Scalar::Null) => return None,
        (Some(Date | DateNanos), Scalar::Int(i)) => KeyPart::Int(*i),
        (Some(Date | DateNanos), Scalar::Float(f)) => KeyPart::Int(f.floor() as i64),
        (Some(Date | DateNanos), Scalar::Str(s)) => KeyPart::Int(imdsguard_ecs::time::parse_date(s)?),
        (Some(Date | DateNanos), Scalar::Bool(_)) => return None,
        (Some(Ip), Scalar::Str(s)) => {
            let a: IpAddr = s.parse().ok()?;
            KeyPart::Ip(match a {
                IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
                IpAddr::V6(v6) => u128::from(v6),
            })
        }
        (Some(Ip), _) => return None,
        (Some(Boolean), Scalar::Bool(b)) => KeyPart::Bool(*b),
        (Some(Boolean), Scalar::Str(s)) if s == "true" || s == "false" => KeyPart::Bool(s == "true"),
        (Some(Boolean), _) => return None,
        (Some(t), v) if t.is_integer() => match v {
            Scalar::Int(i) => KeyPart::Int(*i),
            // Integer fields index the integral part.
            Scalar::Float(f) => KeyPart::Int(f.trunc() as i64),
            Scalar::Str(s) => KeyPart::Int(s.trim().parse::<f64>().ok()?.trunc() as i64),
            _ => return None,
        },
        (Some(t), v) if t.is_numeric() => match v {
            Scalar::Int(i) => KeyPart::Int(*i),
            Scalar::Float(f) => number(*f),
            Scalar::Str(s) => number(s.trim().parse::<f64>().ok()?),
            _ => return None,
        },
        (Some(Keyword | ConstantKeyword | Wildcard | Version), v) => KeyPart::Str(plain(v)),
        // Unmapped fields and computed keys: the value as it is.
        (_, Scalar::Bool(b)) => KeyPart::Bool(*b),
        (_, Scalar::Int(i)) => KeyPart::Int(*i),
        (_, Scalar::Float(f)) => number(*f),
        (_, Scalar::Str(s)) => KeyPart::Str(s.clone()),
    })
}

/// The join keys of an event for a step: one per combination of the keys' values (duplicates
/// removed, at most [`MAX_KEY_COMBINATIONS`]); an absent `?optional` key is [`KeyPart::Null`]; an
/// event without a value for a non-optional key joins nothing (empty result).
pub fn sample_keys(keys: &[SampleKey], doc: &dyn Document) -> Vec<Vec<KeyPart>> {
    let mut combos: Vec<Vec<KeyPart>> = vec![Vec::new()];
    for k in keys {
        let mut vals: Vec<KeyPart> = k.expr.values(doc).iter().filter_map(|v| key_part(k.ty, v)).collect();
        vals.sort();
        vals.dedup();
        if vals.is_empty() {
            match k.expr {
                EqlExpr::Field { optional: true, .. } => vals.push(KeyPart::Null),
                _ => return Vec::new(),
            }
        }
        let mut next = Vec::with_capacity(combos.len() * vals.len());
        'outer: for c in &combos {
            for v in &vals {
                if next.len() >= MAX_KEY_COMBINATIONS {
                    break 'outer;
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

/// Depth-first choice of distinct events, one per filter, in candidate order, until `max` samples.
fn pick(lists: &[Vec<usize>], partial: &mut Vec<usize>, out: &mut Vec<Vec<usize>>, max: usize) {
    let depth = partial.len();
    for &e in &lists[depth] {
        if out.len() >= max {
            return;
        }
        if partial.contains(&e) {
            continue;
        }
        partial.push(e);
        if depth + 1 == lists.len() {
            out.push(partial.clone());
        } else {
            pick(lists, partial, out, max);
        }
        partial.pop();
    }
}

/// Run a sample over events (already filtered to those that match some step, in any order);
/// returns the samples in Elasticsearch's order as lists of indices into `docs`, one per filter.
/// `max_samples_per_key` is Elasticsearch's request parameter (0 is taken as the default, 1).
pub fn run(
    spec: &SampleSpec,
    docs: &[&dyn Document],
    mut order: Vec<Ordered>,
    max_samples_per_key: usize,
    limits: SampleLimits,
) -> (Vec<Vec<usize>>, SampleStats) {
    order.sort_by_key(|o| o.seq);
    let n = spec.steps.len();
    let per_key = if max_samples_per_key == 0 { DEFAULT_MAX_SAMPLES_PER_KEY } else { max_samples_per_key.min(MAX_SAMPLES_PER_KEY) };
    // Elasticsearch reads this many events per filter and key.
    let cap = n + per_key - 1;
    let mut stats = SampleStats::default();
    let mut keys: BTreeMap<Vec<KeyPart>, Vec<Vec<usize>>> = BTreeMap::new();
    let mut floor: Option<Vec<KeyPart>> = None;
    for ev in &order {
        let doc = docs[ev.index];
        for (i, step) in spec.steps.iter().enumerate() {
            if !step.filter.matches(doc) {
                continue;
            }
            for key in sample_keys(&step.keys, doc) {
                if floor.as_ref().is_some_and(|f| key >= *f) {
                    stats.refused += 1;
                    continue;
                }
                let lists = match keys.get_mut(&key) {
                    Some(l) => l,
                    None => {
                        stats.keys += 1;
                        keys.entry(key.clone()).or_insert_with(|| vec![Vec::new(); n])
                    }
                };
                if lists[i].len() < cap && lists[i].last() != Some(&ev.index) {
                    lists[i].push(ev.index);
                }
                if keys.len() > limits.max_keys {
                    if let Some((k, _)) = keys.pop_last() {
                        stats.keys_evicted += 1;
                        if floor.as_ref().is_none_or(|f| k < *f) {
                            floor = Some(k);
                        }
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for lists in keys.values() {
        if lists.iter().any(Vec::is_empty) {
            continue;
        }
        let max = out.len() + per_key;
        pick(lists, &mut Vec::with_capacity(n), &mut out, max);
    }
    stats.samples = out.len() as u64;
    (out, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_distinct_events_depth_first() {
        let mut out = Vec::new();
        pick(&[vec![1, 2, 3], vec![4, 5], vec![4, 5, 3]], &mut Vec::new(), &mut out, 1);
        assert_eq!(out, vec![vec![1, 4, 5]]);
        let mut out = Vec::new();
        pick(&[vec![1], vec![1], vec![1, 3]], &mut Vec::new(), &mut out, 1);
        assert!(out.is_empty());
        let mut out = Vec::new();
        pick(&[vec![1, 2, 4], vec![3]], &mut Vec::new(), &mut out, 2);
        assert_eq!(out, vec![vec![1, 3], vec![2, 3]]);
    }

    #[test]
    fn bounded_keys_return_an_exact_prefix() {
        use imdsguard_ecs::FieldPath;
        let step = |cat: &str| SampleStep {
            filter: EqlExpr::Cmp {
                op: super::super::expr::CmpOp::Eq,
                lhs: Box::new(EqlExpr::Field { path: FieldPath::new("c"), optional: false }),
                rhs: Box::new(EqlExpr::Lit(Scalar::Str(cat.into()))),
            },
            keys: vec![SampleKey { expr: EqlExpr::Field { path: FieldPath::new("k"), optional: false }, ty: Some(FieldType::Keyword) }],
        };
        let spec = SampleSpec { steps: vec![step("a"), step("b")] };
        // Keys e, d, c, b, a arrive in that order, each with an `a` then a `b` event.
        let mut docs: Vec<serde_json::Value> = ["e", "d", "c", "b", "a"]
            .iter()
            .flat_map(|k| [serde_json::json!({"k": k, "c": "a"}), serde_json::json!({"k": k, "c": "b"})])
            .collect();
        // A late event for an evicted key.
        docs.push(serde_json::json!({"k": "e", "c": "a"}));
        let refs: Vec<&dyn Document> = docs.iter().map(|d| d as &dyn Document).collect();
        let order = || (0..docs.len()).map(|i| Ordered { index: i, timestamp: 0, tiebreaker: 0.0, seq: i as u64 }).collect::<Vec<_>>();
        let (all, stats) = run(&spec, &refs, order(), 1, SampleLimits::default());
        assert_eq!(all, vec![vec![8, 9], vec![6, 7], vec![4, 5], vec![2, 3], vec![0, 1]]);
        assert_eq!(stats.keys_evicted, 0);
        let (some, stats) = run(&spec, &refs, order(), 1, SampleLimits { max_keys: 2 });
        assert_eq!(some, all[..2].to_vec());
        assert_eq!((stats.keys_evicted, stats.refused), (3, 1));
    }

    #[test]
    fn key_parts_order_like_composite_buckets() {
        let ip = |s: &str| key_part(Some(FieldType::Ip), &Scalar::Str(s.into())).expect("an address");
        assert!(ip("10.0.0.5") < ip("10.0.0.10"));
        assert_eq!(ip("10.0.0.1").to_string(), "10.0.0.1");
        assert!(KeyPart::Null < KeyPart::Str(String::new()));
        let d = |s: &str| key_part(Some(FieldType::Date), &Scalar::Str(s.into())).expect("a date");
        assert_eq!(d("2022-12-17"), d("1671235200000"));
        assert_eq!(key_part(Some(FieldType::Keyword), &Scalar::Int(7)), Some(KeyPart::Str("7".into())));
    }
}
