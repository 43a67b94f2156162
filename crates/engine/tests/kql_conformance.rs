//! KQL conformance: a data-driven table (`tests/data/kql_conformance.toml`) of KQL queries, ECS
//! documents and whether Elasticsearch matches the document with the query Kibana builds.
//!
//! Each case is parsed with `imdsguard_kql::parse`, lowered with [`KqlLowering`] over the ECS field
//! table (plus the case's `mapping`), and evaluated on the document. Every failure is collected
//! and reported at the end, so one run shows the whole picture.
//!
//! `now` for date math is fixed at 2026-05-01T12:00:00.000Z ([`NOW_MILLIS`]).
//!
//! Cases marked `deviation = true` pin a difference listed in `docs/deviations.md`: their
//! `expected` is imdsguard's documented behaviour. All other expectations are Elasticsearch's.
//! The `[[invalid]]` table lists queries Kibana's grammar rejects, with the byte offset of the error.

use imdsguard_ecs::{time, FieldTable, FieldType};
use imdsguard_engine::lower_kql::KqlLowering;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// `now` for every case: 2026-05-01T12:00:00.000Z.
const NOW_MILLIS: i64 = 1_777_636_800_000;

/// The table must have at least this many cases.
const MIN_CASES: usize = 150;

/// Every grammar feature and field-type rule the table must cover, each by at least one case.
const FEATURES: &[&str] = &[
    // grammar
    "field_value",
    "quoted_phrase",
    "unquoted_term",
    "unquoted_inner_spaces",
    "escapes_quoted",
    "escapes_unquoted",
    "wildcard_value",
    "wildcard_field",
    "value_list",
    "not",
    "and_or_precedence",
    "groups",
    "case_insensitive_keywords",
    "range_number",
    "range_date",
    "range_ip",
    "range_keyword",
    "exists",
    "nested",
    "null_true_false_literals",
    "question_mark_literal",
    "empty_query",
    "field_less_value",
    // field types and document access
    "keyword_exact_case_sensitive",
    "keyword_wildcard",
    "keyword_number_value",
    "wildcard_type_field",
    "text_analysed",
    "ip_address",
    "ip_cidr",
    "long_from_string",
    "boolean",
    "date_equality",
    "not_missing_field",
    "arrays_any",
    "nulls_not_values",
    "dotted_and_nested_keys",
    "unknown_field",
    "type_mismatch",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    #[serde(rename = "case")]
    cases: Vec<Case>,
    #[serde(default)]
    invalid: Vec<Invalid>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    features: Vec<String>,
    query: String,
    /// A JSON string, or an inline TOML table.
    doc: toml::Value,
    expected: bool,
    /// Field name -> Elasticsearch type name, applied on top of the ECS table.
    #[serde(default)]
    mapping: BTreeMap<String, String>,
    /// `Some(true)`: lowering must warn; `Some(false)`: it must not; `None`: not checked.
    #[serde(default)]
    warning: Option<bool>,
    /// The case pins a documented deviation (`expected` is our behaviour, not Elasticsearch's).
    #[serde(default)]
    deviation: bool,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Invalid {
    name: String,
    query: String,
    /// Byte offset where the parse error is reported (the diagnostic span's start).
    offset: usize,
    #[serde(default)]
    note: Option<String>,
}

fn load() -> Table {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/kql_conformance.toml"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    toml::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

fn doc_json(case: &Case) -> Result<Value, String> {
    match &case.doc {
        toml::Value::String(s) => {
            serde_json::from_str(s).map_err(|e| format!("doc is not valid JSON: {e}"))
        }
        other => {
            serde_json::to_value(other).map_err(|e| format!("doc cannot be converted to JSON: {e}"))
        }
    }
}

fn field_type(name: &str) -> Result<FieldType, String> {
    match FieldType::from_es(name) {
        FieldType::Other => Err(format!("unknown Elasticsearch type `{name}` in mapping")),
        t => Ok(t),
    }
}

fn table_for(
    base: &Arc<FieldTable>,
    mapping: &BTreeMap<String, String>,
) -> Result<Arc<FieldTable>, String> {
    if mapping.is_empty() {
        return Ok(Arc::clone(base));
    }
    let mut t = FieldTable::clone(base);
    for (field, ty) in mapping {
        t.insert(field.clone(), field_type(ty)?);
    }
    Ok(Arc::new(t))
}

/// What running one case produced.
struct Outcome {
    got: bool,
    warnings: Vec<String>,
}

fn run(case: &Case, table: &Arc<FieldTable>, doc: &Value) -> Result<Outcome, String> {
    let ast = imdsguard_kql::parse(&case.query).map_err(|d| {
        let at = d
            .span
            .map_or_else(|| "?".to_string(), |s| s.start.to_string());
        format!("parse error at byte {at}: [{}] {}", d.code, d.message)
    })?;
    let mut lowering = KqlLowering::new(table, NOW_MILLIS);
    let expr = lowering.lower(&ast);
    let got = expr.matches(doc);
    let warnings = lowering
        .warnings
        .iter()
        .map(|w| format!("[{}] {}", w.code, w.message))
        .collect();
    Ok(Outcome { got, warnings })
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic)".into())
}

fn shorten(s: &str) -> String {
    const MAX: usize = 300;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

fn describe(case: &Case, doc: &str, problem: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "- {}{}",
        case.name,
        if case.deviation {
            "  [deviation: expects imdsguard's documented behaviour]"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "    query:    {:?}", case.query);
    let _ = writeln!(out, "    doc:      {}", shorten(doc));
    if !case.mapping.is_empty() {
        let _ = writeln!(out, "    mapping:  {:?}", case.mapping);
    }
    let _ = writeln!(out, "    {problem}");
    if let Some(note) = &case.note {
        let _ = writeln!(out, "    note:     {note}");
    }
    out
}

#[test]
fn now_is_fixed() {
    assert_eq!(time::format_millis(NOW_MILLIS), "2026-05-01T12:00:00.000Z");
}

#[test]
fn table_is_complete() {
    let table = load();
    let mut problems = Vec::new();
    if table.cases.len() < MIN_CASES {
        problems.push(format!(
            "the table has {} cases; at least {MIN_CASES} are required",
            table.cases.len()
        ));
    }
    let known: BTreeSet<&str> = FEATURES.iter().copied().collect();
    let mut covered = BTreeSet::new();
    let mut names = BTreeSet::new();
    for case in &table.cases {
        if !names.insert(case.name.as_str()) {
            problems.push(format!("duplicate case name {:?}", case.name));
        }
        if case.features.is_empty() {
            problems.push(format!("case {:?} has no features", case.name));
        }
        for f in &case.features {
            if known.contains(f.as_str()) {
                covered.insert(f.as_str());
            } else {
                problems.push(format!("case {:?}: unknown feature {f:?}", case.name));
            }
        }
        if let Err(e) = doc_json(case) {
            problems.push(format!("case {:?}: {e}", case.name));
        }
        for ty in case.mapping.values() {
            if let Err(e) = field_type(ty) {
                problems.push(format!("case {:?}: {e}", case.name));
            }
        }
        if case.warning == Some(true) && case.expected {
            problems.push(format!(
                "case {:?}: a clause that warns matches nothing, yet expected = true",
                case.name
            ));
        }
    }
    for f in FEATURES {
        if !covered.contains(f) {
            problems.push(format!("feature {f:?} is covered by no case"));
        }
    }
    let mut invalid_names = BTreeSet::new();
    for inv in &table.invalid {
        if !invalid_names.insert(inv.name.as_str()) {
            problems.push(format!("duplicate invalid name {:?}", inv.name));
        }
        if inv.offset > inv.query.len() {
            problems.push(format!(
                "invalid {:?}: offset {} is past the end of the query",
                inv.name, inv.offset
            ));
        }
    }
    if table.invalid.is_empty() {
        problems.push("the [[invalid]] table is empty".into());
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) with the table:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn kql_conformance_table() {
    let table = load();
    let ecs = Arc::new(FieldTable::ecs());
    let mut failures = Vec::new();
    let mut passed = 0usize;

    for case in &table.cases {
        let doc_text = match &case.doc {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let doc = match doc_json(case) {
            Ok(d) => d,
            Err(e) => {
                failures.push(describe(case, &doc_text, &format!("bad case: {e}")));
                continue;
            }
        };
        let fields = match table_for(&ecs, &case.mapping) {
            Ok(t) => t,
            Err(e) => {
                failures.push(describe(case, &doc_text, &format!("bad case: {e}")));
                continue;
            }
        };
        let outcome = match catch_unwind(AssertUnwindSafe(|| run(case, &fields, &doc))) {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                failures.push(describe(
                    case,
                    &doc_text,
                    &format!("expected: {}   got: {e}", case.expected),
                ));
                continue;
            }
            Err(p) => {
                failures.push(describe(
                    case,
                    &doc_text,
                    &format!(
                        "expected: {}   got: PANIC {}",
                        case.expected,
                        panic_message(p.as_ref())
                    ),
                ));
                continue;
            }
        };

        let mut problems = Vec::new();
        if outcome.got != case.expected {
            problems.push(format!(
                "expected: {}   got: {}",
                case.expected, outcome.got
            ));
        }
        match case.warning {
            Some(true) if outcome.warnings.is_empty() => {
                problems.push("expected a lowering warning, got none".into())
            }
            Some(false) if !outcome.warnings.is_empty() => problems.push(format!(
                "expected no lowering warning, got {:?}",
                outcome.warnings
            )),
            _ => {}
        }
        if problems.is_empty() {
            passed += 1;
        } else {
            let mut p = problems.join("\n    ");
            if !outcome.warnings.is_empty() && case.warning != Some(false) {
                let _ = write!(p, "\n    warnings: {:?}", outcome.warnings);
            }
            failures.push(describe(case, &doc_text, &p));
        }
    }

    assert!(
        failures.is_empty(),
        "{} of {} KQL conformance case(s) failed ({passed} passed):\n{}",
        failures.len(),
        table.cases.len(),
        failures.join("")
    );
}

#[test]
fn invalid_queries_fail_at_the_expected_offset() {
    let table = load();
    let mut failures = Vec::new();
    for inv in &table.invalid {
        let result = catch_unwind(AssertUnwindSafe(|| imdsguard_kql::parse(&inv.query)));
        let problem = match result {
            Err(p) => Some(format!("PANIC {}", panic_message(p.as_ref()))),
            Ok(Ok(ast)) => Some(format!("parsed, but Kibana rejects it: {ast:?}")),
            Ok(Err(d)) => match d.span {
                Some(s) if s.start == inv.offset => None,
                Some(s) => Some(format!(
                    "error at byte {} (expected {}): [{}] {}",
                    s.start, inv.offset, d.code, d.message
                )),
                None => Some(format!(
                    "error without a span (expected byte {}): [{}] {}",
                    inv.offset, d.code, d.message
                )),
            },
        };
        if let Some(problem) = problem {
            let mut out = format!(
                "- {}\n    query: {:?}\n    {problem}\n",
                inv.name, inv.query
            );
            if let Some(note) = &inv.note {
                let _ = writeln!(out, "    note:  {note}");
            }
            failures.push(out);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} invalid quer(ies) misbehaved:\n{}",
        failures.len(),
        table.invalid.len(),
        failures.join("")
    );
}
