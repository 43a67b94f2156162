//! `imdsguard rules list|show|validate` (and `test`, in `cmd_rules_test`).

use crate::load::{field_table, load_rules, render_load_error};
use crate::FieldOpts;
use clap::{Subcommand, ValueEnum};
use imdsguard_engine::{compile_matcher, compile_rule};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Sigma,
}

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// List the rules that would run (built-in pack plus --rules).
    List {
        #[arg(long = "rules", value_name = "PATH")]
        rules: Vec<PathBuf>,
        #[arg(long)]
        no_builtin: bool,
        /// Sigma processing pipeline replacing the built-in ECS mappings. Repeatable.
        #[arg(long = "sigma-pipeline", value_name = "FILE")]
        sigma_pipeline: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// Show one rule (by rule_id or name) with its investigation guide.
    Show {
        /// rule_id or exact name.
        id: String,
        #[arg(long = "rules", value_name = "PATH")]
        rules: Vec<PathBuf>,
        #[arg(long)]
        no_builtin: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// Parse and compile rule files; report each rule.
    Validate {
        /// Rule files or directories (TOML, JSON, NDJSON).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
        #[command(flatten)]
        fields: FieldOpts,
        /// Sigma processing pipeline replacing the built-in ECS mappings. Repeatable.
        #[arg(long = "sigma-pipeline", value_name = "FILE")]
        sigma_pipeline: Vec<PathBuf>,
    },
    /// Run rules over the fixtures of their `<rule>.test.toml` sidecars and check the alerts.
    Test(crate::cmd_rules_test::TestArgs),
    /// Export rules as Sigma YAML (built-in pack plus --rules); rules Sigma cannot express are
    /// listed with the reason.
    Export {
        /// Output format (only `sigma`).
        #[arg(long, value_enum, default_value = "sigma")]
        format: ExportFormat,
        #[arg(long = "rules", value_name = "PATH")]
        rules: Vec<PathBuf>,
        #[arg(long)]
        no_builtin: bool,
        /// Write one `<rule_id>.yml` per rule into DIR instead of a multi-document stream on stdout.
        #[arg(long, short = 'o', value_name = "DIR")]
        output: Option<PathBuf>,
        #[command(flatten)]
        fields: FieldOpts,
    },
}

pub fn run(cmd: RulesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RulesCommand::Test(args) => crate::cmd_rules_test::run(args),
        RulesCommand::Export { format: ExportFormat::Sigma, rules, no_builtin, output, fields } => {
            let table = field_table(&fields)?;
            let (rules, errors) = load_rules(&rules, no_builtin);
            for e in &errors {
                eprint!("{}", render_load_error(e));
            }
            let now = crate::load::now_millis(None)?;
            if let Some(dir) = &output {
                std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            }
            let (mut exported, mut refused) = (0usize, 0usize);
            let mut stdout = std::io::stdout().lock();
            for (rule, _) in &rules {
                match imdsguard_engine::sigma_export::export_sigma(rule, &table, now) {
                    Ok(yaml) => {
                        exported += 1;
                        match &output {
                            Some(dir) => {
                                let safe: String = rule.rule_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
                                let path = dir.join(format!("{safe}.yml"));
                                std::fs::write(&path, yaml).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                            }
                            None => {
                                use std::io::Write;
                                write!(stdout, "---\n{yaml}")?;
                            }
                        }
                    }
                    Err(reason) => {
                        refused += 1;
                        eprintln!("not exported: {} ({}): {reason}", rule.name, rule.rule_id);
                    }
                }
            }
            eprintln!("{exported} rule(s) exported as Sigma, {refused} not exported");
            Ok(if errors.iter().any(|e| e.is_error()) { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        RulesCommand::List { rules, no_builtin, format, sigma_pipeline } => {
            crate::load::set_sigma_pipelines(&sigma_pipeline)?;
            let (rules, errors) = load_rules(&rules, no_builtin);
            for e in &errors {
                eprint!("{}", render_load_error(e));
            }
            match format {
                ListFormat::Json => {
                    for (r, builtin) in &rules {
                        println!(
                            "{}",
                            serde_json::json!({"rule_id": r.rule_id, "name": r.name, "type": r.rule_type.as_str(),
                                "language": r.language, "severity": r.severity.as_str(), "risk_score": r.risk_score,
                                "builtin": builtin, "origin": r.origin})
                        );
                    }
                }
                ListFormat::Table => {
                    println!("{:<38} {:<10} {:<9} {:>4}  NAME", "RULE_ID", "TYPE", "SEVERITY", "RISK");
                    for (r, _) in &rules {
                        println!("{:<38} {:<10} {:<9} {:>4}  {}", r.rule_id, r.rule_type.as_str(), r.severity.as_str(), r.risk_score, r.name);
                    }
                }
            }
            Ok(if errors.iter().any(|e| e.is_error()) { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        RulesCommand::Show { id, rules, no_builtin, format } => {
            let (rules, _) = load_rules(&rules, no_builtin);
            let Some((r, builtin)) = rules.iter().find(|(r, _)| r.rule_id == id || r.name == id) else {
                eprintln!("no rule with rule_id or name {id:?}");
                return Ok(ExitCode::from(1));
            };
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(r)?),
                ListFormat::Table => {
                    println!("{}\n", r.name);
                    println!("rule_id:     {}", r.rule_id);
                    println!("type:        {} ({})", r.rule_type.as_str(), r.language.as_deref().unwrap_or("-"));
                    println!("severity:    {} (risk score {})", r.severity.as_str(), r.risk_score);
                    println!("origin:      {}{}", r.origin, if *builtin { " (built-in)" } else { "" });
                    println!("index:       {}", r.index.join(", "));
                    println!("runs every:  {} looking back to {}", r.interval, r.from);
                    if let Some(ts) = &r.timestamp_override {
                        println!("timestamp:   {ts} (falls back to @timestamp)");
                    }
                    if let Some(nt) = &r.new_terms {
                        println!("new terms:   {} over {}", nt.fields.join(", "), nt.history_window_start);
                    }
                    let threat = serde_json::to_value(&r.threat)?;
                    for t in threat.as_array().into_iter().flatten() {
                        let tactic = format!(
                            "{} {}",
                            t.pointer("/tactic/id").and_then(|v| v.as_str()).unwrap_or(""),
                            t.pointer("/tactic/name").and_then(|v| v.as_str()).unwrap_or("")
                        );
                        println!("mitre:       {tactic}");
                        for tech in t.get("technique").and_then(|v| v.as_array()).into_iter().flatten() {
                            println!(
                                "               {} {}",
                                tech.get("id").and_then(|v| v.as_str()).unwrap_or(""),
                                tech.get("name").and_then(|v| v.as_str()).unwrap_or("")
                            );
                            for s in tech.get("subtechnique").and_then(|v| v.as_array()).into_iter().flatten() {
                                println!(
                                    "                 {} {}",
                                    s.get("id").and_then(|v| v.as_str()).unwrap_or(""),
                                    s.get("name").and_then(|v| v.as_str()).unwrap_or("")
                                );
                            }
                        }
                    }
                    println!("\n{}", r.description.trim());
                    if let Some(q) = &r.query {
                        println!("\nquery:\n{}", q.trim_end());
                    }
                    if let Some(n) = &r.note {
                        println!("\n{}", n.trim_end());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Validate { paths, format, fields, sigma_pipeline } => {
            crate::load::set_sigma_pipelines(&sigma_pipeline)?;
            validate(&paths, format, &fields)
        }
    }
}

fn validate(paths: &[PathBuf], format: ListFormat, fields: &FieldOpts) -> anyhow::Result<ExitCode> {
    let table = field_table(fields)?;
    let now = crate::load::now_millis(None)?;
    let set = crate::load::load_rule_paths(paths);
    let errors = set.errors;
    let mut ok_count = 0usize;
    let mut bad = 0usize;
    let emit = |v: serde_json::Value, rendered: Option<String>| {
        match format {
            ListFormat::Json => println!("{v}"),
            ListFormat::Table => {
                let ok = v["ok"].as_bool().unwrap_or(false);
                let runnable = v["runnable"].as_bool().unwrap_or(false);
                println!(
                    "{} {} {} [{}] {}",
                    if !ok { "FAIL" } else if runnable { "ok  " } else { "ok* " },
                    v["path"].as_str().unwrap_or(""),
                    v["rule_id"].as_str().unwrap_or("-"),
                    v["type"].as_str().unwrap_or("-"),
                    v["error"]
                        .as_str()
                        .map(|e| format!("\n{}", rendered.unwrap_or_else(|| e.to_string())))
                        .or_else(|| v["note"].as_str().filter(|_| !runnable).map(|n| format!("({n})")))
                        .unwrap_or_default()
                );
            }
        }
    };
    for e in &errors {
        if !e.is_error() {
            // Warnings (such as a duplicate rule_id) do not make a rule invalid.
            eprint!("{}", render_load_error(e));
            continue;
        }
        bad += 1;
        let rendered = render_load_error(e);
        emit(
            serde_json::json!({"path": e.origin, "rule_id": null, "type": null, "language": null, "ok": false,
                "error": e.diagnostics.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; ")}),
            Some(rendered),
        );
    }
    // Sigma correlations must find the rules they reference among the loaded ones.
    let unresolved = imdsguard_rules::sigma_rule::unresolved_references(&set.rules);
    for (i, rule) in set.rules.into_iter().enumerate() {
        let missing = unresolved.iter().find(|(j, _)| *j == i).map(|(_, m)| m.join(", "));
        let (path, rule_id, ty, lang) =
            (rule.origin.clone(), rule.rule_id.clone(), rule.rule_type.as_str().to_string(), rule.effective_language().map(str::to_string));
        let query = rule.query.clone().unwrap_or_default();
        // `ok`: the rule loads and its query (and filters) parse and compile. `runnable`: this
        // version of imdsguard can run the rule type.
        match compile_matcher(&rule, &table, now) {
            Ok((_, warnings)) => {
                ok_count += 1;
                for w in &warnings {
                    eprint!("{}", w.render(&query, &format!("{path} (query)")));
                }
                let runnable = compile_rule(Arc::new(rule), &table, now);
                let note = runnable.as_ref().err().and_then(|d| d.first()).map(|d| d.message.clone()).or_else(|| {
                    missing.map(|m| format!("Sigma correlation references rule(s) not loaded: {m} (give their files too)"))
                });
                emit(
                    serde_json::json!({"path": path, "rule_id": rule_id, "type": ty, "language": lang, "ok": true, "error": null,
                        "runnable": note.is_none(), "note": note, "warnings": warnings.len()}),
                    None,
                )
            }
            Err(diags) if diags.iter().all(|d| d.code == "E001") => {
                // Valid, but uses a feature this version cannot run yet (e.g. an EQL sequence).
                ok_count += 1;
                let note = diags.first().map(|d| d.message.clone());
                emit(
                    serde_json::json!({"path": path, "rule_id": rule_id, "type": ty, "language": lang, "ok": true, "error": null,
                        "runnable": false, "note": note, "warnings": 0}),
                    None,
                )
            }
            Err(diags) => {
                bad += 1;
                let rendered: String = diags.iter().map(|d| d.render(&query, &format!("{path} (query)"))).collect();
                emit(
                    serde_json::json!({"path": path, "rule_id": rule_id, "type": ty, "language": lang, "ok": false,
                        "error": diags.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; "), "runnable": false, "note": null}),
                    Some(rendered),
                );
            }
        }
    }
    eprintln!("{ok_count} rule(s) ok, {bad} failed (ok* = valid, but its rule type cannot run yet)");
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
