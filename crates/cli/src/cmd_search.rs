//! `imdsguard search`: print the events matching a query.

use crate::load::{field_table, now_millis};
use crate::output::{open_output, write_event};
use crate::cmd_hunt::HostOpts;
use crate::FieldOpts;
use clap::ValueEnum;
use imdsguard_engine::lower_kql::KqlLowering;
use imdsguard_engine::prefilter::Prefilter;
use imdsguard_ir::Expr;
use imdsguard_sources::{expand_inputs, read_input_with, EventSink, ReadStats};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Language {
    Kql,
    Eql,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ResultPosition {
    Head,
    Tail,
}

#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// Query language.
    #[arg(long, value_enum, default_value = "kql")]
    pub language: Language,
    /// The query.
    pub query: String,
    /// Event files or directories; `-` reads stdin.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Print only this field of each matching event, one line per match.
    #[arg(long, value_name = "FIELD")]
    pub ids: Option<String>,
    /// Pretty-print matching events.
    #[arg(long)]
    pub pretty: bool,
    /// Write matches to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Time used for `now` in date math (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// KQL: stop after this many matches.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// EQL: the field holding the event category (Elasticsearch's `event_category_field`).
    #[arg(long, default_value = "event.category")]
    pub event_category_field: String,
    /// EQL: the field holding the event time (`timestamp_field`).
    #[arg(long, default_value = "@timestamp")]
    pub timestamp_field: String,
    /// EQL: the field that orders events with equal timestamps (`tiebreaker_field`).
    #[arg(long)]
    pub tiebreaker_field: Option<String>,
    /// EQL: maximum number of results (`size`, default 10 as in Elasticsearch).
    #[arg(long, default_value_t = 10)]
    pub size: usize,
    /// EQL: return the first or the last matches (`result_position`).
    #[arg(long, value_enum, default_value = "head")]
    pub result_position: ResultPosition,
    /// Explain each match on stderr: which clauses of the query held and the values they saw
    /// (KQL queries and EQL event queries).
    #[arg(long)]
    pub explain: bool,
    #[command(flatten)]
    pub fields: FieldOpts,
    #[command(flatten)]
    pub host: HostOpts,
}

struct Sink<'a> {
    expr: &'a Expr,
    prefilter: &'a mut Prefilter,
    out: &'a mut dyn Write,
    ids: Option<&'a str>,
    pretty: bool,
    matches: u64,
    limit: u64,
    error: Option<anyhow::Error>,
    explain: bool,
}

impl EventSink for Sink<'_> {
    fn wants(&mut self, raw: &[u8]) -> bool {
        self.matches < self.limit && self.error.is_none() && self.prefilter.is_candidate(raw)
    }
    fn event(&mut self, event: imdsguard_ecs::Event) {
        if self.matches >= self.limit || self.error.is_some() {
            return;
        }
        if self.expr.matches(event.doc.as_ref()) {
            self.matches += 1;
            if let Err(e) = write_event(self.out, &event.doc, self.ids, self.pretty) {
                self.error = Some(e);
            }
            if self.explain {
                let mut text = imdsguard_ir::explain::explain(self.expr, event.doc.as_ref()).render();
                imdsguard_ecs::redact::redact_string(&mut text);
                eprint!("why {}:\n{text}", event.provenance);
            }
        }
    }
}

