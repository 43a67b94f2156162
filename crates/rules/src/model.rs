//! The rule model: [`Rule`] and the value types it is made of.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use imdsguard_syntax::Diagnostic;

/// Kibana's default look-back start when a rule has no `from`.
pub const DEFAULT_FROM: &str = "now-6m";
/// Kibana's default schedule interval when a rule has no `interval`.
pub const DEFAULT_INTERVAL: &str = "5m";
/// Kibana's default maximum number of alerts per execution when a rule has no `max_signals`.
pub const DEFAULT_MAX_SIGNALS: u32 = 100;

/// One Elastic detection rule, as loaded from a detection-rules TOML file or a Kibana JSON object.
///
/// Fields mirror Kibana's detection engine API (`rule_id`, `type`, `from`, ...). Kibana defaults are
/// applied where the source leaves a key out (`from` = [`DEFAULT_FROM`], `interval` =
/// [`DEFAULT_INTERVAL`], `max_signals` = [`DEFAULT_MAX_SIGNALS`], `enabled` = `true`). Every `[rule]`
/// key the model does not name is kept, as JSON, in [`Rule::extra`]: nothing is silently dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Stable identifier of the rule (a UUID in Elastic's packs).
    pub rule_id: String,
    pub name: String,
    pub description: String,
    /// The detection engine type (`type` in the source).
    #[serde(rename = "type")]
    pub rule_type: RuleType,
    /// Query language as written: `kuery`, `lucene`, `eql` or `esql`. Not defaulted; see
    /// [`Rule::effective_language`].
    pub language: Option<String>,
    pub query: Option<String>,
    /// Index patterns the rule searches (empty when it uses a data view or is an ES|QL / ML rule).
    pub index: Vec<String>,
    pub data_view_id: Option<String>,
    pub severity: Severity,
    /// Risk score, validated to `0..=100`.
    pub risk_score: u32,
    pub tags: Vec<String>,
    pub author: Vec<String>,
    pub license: Option<String>,
    pub version: Option<u32>,
    /// MITRE ATT&CK mapping; serializes to Kibana's `threat` JSON shape.
    pub threat: Vec<Threat>,
    pub note: Option<String>,
    pub setup: Option<String>,
    pub false_positives: Vec<String>,
    pub references: Vec<String>,
    /// Start of the look-back window (date math), default [`DEFAULT_FROM`].
    pub from: String,
    /// Schedule interval, default [`DEFAULT_INTERVAL`].
    pub interval: String,
    /// Maximum alerts per execution, default [`DEFAULT_MAX_SIGNALS`].
    pub max_signals: u32,
    pub timestamp_override: Option<String>,
    /// `new_terms` parameters (present for `new_terms` rules).
    pub new_terms: Option<NewTerms>,
    /// `threshold` parameters (present for `threshold` rules).
    pub threshold: Option<Threshold>,
    /// Kibana filter objects, kept verbatim.
    pub filters: Vec<Value>,
    /// Kibana `alert_suppression` object, kept verbatim.
    pub alert_suppression: Option<Value>,
    /// `"default"` for building-block rules.
    pub building_block_type: Option<String>,
    /// Whether the rule is enabled, default `true`.
    pub enabled: bool,
    /// The `[metadata]` table (or the metadata keys of a JSON summary record).
    pub metadata: RuleMetadata,
    /// The detection-rules `[transform]` table (investigation guide osquery / investigate blocks), as JSON.
    pub transform: Option<Value>,
    /// Where the rule came from: a file path, `builtin:<file>`, or `<file>:<line>` for NDJSON.
    pub origin: String,
    /// Every other rule key, preserved verbatim as JSON (nulls are dropped).
    pub extra: Map<String, Value>,
}

