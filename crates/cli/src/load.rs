//! Loading rules and field tables from disk, and rendering their diagnostics.

use crate::FieldOpts;
use anyhow::Context;
use imdsguard_ecs::FieldTable;
use imdsguard_rules::{LoadError, Rule, RuleSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rule files under `path` (a file, or a directory walked recursively in name order).
pub fn rule_files(path: &Path, out: &mut Vec<PathBuf>, unreadable: &mut Vec<LoadError>) {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(e) => {
                    unreadable.push(io_error(path, &e));
                    return;
                }
            };
            entries.sort();
            for p in entries {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with('.') {
                    continue;
                }
                if p.is_dir() {
                    rule_files(&p, out, unreadable);
                } else if is_rule_file(&p) {
                    out.push(p);
                }
            }
        }
        Ok(_) => out.push(path.to_path_buf()),
        Err(e) => unreadable.push(io_error(path, &e)),
    }
}

fn is_rule_file(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("toml" | "json" | "ndjson" | "jsonl" | "yml" | "yaml"))
}

/// Rule-test sidecars (`X.test.toml`) and the events files they name are fixtures, not rules.
fn drop_fixtures(files: &mut Vec<PathBuf>) {
    let is_sidecar = |p: &Path| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".test.toml"));
    let mut fixtures: Vec<PathBuf> = Vec::new();
    for f in files.iter().filter(|f| is_sidecar(f)) {
        let Ok(text) = std::fs::read_to_string(f) else { continue };
        let Ok(sidecar) = imdsguard_ruletest::parse_sidecar(&text) else { continue };
        let dir = f.parent().unwrap_or(Path::new("."));
        for case in sidecar.tests {
            if let imdsguard_ruletest::Events::File(e) = case.events {
                if let Ok(c) = dir.join(e).canonicalize() {
                    fixtures.push(c);
                }
            }
        }
    }
    files.retain(|f| !is_sidecar(f) && !f.canonicalize().is_ok_and(|c| fixtures.contains(&c)));
    // Sigma regression data (SigmaHQ's `regression_data/` tree, `info.yml` files) is not rules.
    files.retain(|f| !is_regression_data(f));
}

/// Whether a file belongs to Sigma regression tests: under a `regression_data` directory, or
/// an `info.yml` with `rule_metadata`.
pub fn is_regression_data(f: &Path) -> bool {
    if f.components().any(|c| c.as_os_str() == "regression_data") {
        return true;
    }
    f.file_name().is_some_and(|n| n == "info.yml")
        && std::fs::read_to_string(f).is_ok_and(|t| imdsguard_sigma::regression::looks_like_info(&t))
}

pub fn io_error(path: &Path, e: &std::io::Error) -> LoadError {
    LoadError {
        origin: path.display().to_string(),
        file: path.display().to_string(),
        source: String::new(),
        diagnostics: vec![imdsguard_syntax::Diagnostic::error("R000", format!("cannot read: {e}"))],
    }
}

/// Load the rule files under `paths` (no built-in pack); unreadable files become load errors.
pub fn load_rule_paths(paths: &[PathBuf]) -> RuleSet {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for p in paths {
        rule_files(p, &mut files, &mut errors);
    }
    drop_fixtures(&mut files);
    let mut texts = Vec::new();
    for f in &files {
        match std::fs::read_to_string(f) {
            Ok(t) => texts.push((f.display().to_string(), t)),
            Err(e) => errors.push(io_error(f, &e)),
        }
    }
    let pipelines = sigma_pipelines();
    let mut set: RuleSet = imdsguard_rules::load_texts_with(texts.iter().map(|(o, t)| (o.as_str(), t.as_str())), &pipelines);
    errors.append(&mut set.errors);
    set.errors = errors;
    set
}

/// Sigma processing pipelines given with `--sigma-pipeline` (they replace the built-in ones).
static SIGMA_PIPELINES: std::sync::OnceLock<Vec<imdsguard_sigma::Pipeline>> = std::sync::OnceLock::new();

/// Read `--sigma-pipeline` files; from then on Sigma rules load with them instead of the
/// built-in pipelines. A file that does not parse is an error naming the file and line.
pub fn set_sigma_pipelines(files: &[PathBuf]) -> anyhow::Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| format!("cannot read Sigma pipeline {}", f.display()))?;
        out.push(imdsguard_sigma::Pipeline::parse(&text, &f.display().to_string()).map_err(|e| anyhow::anyhow!("Sigma pipeline {e}"))?);
    }
    let _ = SIGMA_PIPELINES.set(out);
    Ok(())
}

fn sigma_pipelines() -> Vec<imdsguard_sigma::Pipeline> {
    SIGMA_PIPELINES.get().cloned().unwrap_or_else(imdsguard_sigma::builtin_pipelines)
}

/// Load rules from paths (plus the built-in pack unless `no_builtin`). Returns the rules, whether
/// each is built in, and every load error.
pub fn load_rules(paths: &[PathBuf], no_builtin: bool) -> (Vec<(Rule, bool)>, Vec<LoadError>) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    if !no_builtin {
        let b = imdsguard_rules::builtin();
        rules.extend(b.rules.into_iter().map(|r| (r, true)));
        errors.extend(b.errors);
    }
    let set = load_rule_paths(paths);
    errors.extend(set.errors);
    // A user rule with the same rule_id as a built-in one replaces it.
    for r in set.rules {
        rules.retain(|(x, _)| x.rule_id != r.rule_id);
        rules.push((r, false));
    }
    (rules, errors)
}

/// Render a load error with carets.
pub fn render_load_error(e: &LoadError) -> String {
    e.render()
}

/// ECS plus any user mappings.
pub fn field_table(opts: &FieldOpts) -> anyhow::Result<Arc<FieldTable>> {
    let mut t = FieldTable::ecs();
    for m in &opts.mappings {
        let text = std::fs::read_to_string(m).with_context(|| format!("cannot read mapping {}", m.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("mapping {} is not valid JSON", m.display()))?;
        t.extend_from_mapping(&json).with_context(|| format!("mapping {}", m.display()))?;
    }
    Ok(Arc::new(t))
}

/// Current time in epoch ms, or the `--now` override.
pub fn now_millis(now: Option<&str>) -> anyhow::Result<i64> {
    match now {
        Some(s) => imdsguard_ecs::time::parse_date(s).with_context(|| format!("--now {s:?} is not a date (use RFC 3339)")),
        None => Ok(chrono::Utc::now().timestamp_millis()),
    }
}

/// The rule-loading flags shared by the commands that run rules over events (`hunt`, `consume`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RuleOpts {
    /// Rule file or directory (Elastic TOML, rule JSON/NDJSON, Sigma YAML). Repeatable; adds to the
    /// built-in pack.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Do not load the built-in rule pack.
    #[arg(long)]
    pub no_builtin: bool,
    /// Sigma processing pipeline (pySigma YAML subset) replacing the built-in ECS mappings. Repeatable.
    #[arg(long = "sigma-pipeline", value_name = "FILE")]
    pub sigma_pipeline: Vec<PathBuf>,
}

impl RuleOpts {
    /// Install the Sigma pipelines, then load the rules (see [`load_rules`]).
    pub fn load(&self) -> anyhow::Result<(Vec<(Rule, bool)>, Vec<LoadError>)> {
        set_sigma_pipelines(&self.sigma_pipeline)?;
        Ok(load_rules(&self.rules, self.no_builtin))
    }
}
