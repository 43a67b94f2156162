//! Sigma rules as [`Rule`]s: a Sigma YAML file becomes a `query` rule with `language = "sigma"`
//! whose `extra.sigma.resolved` is the pipeline-resolved detection ([`imdsguard_sigma::Query`] as
//! JSON), which the engine compiles; `query` holds its readable form. Severity and risk score come from `level`, the ATT&CK mapping from the
//! `attack.*` tags.

use imdsguard_sigma::{ErrorKind, Pipeline};
use imdsguard_syntax::{Diagnostic, Span};
use serde_json::{json, Map};

use crate::model::{Rule, RuleMetadata, RuleType, Severity, Threat, ThreatTactic, ThreatTechnique};

/// Byte span of a 1-based line (without its newline).
fn line_span(text: &str, line: usize) -> Option<Span> {
    let mut start = 0;
    for (i, l) in text.split('\n').enumerate() {
        if i + 1 == line {
            return Some(Span::new(start, start + l.len()));
        }
        start += l.len() + 1;
    }
    None
}

fn diagnostic(text: &str, e: &imdsguard_sigma::SigmaError) -> Diagnostic {
    let code = match e.kind {
        ErrorKind::Syntax => "S001",
        ErrorKind::Invalid => "S002",
        ErrorKind::Unsupported => "S003",
    };
    let mut d = Diagnostic::error(code, format!("Sigma rule: {}", e.message));
    // A condition error points into the condition's text when it can be found on its line.
    let cond_span = e.condition_span.as_ref().and_then(|(s, end, cond)| {
        let line = line_span(text, e.line?)?;
        let at = text.get(line.start..)?.find(cond.as_str())? + line.start;
        Some(Span::new(at + s, at + (*end).max(*s)))
    });
    if let Some(s) = cond_span.or_else(|| e.line.and_then(|l| line_span(text, l))) {
        d = d.with_span(s);
    }
    d
}

/// Convert one Sigma rule file. Returns the rule and non-fatal warnings.
pub fn from_sigma(text: &str, origin: &str, pipelines: &[Pipeline]) -> Result<(Rule, Vec<Diagnostic>), Vec<Diagnostic>> {
    if !imdsguard_sigma::looks_like_sigma(text) {
        return Err(vec![Diagnostic::error("S002", "not a Sigma rule: a Sigma rule has top-level `logsource:` and `detection:` keys")]);
    }
    let sr = imdsguard_sigma::parse_rule(text).map_err(|e| vec![diagnostic(text, &e)])?;
    let resolved = imdsguard_sigma::apply(&sr, pipelines).map_err(|m| vec![Diagnostic::error("S003", format!("Sigma rule: {m}"))])?;
    let warnings: Vec<Diagnostic> = resolved.warnings.iter().map(|w| Diagnostic::warning("S004", format!("Sigma rule: {w}"))).collect();
    let (sev, risk) = imdsguard_sigma::severity_of(sr.level.as_deref());
    let (tactics, techniques) = imdsguard_sigma::attack_tags(&sr.tags);
    let mut threat = Vec::new();
    for t in &tactics {
        let Some((_, id, name)) = imdsguard_sigma::TACTICS.iter().find(|(n, _, _)| n == t) else { continue };
        let technique = techniques
            .iter()
            .filter(|x| !x.contains('.'))
            .map(|x| ThreatTechnique {
                id: x.clone(),
                name: x.clone(),
                reference: format!("https://attack.mitre.org/techniques/{x}/"),
                subtechnique: techniques
                    .iter()
                    .filter(|s| s.starts_with(&format!("{x}.")))
                    .map(|s| crate::model::ThreatSubtechnique {
                        id: s.clone(),
                        name: s.clone(),
                        reference: format!("https://attack.mitre.org/techniques/{}/", s.replace('.', "/")),
                    })
                    .collect(),
            })
            .collect();
        threat.push(Threat {
            framework: "MITRE ATT&CK".into(),
            tactic: ThreatTactic { id: (*id).into(), name: (*name).into(), reference: format!("https://attack.mitre.org/tactics/{id}/") },
            technique,
        });
    }
    // A sub-technique tagged without its parent still names the parent technique.
    for th in &mut threat {
        for s in techniques.iter().filter(|s| s.contains('.')) {
            let parent = s.split('.').next().unwrap_or(s).to_string();
            if !th.technique.iter().any(|t| t.id == parent) {
                th.technique.push(ThreatTechnique {
                    id: parent.clone(),
                    name: parent.clone(),
                    reference: format!("https://attack.mitre.org/techniques/{parent}/"),
                    subtechnique: vec![crate::model::ThreatSubtechnique {
                        id: s.clone(),
                        name: s.clone(),
                        reference: format!("https://attack.mitre.org/techniques/{}/", s.replace('.', "/")),
                    }],
                });
            }
        }
    }
    let file = origin.rsplit(['/', '\\']).next().unwrap_or(origin);
    let mut extra = Map::new();
    extra.insert(
        "sigma".into(),
        json!({
            "logsource": {"product": sr.logsource.product, "category": sr.logsource.category, "service": sr.logsource.service},
            "status": sr.status,
            "condition": sr.condition,
            "level": sr.level,
            "pipelines_applied": resolved.applied,
            "resolved": serde_json::to_value(&resolved.query).unwrap_or(serde_json::Value::Null),
        }),
    );
    let rule = Rule {
        rule_id: sr.id.clone().unwrap_or_else(|| format!("sigma:{file}")),
        name: sr.title.clone(),
        description: sr.description.clone().unwrap_or_else(|| sr.title.clone()),
        rule_type: RuleType::Query,
        language: Some("sigma".into()),
        // Readable for `rules show`; the engine compiles `extra.sigma.resolved`.
        query: Some(resolved.query.display()),
        index: Vec::new(),
        data_view_id: None,
        severity: Severity::parse(sev).unwrap_or(Severity::Low),
        risk_score: risk,
        tags: sr.tags.clone(),
        author: sr.author.iter().cloned().collect(),
        license: sr.license.clone(),
        version: None,
        threat,
        note: None,
        setup: None,
        false_positives: sr.falsepositives.clone(),
        references: sr.references.clone(),
        from: crate::model::DEFAULT_FROM.into(),
        interval: crate::model::DEFAULT_INTERVAL.into(),
        max_signals: crate::model::DEFAULT_MAX_SIGNALS,
        timestamp_override: None,
        new_terms: None,
        threshold: None,
        filters: Vec::new(),
        alert_suppression: None,
        building_block_type: None,
        enabled: true,
        metadata: RuleMetadata {
            maturity: sr.status.clone(),
            creation_date: sr.date.clone(),
            updated_date: sr.modified.clone(),
            deprecated: sr.status.as_deref() == Some("deprecated"),
            ..RuleMetadata::default()
        },
        transform: None,
        origin: origin.to_string(),
        extra,
    };
    Ok((rule, warnings))
}