impl Rule {
    /// The query language Kibana would use: the declared one, else `kuery` for the KQL-family
    /// types, `eql` / `esql` for those types, `None` for machine learning and unknown types.
    pub fn effective_language(&self) -> Option<&str> {
        if let Some(l) = &self.language {
            return Some(l.as_str());
        }
        match self.rule_type {
            RuleType::Query
            | RuleType::NewTerms
            | RuleType::Threshold
            | RuleType::ThreatMatch
            | RuleType::SavedQuery => Some("kuery"),
            RuleType::Eql => Some("eql"),
            RuleType::Esql => Some("esql"),
            RuleType::MachineLearning | RuleType::Other(_) => None,
        }
    }

    /// True for rules whose metadata marks them deprecated.
    pub fn is_deprecated(&self) -> bool {
        self.metadata.deprecated
    }

    /// True for building-block rules.
    pub fn is_building_block(&self) -> bool {
        self.building_block_type.is_some()
    }

    /// Every ATT&CK technique and sub-technique id the rule maps to, in source order.
    ///
    /// Uses [`Rule::threat`]; for summary records that only carry a flat `techniques` list (kept
    /// in `metadata.extra["techniques"]`), that list is used instead.
    pub fn technique_ids(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.threat {
            for tech in &t.technique {
                out.push(tech.id.clone());
                for sub in &tech.subtechnique {
                    out.push(sub.id.clone());
                }
            }
        }
        if out.is_empty() {
            if let Some(Value::Array(items)) = self.metadata.extra.get("techniques") {
                out.extend(items.iter().filter_map(|v| v.as_str().map(str::to_owned)));
            }
        }
        out
    }

    /// Every ATT&CK tactic id (`TA00xx`) the rule maps to.
    pub fn tactic_ids(&self) -> Vec<&str> {
        self.threat.iter().map(|t| t.tactic.id.as_str()).collect()
    }

    /// Optional semantic checks that never block loading: they return warnings (code `R006`)
    /// for things Kibana would accept but that look wrong, such as a `from` that is not
    /// `now-<n><unit>` date math or an `interval` that is not `<n><unit>`.
    pub fn validate_semantics(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        if parse_date_math_lookback(&self.from).is_none() {
            out.push(Diagnostic::warning(
                "R006",
                format!("`from` = {:?} is not `now` or `now-<n><unit>` date math", self.from),
            ));
        }
        if parse_duration_secs(&self.interval).is_none() {
            out.push(Diagnostic::warning(
                "R006",
                format!("`interval` = {:?} is not `<n><unit>` (s, m, h, d)", self.interval),
            ));
        }
        if let Some(nt) = &self.new_terms {
            if parse_date_math_lookback(&nt.history_window_start).is_none() {
                out.push(Diagnostic::warning(
                    "R006",
                    format!("`history_window_start` = {:?} is not `now-<n><unit>` date math", nt.history_window_start),
                ));
            }
        }
        out
    }
}

/// Seconds of look-back in `now` / `now-<n><unit>` date math (units s, m, h, d, w). `None` when the
/// text is some other date math.
pub fn parse_date_math_lookback(s: &str) -> Option<u64> {
    let rest = s.trim().strip_prefix("now")?;
    if rest.is_empty() {
        return Some(0);
    }
    parse_duration_secs(rest.strip_prefix('-')?)
}

/// Seconds in `<n><unit>` with unit `s`, `m`, `h`, `d` or `w`.
pub fn parse_duration_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let digits = &s[..s.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// The detection engine rule type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleType {
    Query,
    Eql,
    NewTerms,
    Threshold,
    Esql,
    MachineLearning,
    ThreatMatch,
    SavedQuery,
    /// Any other type string, kept as written.
    Other(String),
}

