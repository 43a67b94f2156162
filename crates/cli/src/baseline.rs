//! `hunt --baseline FILE`: the alerts a benign corpus is known to raise. A hunt fails (exit
//! status 3) on any alert not in the baseline, listing them, so rule changes can be gated in CI.
//! The baseline is an alerts NDJSON written by an earlier `imdsguard hunt --format ndjson`; alerts
//! are matched by `kibana.alert.uuid`, which is deterministic (rule, event bytes, new terms).

use serde_json::Value;
use std::collections::HashSet;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct BaselineOpts {
    /// Known, accepted alerts (NDJSON from an earlier hunt): exit with status 3, listing them, when
    /// this run raises an alert that is not in it.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
}

/// Exit status of a hunt that raised alerts outside its baseline.
pub const NEW_ALERTS_EXIT: u8 = 3;

/// The alert ids of a baseline file; malformed lines are reported (file:line: reason).
pub fn load(path: &std::path::Path) -> anyhow::Result<(HashSet<String>, Vec<String>)> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read baseline {}: {e}", path.display()))?;
    let mut ids = HashSet::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) => match v.get("kibana.alert.uuid").and_then(Value::as_str) {
                Some(id) => {
                    ids.insert(id.to_string());
                }
                None => problems.push(format!("{}:{}: skipped: no kibana.alert.uuid", path.display(), i + 1)),
            },
            Err(e) => problems.push(format!("{}:{}: skipped: invalid JSON: {e}", path.display(), i + 1)),
        }
    }
    Ok((ids, problems))
}

/// Compare a run's alerts with the baseline: report on stderr, return whether any alert is new.
pub fn check(alerts: &[Value], known: &HashSet<String>, path: &std::path::Path) -> bool {
    let uuid = |a: &Value| a.get("kibana.alert.uuid").and_then(Value::as_str).map(str::to_string);
    let new: Vec<&Value> = alerts.iter().filter(|a| uuid(a).is_none_or(|u| !known.contains(&u))).collect();
    let raised: HashSet<String> = alerts.iter().filter_map(uuid).collect();
    let gone = known.iter().filter(|u| !raised.contains(*u)).count();
    if new.is_empty() {
        eprintln!("baseline {}: no new alerts ({} known, {gone} of them not raised this run)", path.display(), known.len());
        return false;
    }
    eprintln!("baseline {}: {} alert(s) not in the baseline:", path.display(), new.len());
    for a in &new {
        let s = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("");
        eprintln!("  {} {} [{}]: {}", s("kibana.alert.uuid"), s("kibana.alert.rule.name"), s("kibana.alert.rule.rule_id"), s("kibana.alert.reason"));
    }
    if gone > 0 {
        eprintln!("  ({gone} baseline alert(s) not raised this run)");
    }
    true
}
