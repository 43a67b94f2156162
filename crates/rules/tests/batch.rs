//! A directory-like batch with a broken TOML file, a rule missing `rule_id` and a good rule.

use imdsguard_rules::load_texts;

const GOOD: &str = r#"[metadata]
creation_date = "2024/01/01"
maturity = "production"
updated_date = "2024/01/01"

[rule]
author = ["Elastic"]
description = "Curl talking to the metadata service."
language = "kuery"
license = "Elastic License v2"
name = "Good"
risk_score = 47
rule_id = "11111111-1111-1111-1111-111111111111"
severity = "medium"
type = "query"
query = 'process.name:curl and destination.ip:"169.254.169.254"'
"#;

#[test]
fn bad_files_do_not_stop_the_batch() {
    // Line 8 has an unterminated string.
    let broken = GOOD.replace("name = \"Good\"", "name = \"Broken").replace("1111-111111111111", "2222-222222222222");
    // No rule_id: the `[rule]` header is on line 6.
    let missing_id: String = GOOD.lines().filter(|l| !l.starts_with("rule_id")).map(|l| format!("{l}\n")).collect();

    let set = load_texts([
        ("rules/broken.toml", broken.as_str()),
        ("rules/missing_id.toml", missing_id.as_str()),
        ("rules/good.toml", GOOD),
    ]);
    assert_eq!(set.rules.len(), 1);
    assert_eq!(set.rules[0].origin, "rules/good.toml");
    assert_eq!(set.errors.len(), 2, "{}", set.render_errors());

    let broken_err = &set.errors[0];
    assert_eq!(broken_err.origin, "rules/broken.toml");
    assert_eq!(broken_err.diagnostics[0].code, "R001");
    let r = broken_err.render();
    let line = broken.lines().position(|l| l.starts_with("name = \"Broken")).expect("line") + 1;
    assert_eq!(line, 11);
    assert!(r.contains("error[R001]: TOML syntax error"), "{r}");
    assert!(r.contains(&format!(" --> rules/broken.toml:{line}:")), "{r}");
    assert!(r.contains(&format!("{line} | name = \"Broken")), "{r}");
    assert!(r.lines().any(|l| l.trim_start().starts_with("| ") && l.contains('^')), "{r}");

    let missing = &set.errors[1];
    assert_eq!(missing.origin, "rules/missing_id.toml");
    assert_eq!(missing.diagnostics.len(), 1);
    assert_eq!(missing.diagnostics[0].code, "R002");
    let r = missing.render();
    assert!(r.contains("error[R002]: missing required key `rule_id`"), "{r}");
    assert!(r.contains(" --> rules/missing_id.toml:6:1"), "{r}");
    assert!(r.contains("6 | [rule]\n  | ^^^^^^ `rule_id` expected in this rule"), "{r}");
    println!("{}", set.render_errors());
}
