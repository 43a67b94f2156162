//! SigmaHQ's regression-test layout: a rule's `regression_tests_path` names an `info.yml`
//! (in SigmaHQ, `regression_data/<rule path without .yml>/info.yml`) that lists the rule(s) it
//! tests (`rule_metadata`) and the test data files with the number of matches each must give
//! (`regression_tests_info`: `name`, `type`, `provider`, `match_count`, `path`).
//!
//! imdsguard runs `type: json` data: ECS events as NDJSON, a JSON array, or one JSON object.
//! Other types (SigmaHQ's `evtx`) are parsed and reported as not runnable by the caller.

use crate::yaml::{self, Node, Value};

/// One entry of `regression_tests_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegressionTest {
    pub name: String,
    /// `json`, `evtx`, ...
    pub kind: String,
    pub provider: Option<String>,
    /// Expected matches; SigmaHQ requires it (absent here: at least one match).
    pub match_count: Option<u64>,
    /// The data file, relative to the repository root (SigmaHQ) or to the `info.yml`.
    pub path: String,
}

/// A parsed `info.yml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegressionInfo {
    pub id: Option<String>,
    pub description: Option<String>,
    /// `(rule id, title)` of each tested rule.
    pub rules: Vec<(String, Option<String>)>,
    pub tests: Vec<RegressionTest>,
}

/// Whether a YAML text is a regression `info.yml` (it has `rule_metadata:` at the top level).
pub fn looks_like_info(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("rule_metadata") && l["rule_metadata".len()..].trim_start().starts_with(':'))
}

/// Parse an `info.yml`. Errors name the line and the key.
pub fn parse_info(text: &str) -> Result<RegressionInfo, String> {
    let docs = yaml::parse(text).map_err(|e| format!("line {}: YAML: {}", e.line, e.message))?;
    let doc = match docs.as_slice() {
        [d] if matches!(d.value, Value::Map(_)) => d,
        _ => return Err("an info.yml is one YAML map".into()),
    };
    let text_of = |n: &Node, k: &str| n.get(k).and_then(Node::scalar_text);
    let rules: Vec<(String, Option<String>)> = match doc.get("rule_metadata").map(|n| &n.value) {
        Some(Value::Seq(items)) => items
            .iter()
            .map(|i| text_of(i, "id").map(|id| (id, text_of(i, "title"))).ok_or_else(|| format!("line {}: rule_metadata entry without `id`", i.line)))
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    if rules.is_empty() {
        return Err("`rule_metadata` must list at least one rule (`- id: <rule id>`)".into());
    }
    let mut tests = Vec::new();
    if let Some(n) = doc.get("regression_tests_info") {
        let Value::Seq(items) = &n.value else { return Err(format!("line {}: `regression_tests_info` must be a list", n.line)) };
        for (i, t) in items.iter().enumerate() {
            let name = text_of(t, "name").unwrap_or_else(|| format!("test {}", i + 1));
            let path = text_of(t, "path").ok_or_else(|| format!("line {}: {name}: no `path`", t.line))?;
            let match_count = match t.get("match_count") {
                None => None,
                Some(Node { value: Value::Int(c), .. }) if *c >= 0 => Some(*c as u64),
                Some(other) => return Err(format!("line {}: {name}: `match_count` must be a number of matches (0 or more)", other.line)),
            };
            tests.push(RegressionTest {
                name,
                kind: text_of(t, "type").unwrap_or_else(|| "json".into()).to_ascii_lowercase(),
                provider: text_of(t, "provider"),
                match_count,
                path,
            });
        }
    }
    Ok(RegressionInfo { id: text_of(doc, "id"), description: text_of(doc, "description"), rules, tests })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmahq_info_yml() {
        let text = "id: 1f0e\ndescription: N/A\ndate: 2024-05-01\nauthor: x\nrule_metadata:\n    - id: abc\n      title: Rule A\nregression_tests_info:\n    - name: Positive Detection Test\n      type: evtx\n      provider: Microsoft-Windows-Sysmon\n      match_count: 1\n      path: regression_data/rules/windows/x/abc.evtx\n    - name: ECS\n      type: json\n      match_count: 0\n      path: abc.json\n";
        let info = parse_info(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(info.rules, vec![("abc".to_string(), Some("Rule A".to_string()))]);
        assert_eq!(info.tests.len(), 2);
        assert_eq!((info.tests[0].kind.as_str(), info.tests[0].match_count), ("evtx", Some(1)));
        assert_eq!((info.tests[1].path.as_str(), info.tests[1].match_count), ("abc.json", Some(0)));
        assert!(looks_like_info(text));
    }

    #[test]
    fn errors_name_the_problem() {
        for (text, want) in [
            ("id: x\n", "rule_metadata"),
            ("rule_metadata:\n  - title: t\n", "without `id`"),
            ("rule_metadata:\n  - id: a\nregression_tests_info:\n  - name: n\n", "n: no `path`"),
            ("rule_metadata:\n  - id: a\nregression_tests_info:\n  - name: n\n    path: p\n    match_count: many\n", "match_count"),
            ("rule_metadata:\n  - id: a\nregression_tests_info: 3\n", "must be a list"),
            ("a: [\n", "YAML"),
        ] {
            let e = parse_info(text).err().unwrap_or_default();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
