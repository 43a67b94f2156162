//! `--exceptions` and `--value-list`: load Elastic exception lists and value lists, and apply
//! to each rule the items of the lists its `exceptions_list` names.

use imdsguard_engine::exceptions::ValueLists;
use imdsguard_engine::CompiledRule;
use imdsguard_rules::exceptions::{parse_exceptions_ndjson, rule_exception_list_ids};
use imdsguard_rules::ExceptionSet;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ExceptionOpts {
    /// Elastic exception lists (Kibana's NDJSON export). Each rule applies the items of the lists
    /// its `exceptions_list` names. Repeatable. The repository ships
    /// `exceptions/metadata-service-agents.ndjson`, referenced by the built-in metadata rules.
    #[arg(long = "exceptions", value_name = "FILE")]
    pub exceptions: Vec<PathBuf>,
    /// A value list used by `list` exception entries: ID=FILE, one value per line. Repeatable.
    #[arg(long = "value-list", value_name = "ID=FILE")]
    pub value_lists: Vec<String>,
}

/// Load the files; errors name the file and line.
pub fn load(opts: &ExceptionOpts) -> anyhow::Result<(ExceptionSet, ValueLists, Vec<String>)> {
    let mut set = ExceptionSet::default();
    let mut problems = Vec::new();
    for p in &opts.exceptions {
        let text = std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("cannot read exceptions {}: {e}", p.display()))?;
        let (s, errors) = parse_exceptions_ndjson(&text, &p.display().to_string());
        for e in errors {
            problems.push(format!("{}:{}: skipped: {}", p.display(), e.line, e.message));
        }
        set.extend(s);
    }
    let mut lists = ValueLists::new();
    for spec in &opts.value_lists {
        let (id, file) = spec.split_once('=').ok_or_else(|| anyhow::anyhow!("--value-list expects ID=FILE, got `{spec}`"))?;
        let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read value list {file}: {e}"))?;
        let values: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect();
        lists.insert(id.to_string(), values);
    }
    Ok((set, lists, problems))
}

/// Apply exceptions to compiled rules. Rules whose exceptions cannot be built are removed (with
/// the reason in `failed`): a rule never runs without the exceptions it names. Lists a rule names
/// that were not loaded are reported once each in the returned notes.
pub fn apply(
    compiled: Vec<CompiledRule>,
    builtin: Vec<bool>,
    set: &ExceptionSet,
    lists: &ValueLists,
    table: &imdsguard_ecs::FieldTable,
    now: i64,
    failed: &mut BTreeMap<String, Vec<String>>,
) -> (Vec<CompiledRule>, Vec<bool>, Vec<String>) {
    let mut out = Vec::new();
    let mut out_builtin = Vec::new();
    let mut missing: BTreeMap<String, usize> = BTreeMap::new();
    let mut applied: BTreeMap<String, usize> = BTreeMap::new();
    for (c, b) in compiled.into_iter().zip(builtin) {
        let ids = rule_exception_list_ids(&c.rule);
        let mut items = Vec::new();
        for id in &ids {
            if set.has_list(id) {
                items.extend(set.items_of(id));
                *applied.entry(id.clone()).or_default() += 1;
            } else {
                *missing.entry(id.clone()).or_default() += 1;
            }
        }
        let name = format!("{} ({})", c.rule.name, c.rule.origin);
        match c.with_exceptions(&items, lists, table, now) {
            Ok(c) => {
                out.push(c);
                out_builtin.push(b);
            }
            Err(d) => failed.entry(format!("exceptions: {}", d.message)).or_default().push(name),
        }
    }
    let mut notes = Vec::new();
    for (id, n) in applied {
        notes.push(format!("exception list `{id}` applied to {n} rule(s)"));
    }
    for (id, n) in missing {
        notes.push(format!("exception list `{id}` named by {n} rule(s) is not loaded (pass it with --exceptions FILE to apply it)"));
    }
    (out, out_builtin, notes)
}
