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

/// [`apply`] for one batch of a stream: the correlations also see the referenced rules' matches
/// that earlier batches carried (as far back as the longest `timespan` referencing each rule),
/// a correlation hit already raised by an earlier batch is not raised again, and `state` keeps
/// what the next batch needs. The referenced rules' own alerts are those of this batch only.
pub fn apply_stream(rules: &[CompiledRule], matches: Vec<Vec<Match>>, stats: &mut HuntStats, state: &mut crate::stream::StreamState) -> Vec<Vec<Match>> {
    if !rules.iter().any(|r| matches!(r.kind, RuleKind::Correlation(_))) {
        return matches;
    }
    // Referenced rules and how far back their matches are needed.
    let mut reach: std::collections::BTreeMap<usize, i64> = std::collections::BTreeMap::new();
    for r in rules {
        let RuleKind::Correlation(c) = &r.kind else { continue };
        for i in resolve(rules, c).unwrap_or_default() {
            let e = reach.entry(i).or_insert(0);
            *e = (*e).max(c.timespan_ms);
        }
    }
    let mut inputs = matches.clone();
    for (&i, _) in &reach {
        let mut carried = std::mem::take(&mut state.rule_mut(&rules[i].rule.rule_id).corr_inputs);
        for m in &mut carried {
            m.rule = i;
        }
        if let Some(slot) = inputs.get_mut(i) {
            carried.append(slot);
            *slot = carried;
        }
    }
    // What the next batch needs, before the evaluation consumes the inputs.
    let max = state.max_carried();
    for (&i, &span) in &reach {
        let Some(ms) = inputs.get(i) else { continue };
        let newest = ms.iter().filter_map(|m| m.time).max();
        let mut keep: Vec<Match> = match newest {
            Some(hw) => ms.iter().filter(|m| m.time.is_some_and(|t| t >= hw.saturating_sub(span))).cloned().collect(),
            None => Vec::new(),
        };
        if keep.len() > max {
            keep.sort_by_key(|m| (m.time.unwrap_or(i64::MIN), m.seq));
            let cut = keep.len() - max;
            keep.drain(..cut);
            state.stats.carry_evicted += cut as u64;
        }
        state.rule_mut(&rules[i].rule.rule_id).corr_inputs = keep;
    }
    let out = apply(rules, inputs, stats);
    let mut result = matches;
    for (i, (mine, all)) in result.iter_mut().zip(out).enumerate() {
        if matches!(rules[i].kind, RuleKind::Correlation(_)) {
            // Keep only new hits: a hit (one group id: shell and blocks) holding at least one event
            // of this batch (a hit of carried events alone was decided by an earlier batch), and
            // not raised before.
            let base = state.next_seq;
            let emitted = &mut state.rule_mut(&rules[i].rule.rule_id).emitted_groups;
            let mut fresh = std::collections::HashSet::new();
            for m in &all {
                if let Some(seq) = m.sequence.as_ref().filter(|s| s.index.is_some()) {
                    if m.seq >= base && !emitted.contains_key(&seq.group_id) {
                        fresh.insert(seq.group_id.clone());
                    }
                }
            }
            for m in &all {
                if let Some(seq) = m.sequence.as_ref().filter(|s| s.index.is_none() && fresh.contains(&s.group_id)) {
                    emitted.insert(seq.group_id.clone(), m.time.unwrap_or(i64::MIN));
                }
            }
            *mine = all.into_iter().filter(|m| m.sequence.as_ref().is_some_and(|s| fresh.contains(&s.group_id))).collect();
        } else if all.is_empty() {
            // Matches only feeding correlations (`generate: false`): no alerts of their own.
            mine.clear();
        }
    }
    result
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
    // One handle per event (an event matching several referenced rules is one event; a chained
    // correlation's shell is an event of its own).
    let mut handles: std::collections::HashMap<(u64, bool), u64> = std::collections::HashMap::new();
    let mut by_handle: Vec<usize> = Vec::new();
    let mut rules_of: Vec<Vec<usize>> = Vec::new();
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
        let next = by_handle.len() as u64;
        let handle = *handles.entry((m.seq, m.correlation.is_some())).or_insert(next);
        if handle == next {
            by_handle.push(n);
            rules_of.push(Vec::new());
        }
        if let Some(r) = rules_of.get_mut(handle as usize) {
            r.push(*pos);
        }
        for group in combos {
            hits.extend(ev.push(Input { rule: *pos, time_ms: *t, group, value: value.clone(), event: handle }));
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
        let mut seen = std::collections::HashSet::new();
        let handles_hit: Vec<usize> = h.events.iter().map(|e| *e as usize).filter(|e| seen.insert(*e)).collect();
        let members: Vec<&(i64, u64, usize, &Match)> =
            handles_hit.iter().filter_map(|e| by_handle.get(*e).and_then(|n| inputs.get(*n))).collect();
        let Some(last) = members.last() else { continue };
        let events: Vec<imdsguard_ecs::Event> = members.iter().map(|m| m.3.event.clone()).collect();
        let group_id = group_id(rule_id, &events, h.first_ms);
        // The rules of the window's events (an event may stand for several).
        let mut contributing: Vec<usize> = handles_hit.iter().filter_map(|e| rules_of.get(*e)).flatten().copied().collect();
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

#[cfg(test)]
mod tests {
    use crate::history::MemoryHistory;
    use crate::{compile_rule, CompiledRule, Hunt, Match};
    use imdsguard_ecs::{Event, FieldTable, Provenance};
    use std::sync::Arc;

    /// Compile every document of Sigma files with the built-in pipelines.
    fn rules(files: &[&str]) -> Vec<CompiledRule> {
        let pipelines = imdsguard_sigma::builtin_pipelines();
        let table = Arc::new(FieldTable::ecs());
        let mut out = Vec::new();
        for (i, text) in files.iter().enumerate() {
            for r in imdsguard_rules::sigma_rule::from_sigma_file(text, &format!("f{i}.yml"), &pipelines) {
                let (rule, _) = r.unwrap_or_else(|d| panic!("{d:?}"));
                out.push(compile_rule(Arc::new(rule), &table, 0).unwrap_or_else(|d| panic!("{d:?}")));
            }
        }
        out
    }

    /// A process-creation event on `host` at 10:mm:ss by `user` running `cmd`.
    fn ev(i: usize, mm: u32, ss: u32, host: &str, user: &str, cmd: &str) -> Event {
        let doc = serde_json::json!({"@timestamp": format!("2026-05-01T10:{mm:02}:{ss:02}Z"),
            "host": {"name": host, "os": {"type": "linux"}}, "user": {"name": user},
            "event": {"category": ["process"], "type": ["start"]},
            "process": {"command_line": cmd, "executable": "/usr/bin/curl", "bytes": i * 100}});
        Event {
            doc: Arc::new(sonic_rs::from_str(&doc.to_string()).unwrap_or_default()),
            provenance: Provenance { origin: Arc::from("t"), line: i as u64 },
            key: format!("k{i}"),
            index: None,
        }
    }

    fn hunt(rules: Vec<CompiledRule>, events: &[Event]) -> (Vec<Match>, crate::HuntStats, Vec<CompiledRule>) {
        let mut h = Hunt::new(rules);
        for e in events {
            h.evaluate(e);
        }
        h.finish(&mut MemoryHistory::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    const CURL: &str = "title: Metadata request in a command line
id: 00000000-0000-4000-8000-0000000000a1
name: md_cmdline
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        CommandLine|contains: '169.254.169.254'
    condition: selection
";

    const TOKEN: &str = "title: Token request
id: 00000000-0000-4000-8000-0000000000a2
name: md_token
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        CommandLine|contains: 'api/token'
    condition: selection
";

    /// (rule name, group index or "shell") of each alert, in order.
    fn summary(ms: &[Match], rules: &[CompiledRule]) -> Vec<(String, String)> {
        ms.iter()
            .map(|m| {
                let pos = match &m.sequence {
                    Some(s) => s.index.map(|i| i.to_string()).unwrap_or_else(|| "shell".into()),
                    None => "-".into(),
                };
                (rules[m.rule].rule.name.clone(), pos)
            })
            .collect()
    }

    #[test]
    fn event_count_by_host_with_hand_computed_windows() {
        let corr = "title: Repeated metadata requests
id: 00000000-0000-4000-8000-0000000000c1
correlation:
    type: event_count
    rules: [md_cmdline]
    group-by: [ComputerName]
    timespan: 5m
    condition:
        gte: 3
";
        // ComputerName is not mapped by the Linux pipeline: use host.name through the group-by
        // as written would find nothing, so the correlation groups by the ECS name instead.
        let corr = corr.replace("ComputerName", "host.name");
        let md = "curl http://169.254.169.254/latest/meta-data/";
        // h1: 0:00, 1:00 | 7:00, 8:00, 9:00 -> one hit (7, 8, 9); 0:00 and 1:00 expired at 7:00.
        // h2: 0:00, 2:00, 4:59 -> one hit (three within 5m: 4:59 - 0:00 < 5m).
        // h3: 0:00, 5:00, 10:00 -> none (events exactly 5m apart are not in one window).
        let events = vec![
            ev(1, 0, 0, "h1", "u", md),
            ev(2, 0, 0, "h2", "u", md),
            ev(3, 0, 0, "h3", "u", md),
            ev(4, 1, 0, "h1", "u", md),
            ev(5, 2, 0, "h2", "u", md),
            ev(6, 4, 59, "h2", "u", md),
            ev(7, 5, 0, "h3", "u", md),
            ev(8, 7, 0, "h1", "u", md),
            ev(9, 8, 0, "h1", "u", md),
            ev(10, 8, 30, "h1", "u", "curl http://example.com/"),
            ev(11, 9, 0, "h1", "u", md),
            ev(12, 10, 0, "h3", "u", md),
        ];
        let (ms, stats, rules) = hunt(rules(&[&corr, CURL]), &events);
        let shells: Vec<&Match> = ms.iter().filter(|m| m.correlation.is_some()).collect();
        assert_eq!(shells.len(), 2, "{:?}", summary(&ms, &rules));
        let h2 = shells[0].correlation.as_deref().unwrap_or_else(|| unreachable!());
        assert_eq!(h2.group, vec![("host.name".to_string(), "h2".to_string())]);
        assert_eq!((h2.value, h2.first_ms % 3_600_000, h2.last_ms % 3_600_000), (3.0, 0, 299_000));
        let h1 = shells[1].correlation.as_deref().unwrap_or_else(|| unreachable!());
        assert_eq!(h1.group, vec![("host.name".to_string(), "h1".to_string())]);
        assert_eq!((h1.first_ms % 3_600_000, h1.last_ms % 3_600_000), (7 * 60_000, 9 * 60_000));
        let keys: Vec<&str> = shells[1].sequence.as_ref().map(|s| s.members.iter().map(|e| e.key.as_str()).collect()).unwrap_or_default();
        assert_eq!(keys, ["k8", "k9", "k11"]);
        assert!(h1.reason.starts_with("event_count correlation: 3 event(s) from [Metadata request in a command line] with host.name=h1 within 5m (gte 3)"), "{}", h1.reason);
        // Building blocks + shells, and the base rule (generate: false by default) stays silent.
        assert_eq!(ms.len(), 8);
        assert!(ms.iter().all(|m| rules[m.rule].rule.name == "Repeated metadata requests"));
        assert_eq!(stats.rules[1].matched, 11);
        assert_eq!(stats.rules[1].alerts, 0);
    }

    /// Alert identities (rule, event, group index) of a run, sorted.
    fn ids(ms: &[Match], rules: &[CompiledRule]) -> Vec<String> {
        let mut v: Vec<String> = ms
            .iter()
            .map(|m| format!("{} {} {:?}", rules[m.rule].rule.name, m.event.key, m.sequence.as_ref().map(|s| (s.group_id.clone(), s.index))))
            .collect();
        v.sort();
        v
    }

    /// The same correlations over a stream cut into two batches, at every cut (the state restored
    /// from JSON in between), raise the alerts of the whole stream: windows span batches, and a
    /// hit is raised once.
    #[test]
    fn correlations_over_a_stream_cut_anywhere() {
        let count = "title: Repeated metadata requests
id: 00000000-0000-4000-8000-0000000000c1
correlation:
    type: event_count
    rules: [md_cmdline]
    group-by: [host.name]
    timespan: 5m
    condition:
        gte: 3
";
        let ordered = "title: Token then metadata
correlation:
    type: temporal_ordered
    rules: [md_token, md_cmdline]
    group-by: [user.name]
    timespan: 1m
";
        let md = "curl http://169.254.169.254/latest/meta-data/";
        let tok = "curl -X PUT http://169.254.169.254/latest/api/token";
        let events = vec![
            ev(1, 0, 0, "h1", "alice", tok),
            ev(2, 0, 0, "h2", "bob", md),
            ev(3, 0, 30, "h1", "alice", md),
            ev(4, 1, 0, "h1", "carol", md),
            ev(5, 2, 0, "h2", "bob", md),
            ev(6, 4, 59, "h2", "bob", md),
            ev(7, 7, 0, "h1", "carol", md),
            ev(8, 8, 0, "h1", "carol", md),
            ev(9, 9, 0, "h1", "carol", md),
            ev(10, 9, 10, "h1", "carol", md),
        ];
        let all = rules(&[count, ordered, CURL, TOKEN]);
        let (ms, _, rs) = hunt(all.clone(), &events);
        let whole = ids(&ms, &rs);
        assert!(whole.iter().filter(|s| s.contains("None))")).count() >= 3, "{whole:#?}");
        for cut in 1..events.len() {
            let mut state = crate::StreamState::new();
            let mut history = MemoryHistory::default();
            let mut got = Vec::new();
            for batch in [&events[..cut], &events[cut..]] {
                let mut h = Hunt::new(all.clone());
                for e in batch {
                    h.evaluate(e);
                }
                let (ms, _, rs) = h.finish_stream(&mut history, &mut state).unwrap_or_else(|e| panic!("{e}"));
                got.extend(ids(&ms, &rs));
                state = crate::StreamState::from_json(&state.to_json()).unwrap_or_else(|e| panic!("{e}"));
            }
            got.sort();
            assert_eq!(got, whole, "cut after event {cut}");
        }
    }

    #[test]
    fn temporal_ordered_with_aliases_across_files_and_generate_true() {
        // Token request then metadata request by the same user (`who` is user.name in both).
        let corr = "title: Token then metadata
correlation:
    type: temporal_ordered
    rules: [md_token, 00000000-0000-4000-8000-0000000000a1]
    group-by: [who]
    aliases:
        who:
            md_token: User
            00000000-0000-4000-8000-0000000000a1: user.name
    timespan: 1m
    generate: true
";
        let tok = "curl -X PUT http://169.254.169.254/latest/api/token";
        let md = "curl http://169.254.169.254/latest/meta-data/iam/";
        // alice: token 0:00, metadata 0:30 -> hit. bob: metadata 0:10 before his token 0:20 ->
        // none; carol: token 0:00, metadata 1:00 -> outside 1m.
        // The token command line also contains the address, so it matches both base rules; an
        // event fills at most one step.
        let events = vec![
            ev(1, 0, 0, "h", "alice", tok),
            ev(2, 0, 0, "h", "carol", tok),
            ev(3, 0, 10, "h", "bob", md),
            ev(4, 0, 20, "h", "bob", tok),
            ev(5, 0, 30, "h", "alice", md),
            ev(6, 1, 0, "h", "carol", md),
        ];
        let (ms, _, rules) = hunt(rules(&[CURL, TOKEN, corr]), &events);
        let shells: Vec<&Match> = ms.iter().filter(|m| m.correlation.is_some()).collect();
        assert_eq!(shells.len(), 1, "{:?}", summary(&ms, &rules));
        let h = shells[0].correlation.as_deref().unwrap_or_else(|| unreachable!());
        assert_eq!(h.group, vec![("who".to_string(), "alice".to_string())]);
        let keys: Vec<&str> = shells[0].sequence.as_ref().map(|s| s.members.iter().map(|e| e.key.as_str()).collect()).unwrap_or_default();
        assert_eq!(keys, ["k1", "k5"]);
        // generate: true: the base rules alert as usual (6 metadata command lines, 3 tokens).
        let base = |n: &str| ms.iter().filter(|m| rules[m.rule].rule.name == n).count();
        assert_eq!((base("Metadata request in a command line"), base("Token request")), (6, 3));
    }

    #[test]
    fn value_count_and_value_sum() {
        let vc = "title: Many users
correlation:
    type: value_count
    rules: [md_cmdline]
    group-by: [host.name]
    timespan: 10m
    condition:
        field: user.name
        gte: 3
---
title: Bytes
correlation:
    type: value_sum
    rules: [md_cmdline]
    group-by: [host.name]
    timespan: 10m
    generate: true
    condition:
        field: process.bytes
        gt: 1000
";
        let md = "curl 169.254.169.254";
        // host a: alice 0:00 (100), bob 1:00 (200), alice 2:00 (300), carol 3:00 (400) -> 3 distinct at 3:00;
        // sum 100+200+300+400 = 1000 (not > 1000), + 500 at 4:00 = 1500 -> value_sum hit at 4:00.
        let events = vec![
            ev(1, 0, 0, "a", "alice", md),
            ev(2, 1, 0, "a", "bob", md),
            ev(3, 2, 0, "a", "alice", md),
            ev(4, 3, 0, "a", "carol", md),
            ev(5, 4, 0, "a", "dave", md),
        ];
        let (ms, _, _) = hunt(rules(&[vc, CURL]), &events);
        let hits: Vec<(&str, f64, i64)> = ms
            .iter()
            .filter_map(|m| m.correlation.as_deref())
            .map(|h| (h.kind, h.value, (h.last_ms % 3_600_000) / 60_000))
            .collect();
        assert_eq!(hits, vec![("value_count", 3.0, 3), ("value_sum", 1500.0, 4)]);
    }

    #[test]
    fn chained_and_broken_references() {
        let chain = "title: Inner
name: inner
correlation:
    type: event_count
    rules: [md_cmdline]
    group-by: [host.name]
    timespan: 1m
    condition:
        gte: 2
---
title: Outer
correlation:
    type: event_count
    rules: [inner]
    group-by: [host.name]
    timespan: 1h
    condition:
        gte: 2
---
title: Broken
correlation:
    type: temporal
    rules: [inner, nowhere]
    timespan: 1h
---
title: Loop A
name: loop_a
correlation:
    type: temporal
    rules: [loop_b]
    timespan: 1h
---
title: Loop B
name: loop_b
correlation:
    type: temporal
    rules: [loop_a]
    timespan: 1h
";
        let md = "curl 169.254.169.254";
        // Inner hits at 0:10 (0:00, 0:10) and 5:10 (5:00, 5:10): two hits in 1h -> one outer hit.
        let events = vec![ev(1, 0, 0, "a", "u", md), ev(2, 0, 10, "a", "u", md), ev(3, 5, 0, "a", "u", md), ev(4, 5, 10, "a", "u", md)];
        let rs = rules(&[chain, CURL]);
        let bad: Vec<(String, String)> = super::check_references(&rs).into_iter().map(|(i, r)| (rs[i].rule.name.clone(), r)).collect();
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert!(bad[0].0 == "Broken" && bad[0].1.contains("nowhere"), "{bad:?}");
        assert!(bad[1].1.contains("cycle") && bad[2].1.contains("cycle"), "{bad:?}");
        let (ms, _, rules) = hunt(rs, &events);
        let shells: Vec<(String, f64)> =
            ms.iter().filter_map(|m| m.correlation.as_deref().map(|h| (rules[m.rule].rule.name.clone(), h.value))).collect();
        // Inner is referenced by Outer (generate: false by default): only Outer alerts.
        assert_eq!(shells, vec![("Outer".to_string(), 2.0)]);
    }

    #[test]
    fn events_missing_a_group_field_are_counted_not_grouped() {
        let corr = "title: By parent
correlation:
    type: event_count
    rules: [md_cmdline]
    group-by: [ParentImage]
    timespan: 5m
    condition:
        gte: 1
";
        let (ms, stats, _) = hunt(rules(&[corr, CURL]), &[ev(1, 0, 0, "a", "u", "curl 169.254.169.254")]);
        assert!(ms.is_empty());
        assert_eq!(stats.rules[0].missing_terms, 1);
    }
}
