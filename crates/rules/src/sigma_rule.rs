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

/// Convert one Sigma rule file holding a single detection rule. Returns the rule and non-fatal
/// warnings.
pub fn from_sigma(text: &str, origin: &str, pipelines: &[Pipeline]) -> Result<(Rule, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut all = from_sigma_file(text, origin, pipelines);
    match all.len() {
        1 => all.remove(0),
        _ => Err(vec![Diagnostic::error("S003", "several YAML documents in one file: load the file with from_sigma_file")]),
    }
}

/// A converted document: the rule and its warnings, or why it cannot load.
pub type Converted = Result<(Rule, Vec<Diagnostic>), Vec<Diagnostic>>;

/// Convert every document of a Sigma file: detection rules and correlation rules (a correlation
/// and the rules it references may share a file, separated by `---`). One result per document,
/// in file order; a document that fails does not stop the others.
pub fn from_sigma_file(text: &str, origin: &str, pipelines: &[Pipeline]) -> Vec<Converted> {
    if !imdsguard_sigma::looks_like_sigma(text) {
        return vec![Err(vec![Diagnostic::error(
            "S002",
            "not a Sigma rule: a Sigma rule has top-level `logsource:` and `detection:` keys (or `correlation:`)",
        )])];
    }
    let docs = match imdsguard_sigma::parse_documents(text) {
        Ok(d) => d,
        Err(e) => return vec![Err(vec![diagnostic(text, &e)])],
    };
    let file = origin.rsplit(['/', '\\']).next().unwrap_or(origin).to_string();
    let several = docs.len() > 1;
    docs.into_iter()
        .enumerate()
        .map(|(i, (_, d))| {
            // Rules without an id: `sigma:<file>`, and `sigma:<file>#<n>` for later documents.
            let fallback_id = if several && i > 0 { format!("sigma:{file}#{}", i + 1) } else { format!("sigma:{file}") };
            match d {
                Err(e) => Err(vec![diagnostic(text, &e)]),
                Ok(imdsguard_sigma::SigmaDocument::Rule(sr)) => detection_rule(&sr, origin, &fallback_id, pipelines, several.then_some(i)),
                Ok(imdsguard_sigma::SigmaDocument::Correlation(c)) => Ok((correlation_rule(&c, origin, &fallback_id, several.then_some(i)), Vec::new())),
            }
        })
        .collect()
}

/// The `language` of a correlation rule: its `extra.sigma.correlation` holds the
/// [`imdsguard_sigma::correlation::Correlation`] as JSON.
pub const CORRELATION_LANGUAGE: &str = "sigma-correlation";

fn threat_from_tags(tags: &[String]) -> Vec<Threat> {
    let (tactics, techniques) = imdsguard_sigma::attack_tags(tags);
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
    threat
}

#[allow(clippy::too_many_arguments)]
fn base_rule(
    rule_id: String,
    name: &str,
    description: Option<&str>,
    level: Option<&str>,
    tags: &[String],
    author: Option<&str>,
    status: Option<&str>,
    date: Option<&str>,
    modified: Option<&str>,
    origin: &str,
) -> Rule {
    let (sev, risk) = imdsguard_sigma::severity_of(level);
    Rule {
        rule_id,
        name: name.to_string(),
        description: description.map(str::to_string).unwrap_or_else(|| name.to_string()),
        rule_type: RuleType::Query,
        language: Some("sigma".into()),
        query: None,
        index: Vec::new(),
        data_view_id: None,
        severity: Severity::parse(sev).unwrap_or(Severity::Low),
        risk_score: risk,
        tags: tags.to_vec(),
        author: author.into_iter().map(str::to_string).collect(),
        license: None,
        version: None,
        threat: threat_from_tags(tags),
        note: None,
        setup: None,
        false_positives: Vec::new(),
        references: Vec::new(),
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
            maturity: status.map(str::to_string),
            creation_date: date.map(str::to_string),
            updated_date: modified.map(str::to_string),
            deprecated: status == Some("deprecated"),
            ..RuleMetadata::default()
        },
        transform: None,
        origin: origin.to_string(),
        extra: Map::new(),
    }
}

fn detection_rule(
    sr: &imdsguard_sigma::SigmaRule,
    origin: &str,
    fallback_id: &str,
    pipelines: &[Pipeline],
    document: Option<usize>,
) -> Result<(Rule, Vec<Diagnostic>), Vec<Diagnostic>> {
    let resolved = imdsguard_sigma::apply(sr, pipelines).map_err(|m| vec![Diagnostic::error("S003", format!("Sigma rule: {m}"))])?;
    let warnings: Vec<Diagnostic> = resolved.warnings.iter().map(|w| Diagnostic::warning("S004", format!("Sigma rule: {w}"))).collect();
    let mut rule = base_rule(
        sr.id.clone().unwrap_or_else(|| fallback_id.to_string()),
        &sr.title,
        sr.description.as_deref(),
        sr.level.as_deref(),
        &sr.tags,
        sr.author.as_deref(),
        sr.status.as_deref(),
        sr.date.as_deref(),
        sr.modified.as_deref(),
        origin,
    );
    rule.license = sr.license.clone();
    rule.false_positives = sr.falsepositives.clone();
    rule.references = sr.references.clone();
    // Readable for `rules show`; the engine compiles `extra.sigma.resolved`.
    rule.query = Some(resolved.query.display());
    rule.extra.insert(
        "sigma".into(),
        json!({
            "logsource": {"product": sr.logsource.product, "category": sr.logsource.category, "service": sr.logsource.service},
            "status": sr.status,
            "name": sr.name,
            "document": document,
            "regression_tests_path": sr.regression_tests_path,
            "condition": sr.condition,
            "level": sr.level,
            "pipelines_applied": resolved.applied,
            "field_map": resolved.field_map.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<String, serde_json::Value>>(),
            "resolved": serde_json::to_value(&resolved.query).unwrap_or(serde_json::Value::Null),
        }),
    );
    Ok((rule, warnings))
}

