//! Compiling an Elastic rule into something that can run.

use crate::lower_kql::KqlLowering;
use imdsguard_ecs::time;
use imdsguard_ecs::{FieldPath, FieldTable};
use imdsguard_ir::literals::Needles;
use imdsguard_ir::Expr;
use imdsguard_rules::{Rule, RuleType};
use imdsguard_syntax::Diagnostic;
use std::sync::Arc;

/// How a rule decides which events alert.
#[derive(Debug, Clone)]
pub enum RuleKind {
    /// Every matching event alerts.
    Query,
    /// An EQL sequence: each completed sequence alerts once per event (building blocks) plus a
    /// shell alert sharing `kibana.alert.group.id`, as Kibana writes them.
    Sequence(Box<crate::eql::sequence::SequenceSpec>),
    /// An EQL sample: alerted like a sequence (building blocks and a shell per sample).
    Sample(Box<crate::eql::sample::SampleSpec>),
    /// A matching event alerts when its combination of `fields` values was not seen in matching
    /// events during the history window before it.
    NewTerms { fields: Vec<FieldPath>, history_window_ms: i64 },
    /// Matching events are counted per combination of `fields` values in each execution's
    /// window; a group with at least `value` events (and the cardinality conditions) alerts once.
    Threshold(ThresholdSpec),
    /// A Sigma correlation rule: no query of its own; at the end of the hunt the matches of the
    /// rules it references are grouped and windowed (see [`crate::correlate`]).
    Correlation(Box<imdsguard_sigma::correlation::Correlation>),
}

/// A compiled `threshold` rule.
#[derive(Debug, Clone)]
pub struct ThresholdSpec {
    /// Group-by fields (none: one group of every matching event).
    pub fields: Vec<(String, FieldPath)>,
    /// Minimum number of events per group.
    pub value: u64,
    /// At least `value` distinct values of the field among the group's events.
    pub cardinality: Vec<(String, FieldPath, u64)>,
    /// How far back each execution looks: `now` minus the rule's `from`.
    pub lookback_ms: i64,
}

/// The compiled query of a rule.
#[derive(Debug, Clone)]
pub enum Matcher {
    Ir(Expr),
    /// A single-event EQL query.
    Eql(crate::eql::expr::EqlExpr),
    /// An EQL sequence: an event is kept when it matches some step or `until`; sequences are
    /// assembled when the hunt finishes.
    EqlSequence(Box<crate::eql::sequence::SequenceSpec>),
    /// An EQL sample: an event is kept when it matches some step.
    EqlSample(Box<crate::eql::sample::SampleSpec>),
    /// A Sigma rule's detection: IR expressions plus Sigma-only leaves (regex, field references).
    Sigma(Box<imdsguard_sigma::SigmaMatcher>),
    /// Another matcher restricted by a filter every event must also pass: the Kibana filters of
    /// an EQL rule and the rule's exceptions (negated), which Kibana sends as the search's
    /// filter, so an event failing it never reaches the query, a sequence or a threshold count.
    Filtered(Box<Matcher>, Expr),
}

impl Matcher {
    pub fn matches(&self, doc: &dyn imdsguard_ecs::Document) -> bool {
        match self {
            Matcher::Ir(e) => e.matches(doc),
            Matcher::Eql(e) => e.matches(doc),
            Matcher::Sigma(m) => m.matches(doc),
            Matcher::EqlSequence(s) => {
                s.steps.iter().any(|st| st.filter.matches(doc)) || s.until.as_ref().is_some_and(|u| u.filter.matches(doc))
            }
            Matcher::EqlSample(s) => s.steps.iter().any(|st| st.filter.matches(doc)),
            Matcher::Filtered(inner, f) => inner.matches(doc) && f.matches(doc),
        }
    }

