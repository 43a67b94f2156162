//! `imdsguard rules test [PATH]...`: run each rule over the fixtures of its `<rule>.test.toml`
//! sidecar and check the expected alerts (see `imdsguard-ruletest`). Without PATH, the built-in
//! pack's own fixtures run. Exit status 1 when a test fails or cannot run.

use crate::cmd_rules::ListFormat;
use crate::load::{field_table, load_rules, render_load_error};
use crate::FieldOpts;
use imdsguard_ruletest::{parse_sidecar, run_test_explained, sidecar_name, Events, Outcome};
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

pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let table = field_table(&args.fields)?;
    let builtin_only = args.paths.is_empty();
    let (rules, errors) = load_rules(&args.paths, !builtin_only);
    for e in &errors {
        eprint!("{}", render_load_error(e));
    }
    let mut rows = Vec::new();
    let mut without = Vec::new();
    for (rule, is_builtin) in &rules {
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
        let Some(text) = text else {
            without.push(format!("{} ({})", rule.name, rule.origin));
            continue;
        };
        let row = |test: &str, outcome: Outcome, why: Vec<String>| Row {
            rule_id: rule.rule_id.clone(),
            rule: rule.name.clone(),
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
        for case in &sidecar.tests {
            let (events, origin) = match &case.events {
                Events::Inline(t) => (Ok(t.clone()), sidecar_origin.clone()),
                Events::File(f) => {
                    let p = base.as_deref().map(|b| b.join(f)).unwrap_or_else(|| PathBuf::from(f));
                    (std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display())), p.display().to_string())
                }
            };
            let (outcome, why) = match events {
                Ok(ev) => run_test_explained(rule, case, &ev, &origin, &table, *is_builtin, args.explain),
                Err(reason) => (Outcome::Error { reason }, Vec::new()),
            };
            rows.push(row(&case.name, outcome, why));
        }
    }
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
