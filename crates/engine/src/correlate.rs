//! Sigma correlation rules in a hunt.
//!
//! A correlation rule ([`RuleKind::Correlation`]) has no query: when the hunt finishes, the
//! matches of the rules it references (by `id` or `name`, in any loaded file) are put in time
//! order, grouped by the `group-by` fields (through `aliases` and each referenced rule's field
//! mapping), and fed to [`imdsguard_sigma::correlation::Evaluator`] (windows and bounded state are
//! its business). Each hit becomes alerts shaped like an EQL sequence's: one building-block alert
//! per contributing event (`kibana.alert.group.index`) and a shell alert listing them all as
//! ancestors, carrying a [`CorrelationHit`] (group values, aggregated value, window) from which the
//! alert's reason is written.
//!
//! Referenced rules alert on their own unless every correlation that references them says
//! `generate: false` (the Sigma default): their matches then only feed the correlations.
//! Correlations may reference correlations (chaining): a referenced correlation contributes one
//! input per hit (its shell). Unresolvable references and cycles are reported by
//! [`check_references`] so loaders can say which rule cannot run; such a correlation never fires.

use crate::compile::{CompiledRule, RuleKind};
use crate::hunt::{HuntStats, Match, SequenceRef};
use imdsguard_ecs::doc::keyword_values;
use imdsguard_ecs::FieldPath;
use imdsguard_sigma::correlation::{Correlation, Evaluator, Input};

/// What a correlation's shell alert stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrelationHit {
    /// `event_count`, `value_count`, `temporal`, ...
    pub kind: &'static str,
    /// Each group-by name with the group's value.
    pub group: Vec<(String, String)>,
    /// The aggregated value (event count, distinct values, sum/avg/min/max, or rules seen).
    pub value: f64,
    /// The aggregated field (value_* types).
    pub field: Option<String>,
    /// The condition as text (`gte 3`); empty for temporal rules (all rules).
    pub condition: String,
    pub timespan_ms: i64,
    /// Times of the window's first and last events (epoch ms).
    pub first_ms: i64,
    pub last_ms: i64,
    /// The referenced rules (names) that contributed events, in the correlation's order.
    pub rules: Vec<String>,
    /// The reason sentence for `kibana.alert.reason`.
    pub reason: String,
}

/// The hunt's rule indices each correlation references, in its `rules` order; errors name the
/// references that cannot be resolved.
fn resolve(rules: &[CompiledRule], c: &Correlation) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for r in &c.rules {
        let found = rules.iter().position(|cr| {
            let name = cr.rule.extra.get("sigma").and_then(|s| s.get("name")).and_then(|n| n.as_str());
            Correlation::refers_to(r, Some(cr.rule.rule_id.as_str()), name)
        });
        match found {
            Some(i) => out.push(i),
            None => missing.push(r.as_str()),
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(format!("references rule(s) not loaded: {} (a rule is referenced by its `id` or `name`)", missing.join(", ")))
    }
}

/// The correlations that cannot run: `(rule index, reason)` for unresolved references and for
/// correlations that (directly or through others) reference themselves.
pub fn check_references(rules: &[CompiledRule]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let order = evaluation_order(rules);
    for (i, r) in rules.iter().enumerate() {
        let RuleKind::Correlation(c) = &r.kind else { continue };
        match resolve(rules, c) {
            Err(e) => out.push((i, e)),
            Ok(_) if !order.contains(&i) => out.push((i, "is part of a cycle of correlation rules referencing each other".to_string())),
            Ok(_) => {}
        }
    }
    out
}

/// Correlation rule indices in an order where every referenced correlation comes first; rules
/// with unresolved references or in cycles are left out.
fn evaluation_order(rules: &[CompiledRule]) -> Vec<usize> {
    let mut pending: Vec<(usize, Vec<usize>)> = rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match &r.kind {
            RuleKind::Correlation(c) => resolve(rules, c).ok().map(|refs| (i, refs)),
            _ => None,
        })
        .collect();
    let mut order: Vec<usize> = Vec::new();
    loop {
        let before = pending.len();
        pending.retain(|(i, refs)| {
            let ready = refs.iter().all(|r| !matches!(rules[*r].kind, RuleKind::Correlation(_)) || order.contains(r));
            if ready {
                order.push(*i);
            }
            !ready
        });
        if pending.len() == before {
            break;
        }
    }
    order
}

/// The ECS fields a Sigma field name stands for in the events of `rule` (its pipelines' field
/// mapping; the name itself when nothing maps it).
fn ecs_fields(rule: &CompiledRule, name: &str) -> Vec<FieldPath> {
    let mapped = rule
        .rule
        .extra
        .get("sigma")
        .and_then(|s| s.get("field_map"))
        .and_then(|m| m.get(name))
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str()).map(FieldPath::new).collect::<Vec<_>>())
        .unwrap_or_default();
    if mapped.is_empty() {
        vec![FieldPath::new(name)]
    } else {
        mapped
    }
}