    /// Why `doc` does or does not match: each clause with its outcome (see
    /// [`imdsguard_ir::explain`]). For sequences and samples, one branch per step.
    pub fn explain(&self, doc: &dyn imdsguard_ecs::Document) -> imdsguard_ir::explain::Explained {
        use imdsguard_ir::explain::Explained;
        let steps = |filters: Vec<(String, &crate::eql::expr::EqlExpr)>| {
            let children: Vec<Explained> = filters
                .into_iter()
                .map(|(name, f)| {
                    let e = crate::eql::explain::explain(f, doc);
                    Explained::node(e.outcome, &name, vec![e])
                })
                .collect();
            let any = children.iter().any(|c| c.outcome == Some(true));
            Explained::node(Some(any), "matches some step", children)
        };
        match self {
            Matcher::Ir(e) => imdsguard_ir::explain::explain(e, doc),
            Matcher::Eql(e) => crate::eql::explain::explain(e, doc),
            Matcher::Sigma(m) => m.explain(doc),
            Matcher::EqlSequence(s) => {
                let mut filters: Vec<(String, &crate::eql::expr::EqlExpr)> =
                    s.steps.iter().enumerate().map(|(i, st)| (format!("step {}{}", i + 1, if st.missing { " (missing event)" } else { "" }), &st.filter)).collect();
                if let Some(u) = &s.until {
                    filters.push(("until".into(), &u.filter));
                }
                steps(filters)
            }
            Matcher::EqlSample(s) => steps(s.steps.iter().enumerate().map(|(i, st)| (format!("step {}", i + 1), &st.filter)).collect()),
            Matcher::Filtered(inner, f) => {
                let a = inner.explain(doc);
                let b = imdsguard_ir::explain::explain(f, doc);
                let outcome = a.outcome == Some(true) && b.outcome == Some(true);
                Explained::node(Some(outcome), "and", vec![a, Explained::node(b.outcome, "filters and exceptions", vec![b])])
            }
        }
    }

    /// The matcher under any filters.
    pub fn base(&self) -> &Matcher {
        match self {
            Matcher::Filtered(inner, _) => inner.base(),
            other => other,
        }
    }

    /// Restrict the matcher with a filter every event must pass.
    pub fn filtered(self, f: Expr) -> Matcher {
        match self {
            Matcher::Ir(q) => Matcher::Ir(Expr::and(vec![q, f])),
            other => Matcher::Filtered(Box::new(other), f),
        }
    }
    pub fn needles(&self) -> Needles {
        match self {
            Matcher::Ir(e) => e.needles(),
            Matcher::Eql(e) => e.needles(),
            Matcher::Sigma(m) => m.needles(),
            Matcher::EqlSequence(s) => imdsguard_ir::literals::disjunction(
                s.steps.iter().chain(s.until.iter()).map(|st| st.filter.needles()),
            ),
            Matcher::EqlSample(s) => imdsguard_ir::literals::disjunction(s.steps.iter().map(|st| st.filter.needles())),
            // A conjunct only narrows what matches: the inner matcher's needles stay valid.
            Matcher::Filtered(inner, _) => inner.needles(),
        }
    }
}

/// A rule ready to run.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub rule: Arc<Rule>,
    pub matcher: Matcher,
    pub kind: RuleKind,
    /// Fields read for the event time, in order (`timestamp_override`, then `@timestamp`).
    pub time_fields: Vec<FieldPath>,
    /// Execution interval in milliseconds (`max_signals` applies per interval of event time).
    pub interval_ms: i64,
    pub max_signals: u32,
    /// Non-fatal findings (e.g. a clause Elasticsearch would reject).
    pub warnings: Vec<Diagnostic>,
    /// Kibana alert suppression (`alert_suppression`), for query and single-event EQL rules.
    pub suppression: Option<Suppression>,
}

/// Kibana's alert suppression: alerts with the same values of `group_by` within `duration` (or
/// within one rule execution when no duration is set) become one alert counting the others.
#[derive(Debug, Clone)]
pub struct Suppression {
    pub group_by: Vec<(String, FieldPath)>,
    pub duration_ms: Option<i64>,
    /// `missing_fields_strategy: suppress` (default): a missing field is a value of its own;
    /// `doNotSuppress`: an alert missing a group-by field is never suppressed.
    pub suppress_missing: bool,
}

