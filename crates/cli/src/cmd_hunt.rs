//! `imdsguard hunt`: run the rules over events, print alerts and a summary.

use crate::load::{field_table, now_millis, render_load_error};
use crate::output::{default_format, open_output, write_alerts};
use crate::{FieldOpts, Format};
use anyhow::Context;
use imdsguard_engine::history::{MemoryHistory, TermsHistory};
use imdsguard_engine::{compile_rule, CompiledRule, Hunt};
use imdsguard_sources::{expand_inputs, read_input_with, EventSink, ReadOptions, ReadStats};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct HuntArgs {
    /// Event files or directories (NDJSON, JSON array, Elasticsearch _search export, packet capture,
    /// raw auditd log; .gz ok); `-` reads stdin.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub rule_opts: crate::load::RuleOpts,
    /// new_terms history store (SQLite). Default: $IMDSGUARD_STATE, else ~/.local/state/imdsguard/state.db; `:memory:` keeps nothing.
    #[arg(long, value_name = "FILE")]
    pub state: Option<String>,
    /// Output format (default: table on a terminal, ndjson otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write alerts to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Detection time written in alerts (RFC 3339); default: the current time.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// Parse every event instead of prefiltering raw bytes (same alerts, slower; for testing).
    #[arg(long, hide = true)]
    pub no_prefilter: bool,
    /// Most events a sequence rule keeps for assembling sequences (memory bound); beyond it events
    /// are dropped and counted in the summary.
    #[arg(long, value_name = "N", default_value_t = imdsguard_engine::hunt::DEFAULT_MAX_SEQUENCE_EVENTS)]
    pub max_sequence_events: usize,
    /// Do not print the closing summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Print the summary as JSON on stderr.
    #[arg(long)]
    pub summary_json: bool,
    #[command(flatten)]
    pub fields: FieldOpts,
    #[command(flatten)]
    pub exceptions: crate::exceptions::ExceptionOpts,
    #[command(flatten)]
    pub baseline: crate::baseline::BaselineOpts,
    /// Explain each alert: which clauses of the query held and the values they saw (in the
    /// alert as `imdsguard.explanation`; after the table in table format).
    #[arg(long)]
    pub explain: bool,
    #[command(flatten)]
    pub host: HostOpts,
}

/// Options of the decoders that turn raw inputs (audit logs, packet captures) into ECS events
/// (shared by `hunt`, `search`, `decode`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct HostOpts {
    /// `host.name` of events decoded from audit logs whose records have no `node=` prefix, and of
    /// events decoded from packet captures (the capturing host).
    #[arg(long, value_name = "NAME")]
    pub host_name: Option<String>,
    /// `host.id` of those events (seed 000's new_terms rule needs a host.id).
    #[arg(long, value_name = "ID")]
    pub host_id: Option<String>,
    /// A further metadata endpoint for the capture decoder: ADDR[=PROVIDER], an IP address or a
    /// host name, e.g. `10.0.0.254=openstack` or `metadata.internal.example`. Repeatable; adds to
    /// the defaults (169.254.169.254, fd00:ec2::254, 169.254.170.2, 100.100.100.200,
    /// metadata.google.internal).
    #[arg(long = "metadata-endpoint", value_name = "ADDR[=PROVIDER]")]
    pub metadata_endpoints: Vec<String>,
}

impl HostOpts {
    /// Reader options carrying the host identity.
    pub fn read_options(&self) -> ReadOptions {
        let mut opts = ReadOptions::default();
        opts.auditd.host_name = self.host_name.clone();
        opts.auditd.host_id = self.host_id.clone();
        opts.capture.host_name = self.host_name.clone();
        opts.capture.host_id = self.host_id.clone();
        opts
    }

    /// [`HostOpts::read_options`] with the extra metadata endpoints; errors name the bad one.
    pub fn try_read_options(&self) -> anyhow::Result<ReadOptions> {
        let mut opts = self.read_options();
        for spec in &self.metadata_endpoints {
            let ep = imdsguard_capture::ImdsEndpoint::parse(spec).map_err(|e| anyhow::anyhow!("--metadata-endpoint {e}"))?;
            opts.capture.imds.endpoints.push(ep);
        }
        Ok(opts)
    }
}

/// Resolve the state store location.
pub fn state_path(arg: Option<&str>) -> Option<PathBuf> {
    let s = match arg {
        Some(s) => s.to_string(),
        None => match std::env::var("IMDSGUARD_STATE") {
            Ok(s) if !s.is_empty() => s,
            _ => {
                let base = std::env::var_os("XDG_STATE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
                return Some(base.join("imdsguard").join("state.db"));
            }
        },
    };
    if s == ":memory:" {
        None
    } else {
        Some(PathBuf::from(s))
    }
}

/// Feeds a source into a hunt, prefiltering raw lines unless told not to.
pub struct Sink<'a> {
    pub hunt: &'a mut Hunt,
    pub prefilter: bool,
}

impl EventSink for Sink<'_> {
    fn wants(&mut self, raw: &[u8]) -> bool {
        !self.prefilter || self.hunt.is_candidate(raw)
    }
    fn event(&mut self, event: imdsguard_ecs::Event) {
        self.hunt.evaluate(&event);
    }
}