pub fn run(args: SearchArgs) -> anyhow::Result<ExitCode> {
    let table = field_table(&args.fields)?;
    let now = now_millis(args.now.as_deref())?;
    if args.language == Language::Eql {
        return run_eql(args, table);
    }
    let ast = match imdsguard_kql::parse(&args.query) {
        Ok(a) => a,
        Err(d) => {
            eprint!("{}", d.render(&args.query, "query"));
            return Ok(ExitCode::from(2));
        }
    };
    let mut lowering = KqlLowering::new(&table, now);
    let expr = lowering.lower(&ast);
    for w in &lowering.warnings {
        eprint!("{}", w.render(&args.query, "query"));
    }
    let mut prefilter = Prefilter::new([expr.needles()]);
    let mut out = open_output(args.output.as_deref())?;
    let mut stats = ReadStats::default();
    let files = expand_inputs(&args.paths, &mut stats);
    let mut sink = Sink {
        expr: &expr,
        prefilter: &mut prefilter,
        out: out.as_mut(),
        ids: args.ids.as_deref(),
        pretty: args.pretty,
        matches: 0,
        limit: args.limit.unwrap_or(u64::MAX),
        error: None,
        explain: args.explain,
    };
    let opts = args.host.try_read_options()?;
    for f in &files {
        read_input_with(f, &mut sink, &mut stats, Box::new(|_| {}), &opts);
    }
    for n in &stats.auditd_notes {
        eprintln!("{n}");
    }
    let matches = sink.matches;
    if let Some(e) = sink.error.take() {
        return Err(e);
    }
    out.flush()?;
    for s in &stats.skipped_examples {
        eprintln!("skipped {}: {}", s.provenance, s.reason);
    }
    if stats.skipped as usize > stats.skipped_examples.len() {
        eprintln!("... and {} more skipped records", stats.skipped as usize - stats.skipped_examples.len());
    }
    for (p, e) in &stats.unreadable {
        eprintln!("cannot read {p}: {e}");
    }
    eprintln!("{matches} match(es) in {} record(s); {} skipped", stats.records, stats.skipped);
    Ok(if stats.unreadable.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Collects the events matching an EQL event query (prefiltered on raw bytes).
struct EqlSink<'a> {
    expr: &'a dyn Fn(&dyn imdsguard_ecs::Document) -> bool,
    prefilter: Prefilter,
    timestamp: imdsguard_ecs::FieldPath,
    tiebreaker: Option<imdsguard_ecs::FieldPath>,
    hits: Vec<(i64, Option<f64>, u64, imdsguard_ecs::Event)>,
    seq: u64,
}

impl EventSink for EqlSink<'_> {
    fn wants(&mut self, raw: &[u8]) -> bool {
        self.prefilter.is_candidate(raw)
    }
    fn event(&mut self, event: imdsguard_ecs::Event) {
        use imdsguard_ecs::Document;
        self.seq += 1;
        if !(self.expr)(event.doc.as_ref()) {
            return;
        }
        let mut ts = i64::MIN;
        event.doc.any_value(&self.timestamp, &mut |v| {
            ts = imdsguard_ecs::time::value_to_millis(v).unwrap_or(i64::MIN);
            true
        });
        let tb = self.tiebreaker.as_ref().and_then(|p| {
            let mut out = None;
            event.doc.any_value(p, &mut |v| {
                out = v.as_f64();
                true
            });
            out
        });
        self.hits.push((ts, tb, self.seq, event));
    }
}

