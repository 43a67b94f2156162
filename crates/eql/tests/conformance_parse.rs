//! Every query of Elasticsearch's own EQL test suite (`x-pack/plugin/eql/qa/common`) parses: they
//! are all valid Elasticsearch EQL.

use std::path::{Path, PathBuf};

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/eql")
}

/// `test_extra.toml` has bare `null` items in `join_keys` arrays, which strict TOML rejects: quote
/// them (the keys are not used here).
fn preprocess(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("join_keys") {
                let mut out = String::new();
                let mut in_str = false;
                let chars: Vec<char> = line.chars().collect();
                let mut i = 0;
                while i < chars.len() {
                    let c = chars[i];
                    if c == '"' {
                        in_str = !in_str;
                    }
                    let word: String = chars[i..chars.len().min(i + 4)].iter().collect();
                    let boundary = i == 0 || !chars[i - 1].is_alphanumeric();
                    if !in_str && boundary && word == "null" {
                        out.push_str("\"null\"");
                        i += 4;
                        continue;
                    }
                    out.push(c);
                    i += 1;
                }
                out
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_query_of_the_elasticsearch_eql_suite_parses() {
    let files = [
        ("test_queries.toml", 133),
        ("test_queries_date.toml", 4),
        ("test_extra.toml", 40),
        ("test_missing_events.toml", 26),
        ("test_sample.toml", 25),
        ("test_sample_multi.toml", 9),
    ];
    let mut total = 0;
    let mut failures = Vec::new();
    for (file, expected) in files {
        let path = suite_dir().join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("the EQL conformance suite is required at {}: {e}", path.display()));
        let doc: toml::Table = toml::from_str(&preprocess(&text)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let queries = doc.get("queries").and_then(|q| q.as_array()).unwrap_or_else(|| panic!("{file}: no [[queries]]"));
        assert_eq!(queries.len(), expected, "{file}: number of queries");
        for q in queries {
            let name = q.get("name").and_then(|n| n.as_str()).unwrap_or("?");
            let Some(query) = q.get("query").and_then(|n| n.as_str()) else {
                failures.push(format!("{file} {name}: no query"));
                continue;
            };
            total += 1;
            match imdsguard_eql::parse(query) {
                Ok(ast) => {
                    let printed = imdsguard_eql::to_eql(&ast);
                    match imdsguard_eql::parse(&printed) {
                        Ok(back) if back.without_spans() == ast.without_spans() => {}
                        Ok(_) => failures.push(format!("{file} {name}: printed as {printed:?}, a different tree")),
                        Err(d) => {
                            failures.push(format!("{file} {name}: printed as:\n{}", d.render(&printed, "printed")))
                        }
                    }
                }
                Err(d) => failures.push(format!("{file} {name}:\n{}", d.render(query, name))),
            }
        }
    }
    eprintln!("parsed {total} conformance queries");
    assert!(failures.is_empty(), "{} of {total} failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(total, 237);
}