/// Compile rules, grouping failures by reason for the summary.
pub fn compile_all(
    rules: Vec<(imdsguard_rules::Rule, bool)>,
    table: &Arc<imdsguard_ecs::FieldTable>,
    now: i64,
) -> (Vec<CompiledRule>, Vec<bool>, BTreeMap<String, Vec<String>>) {
    let mut compiled = Vec::new();
    let mut builtin = Vec::new();
    let mut failed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (rule, is_builtin) in rules {
        let id = format!("{} ({})", rule.name, rule.origin);
        if !rule.enabled {
            failed.entry("disabled (enabled = false)".into()).or_default().push(id);
            continue;
        }
        if rule.is_deprecated() {
            // Kibana does not install deprecated prebuilt rules.
            failed.entry("deprecated (maturity = \"deprecated\")".into()).or_default().push(id);
            continue;
        }
        match compile_rule(Arc::new(rule), table, now) {
            Ok(c) => {
                for w in &c.warnings {
                    eprint!("{}", w.render(c.rule.query.as_deref().unwrap_or(""), &c.rule.origin));
                }
                compiled.push(c);
                builtin.push(is_builtin);
            }
            Err(diags) => {
                let reason = diags.first().map(|d| d.message.clone()).unwrap_or_else(|| "cannot compile".into());
                failed.entry(reason).or_default().push(id);
            }
        }
    }
    // Sigma correlation rules whose referenced rules are not loaded (or that reference each
    // other in a cycle) cannot run: report each and leave it out (which may strand a chained one).
    loop {
        let bad = imdsguard_engine::correlate::check_references(&compiled);
        if bad.is_empty() {
            break;
        }
        for (i, reason) in bad.iter().rev() {
            let c = compiled.remove(*i);
            builtin.remove(*i);
            failed.entry(format!("Sigma correlation {reason}")).or_default().push(format!("{} ({})", c.rule.name, c.rule.origin));
        }
    }
    (compiled, builtin, failed)
}