impl RuleType {
    /// Kibana's spelling (`query`, `eql`, `new_terms`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            RuleType::Query => "query",
            RuleType::Eql => "eql",
            RuleType::NewTerms => "new_terms",
            RuleType::Threshold => "threshold",
            RuleType::Esql => "esql",
            RuleType::MachineLearning => "machine_learning",
            RuleType::ThreatMatch => "threat_match",
            RuleType::SavedQuery => "saved_query",
            RuleType::Other(s) => s,
        }
    }

    /// Parses Kibana's spelling; unknown strings become [`RuleType::Other`].
    pub fn parse(s: &str) -> RuleType {
        match s {
            "query" => RuleType::Query,
            "eql" => RuleType::Eql,
            "new_terms" => RuleType::NewTerms,
            "threshold" => RuleType::Threshold,
            "esql" => RuleType::Esql,
            "machine_learning" => RuleType::MachineLearning,
            "threat_match" => RuleType::ThreatMatch,
            "saved_query" => RuleType::SavedQuery,
            other => RuleType::Other(other.to_owned()),
        }
    }

    /// Whether Kibana requires a `query` for this type.
    pub fn requires_query(&self) -> bool {
        matches!(
            self,
            RuleType::Query
                | RuleType::Eql
                | RuleType::Esql
                | RuleType::NewTerms
                | RuleType::Threshold
                | RuleType::ThreatMatch
        )
    }

    /// The languages Kibana accepts for this type; `None` when the type does not constrain it.
    pub fn allowed_languages(&self) -> Option<&'static [&'static str]> {
        match self {
            RuleType::Query
            | RuleType::NewTerms
            | RuleType::Threshold
            | RuleType::ThreatMatch
            | RuleType::SavedQuery => Some(&["kuery", "lucene"]),
            RuleType::Eql => Some(&["eql"]),
            RuleType::Esql => Some(&["esql"]),
            RuleType::MachineLearning | RuleType::Other(_) => None,
        }
    }
}

impl fmt::Display for RuleType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RuleType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RuleType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(RuleType::parse(&s))
    }
}

/// Alert severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses Kibana's lowercase spelling.
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `threat` entry: a framework, a tactic and the techniques under it.
///
/// Serializes to Kibana's shape: `{"framework", "tactic": {id, name, reference}, "technique": [...]}`.
/// `technique` (and each technique's `subtechnique`) is left out when empty, as in the JSON Elastic
/// generates from detection-rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threat {
    pub framework: String,
    pub tactic: ThreatTactic,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub technique: Vec<ThreatTechnique>,
}

/// An ATT&CK tactic (`TA00xx`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreatTactic {
    pub id: String,
    pub name: String,
    pub reference: String,
}

/// An ATT&CK technique (`Txxxx`) with its sub-techniques.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreatTechnique {
    pub id: String,
    pub name: String,
    pub reference: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subtechnique: Vec<ThreatSubtechnique>,
}

/// An ATT&CK sub-technique (`Txxxx.yyy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreatSubtechnique {
    pub id: String,
    pub name: String,
    pub reference: String,
}

/// Parameters of a `new_terms` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTerms {
    /// `new_terms_fields`: 1 to 3 fields whose value combination must be new.
    pub fields: Vec<String>,
    /// `history_window_start`, date math such as `now-7d`.
    pub history_window_start: String,
}

/// Parameters of a `threshold` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    /// Group-by fields (a single string in the source becomes one element; `""` becomes none).
    pub field: Vec<String>,
    /// Minimum number of matching events per group.
    pub value: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cardinality: Vec<Cardinality>,
}

/// A threshold cardinality condition: at least `value` distinct values of `field`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cardinality {
    pub field: String,
    pub value: u64,
}

/// The detection-rules `[metadata]` table.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RuleMetadata {
    /// `production`, `development` or `deprecated`.
    pub maturity: Option<String>,
    pub creation_date: Option<String>,
    pub updated_date: Option<String>,
    /// Integration package names (`endpoint`, `aws`, ...).
    pub integration: Vec<String>,
    /// `maturity == "deprecated"` (or a JSON record's `deprecated: true`).
    pub deprecated: bool,
    /// Every other metadata key (`min_stack_version`, `deprecation_date`, ...), as JSON.
    pub extra: Map<String, Value>,
}
