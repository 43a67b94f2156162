//! `imdsguard decode`: packet captures to ECS events (NDJSON), Packetbeat-compatible, with the
//! `imds.*` field set; raw Linux audit logs to Auditbeat-compatible ECS events.

use crate::cmd_hunt::HostOpts;
use crate::output::{open_output, write_event};
use imdsguard_sources::{expand_inputs, read_input_with, EventSink, ReadStats};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// Capture files (pcap or pcapng) or raw audit logs (audit.log, `ausearch --raw`, syslog-forwarded),
    /// optionally gzip-compressed, or directories; `-` reads stdin.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Put every request and response header into the events (Packetbeat's `send_all_headers`);
    /// credential headers are masked.
    #[arg(long)]
    pub send_all_headers: bool,
    /// Write events to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub host: HostOpts,
}

struct Sink<'a> {
    out: &'a mut dyn Write,
    error: Option<anyhow::Error>,
    events: u64,
}

impl EventSink for Sink<'_> {
    fn event(&mut self, event: imdsguard_ecs::Event) {
        if self.error.is_some() {
            return;
        }
        self.events += 1;
        if let Err(e) = write_event(self.out, &event.doc, None, false) {
            self.error = Some(e);
        }
    }
}

pub fn run(args: DecodeArgs) -> anyhow::Result<ExitCode> {
    let mut opts = args.host.try_read_options()?;
    opts.capture.send_all_headers = args.send_all_headers;
    let mut out = open_output(args.output.as_deref())?;
    let mut stats = ReadStats::default();
    let files = expand_inputs(&args.paths, &mut stats);
    let mut sink = Sink { out: out.as_mut(), error: None, events: 0 };
    for f in &files {
        read_input_with(f, &mut sink, &mut stats, Box::new(|_| {}), &opts);
    }
    if let Some(e) = sink.error.take() {
        return Err(e);
    }
    let events = sink.events;
    out.flush()?;
    for n in &stats.capture_notes {
        eprintln!("{n}");
    }
    for n in &stats.auditd_notes {
        eprintln!("{n}");
    }
    for s in &stats.skipped_examples {
        eprintln!("skipped {}: {}", s.provenance, s.reason);
    }
    for (p, e) in &stats.unreadable {
        eprintln!("cannot read {p}: {e}");
    }
    eprintln!("{events} event(s) from {} file(s); {} skipped", stats.files, stats.skipped);
    Ok(if stats.unreadable.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
