//! `imdsguard rules test [PATH]...`: run each rule over the fixtures of its `<rule>.test.toml`
//! sidecar and check the expected alerts (see `imdsguard-ruletest`); Sigma rules also run their
//! SigmaHQ-style regression tests (`regression_tests_path` -> `info.yml` with `match_count`, and
//! every `info.yml` under PATH). Without PATH, the built-in pack's own fixtures run. Exit status
//! 1 when a test fails or cannot run.

use crate::cmd_rules::ListFormat;
use crate::load::{field_table, load_rules, render_load_error};
use crate::FieldOpts;
use imdsguard_rules::Rule;
use imdsguard_ruletest::{parse_sidecar, run_test_rules, sidecar_name, Events, Outcome};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// Rule files or directories; each rule `X.toml` (or `X.json`) is tested with `X.test.toml`
    /// beside it. Without PATH, the built-in rules are tested with their shipped fixtures.
    pub paths: Vec<PathBuf>,
    /// Fail when a rule has no fixtures.
    #[arg(long)]
    pub require_fixtures: bool,
    /// Print why each alert of each test was raised (which clauses held, the values they saw).
    #[arg(long)]
    pub explain: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ListFormat,
    #[command(flatten)]
    pub fields: FieldOpts,
}

struct Row {
    rule_id: String,
    rule: String,
    sidecar: String,
    test: String,
    outcome: Outcome,
    why: Vec<String>,
}

/// The loaded rules a set of rules needs to run: themselves and, for Sigma correlations, the
/// rules they reference (by id or name, transitively).
fn with_references(start: &[usize], rules: &[(Rule, bool)]) -> Vec<usize> {
    let mut out: Vec<usize> = start.to_vec();
    let mut i = 0;
    while i < out.len() {
        let refs: Vec<String> = rules[out[i]]
            .0
            .extra
            .get("sigma")
            .and_then(|s| s.get("correlation"))
            .and_then(|c| c.get("rules"))
            .and_then(|r| r.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        for r in refs {
            let found = rules.iter().position(|(x, _)| {
                x.rule_id == r || x.extra.get("sigma").and_then(|s| s.get("name")).and_then(|n| n.as_str()) == Some(r.as_str())
            });
            if let Some(j) = found {
                if !out.contains(&j) {
                    out.push(j);
                }
            }
        }
        i += 1;
    }
    out
}

fn is_sigma(r: &Rule) -> bool {
    matches!(r.language.as_deref(), Some("sigma") | Some(imdsguard_rules::sigma_rule::CORRELATION_LANGUAGE))
}

/// `rel` resolved against `from`'s directory and each of its ancestors (SigmaHQ paths are
/// relative to the repository root: `regression_data/rules/...`).
fn resolve_up(from: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    if rel.is_absolute() {
        return rel.exists().then(|| rel.to_path_buf());
    }
    let mut dir = from.parent();
    while let Some(d) = dir {
        let p = d.join(rel);
        if p.exists() {
            return Some(p);
        }
        dir = d.parent();
    }
    None
}

/// `info.yml` files under the given paths (regression data trees).
fn info_files(path: &Path, out: &mut Vec<PathBuf>) {
    let Ok(meta) = std::fs::metadata(path) else { return };
    if !meta.is_dir() {
        if path.file_name().is_some_and(|n| n == "info.yml") {
            out.push(path.to_path_buf());
        }
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => return,
    };
    entries.sort();
    for p in entries {
        if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')) {
            continue;
        }
        info_files(&p, out);
    }
}

pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let table = field_table(&args.fields)?;
    let builtin_only = args.paths.is_empty();
    let (rules, errors) = load_rules(&args.paths, !builtin_only);
    for e in &errors {
        eprint!("{}", render_load_error(e));
    }
    let mut rows = Vec::new();
    let mut tested = vec![false; rules.len()];
    // Test units: the rules of one Sigma file together (a correlation and its rules share a
    // sidecar); every other rule on its own.
    let mut units: Vec<Vec<usize>> = Vec::new();
    for (i, (rule, _)) in rules.iter().enumerate() {
        match units.last_mut() {
            Some(u) if is_sigma(rule) && rules[u[0]].0.origin == rule.origin && is_sigma(&rules[u[0]].0) => u.push(i),
            _ => units.push(vec![i]),
        }
    }
    for unit in &units {
        let (rule, is_builtin) = &rules[unit[0]];
        // The sidecar's text and the directory its events files are relative to.
        let (sidecar_origin, text, base): (String, Option<String>, Option<PathBuf>) = if *is_builtin {
            let file = rule.origin.strip_prefix("builtin:").unwrap_or(&rule.origin);
            let text = imdsguard_rules::BUILTIN_TESTS.iter().find(|(f, _)| *f == file).map(|(_, t)| t.to_string());
            (format!("builtin:{}", sidecar_name(file).unwrap_or_default()), text, None)
        } else {
            match sidecar_name(&rule.origin) {
                Some(p) => {
                    let text = std::fs::read_to_string(&p).ok();
                    let base = Path::new(&p).parent().map(Path::to_path_buf);
                    (p, text, base)
                }
                None => (String::new(), None, None),
            }
        };
        let Some(text) = text else { continue };
        for i in unit {
            tested[*i] = true;
        }
        let name = unit.iter().map(|i| rules[*i].0.name.as_str()).collect::<Vec<_>>().join(" + ");
        let rule_id = unit.iter().map(|i| rules[*i].0.rule_id.as_str()).collect::<Vec<_>>().join(",");
        let row = |test: &str, outcome: Outcome, why: Vec<String>| Row {
            rule_id: rule_id.clone(),
            rule: name.clone(),
            sidecar: sidecar_origin.clone(),
            test: test.to_string(),
            outcome,
            why,
        };
        let sidecar = match parse_sidecar(&text) {
            Ok(s) => s,
            Err(e) => {
                rows.push(row("", Outcome::Error { reason: format!("{sidecar_origin}: {e}") }, Vec::new()));
                continue;
            }
        };
        let context: Vec<Rule> = with_references(unit, &rules).into_iter().map(|i| rules[i].0.clone()).collect();
        let counted: Vec<String> = unit.iter().map(|i| rules[*i].0.rule_id.clone()).collect();
        for case in &sidecar.tests {
            let (events, origin) = match &case.events {
                Events::Inline(t) => (Ok(t.clone()), sidecar_origin.clone()),
                Events::File(f) => {
                    let p = base.as_deref().map(|b| b.join(f)).unwrap_or_else(|| PathBuf::from(f));
                    (std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display())), p.display().to_string())
                }
            };
            let (outcome, why) = match events {
                Ok(ev) => run_test_rules(&context, &counted, case, &ev, &origin, &table, *is_builtin, args.explain),
                Err(reason) => (Outcome::Error { reason }, Vec::new()),
            };
            rows.push(row(&case.name, outcome, why));
        }
    }

    // Sigma regression tests (SigmaHQ layout): the `info.yml` a rule's `regression_tests_path`
    // names, and every `info.yml` under the given paths.
    let mut infos: Vec<PathBuf> = Vec::new();
    let mut broken_paths: Vec<(usize, String)> = Vec::new();
    for (i, (rule, is_builtin)) in rules.iter().enumerate() {
        if *is_builtin {
            continue;
        }
        let Some(rel) = rule.extra.get("sigma").and_then(|s| s.get("regression_tests_path")).and_then(|p| p.as_str()) else { continue };
        match resolve_up(Path::new(&rule.origin), rel) {
            Some(p) => infos.push(p),
            None => broken_paths.push((i, format!("regression_tests_path {rel} not found from {}", rule.origin))),
        }
    }
    for p in &args.paths {
        info_files(p, &mut infos);
    }
    let mut seen = std::collections::HashSet::new();
    infos.retain(|p| seen.insert(p.canonicalize().unwrap_or_else(|_| p.clone())));
    for (i, reason) in broken_paths {
        tested[i] = true;
        let r = &rules[i].0;
        rows.push(Row { rule_id: r.rule_id.clone(), rule: r.name.clone(), sidecar: r.origin.clone(), test: String::new(), outcome: Outcome::Error { reason }, why: Vec::new() });
    }
    for info_path in &infos {
        let shown = info_path.display().to_string();
        let text = match std::fs::read_to_string(info_path) {
            Ok(t) => t,
            Err(e) => {
                rows.push(Row { rule_id: String::new(), rule: String::new(), sidecar: shown.clone(), test: String::new(), outcome: Outcome::Error { reason: format!("cannot read {shown}: {e}") }, why: Vec::new() });
                continue;
            }
        };
        let info = match imdsguard_sigma::regression::parse_info(&text) {
            Ok(i) => i,
            Err(e) => {
                rows.push(Row { rule_id: String::new(), rule: String::new(), sidecar: shown.clone(), test: String::new(), outcome: Outcome::Error { reason: format!("{shown}: {e}") }, why: Vec::new() });
                continue;
            }
        };
        for (id, title) in &info.rules {
            let Some(ri) = rules.iter().position(|(r, _)| &r.rule_id == id) else {
                rows.push(Row {
                    rule_id: id.clone(),
                    rule: title.clone().unwrap_or_default(),
                    sidecar: shown.clone(),
                    test: String::new(),
                    outcome: Outcome::Error { reason: format!("{shown}: rule {id} is not loaded (give its file to `rules test`)") },
                    why: Vec::new(),
                });
                continue;
            };
            tested[ri] = true;
            let context: Vec<Rule> = with_references(&[ri], &rules).into_iter().map(|i| rules[i].0.clone()).collect();
            let (rule, is_builtin) = &rules[ri];
            for t in &info.tests {
                let row = |outcome: Outcome, why: Vec<String>| Row {
                    rule_id: rule.rule_id.clone(),
                    rule: rule.name.clone(),
                    sidecar: shown.clone(),
                    test: t.name.clone(),
                    outcome,
                    why,
                };
                if !matches!(t.kind.as_str(), "json" | "ndjson" | "jsonl") {
                    rows.push(row(
                        Outcome::Error { reason: format!("regression data of type `{}` is not supported: imdsguard runs `type: json` data (ECS events)", t.kind) },
                        Vec::new(),
                    ));
                    continue;
                }
                let Some(data) = resolve_up(info_path, &t.path) else {
                    rows.push(row(Outcome::Error { reason: format!("{shown}: data file {} not found", t.path) }, Vec::new()));
                    continue;
                };
                let events = match std::fs::read_to_string(&data) {
                    Ok(e) => imdsguard_ruletest::events_as_ndjson(&e),
                    Err(e) => {
                        rows.push(row(Outcome::Error { reason: format!("cannot read {}: {e}", data.display()) }, Vec::new()));
                        continue;
                    }
                };
                let raised = imdsguard_ruletest::raise(&context, std::slice::from_ref(&rule.rule_id), &events, &data.display().to_string(), &table, 0, *is_builtin, args.explain);
                let (outcome, why) = match raised {
                    Err(reason) => (Outcome::Error { reason }, Vec::new()),
                    Ok(r) => {
                        let ok = match t.match_count {
                            Some(n) => r.matches as u64 == n,
                            None => r.matches > 0,
                        };
                        if ok {
                            (Outcome::Pass { alerts: r.matches }, r.explanations)
                        } else {
                            let want = t.match_count.map(|n| n.to_string()).unwrap_or_else(|| "at least 1".into());
                            (Outcome::Fail { diff: vec![format!("match_count: expected {want}, got {}", r.matches)] }, r.explanations)
                        }
                    }
                };
                rows.push(row(outcome, why));
            }
        }
    }
    let without: Vec<String> =
        rules.iter().zip(&tested).filter(|(_, t)| !**t).map(|((r, _), _)| format!("{} ({})", r.name, r.origin)).collect();
    let failed = rows.iter().filter(|r| !matches!(r.outcome, Outcome::Pass { .. })).count();
    match args.format {
        ListFormat::Json => {
            for r in &rows {
                let (status, alerts, diff, reason) = match &r.outcome {
                    Outcome::Pass { alerts } => ("pass", Some(*alerts), vec![], None),
                    Outcome::Fail { diff } => ("fail", None, diff.clone(), None),
                    Outcome::Error { reason } => ("error", None, vec![], Some(reason.clone())),
                };
                let mut row = json!({"rule_id": r.rule_id, "rule": r.rule, "sidecar": r.sidecar, "test": r.test, "status": status,
                       "alerts": alerts, "diff": diff, "reason": reason});
                if args.explain {
                    row["explanations"] = json!(r.why);
                }
                println!("{row}");
            }
        }
        ListFormat::Table => {
            for r in &rows {
                match &r.outcome {
                    Outcome::Pass { alerts } => println!("PASS  {} / {} ({alerts} alert(s))", r.rule, r.test),
                    Outcome::Fail { diff } => {
                        println!("FAIL  {} / {}  [{}]", r.rule, r.test, r.sidecar);
                        for d in diff {
                            println!("        {d}");
                        }
                    }
                    Outcome::Error { reason } => println!("ERROR {} / {}: {reason}", r.rule, r.test),
                }
                for (i, w) in r.why.iter().enumerate() {
                    println!("      why alert {}: {}", i + 1, w.trim_end().replace('\n', "\n        "));
                }
            }
        }
    }
    for w in &without {
        eprintln!("no fixtures: {w}");
    }
    eprintln!(
        "{} test(s): {} passed, {failed} failed or errored; {} rule(s) without fixtures",
        rows.len(),
        rows.len() - failed,
        without.len()
    );
    let bad = failed > 0 || errors.iter().any(|e| e.is_error()) || (args.require_fixtures && !without.is_empty());
    Ok(if bad { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
