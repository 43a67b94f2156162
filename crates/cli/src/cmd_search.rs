//! `imdsguard search`: print the events matching a query.

use crate::load::{field_table, now_millis};
use crate::output::{open_output, write_event};
use crate::FieldOpts;
use clap::ValueEnum;
use imdsguard_engine::lower_kql::KqlLowering;
use imdsguard_engine::prefilter::Prefilter;
use imdsguard_ir::Expr;
use imdsguard_sources::{expand_inputs, read_input, EventSink, ReadStats};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Language {
    Kql,
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
    /// Stop after this many matches.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    #[command(flatten)]
    pub fields: FieldOpts,
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
        }
    }
}

pub fn run(args: SearchArgs) -> anyhow::Result<ExitCode> {
    let table = field_table(&args.fields)?;
    let now = now_millis(args.now.as_deref())?;
    let Language::Kql = args.language;
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
    };
    for f in &files {
        read_input(f, &mut sink, &mut stats, Box::new(|_| {}));
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
