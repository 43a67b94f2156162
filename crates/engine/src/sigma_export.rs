//! `rules export --format sigma`: an Elastic rule's detection as a Sigma rule (YAML, ECS field
//! names, `logsource: {product: ecs}`), through [`imdsguard_sigma::export`]. Single-event EQL
//! exports from its syntax tree; KQL from its lowered IR. What Sigma cannot express is refused
//! with the reason: new_terms (no history in Sigma), thresholds and sequences (Sigma correlation
//! rules are a different form), ES|QL and machine-learning rules.

use crate::compile::{compile_matcher, Matcher};
use imdsguard_ecs::FieldTable;
use imdsguard_rules::{Rule, RuleType};
use imdsguard_sigma::export::{from_eql_query, from_ir, to_yaml, ExportMeta};
use std::sync::Arc;

/// The Sigma YAML of `rule`, or why it cannot be exported.
pub fn export_sigma(rule: &Rule, table: &Arc<FieldTable>, now_millis: i64) -> Result<String, String> {
    let query = match (&rule.rule_type, rule.effective_language()) {
        (RuleType::NewTerms, _) => return Err("new_terms alerts on values not seen in a history window: Sigma has no history".into()),
        (RuleType::Threshold, _) => return Err("threshold rules count events per group: a Sigma correlation rule, not exported yet".into()),
        (RuleType::Query | RuleType::Eql, Some("eql")) => {
            if !rule.filters.is_empty() {
                return Err("the EQL rule's Kibana filters are not exported yet".into());
            }
            let q = imdsguard_eql::parse(rule.query.as_deref().unwrap_or("")).map_err(|d| d.message)?;
            from_eql_query(&q)?
        }
        // The lowered query includes the rule's Kibana filters.
        (RuleType::Query, Some("kuery")) => {
            let (matcher, _) = compile_matcher(rule, table, now_millis).map_err(|d| d.first().map(|d| d.message.clone()).unwrap_or_default())?;
            match matcher.base() {
                Matcher::Ir(e) => from_ir(e)?,
                _ => return Err("the query did not lower to a single-event expression".into()),
            }
        }
        (t, l) => return Err(format!("{} rules in {} are not exported", t.as_str(), l.unwrap_or("no language"))),
    };
    let tactics = rule.threat.iter().map(|t| format!("attack.{}", t.tactic.name.to_lowercase().replace(' ', "-")));
    let techniques = rule.technique_ids().into_iter().map(|t| format!("attack.{}", t.to_lowercase()));
    let meta = ExportMeta {
        title: rule.name.clone(),
        id: rule.rule_id.clone(),
        description: rule.description.clone(),
        severity: rule.severity.as_str().to_string(),
        tags: tactics.chain(techniques).collect(),
        references: rule.references.clone(),
        falsepositives: rule.false_positives.clone(),
        author: rule.author.join(", "),
    };
    to_yaml(&meta, &query)
}
