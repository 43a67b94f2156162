//! `--explain`: why an alert or a match came about, as text (credentials redacted): the query
//! tree with each clause's outcome ([`CompiledRule::explain`]) and what the rule type added.

use crate::compile::CompiledRule;
use crate::hunt::Match;

/// The explanation of one match of `rule`: the query tree with each clause's outcome and the
/// values it saw, then what the rule type added (new terms, threshold group, sequence step).
pub fn explain_match(rule: &CompiledRule, m: &Match) -> String {
    let mut text = format!("{} ({}), event {}\n", rule.rule.name, rule.rule.rule_id, m.event.provenance);
    if matches!(rule.kind, crate::compile::RuleKind::Correlation(_)) {
        // A correlation has no query of its own: say what it counted and over which events.
        if let Some(h) = &m.correlation {
            text.push_str(&format!("{}\n", h.reason));
        }
        if let Some(s) = &m.sequence {
            match s.index {
                Some(i) => text.push_str(&format!("correlation {}: event {} of the window\n", s.group_id, i + 1)),
                None => {
                    for (i, ev) in s.members.iter().enumerate() {
                        text.push_str(&format!("  event {}: {}\n", i + 1, ev.provenance));
                    }
                }
            }
        }
        imdsguard_ecs::redact::redact_string(&mut text);
        return text;
    }
    text.push_str(&rule.explain(m.event.doc.as_ref()).render());
    if let Some(t) = &m.new_terms {
        text.push_str(&format!("new terms: {t:?} (not seen in the history window)\n"));
    }
    if let Some(t) = &m.threshold {
        let terms: Vec<String> = t.terms.iter().map(|(f, v)| format!("{f}={v:?}")).collect();
        text.push_str(&format!("threshold group [{}]: {} event(s)", terms.join(", "), t.count));
        for (f, n) in &t.cardinality {
            text.push_str(&format!(", {n} distinct {f}"));
        }
        text.push('\n');
    }
    if let Some(s) = &m.sequence {
        match s.index {
            Some(i) => text.push_str(&format!("sequence {}: this event matched step {}\n", s.group_id, i + 1)),
            None => {
                text.push_str(&format!("sequence {}: {} event(s)\n", s.group_id, s.members.len()));
                for (i, ev) in s.members.iter().enumerate() {
                    text.push_str(&format!("  step {}: event {}\n", i + 1, ev.provenance));
                }
            }
        }
    }
    if let Some(s) = &m.suppressed {
        text.push_str(&format!("suppression: {} more alert(s) of the same group folded into this one\n", s.docs_count));
    }
    imdsguard_ecs::redact::redact_string(&mut text);
    text
}