pub fn run(args: HuntArgs) -> anyhow::Result<ExitCode> {
    let now = now_millis(args.now.as_deref())?;
    let table = field_table(&args.fields)?;
    let (rules, load_errors) = args.rule_opts.load()?;
    for e in &load_errors {
        eprint!("{}", render_load_error(e));
    }
    let load_errors: Vec<_> = load_errors.into_iter().filter(|e| e.is_error()).collect();
    let baseline = match &args.baseline.baseline {
        Some(p) => {
            let (ids, problems) = crate::baseline::load(p)?;
            for pr in &problems {
                eprintln!("{pr}");
            }
            Some((p.clone(), ids))
        }
        None => None,
    };
    let (compiled, builtin, mut failed) = compile_all(rules, &table, now);
    let (exception_set, value_lists, problems) = crate::exceptions::load(&args.exceptions)?;
    for p in &problems {
        eprintln!("{p}");
    }
    let (compiled, builtin, notes) = crate::exceptions::apply(compiled, builtin, &exception_set, &value_lists, &table, now, &mut failed);
    if !args.quiet {
        for n in &notes {
            eprintln!("{n}");
        }
    }
    if compiled.is_empty() {
        anyhow::bail!("no runnable rules ({} failed to load, {} cannot run yet)", load_errors.len(), failed.values().map(Vec::len).sum::<usize>());
    }
    let mut hunt = Hunt::new(compiled);
    hunt.set_max_sequence_events(args.max_sequence_events);

    let mut stats = ReadStats::default();
    let files = expand_inputs(&args.paths, &mut stats);
    let total: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let bar = if std::io::stderr().is_terminal() && !args.quiet {
        let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    {
        let opts = args.host.try_read_options()?;
        let mut sink = Sink { hunt: &mut hunt, prefilter: !args.no_prefilter };
        for f in &files {
            bar.set_message(f.display().to_string());
            let b = bar.clone();
            read_input_with(f, &mut sink, &mut stats, Box::new(move |n| b.inc(n)), &opts);
        }
    }
    bar.finish_and_clear();

    let state = state_path(args.state.as_deref());
    let (matches, hstats, rules) = match &state {
        Some(p) => {
            if let Some(dir) = p.parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
                }
            }
            let mut h = imdsguard_store::SqliteHistory::open(p)?;
            let r = hunt.finish(&mut h as &mut dyn TermsHistory)?;
            h.commit()?;
            r
        }
        None => hunt.finish(&mut MemoryHistory::default())?,
    };
    let mut redacted = 0usize;
    let alerts: Vec<serde_json::Value> = matches
        .iter()
        .map(|m| {
            let (mut a, n) = imdsguard_alerts::alert_for_match(m, &rules[m.rule].rule, builtin[m.rule], now);
            redacted += n;
            if args.explain {
                a["imdsguard.explanation"] = serde_json::Value::String(imdsguard_engine::explain::explain_match(&rules[m.rule], m));
            }
            a
        })
        .collect();
    let format = default_format(args.format, args.output.is_some());
    let mut out = open_output(args.output.as_deref())?;
    write_alerts(out.as_mut(), &alerts, format)?;
    if args.explain && format == Format::Table {
        for (i, a) in alerts.iter().enumerate() {
            let text = a.get("imdsguard.explanation").and_then(serde_json::Value::as_str).unwrap_or("");
            writeln!(out, "\nwhy alert {}: {text}", i + 1)?;
        }
    }

    if !args.quiet {
        let summary = serde_json::json!({
            "files": stats.files,
            "bytes": stats.bytes,
            "records": stats.records,
            "events_parsed": stats.events,
            "events_prefiltered": hstats.prefiltered,
            "events_evaluated": hstats.evaluated,
            "events_skipped": stats.skipped,
            "skipped_examples": stats.skipped_examples.iter().map(|s| format!("{}: {}", s.provenance, s.reason)).collect::<Vec<_>>(),
            "unreadable": stats.unreadable.iter().map(|(p, e)| format!("{p}: {e}")).collect::<Vec<_>>(),
            "auditd_notes": stats.auditd_notes,
            "secrets_redacted": redacted,
            "rules_loaded": rules.len(),
            "rule_load_errors": load_errors.len(),
            "rules_not_run": failed.iter().map(|(k, v)| (k.clone(), v.len())).collect::<BTreeMap<_, _>>(),
            "alerts": alerts.len(),
            "per_rule": rules.iter().zip(&hstats.rules).filter(|(_, s)| s.matched > 0).map(|(r, s)| serde_json::json!({
                "rule_id": r.rule.rule_id, "name": r.rule.name, "matched": s.matched, "alerts": s.alerts,
                "max_signals_dropped": s.max_signals_dropped, "no_timestamp": s.no_timestamp, "missing_terms": s.missing_terms,
                "sequences_expired": s.sequences_expired, "sequences_evicted": s.sequences_evicted,
                "sequence_events_dropped": s.sequence_events_dropped,
            })).collect::<Vec<_>>(),
        });
        if args.summary_json {
            eprintln!("{summary}");
        } else {
            print_summary(&stats, &hstats, &rules, &failed, load_errors.len(), alerts.len());
            if redacted > 0 {
                eprintln!("redacted {redacted} credential value(s) from the alerts");
            }
        }
    }
    if let Some((path, known)) = &baseline {
        if crate::baseline::check(&alerts, known, path) {
            return Ok(ExitCode::from(crate::baseline::NEW_ALERTS_EXIT));
        }
    }
    Ok(if stats.unreadable.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_summary(
    stats: &ReadStats,
    h: &imdsguard_engine::HuntStats,
    rules: &[CompiledRule],
    failed: &BTreeMap<String, Vec<String>>,
    load_errors: usize,
    alerts: usize,
) {
    eprintln!("---");
    eprintln!(
        "read {} events from {} file(s) ({} bytes): {} evaluated, {} skipped by the prefilter, {} unreadable",
        stats.records, stats.files, stats.bytes, h.evaluated, h.prefiltered, stats.skipped
    );
    for s in &stats.skipped_examples {
        eprintln!("  skipped {}: {}", s.provenance, s.reason);
    }
    if stats.skipped as usize > stats.skipped_examples.len() {
        eprintln!("  ... and {} more skipped records", stats.skipped as usize - stats.skipped_examples.len());
    }
    for (p, e) in &stats.unreadable {
        eprintln!("  cannot read {p}: {e}");
    }
    for n in &stats.capture_notes {
        eprintln!("  capture {n}");
    }
    for n in &stats.auditd_notes {
        eprintln!("  {n}");
    }
    eprintln!("{} rule(s) ran; {} failed to load", rules.len(), load_errors);
    for (reason, ids) in failed {
        eprintln!("  {} rule(s) not run: {reason}", ids.len());
    }
    for (r, s) in rules.iter().zip(&h.rules) {
        if s.matched == 0 {
            continue;
        }
        eprintln!("  {}: {} matching event(s), {} alert(s)", r.rule.name, s.matched, s.alerts);
        if s.max_signals_dropped > 0 {
            eprintln!(
                "    warning: max_signals ({}) reached in {} execution window(s); {} alert(s) not raised",
                r.max_signals, s.windows_capped, s.max_signals_dropped
            );
        }
        if s.no_timestamp > 0 {
            eprintln!("    {} matching event(s) without a timestamp ignored by new_terms", s.no_timestamp);
        }
        if s.missing_terms > 0 {
            eprintln!("    {} matching event(s) missing a new_terms field", s.missing_terms);
        }
        if s.sequence_events_dropped > 0 || s.sequences_evicted > 0 {
            eprintln!(
                "    warning: sequence state bounded: {} event(s) dropped (--max-sequence-events), {} partial sequence(s) evicted",
                s.sequence_events_dropped, s.sequences_evicted
            );
        }
        if s.sequences_expired > 0 {
            eprintln!("    {} partial sequence(s) expired by maxspan", s.sequences_expired);
        }
    }
    eprintln!("{alerts} alert(s)");
}
