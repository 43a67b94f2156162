//! Loads the whole Elastic detection-rules corpus (`shared/corpus/elastic-rules`) and checks it
//! against the published summary `rules.jsonl`. A missing corpus fails the tests.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use imdsguard_rules::{
    load_texts, parse_json_rule, parse_ndjson_rules, Rule, RuleType, DEFAULT_FROM, DEFAULT_INTERVAL,
    DEFAULT_MAX_SIGNALS,
};
use serde_json::Value;

const EXPECTED_TOML_FILES: usize = 2192;

fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/elastic-rules");
    assert!(
        dir.join("toml").is_dir() && dir.join("rules.jsonl").is_file(),
        "the Elastic rules corpus is missing: expected {}/toml and {}/rules.jsonl",
        dir.display(),
        dir.display()
    );
    dir
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

fn read_toml_corpus() -> Vec<(String, String)> {
    let root = corpus_dir().join("toml");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&root).unwrap_or(&p).to_string_lossy().replace('\\', "/");
            let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            (rel, text)
        })
        .collect()
}

fn read_jsonl() -> (String, Vec<Value>) {
    let text = fs::read_to_string(corpus_dir().join("rules.jsonl")).expect("read rules.jsonl");
    let values = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("rules.jsonl line is JSON"))
        .collect();
    (text, values)
}