/// The values of the first of `fields` that has any, sorted and without repeats.
fn values_of(doc: &dyn imdsguard_ecs::Document, fields: &[FieldPath]) -> Vec<String> {
    for f in fields {
        let mut v = keyword_values(doc, f);
        if !v.is_empty() {
            v.sort();
            v.dedup();
            return v;
        }
    }
    Vec::new()
}

/// Most group combinations one event may fall in (multi-valued group-by fields multiply).
const MAX_GROUPS_PER_EVENT: usize = 100;

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn fmt_span(ms: i64) -> String {
    for (unit, n) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms % n == 0 {
            return format!("{}{unit}", ms / n);
        }
    }
    format!("{ms}ms")
}

/// Run every correlation rule over the matches of the rules it references (called when the hunt
/// finishes, before alerts are built): fills the correlation rules' match lists with their
/// alerts and empties the lists of rules whose matches only feed correlations (`generate:
/// false`). `matches[i]` holds rule `i`'s matches.
pub fn apply(rules: &[CompiledRule], mut matches: Vec<Vec<Match>>, stats: &mut HuntStats) -> Vec<Vec<Match>> {
    if !rules.iter().any(|r| matches!(r.kind, RuleKind::Correlation(_))) {
        return matches;
    }
    let order = evaluation_order(rules);
    // Rules referenced only by correlations that do not generate their own alerts.
    let mut silent = vec![false; rules.len()];
    let mut loud = vec![false; rules.len()];
    for i in &order {
        let RuleKind::Correlation(c) = &rules[*i].kind else { continue };
        for r in resolve(rules, c).unwrap_or_default() {
            if c.generate {
                loud[r] = true;
            } else {
                silent[r] = true;
            }
        }
    }
    for i in order {
        let RuleKind::Correlation(c) = &rules[i].kind else { continue };
        let Ok(refs) = resolve(rules, c) else { continue };
        let out = correlate(i, c, &refs, rules, &matches, stats);
        if let Some(slot) = matches.get_mut(i) {
            *slot = out;
        }
    }
    for (i, ms) in matches.iter_mut().enumerate() {
        if silent[i] && !loud[i] {
            ms.clear();
        }
    }
    matches
}