/// `search --language eql`: Elasticsearch's EQL search over files (event queries; results in
/// timestamp then tiebreaker order, `head`/`tail` pipes, `size`, `result_position`).
fn run_eql(args: SearchArgs, table: std::sync::Arc<imdsguard_ecs::FieldTable>) -> anyhow::Result<ExitCode> {
    use imdsguard_engine::eql::lower::{EqlLowering, EqlSettings};
    use imdsguard_eql::ast::QueryBody;
    let q = match imdsguard_eql::parse(&args.query) {
        Ok(q) => q,
        Err(d) => {
            eprint!("{}", d.render(&args.query, "query"));
            return Ok(ExitCode::from(2));
        }
    };
    let settings = EqlSettings {
        event_category_field: args.event_category_field.clone(),
        timestamp_field: args.timestamp_field.clone(),
        tiebreaker_field: args.tiebreaker_field.clone(),
    };
    let mut lowering = EqlLowering::new(&table, &settings);
    let lowered = match &q.body {
        QueryBody::Event(ev) => lowering.event_query(ev).map(Lowered::Event),
        QueryBody::Sequence(s) => lowering.sequence(s).map(Lowered::Sequence),
        QueryBody::Sample(s) => lowering.sample(s).map(Lowered::Sample),
    };
    let lowered = match lowered {
        Ok(l) => l,
        Err(d) => {
            eprint!("{}", d.render(&args.query, "query"));
            return Ok(ExitCode::from(2));
        }
    };
    let (needles, filter): (_, Box<dyn Fn(&dyn imdsguard_ecs::Document) -> bool>) = match &lowered {
        Lowered::Event(e) => (e.needles(), Box::new(move |d| e.matches(d))),
        Lowered::Sequence(s) => (
            imdsguard_ir::literals::disjunction(s.steps.iter().chain(s.until.iter()).map(|st| st.filter.needles())),
            Box::new(move |d| s.steps.iter().any(|st| st.filter.matches(d)) || s.until.as_ref().is_some_and(|u| u.filter.matches(d))),
        ),
        Lowered::Sample(s) => (
            imdsguard_ir::literals::disjunction(s.steps.iter().map(|st| st.filter.needles())),
            Box::new(move |d| s.steps.iter().any(|st| st.filter.matches(d))),
        ),
    };
    let mut sink = EqlSink {
        prefilter: Prefilter::new([needles]),
        expr: &filter,
        timestamp: imdsguard_ecs::FieldPath::new(table.resolve_alias(&settings.timestamp_field)),
        tiebreaker: settings.tiebreaker_field.as_deref().map(|t| imdsguard_ecs::FieldPath::new(table.resolve_alias(t))),
        hits: Vec::new(),
        seq: 0,
    };
    let mut stats = ReadStats::default();
    let opts = args.host.try_read_options()?;
    for f in expand_inputs(&args.paths, &mut stats) {
        read_input_with(&f, &mut sink, &mut stats, Box::new(|_| {}), &opts);
    }
    for n in &stats.auditd_notes {
        eprintln!("{n}");
    }
    let mut hits = sink.hits;
    hits.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.unwrap_or(f64::MIN).total_cmp(&b.1.unwrap_or(f64::MIN))).then(a.2.cmp(&b.2)));
    if matches!(lowered, Lowered::Sequence(_) | Lowered::Sample(_)) {
        return write_sequences(&args, &lowered, hits, &q.pipes, &stats);
    }
    imdsguard_engine::eql::apply_pipes(&mut hits, &q.pipes);
    imdsguard_engine::eql::keep(&mut hits, args.size, args.result_position == ResultPosition::Tail);
    let mut out = open_output(args.output.as_deref())?;
    for (_, _, _, e) in &hits {
        write_event(out.as_mut(), &e.doc, args.ids.as_deref(), args.pretty)?;
        if args.explain {
            if let Lowered::Event(expr) = &lowered {
                let mut text = imdsguard_engine::eql::explain::explain(expr, e.doc.as_ref()).render();
                imdsguard_ecs::redact::redact_string(&mut text);
                eprint!("why {}:\n{text}", e.provenance);
            }
        }
    }
    out.flush()?;
    for s in &stats.skipped_examples {
        eprintln!("skipped {}: {}", s.provenance, s.reason);
    }
    for (p, e) in &stats.unreadable {
        eprintln!("cannot read {p}: {e}");
    }
    eprintln!("{} match(es) shown in {} record(s); {} skipped", hits.len(), stats.records, stats.skipped);
    Ok(if stats.unreadable.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

enum Lowered {
    Event(imdsguard_engine::eql::expr::EqlExpr),
    Sequence(imdsguard_engine::eql::sequence::SequenceSpec),
    Sample(imdsguard_engine::eql::sample::SampleSpec),
}

type Hit = (i64, Option<f64>, u64, imdsguard_ecs::Event);

/// Assemble and print sequences or samples: with `--ids`, one line per sequence (sample) with
/// the ids separated by spaces; otherwise one JSON array of its events per line.
fn write_sequences(
    args: &SearchArgs,
    lowered: &Lowered,
    hits: Vec<Hit>,
    pipes: &[imdsguard_eql::ast::Pipe],
    stats: &ReadStats,
) -> anyhow::Result<ExitCode> {
    use imdsguard_engine::eql::sequence::{run, Ordered, SequenceLimits};
    let docs: Vec<&dyn imdsguard_ecs::Document> = hits.iter().map(|h| h.3.doc.as_ref() as &dyn imdsguard_ecs::Document).collect();
    let order: Vec<Ordered> = hits
        .iter()
        .enumerate()
        .map(|(i, h)| Ordered { index: i, timestamp: h.0, tiebreaker: h.1.unwrap_or(0.0), seq: h.2 })
        .collect();
    let (mut seqs, completed, expired) = match lowered {
        Lowered::Sequence(spec) => {
            let (s, st) = run(spec, &docs, order, SequenceLimits::default());
            (s, st.completed, st.expired)
        }
        Lowered::Sample(spec) => {
            let (s, st) = imdsguard_engine::eql::sample::run(spec, &docs, order, 1, Default::default());
            (s, st.samples, 0)
        }
        Lowered::Event(_) => (Vec::new(), 0, 0),
    };
    imdsguard_engine::eql::apply_pipes(&mut seqs, pipes);
    imdsguard_engine::eql::keep(&mut seqs, args.size, args.result_position == ResultPosition::Tail);
    let mut out = open_output(args.output.as_deref())?;
    for s in &seqs {
        match &args.ids {
            Some(field) => {
                let ids: Vec<String> = s
                    .iter()
                    .map(|i| {
                        let mut v = Vec::new();
                        let mut buf = Vec::new();
                        let _ = write_event(&mut buf, &hits[*i].3.doc, Some(field), false);
                        v.push(String::from_utf8_lossy(&buf).trim().to_string());
                        v.join(",")
                    })
                    .collect();
                writeln!(out, "{}", ids.join(" "))?;
            }
            None => {
                let mut parts = Vec::new();
                for i in s {
                    let mut buf = Vec::new();
                    write_event(&mut buf, &hits[*i].3.doc, None, false)?;
                    parts.push(String::from_utf8_lossy(&buf).trim().to_string());
                }
                writeln!(out, "[{}]", parts.join(","))?;
            }
        }
    }
    out.flush()?;
    for s in &stats.skipped_examples {
        eprintln!("skipped {}: {}", s.provenance, s.reason);
    }
    eprintln!(
        "{} sequence(s)/sample(s) shown ({} found, {} expired by maxspan) in {} record(s); {} skipped",
        seqs.len(),
        completed,
        expired,
        stats.records,
        stats.skipped
    );
    Ok(if stats.unreadable.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