#[test]
fn every_toml_rule_loads_and_matches_rules_jsonl() {
    let files = read_toml_corpus();
    assert_eq!(files.len(), EXPECTED_TOML_FILES, "number of .toml files in the corpus");
    let set = load_texts(files.iter().map(|(o, t)| (o.as_str(), t.as_str())));

    let failures: Vec<String> = set.errors.iter().map(|e| format!("{}:\n{}", e.origin, e.render())).collect();
    assert!(failures.is_empty(), "{} corpus files failed to load:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(set.rules.len(), EXPECTED_TOML_FILES);

    let ours: HashMap<&str, &Rule> = set.rules.iter().map(|r| (r.rule_id.as_str(), r)).collect();
    let (_, jsonl) = read_jsonl();
    assert_eq!(jsonl.len(), EXPECTED_TOML_FILES);

    // Type counts.
    let mut expected_counts: BTreeMap<String, usize> = BTreeMap::new();
    for v in &jsonl {
        *expected_counts.entry(v["type"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
    }
    let mut our_counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &set.rules {
        *our_counts.entry(r.rule_type.as_str().to_owned()).or_default() += 1;
    }
    assert_eq!(our_counts, expected_counts);
    assert!(set.rules.iter().all(|r| !matches!(r.rule_type, RuleType::Other(_))));

    let mut mismatches = Vec::new();
    for v in &jsonl {
        let id = v["rule_id"].as_str().expect("rule_id");
        let Some(r) = ours.get(id) else {
            mismatches.push(format!("{id}: in rules.jsonl but not loaded from TOML"));
            continue;
        };
        let s = |k: &str| v[k].as_str().map(str::to_owned);
        let mut check = |what: &str, ok: bool, detail: String| {
            if !ok {
                mismatches.push(format!("{id} ({}): {what}: {detail}", r.origin));
            }
        };
        check("origin", v["path"].as_str() == Some(r.origin.as_str()), format!("{:?}", v["path"]));
        check(
            "type",
            s("type").as_deref() == Some(r.rule_type.as_str()),
            format!("{:?} vs {}", v["type"], r.rule_type),
        );
        check("language", s("language") == r.language, format!("{:?} vs {:?}", v["language"], r.language));
        check("query", s("query") == r.query, "query text differs".into());
        check("name", s("name").as_deref() == Some(r.name.as_str()), "name differs".into());
        let nt_fields: Option<Vec<String>> =
            v["new_terms_fields"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect());
        check(
            "new_terms_fields",
            nt_fields == r.new_terms.as_ref().map(|n| n.fields.clone()),
            format!("{nt_fields:?} vs {:?}", r.new_terms),
        );
        check(
            "history_window_start",
            s("history_window_start") == r.new_terms.as_ref().map(|n| n.history_window_start.clone()),
            format!("{:?} vs {:?}", v["history_window_start"], r.new_terms),
        );
        let from = s("from").unwrap_or_else(|| DEFAULT_FROM.to_owned());
        check("from", from == r.from, format!("{from} vs {}", r.from));
        let interval = s("interval").unwrap_or_else(|| DEFAULT_INTERVAL.to_owned());
        check("interval", interval == r.interval, format!("{interval} vs {}", r.interval));
        let max_signals = v["max_signals"].as_u64().map_or(DEFAULT_MAX_SIGNALS, |m| m as u32);
        check("max_signals", max_signals == r.max_signals, format!("{max_signals} vs {}", r.max_signals));
        check(
            "timestamp_override",
            s("timestamp_override") == r.timestamp_override,
            format!("{:?} vs {:?}", v["timestamp_override"], r.timestamp_override),
        );
        let index: Vec<String> = v["index"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        check("index", index == r.index, format!("{index:?} vs {:?}", r.index));
        check(
            "maturity",
            s("maturity") == r.metadata.maturity && v["deprecated"].as_bool() == Some(r.metadata.deprecated),
            format!("{:?}/{:?} vs {:?}/{}", v["maturity"], v["deprecated"], r.metadata.maturity, r.metadata.deprecated),
        );
        check(
            "building_block",
            v["building_block"].as_bool() == Some(r.is_building_block()),
            format!("{:?}", v["building_block"]),
        );
        let threshold = (!v["threshold"].is_null()).then(|| v["threshold"].clone());
        let ours_threshold = r.threshold.as_ref().map(|t| serde_json::to_value(t).expect("threshold serializes"));
        check("threshold", threshold == ours_threshold, format!("{threshold:?} vs {ours_threshold:?}"));
        let filters = v["filters"].as_array().cloned().unwrap_or_default();
        check("filters", filters == r.filters, "filters differ".into());
        let suppression = (!v["alert_suppression"].is_null()).then(|| v["alert_suppression"].clone());
        check("alert_suppression", suppression == r.alert_suppression, "alert_suppression differs".into());
        let techniques: Vec<String> = v["techniques"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let mut ours_t = r.technique_ids();
        ours_t.sort();
        ours_t.dedup();
        let mut exp_t = techniques.clone();
        exp_t.sort();
        exp_t.dedup();
        check("techniques", exp_t == ours_t, format!("{exp_t:?} vs {ours_t:?}"));
    }
    assert!(mismatches.is_empty(), "{} mismatches against rules.jsonl:\n{}", mismatches.len(), mismatches.join("\n"));
}

#[test]
fn every_rules_jsonl_line_parses_as_json_rule() {
    let (text, values) = read_jsonl();
    let mut failures = Vec::new();
    for (i, v) in values.iter().enumerate() {
        if let Err(d) = parse_json_rule(v, &format!("rules.jsonl:{}", i + 1)) {
            failures.push(format!("line {}: {d:?}", i + 1));
        }
    }
    assert!(failures.is_empty(), "{} rules.jsonl lines failed:\n{}", failures.len(), failures.join("\n"));

    let (rules, errors) = parse_ndjson_rules(&text, "rules.jsonl");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(rules.len(), EXPECTED_TOML_FILES);
    assert_eq!(rules[0].origin, "rules.jsonl:1");
    // Summary records keep their flat technique list and file metadata.
    assert!(rules.iter().all(|r| r.metadata.extra.get("summary") == Some(&Value::Bool(true))));
    assert!(rules.iter().any(|r| !r.technique_ids().is_empty()));
}

#[test]
fn toml_and_jsonl_agree_on_the_shared_fields() {
    let files = read_toml_corpus();
    let toml = load_texts(files.iter().map(|(o, t)| (o.as_str(), t.as_str())));
    let (text, _) = read_jsonl();
    let (json, errors) = parse_ndjson_rules(&text, "rules.jsonl");
    assert!(errors.is_empty());
    let by_id: HashMap<&str, &Rule> = toml.rules.iter().map(|r| (r.rule_id.as_str(), r)).collect();
    let mut diffs = Vec::new();
    for j in &json {
        let Some(t) = by_id.get(j.rule_id.as_str()) else {
            diffs.push(format!("{}: missing from TOML", j.rule_id));
            continue;
        };
        if (
            &t.rule_type,
            &t.language,
            &t.query,
            &t.from,
            &t.interval,
            t.max_signals,
            &t.timestamp_override,
            &t.new_terms,
        ) != (
            &j.rule_type,
            &j.language,
            &j.query,
            &j.from,
            &j.interval,
            j.max_signals,
            &j.timestamp_override,
            &j.new_terms,
        ) || t.threshold != j.threshold
            || t.building_block_type != j.building_block_type
            || t.metadata.deprecated != j.metadata.deprecated
        {
            diffs.push(format!("{}: TOML and JSON forms differ", t.origin));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn transform_blocks_are_kept_as_json() {
    let files = read_toml_corpus();
    let with_transform = files
        .iter()
        .filter(|(_, t)| t.lines().any(|l| l.starts_with("[transform") || l.starts_with("[[transform")))
        .count();
    assert!(with_transform > 0);
    let set = load_texts(files.iter().map(|(o, t)| (o.as_str(), t.as_str())));
    let loaded: Vec<&Rule> = set.rules.iter().filter(|r| r.transform.is_some()).collect();
    assert_eq!(loaded.len(), with_transform);
    assert!(loaded.iter().all(|r| r.transform.as_ref().is_some_and(Value::is_object)));
}

/// Truncated and corrupted corpus files must give diagnostics, never a panic.
#[test]
fn damaged_corpus_files_never_panic() {
    let files = read_toml_corpus();
    let mut checked = 0;
    for (origin, text) in files.iter().step_by(23) {
        for k in 1..12 {
            let mut cut = text.len() * k / 12;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let damaged = [&text[..cut], &text.replacen(" = ", " == ", k)];
            for d in damaged {
                let set = load_texts([(origin.as_str(), d)]);
                for e in &set.errors {
                    let _ = e.render();
                }
                checked += 1;
            }
        }
    }
    let (jsonl, _) = read_jsonl();
    for (i, line) in jsonl.lines().enumerate().step_by(37) {
        for k in 1..6 {
            let mut cut = line.len() * k / 6;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            let (_, errors) = parse_ndjson_rules(&line[..cut], &format!("l{i}.jsonl"));
            assert_eq!(errors.len(), 1);
            checked += 1;
        }
    }
    assert!(checked > 1000);
}

/// Every `[rule]` key ends up in a model field or in `extra`: nothing is silently dropped.
#[test]
fn no_rule_key_is_dropped() {
    const MODELLED: &[&str] = &[
        "rule_id",
        "name",
        "description",
        "type",
        "language",
        "query",
        "index",
        "data_view_id",
        "severity",
        "risk_score",
        "tags",
        "author",
        "license",
        "version",
        "threat",
        "note",
        "setup",
        "false_positives",
        "references",
        "from",
        "interval",
        "max_signals",
        "timestamp_override",
        "new_terms",
        "threshold",
        "filters",
        "alert_suppression",
        "building_block_type",
        "enabled",
    ];
    let files = read_toml_corpus();
    let set = load_texts(files.iter().map(|(o, t)| (o.as_str(), t.as_str())));
    let by_origin: HashMap<&str, &Rule> = set.rules.iter().map(|r| (r.origin.as_str(), r)).collect();
    let mut dropped = Vec::new();
    for (origin, text) in &files {
        let doc: toml::Table = toml::from_str(text).expect("corpus TOML parses with toml::from_str");
        let rule = by_origin.get(origin.as_str()).expect("loaded");
        let Some(toml::Value::Table(keys)) = doc.get("rule") else { panic!("{origin}: no [rule]") };
        for key in keys.keys() {
            if !MODELLED.contains(&key.as_str()) && !rule.extra.contains_key(key) {
                dropped.push(format!("{origin}: {key}"));
            }
        }
        if let Some(toml::Value::Table(meta)) = doc.get("metadata") {
            for key in meta.keys() {
                let modelled = ["maturity", "creation_date", "updated_date", "integration"].contains(&key.as_str());
                if !modelled && !rule.metadata.extra.contains_key(key) {
                    dropped.push(format!("{origin}: metadata.{key}"));
                }
            }
        }
    }
    assert!(dropped.is_empty(), "{}", dropped.join("\n"));
}