/// One correlation over the current matches.
fn correlate(ci: usize, c: &Correlation, refs: &[usize], rules: &[CompiledRule], matches: &[Vec<Match>], stats: &mut HuntStats) -> Vec<Match> {
    // Inputs: (time, seq, position in `rules:`, match).
    let mut inputs: Vec<(i64, u64, usize, &Match)> = Vec::new();
    let mut no_time = 0u64;
    for (pos, r) in refs.iter().enumerate() {
        let chained = matches!(rules[*r].kind, RuleKind::Correlation(_));
        for m in matches.get(*r).map(Vec::as_slice).unwrap_or_default() {
            // A sequence or a chained correlation contributes its shell (one per hit), not each
            // building block.
            if m.sequence.as_ref().is_some_and(|s| s.index.is_some()) {
                continue;
            }
            if chained && m.correlation.is_none() {
                continue;
            }
            match m.time {
                Some(t) => inputs.push((t, m.seq, pos, m)),
                None => no_time += 1,
            }
        }
    }
    inputs.sort_by_key(|(t, seq, pos, _)| (*t, *seq, *pos));
    let mut missing = 0u64;
    let mut truncated = 0u64;
    let mut ev = Evaluator::new(c.clone());
    let mut hits = Vec::new();
    for (n, (t, _, pos, m)) in inputs.iter().enumerate() {
        let rule = &rules[refs[*pos]];
        let reference = c.rules.get(*pos).map(String::as_str).unwrap_or("");
        // The group: for a chained correlation, its own group values by name.
        let group_values: Vec<Vec<String>> = c
            .group_by
            .iter()
            .map(|g| {
                let name = c.group_field(g, reference);
                match &m.correlation {
                    Some(h) => h.group.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect(),
                    None => values_of(m.event.doc.as_ref(), &ecs_fields(rule, name)),
                }
            })
            .collect();
        if group_values.iter().any(Vec::is_empty) {
            missing += 1;
            continue;
        }
        let value = c.field.as_ref().and_then(|f| {
            let name = c.group_field(f, reference);
            values_of(m.event.doc.as_ref(), &ecs_fields(rule, name)).into_iter().next()
        });
        let mut combos: Vec<Vec<String>> = vec![Vec::new()];
        for vs in &group_values {
            let mut next = Vec::new();
            for p in &combos {
                for v in vs {
                    if next.len() >= MAX_GROUPS_PER_EVENT {
                        truncated += 1;
                        break;
                    }
                    let mut q = p.clone();
                    q.push(v.clone());
                    next.push(q);
                }
            }
            combos = next;
        }
        for group in combos {
            hits.extend(ev.push(Input { rule: *pos, time_ms: *t, group, value: value.clone(), event: n as u64 }));
        }
    }
    hits.extend(ev.finish());
    if let Some(s) = stats.rules.get_mut(ci) {
        s.matched += hits.len() as u64;
        s.no_timestamp += no_time;
        s.missing_terms += missing;
        s.tuples_truncated += truncated;
        s.sequences_evicted += ev.dropped.groups_evicted;
        s.sequence_events_dropped += ev.dropped.events_dropped;
    }
    let rule_id = &rules[ci].rule.rule_id;
    let mut out = Vec::new();
    for h in hits {
        let members: Vec<&(i64, u64, usize, &Match)> = h.events.iter().filter_map(|e| inputs.get(*e as usize)).collect();
        let Some(last) = members.last() else { continue };
        let events: Vec<imdsguard_ecs::Event> = members.iter().map(|m| m.3.event.clone()).collect();
        let group_id = group_id(rule_id, &events, h.first_ms);
        let mut contributing: Vec<usize> = members.iter().map(|m| m.2).collect();
        contributing.sort_unstable();
        contributing.dedup();
        let rule_names: Vec<String> = contributing.iter().map(|p| rules[refs[*p]].rule.name.clone()).collect();
        let group: Vec<(String, String)> = c.group_by.iter().cloned().zip(h.group.iter().cloned()).collect();
        let hit = CorrelationHit {
            kind: c.kind.as_str(),
            reason: reason(c, &rules[ci].rule.name, &group, h.value, members.len(), &rule_names, &rules[ci].rule.severity),
            group,
            value: h.value,
            field: c.field.clone(),
            condition: c.condition.display(),
            timespan_ms: c.timespan_ms,
            first_ms: h.first_ms,
            last_ms: h.last_ms,
            rules: rule_names,
        };
        for (idx, m) in members.iter().enumerate() {
            out.push(Match {
                rule: ci,
                sequence: Some(SequenceRef { group_id: group_id.clone(), index: Some(idx), members: Vec::new() }),
                new_terms: None,
                suppressed: None,
                threshold: None,
                correlation: None,
                ..m.3.clone()
            });
        }
        out.push(Match {
            rule: ci,
            time: Some(h.last_ms),
            sequence: Some(SequenceRef { group_id, index: None, members: events }),
            new_terms: None,
            suppressed: None,
            threshold: None,
            correlation: Some(Box::new(hit)),
            ..last.3.clone()
        });
    }
    out
}

fn reason(
    c: &Correlation,
    name: &str,
    group: &[(String, String)],
    value: f64,
    events: usize,
    rules: &[String],
    severity: &imdsguard_rules::Severity,
) -> String {
    let what = match c.kind {
        imdsguard_sigma::correlation::CorrelationType::EventCount => format!("{} event(s)", fmt_num(value)),
        imdsguard_sigma::correlation::CorrelationType::ValueCount => {
            format!("{} distinct value(s) of {} in {events} event(s)", fmt_num(value), c.field.as_deref().unwrap_or("?"))
        }
        imdsguard_sigma::correlation::CorrelationType::Temporal => format!("{events} event(s) of {} rule(s)", fmt_num(value)),
        imdsguard_sigma::correlation::CorrelationType::TemporalOrdered => format!("{events} event(s) of {} rule(s) in order", fmt_num(value)),
        other => format!(
            "{} of {} = {} over {events} event(s)",
            other.as_str().trim_start_matches("value_"),
            c.field.as_deref().unwrap_or("?"),
            fmt_num(value)
        ),
    };
    let cond = c.condition.display();
    let grp: Vec<String> = group.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut s = format!("{} correlation: {what} from [{}]", c.kind.as_str(), rules.join(", "));
    if !grp.is_empty() {
        s.push_str(&format!(" with {}", grp.join(", ")));
    }
    s.push_str(&format!(" within {}", fmt_span(c.timespan_ms)));
    if !cond.is_empty() {
        s.push_str(&format!(" ({cond})"));
    }
    s.push_str(&format!(" created {} alert {name}.", severity.as_str()));
    s
}

/// A stable id for a correlation hit: hash of the rule, its events' keys and the window start.
fn group_id(rule_id: &str, members: &[imdsguard_ecs::Event], first_ms: i64) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"correlation\0");
    h.update(rule_id.as_bytes());
    h.update(first_ms.to_le_bytes());
    for m in members {
        h.update([0]);
        h.update(m.key.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
