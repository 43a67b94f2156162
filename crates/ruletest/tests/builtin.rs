//! Every built-in rule ships with true-positive and true-negative fixtures; they all pass, and a
//! deliberately broken fixture fails with a readable diff.

use imdsguard_ecs::FieldTable;
use imdsguard_ruletest::{parse_sidecar, run_test, Events, Outcome};
use std::sync::Arc;

#[test]
fn every_builtin_rule_has_fixtures_and_they_pass() {
    let table = Arc::new(FieldTable::ecs());
    let set = imdsguard_rules::builtin();
    let mut failures = Vec::new();
    for (file, _) in imdsguard_rules::BUILTIN_FILES {
        let Some((_, text)) = imdsguard_rules::BUILTIN_TESTS.iter().find(|(f, _)| f == file) else {
            failures.push(format!("{file}: no fixtures"));
            continue;
        };
        let rule = set.rules.iter().find(|r| r.origin == format!("builtin:{file}")).expect("loaded");
        let sidecar = parse_sidecar(text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let (mut positives, mut negatives) = (0, 0);
        for case in &sidecar.tests {
            let Events::Inline(events) = &case.events else { panic!("{file}: built-in fixtures are inline") };
            match run_test(rule, case, events, file, &table, true) {
                Outcome::Pass { alerts } => {
                    if alerts > 0 {
                        positives += 1
                    } else {
                        negatives += 1
                    }
                }
                other => failures.push(format!("{file} / {}: {other:?}", case.name)),
            }
        }
        if positives == 0 || negatives == 0 {
            failures.push(format!("{file}: needs true-positive and true-negative tests ({positives} / {negatives})"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_broken_fixture_fails_with_a_readable_diff() {
    let table = Arc::new(FieldTable::ecs());
    let set = imdsguard_rules::builtin();
    let rule = set.get("4e1e6d2a-9b1c-4c2e-8a7b-1d52a005e001").expect("seed 002");
    let text = r#"
now = "2026-05-03T00:00:00Z"
[[test]]
name = "wrong expectations"
events = '''
{"@timestamp":"2026-05-01T10:00:00Z","event":{"category":["process"],"type":["start"]},"process":{"name":"curl","command_line":"curl http://169.254.169.254/latest/meta-data/"}}
'''
alerts = 2
[[test.expect]]
"process.name" = "wget"
"host.name" = "web-1"
"#;
    let sidecar = parse_sidecar(text).expect("parses");
    let Events::Inline(events) = &sidecar.tests[0].events else { unreachable!() };
    match run_test(rule, &sidecar.tests[0], events, "broken.test.toml", &table, true) {
        Outcome::Fail { diff } => assert_eq!(
            diff,
            vec![
                "expected 2 alert(s), got 1".to_string(),
                "  got alert 1 (event line 1): process event with process curl, created high alert Detect Cloud Instance Metadata API.".to_string(),
                "alert 1 host.name: expected \"web-1\", field absent".to_string(),
                "alert 1 process.name: expected \"wget\", got \"curl\"".to_string(),
            ]
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
    // A malformed event line is an error naming it, not a failure.
    let mut case = sidecar.tests[0].clone();
    case.alerts = 0;
    case.expect.clear();
    assert_eq!(
        run_test(rule, &case, "{\"a\":1}\n{oops\n", "bad.ndjson", &table, true),
        Outcome::Error { reason: "bad.ndjson: event line 2: invalid JSON: ".to_string() + &sonic_rs::from_str::<sonic_rs::Value>("{oops").err().map(|e| e.to_string()).unwrap_or_default() }
    );
}