fn parse_suppression(v: &serde_json::Value) -> Result<Suppression, Diagnostic> {
    let group_by: Vec<(String, FieldPath)> = v
        .get("group_by")
        .and_then(|g| g.as_array())
        .map(|a| a.iter().filter_map(|f| f.as_str()).map(|f| (f.to_string(), FieldPath::new(f))).collect())
        .unwrap_or_default();
    if group_by.is_empty() || group_by.len() > 3 {
        return Err(Diagnostic::error("E012", "alert_suppression.group_by needs 1 to 3 fields"));
    }
    let duration_ms = match v.get("duration") {
        None | Some(serde_json::Value::Null) => None,
        Some(d) => {
            let value = d.get("value").and_then(|x| x.as_i64()).unwrap_or(0);
            let unit = d.get("unit").and_then(|x| x.as_str()).unwrap_or("m");
            Some(time::parse_duration(&format!("{value}{unit}")).filter(|ms| *ms > 0).ok_or_else(|| {
                Diagnostic::error("E012", format!("alert_suppression.duration {value}{unit} is not a duration"))
            })?)
        }
    };
    let suppress_missing = v.get("missing_fields_strategy").and_then(|s| s.as_str()) != Some("doNotSuppress");
    Ok(Suppression { group_by, duration_ms, suppress_missing })
}

/// Compile the query of `rule` (and its Kibana filters) without looking at the rule type: what
/// `rules validate` checks. Returns the matcher and non-fatal warnings.
pub fn compile_matcher(rule: &Rule, table: &Arc<FieldTable>, now_millis: i64) -> Result<(Matcher, Vec<Diagnostic>), Vec<Diagnostic>> {
    let language = rule.language.as_deref().unwrap_or(match rule.rule_type {
        RuleType::Eql => "eql",
        RuleType::Esql => "esql",
        _ => "kuery",
    });
    let query = rule.query.as_deref().unwrap_or("");
    let (matcher, warnings) = match language {
        "kuery" => {
            let ast = imdsguard_kql::parse(query).map_err(|d| vec![d])?;
            let mut lowering = KqlLowering::new(table, now_millis);
            let expr = lowering.lower(&ast);
            (Matcher::Ir(expr), lowering.warnings)
        }
        "eql" => {
            let q = imdsguard_eql::parse(query).map_err(|d| vec![d])?;
            if let Some(p) = q.pipes.first() {
                return Err(vec![Diagnostic::error("E023", "pipes are not allowed in detection rules").with_span(p.span)]);
            }
            match &q.body {
                imdsguard_eql::ast::QueryBody::Event(ev) => {
                    let settings = crate::eql::lower::EqlSettings {
                        event_category_field: rule.extra.get("event_category_override").and_then(|v| v.as_str()).unwrap_or("event.category").to_string(),
                        ..Default::default()
                    };
                    let mut lowering = crate::eql::lower::EqlLowering::new(table, &settings);
                    let e = lowering.event_query(ev).map_err(|d| vec![d])?;
                    (Matcher::Eql(e), lowering.warnings)
                }
                imdsguard_eql::ast::QueryBody::Sequence(s) => {
                    let settings = crate::eql::lower::EqlSettings {
                        event_category_field: rule.extra.get("event_category_override").and_then(|v| v.as_str()).unwrap_or("event.category").to_string(),
                        ..Default::default()
                    };
                    let mut lowering = crate::eql::lower::EqlLowering::new(table, &settings);
                    let spec = lowering.sequence(s).map_err(|d| vec![d])?;
                    (Matcher::EqlSequence(Box::new(spec)), lowering.warnings)
                }
                imdsguard_eql::ast::QueryBody::Sample(s) => {
                    let settings = crate::eql::lower::EqlSettings {
                        event_category_field: rule.extra.get("event_category_override").and_then(|v| v.as_str()).unwrap_or("event.category").to_string(),
                        ..Default::default()
                    };
                    let mut lowering = crate::eql::lower::EqlLowering::new(table, &settings);
                    let spec = lowering.sample(s).map_err(|d| vec![d])?;
                    (Matcher::EqlSample(Box::new(spec)), lowering.warnings)
                }
            }
        }
        "sigma" => {
            // The pipeline-resolved Sigma detection (see imdsguard_rules::sigma_rule).
            let resolved = rule.extra.get("sigma").and_then(|s| s.get("resolved")).cloned();
            let q = match resolved {
                Some(v) => serde_json::from_value::<imdsguard_sigma::Query>(v).map_err(|e| e.to_string()),
                None => imdsguard_sigma::Query::from_json(query),
            }
            .map_err(|e| vec![Diagnostic::error("S003", format!("Sigma rule without a resolved detection: {e}"))])?;
            let m = imdsguard_sigma::lower(&q, table).map_err(|e| vec![Diagnostic::error("S003", format!("Sigma rule: {e}"))])?;
            let matcher = match m {
                imdsguard_sigma::SigmaMatcher::Ir(e) => Matcher::Ir(e),
                other => Matcher::Sigma(Box::new(other)),
            };
            (matcher, Vec::new())
        }
        imdsguard_rules::sigma_rule::CORRELATION_LANGUAGE => {
            // Checked here so `rules validate` reports a broken one; it matches no event itself.
            correlation_of(rule)?;
            (Matcher::Ir(Expr::Const(false)), Vec::new())
        }
        other => {
            return Err(vec![Diagnostic::error("E001", format!("query language `{other}` is not supported yet"))
                .with_help("supported languages: kuery, eql (single-event queries), sigma")]);
        }
    };
    let matcher = if rule.filters.is_empty() {
        matcher
    } else {
        // Kibana filters are part of the rule's query: the rule never runs without them.
        let filters = crate::lower_dsl::lower_filters(&rule.filters, table, now_millis)
            .map_err(|e| vec![Diagnostic::error("E003", format!("rule filters: {e}"))])?;
        matcher.filtered(filters)
    };
    Ok((matcher, warnings))
}

