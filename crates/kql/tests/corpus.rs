//! Every active KQL query of Elastic's prebuilt rules parses.

use std::path::Path;

#[test]
fn all_729_active_kql_queries_of_the_elastic_corpus_parse() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/elastic-rules/rules.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the rule corpus is required at {}: {e}", path.display()));
    let mut selected = 0;
    let mut failures = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let rule: serde_json::Value = serde_json::from_str(line).expect("corpus line is JSON");
        if rule["language"] != "kuery" || rule["deprecated"] != false {
            continue;
        }
        selected += 1;
        let Some(query) = rule["query"].as_str() else {
            failures.push(format!("{} ({}): no query string", rule["rule_id"], rule["name"]));
            continue;
        };
        if let Err(d) = imdsguard_kql::parse(query) {
            failures.push(format!("{} ({}):\n{}", rule["rule_id"], rule["name"], d.render(query, "query")));
        }
    }
    assert!(failures.is_empty(), "{} of {selected} queries failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(selected, 729, "the corpus should hold 729 active KQL rules");
}