fn correlation_rule(c: &imdsguard_sigma::correlation::Correlation, origin: &str, fallback_id: &str, document: Option<usize>) -> Rule {
    let m = &c.meta;
    let mut rule = base_rule(
        c.id.clone().unwrap_or_else(|| fallback_id.to_string()),
        &c.title,
        m.description.as_deref(),
        c.level.as_deref(),
        &m.tags,
        m.author.as_deref(),
        m.status.as_deref(),
        m.date.as_deref(),
        m.modified.as_deref(),
        origin,
    );
    rule.language = Some(CORRELATION_LANGUAGE.into());
    rule.false_positives = m.falsepositives.clone();
    rule.references = m.references.clone();
    let cond = c.condition.display();
    rule.query = Some(format!(
        "{}(rules: {}; group-by: {}; timespan: {} ms{}{})",
        c.kind.as_str(),
        c.rules.join(", "),
        if c.group_by.is_empty() { "-".to_string() } else { c.group_by.join(", ") },
        c.timespan_ms,
        c.field.as_ref().map(|f| format!("; field: {f}")).unwrap_or_default(),
        if cond.is_empty() { String::new() } else { format!("; condition: {cond}") },
    ));
    rule.extra.insert(
        "sigma".into(),
        json!({
            "status": m.status,
            "name": c.name,
            "document": document,
            "regression_tests_path": m.regression_tests_path,
            "level": c.level,
            "correlation": serde_json::to_value(c).unwrap_or(serde_json::Value::Null),
        }),
    );
    rule
}

/// The references of each Sigma correlation rule in `rules` that name no rule of the set (by
/// `rule_id` or Sigma `name`): `(index of the correlation, missing references)`.
pub fn unresolved_references(rules: &[Rule]) -> Vec<(usize, Vec<String>)> {
    let name_of = |r: &Rule| r.extra.get("sigma").and_then(|s| s.get("name")).and_then(|n| n.as_str()).map(str::to_string);
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        if r.language.as_deref() != Some(CORRELATION_LANGUAGE) {
            continue;
        }
        let refs: Vec<String> = r
            .extra
            .get("sigma")
            .and_then(|s| s.get("correlation"))
            .and_then(|c| c.get("rules"))
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let missing: Vec<String> =
            refs.into_iter().filter(|x| !rules.iter().any(|o| &o.rule_id == x || name_of(o).as_deref() == Some(x.as_str()))).collect();
        if !missing.is_empty() {
            out.push((i, missing));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_document_of_a_file_loads_or_fails_on_its_own() {
        let text = "title: Corr\ncorrelation:\n    type: event_count\n    rules: [good, missing]\n    timespan: 5m\n    condition:\n        gte: 2\n---\ntitle: Bad\nlogsource:\n    product: linux\ndetection:\n    sel:\n        Image|nosuch: x\n    condition: sel\n---\ntitle: Good\nname: good\nlogsource:\n    product: linux\n    category: process_creation\ndetection:\n    sel:\n        Image|endswith: /curl\n    condition: sel\n";
        let docs = from_sigma_file(text, "dir/f.yml", &imdsguard_sigma::builtin_pipelines());
        assert_eq!(docs.len(), 3);
        let corr = match &docs[0] {
            Ok((r, _)) => r,
            Err(d) => panic!("{d:?}"),
        };
        assert_eq!((corr.rule_id.as_str(), corr.language.as_deref()), ("sigma:f.yml", Some(CORRELATION_LANGUAGE)));
        assert_eq!(corr.query.as_deref(), Some("event_count(rules: good, missing; group-by: -; timespan: 300000 ms; condition: gte 2)"));
        let bad = docs[1].as_ref().err().and_then(|d| d.first()).map(|d| (d.code, d.message.clone(), d.span.map(|s| &text[s.start..s.end])));
        assert_eq!(bad, Some(("S002", "Sigma rule: search `sel`: field `Image|nosuch`: unknown value modifier `nosuch`".to_string(), Some("        Image|nosuch: x"))));
        let good = match &docs[2] {
            Ok((r, _)) => r,
            Err(d) => panic!("{d:?}"),
        };
        assert_eq!(good.rule_id, "sigma:f.yml#3");
        assert_eq!(good.extra["sigma"]["name"], "good");
        assert_eq!(good.extra["sigma"]["field_map"]["Image"], serde_json::json!(["process.executable"]));
        // `good` is loaded, `missing` is not.
        let rules: Vec<Rule> = docs.into_iter().filter_map(Result::ok).map(|(r, _)| r).collect();
        assert_eq!(unresolved_references(&rules), vec![(0, vec!["missing".to_string()])]);
        // Rule collections stop the file with the reason.
        let coll = from_sigma_file("action: global\ntitle: t\nlogsource:\n  product: x\n---\ndetection:\n  s:\n    a: b\n  condition: s\n", "c.yml", &[]);
        let e = coll.first().and_then(|r| r.as_ref().err()).and_then(|d| d.first()).map(|d| d.message.clone()).unwrap_or_default();
        assert!(e.contains("rule collections"), "{e}");
    }
}