/// The Sigma correlation of a rule of language [`imdsguard_rules::sigma_rule::CORRELATION_LANGUAGE`].
fn correlation_of(rule: &Rule) -> Result<imdsguard_sigma::correlation::Correlation, Vec<Diagnostic>> {
    let v = rule.extra.get("sigma").and_then(|s| s.get("correlation")).cloned().unwrap_or(serde_json::Value::Null);
    serde_json::from_value(v).map_err(|e| vec![Diagnostic::error("S003", format!("Sigma correlation rule without a valid correlation: {e}"))])
}

/// Compile `rule`. `now_millis` anchors date math in queries. Errors name what cannot run and why;
/// the source the spans point into is the rule's `query`.
pub fn compile_rule(rule: Arc<Rule>, table: &Arc<FieldTable>, now_millis: i64) -> Result<CompiledRule, Vec<Diagnostic>> {
    let (matcher, warnings) = compile_matcher(&rule, table, now_millis)?;
    let kind = match &rule.rule_type {
        RuleType::Eql => match matcher.base() {
            Matcher::EqlSequence(spec) => RuleKind::Sequence(spec.clone()),
            Matcher::EqlSample(spec) => RuleKind::Sample(spec.clone()),
            _ => RuleKind::Query,
        },
        RuleType::Query if rule.language.as_deref() == Some(imdsguard_rules::sigma_rule::CORRELATION_LANGUAGE) => {
            RuleKind::Correlation(Box::new(correlation_of(&rule)?))
        }
        RuleType::Query => RuleKind::Query,
        RuleType::NewTerms => {
            let Some(nt) = &rule.new_terms else {
                return Err(vec![Diagnostic::error("E010", "new_terms rule without new_terms fields")]);
            };
            let start = &nt.history_window_start;
            let anchor = 0_i64;
            let history_window_ms = match time::parse_date_math(start, anchor) {
                Ok(t) if t < anchor => anchor - t,
                Ok(_) => {
                    return Err(vec![Diagnostic::error(
                        "E011",
                        format!("history_window_start \"{start}\" must be in the past (like now-7d)"),
                    )])
                }
                Err(e) => return Err(vec![Diagnostic::error("E011", format!("invalid history_window_start \"{start}\": {e}"))]),
            };
            RuleKind::NewTerms { fields: nt.fields.iter().map(|f| FieldPath::new(f)).collect(), history_window_ms }
        }
        RuleType::Threshold => {
            let Some(th) = &rule.threshold else {
                return Err(vec![Diagnostic::error("E012", "threshold rule without threshold parameters")]);
            };
            if th.field.len() > 3 {
                return Err(vec![Diagnostic::error("E012", format!("threshold groups by at most 3 fields, not {}", th.field.len()))]);
            }
            let interval = time::parse_duration(&rule.interval).filter(|ms| *ms > 0).unwrap_or(5 * 60 * 1000);
            let lookback_ms = match time::parse_date_math(&rule.from, 0) {
                Ok(t) if t < 0 => (-t).max(interval),
                Ok(_) => return Err(vec![Diagnostic::error("E012", format!("from \"{}\" must be in the past (like now-6m)", rule.from))]),
                Err(e) => return Err(vec![Diagnostic::error("E012", format!("invalid from \"{}\": {e}", rule.from))]),
            };
            RuleKind::Threshold(ThresholdSpec {
                fields: th.field.iter().map(|f| (f.clone(), FieldPath::new(f))).collect(),
                value: th.value.max(1),
                cardinality: th.cardinality.iter().map(|c| (c.field.clone(), FieldPath::new(&c.field), c.value)).collect(),
                lookback_ms,
            })
        }
        other => {
            return Err(vec![Diagnostic::error(
                "E001",
                format!("rule type `{}` is not supported yet", other.as_str()),
            )
            .with_help("supported rule types: query, eql, new_terms, threshold")]);
        }
    };
    let mut time_fields = Vec::new();
    if let Some(ts) = &rule.timestamp_override {
        time_fields.push(FieldPath::new(ts));
    }
    time_fields.push(FieldPath::new("@timestamp"));
    let interval_ms = time::parse_duration(&rule.interval).filter(|ms| *ms > 0).unwrap_or(5 * 60 * 1000);
    let suppression = match (&rule.alert_suppression, &kind) {
        (Some(v), RuleKind::Query | RuleKind::NewTerms { .. }) => Some(parse_suppression(v).map_err(|d| vec![d])?),
        // Kibana's threshold suppression takes only a duration and groups by the threshold fields.
        (Some(v), RuleKind::Threshold(spec)) => {
            let mut with_fields = v.clone();
            with_fields["group_by"] = serde_json::json!(spec.fields.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
            if spec.fields.is_empty() {
                with_fields["group_by"] = serde_json::json!(["__threshold_all__"]);
            }
            Some(parse_suppression(&with_fields).map_err(|d| vec![d])?)
        }
        (Some(_), _) => {
            return Err(vec![Diagnostic::error("E001", "Kibana does not support alert suppression on EQL sequence and sample rules")]);
        }
        (None, _) => None,
    };
    // Sigma has no max_signals: a correlation's alerts (a shell and its building blocks) are
    // never cut in the middle.
    let max_signals = if matches!(kind, RuleKind::Correlation(_)) { u32::MAX } else { rule.max_signals };
    Ok(CompiledRule { max_signals, rule, matcher, kind, time_fields, interval_ms, warnings, suppression })
}

impl CompiledRule {
    /// Why `doc` does or does not match the rule's query (filters and exceptions included).
    pub fn explain(&self, doc: &dyn imdsguard_ecs::Document) -> imdsguard_ir::explain::Explained {
        self.matcher.explain(doc)
    }

    /// Apply exception items: events any of them matches never reach the rule (Kibana sends the
    /// items as a negated filter of the rule's search).
    pub fn with_exceptions(
        mut self,
        items: &[&imdsguard_rules::ExceptionItem],
        lists: &crate::exceptions::ValueLists,
        table: &FieldTable,
        now_millis: i64,
    ) -> Result<CompiledRule, Diagnostic> {
        if items.is_empty() {
            return Ok(self);
        }
        let excepted = crate::exceptions::exception_expr(items, lists, table, now_millis).map_err(|e| Diagnostic::error("E013", e))?;
        self.matcher = self.matcher.filtered(Expr::not(excepted));
        Ok(self)
    }

    /// Event time in epoch milliseconds: the first parseable value of the time fields.
    pub fn event_time(&self, doc: &dyn imdsguard_ecs::Document) -> Option<i64> {
        for f in &self.time_fields {
            let mut found = None;
            doc.any_value(f, &mut |v| {
                found = time::value_to_millis(v);
                found.is_some()
            });
            if found.is_some() {
                return found;
            }
        }
        None
    }
}
