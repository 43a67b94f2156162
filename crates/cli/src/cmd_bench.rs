//! `imdsguard bench FILE`: throughput of the pipeline's stages on one core, measured in one run so
//! the figures compare (splitting lines, parsing every event with serde_json and with sonic-rs, the
//! whole hunt with and without the prefilter), plus the peak memory of a streaming hunt.
//!
//! A raw Linux audit log (first non-empty line an audit record) is measured in auditd mode: lines/s
//! and MB/s of plain line reading (the baseline), of the auditd decoder, and of the whole hunt,
//! each streaming from the file (`scripts/gen_auditd.py` writes multi-GB logs).
//!
//! Generate the standard data set with
//! `python3 ../shared/bench/gen_events.py --count 1000000 --seed 42 --out events.ndjson`
//! and run `taskset -c 0 imdsguard bench events.ndjson` (see scripts/bench.sh).

use crate::cmd_hunt::{compile_all, Sink};
use crate::load::{field_table, load_rules};
use crate::FieldOpts;
use anyhow::Context;
use imdsguard_alerts::{build_alert, AlertInput};
use imdsguard_engine::history::MemoryHistory;
use imdsguard_engine::Hunt;
use imdsguard_sources::{read_input, read_stream, ReadStats};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// NDJSON events (e.g. from ../shared/bench/gen_events.py), a packet capture, or a raw audit
    /// log (scripts/gen_auditd.py).
    pub file: PathBuf,
    /// Timed repetitions of each in-memory stage (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Extra rules (the built-in pack is always used unless --no-builtin).
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    #[arg(long)]
    pub no_builtin: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub fields: FieldOpts,
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Decode throughput of a packet capture (in memory, one thread): MB/s and packets/s of three
/// nested stages measured in the same run, so each stage's cost shows as a ratio: reading
/// records and headers (the baseline), plus TCP reassembly, plus HTTP and ECS events.
fn run_capture(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    use imdsguard_capture::{CaptureDecoder, CaptureReader, DecoderConfig, Reassembler};
    let data = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let runs = args.runs.max(1);
    let config = DecoderConfig::default();
    let (mut packets, mut events, mut flows) = (0u64, 0u64, 0u64);
    let mut stage_times: [Vec<f64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..runs {
        // 1. reader only
        let t = Instant::now();
        let mut r = CaptureReader::new(config.capture.clone());
        let mut segs = Vec::new();
        for chunk in data.chunks(1 << 20) {
            r.feed(chunk, &mut segs);
            segs.clear();
        }
        r.finish(&mut segs);
        stage_times[0].push(t.elapsed().as_secs_f64());
        packets = r.stats().packets;
        // 2. reader + reassembly
        let t = Instant::now();
        let mut r = CaptureReader::new(config.capture.clone());
        let mut tcp = Reassembler::new(config.tcp.clone());
        let mut stream = Vec::new();
        for chunk in data.chunks(1 << 20) {
            r.feed(chunk, &mut segs);
            for s in segs.drain(..) {
                tcp.push(s, &mut stream);
            }
            stream.clear();
        }
        r.finish(&mut segs);
        for s in segs.drain(..) {
            tcp.push(s, &mut stream);
        }
        tcp.finish(&mut stream);
        stage_times[1].push(t.elapsed().as_secs_f64());
        flows = tcp.stats().flows_created;
        // 3. the whole decoder
        let t = Instant::now();
        let mut d = CaptureDecoder::new(config.clone());
        let mut out = Vec::new();
        for chunk in data.chunks(1 << 20) {
            d.feed(chunk, &mut out);
            out.clear();
        }
        d.finish(&mut out);
        stage_times[2].push(t.elapsed().as_secs_f64());
        events = d.stats().events;
    }
    let names = ["read (records, link/IP/TCP headers)", "read + TCP reassembly", "read + TCP + HTTP + ECS events"];
    let medians: Vec<f64> = stage_times.iter().map(|t| median(t.clone())).collect();
    let mb = |secs: f64| data.len() as f64 / 1e6 / secs;
    let stages: Vec<serde_json::Value> = names
        .iter()
        .zip(&medians)
        .map(|(n, s)| {
            serde_json::json!({"stage": n, "median_seconds": s, "mb_per_sec": mb(*s), "packets_per_sec": packets as f64 / s,
                               "relative_to_read": s / medians[0]})
        })
        .collect();
    let secs = medians[2];
    let report = serde_json::json!({
        "file": args.file.display().to_string(), "bytes": data.len(), "packets": packets, "flows": flows, "events": events,
        "runs": runs, "median_seconds": secs,
        "mb_per_sec": mb(secs), "packets_per_sec": packets as f64 / secs, "stages": stages,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{} bytes, {packets} packets, {flows} flows, {events} HTTP events; median of {runs} runs, one thread", data.len());
        for (n, s) in names.iter().zip(&medians) {
            println!("  {n:<38} {:>7.0} MB/s {:>10.0} packets/s  ({:.1}x the read time)", mb(*s), packets as f64 / s, s / medians[0]);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// CPU time of the calling thread in seconds (`/proc/thread-self/schedstat`, nanoseconds): on a
/// shared machine the wall clock also counts time other processes held the core.
fn thread_cpu_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

/// Whether the file is a raw audit log: its first non-empty line is an audit record.
fn is_audit_log(path: &std::path::Path) -> bool {
    use std::io::BufRead;
    let Ok(f) = std::fs::File::open(path) else { return false };
    let mut r = std::io::BufReader::new(f);
    let mut line = Vec::new();
    for _ in 0..16 {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return false,
            Ok(_) if line.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(_) => return imdsguard_auditd::looks_like_audit_line(&line),
        }
    }
    false
}

/// Throughput on a raw audit log, streaming from the file (multi-GB logs do not fit in memory):
/// (a) plain line reading, the baseline; (b) the auditd decoder (events built, then dropped);
/// (c) the whole hunt with the rule pack through `imdsguard-sources`. Each stage reads the whole
/// file; run it twice first (or pass --runs) so the page cache holds it.
fn run_auditd(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    use imdsguard_sources::{for_each_line, read_input_with, ReadOptions};
    let runs = args.runs.max(1);
    let open = || -> anyhow::Result<std::io::BufReader<std::fs::File>> {
        let f = std::fs::File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
        Ok(std::io::BufReader::with_capacity(1 << 20, f))
    };
    let bytes = std::fs::metadata(&args.file)?.len();
    // Median wall time, median thread CPU time, result.
    let timed = |f: &mut dyn FnMut() -> anyhow::Result<u64>| -> anyhow::Result<(f64, f64, u64)> {
        let mut times = Vec::new();
        let mut cpu = Vec::new();
        let mut out = 0;
        for _ in 0..runs {
            let c = thread_cpu_secs();
            let t = Instant::now();
            out = std::hint::black_box(f()?);
            times.push(t.elapsed().as_secs_f64());
            if let (Some(a), Some(b)) = (c, thread_cpu_secs()) {
                cpu.push(b - a);
            }
        }
        let wall = median(times);
        let cpu = if cpu.is_empty() { wall } else { median(cpu) };
        Ok((wall, cpu, out))
    };
    // (a) Baseline: split the file into lines.
    let (t_lines, c_lines, lines) = timed(&mut || {
        let mut n = 0u64;
        for_each_line(&mut open()?, &mut |_| n += 1)?;
        Ok(n)
    })?;
    // (b) Decode every line into Auditbeat-shaped events.
    let mut dstats = imdsguard_auditd::DecoderStats::default();
    let (t_decode, c_decode, events) = timed(&mut || {
        let mut d = imdsguard_auditd::AuditDecoder::new(imdsguard_auditd::DecoderConfig::default());
        let mut out = Vec::new();
        let mut n = 0u64;
        for_each_line(&mut open()?, &mut |l| {
            n += 1;
            d.feed_line(n, l, &mut out);
            out.clear();
            d.take_problems();
        })?;
        d.finish(&mut out);
        dstats = d.stats().clone();
        Ok(dstats.events)
    })?;
    // (c) The whole hunt (decode, JSON bytes, prefilter, rules) as `imdsguard hunt` runs it.
    let now = 1_800_000_000_000;
    let table = field_table(&args.fields)?;
    let (rules, errors) = load_rules(&args.rules, args.no_builtin);
    if errors.iter().any(|e| e.is_error()) {
        anyhow::bail!("{} rule file(s) failed to load", errors.len());
    }
    let mut evaluated = 0u64;
    let (t_hunt, c_hunt, alerts) = timed(&mut || {
        let (compiled, _, _) = compile_all(rules.clone(), &table, now);
        let mut hunt = Hunt::new(compiled);
        let mut st = ReadStats::default();
        let mut opts = ReadOptions::default();
        opts.auditd.host_id = Some("bench-host".into());
        read_input_with(&args.file, &mut Sink { hunt: &mut hunt, prefilter: true }, &mut st, Box::new(|_| {}), &opts);
        let (m, h, _) = hunt.finish(&mut MemoryHistory::default())?;
        evaluated = h.evaluated;
        Ok(m.len() as u64)
    })?;
    let rss = peak_rss_kib();
    let mbs = |t: f64| bytes as f64 / 1e6 / t;
    let lps = |t: f64| lines as f64 / t;
    let report = serde_json::json!({
        "file": args.file.display().to_string(), "bytes": bytes, "lines": lines, "events": events, "runs": runs,
        "process_starts": dstats.process_starts, "connects": dstats.connects, "problems": dstats.problems,
        "evicted_by_window": dstats.evicted_by_window, "evicted_by_limit": dstats.evicted_by_limit,
        "median_seconds": {"a_read_lines": t_lines, "b_decode": t_decode, "c_hunt": t_hunt},
        "median_cpu_seconds": {"a_read_lines": c_lines, "b_decode": c_decode, "c_hunt": c_hunt},
        "lines_per_sec": {"a_read_lines": lps(t_lines), "b_decode": lps(t_decode), "c_hunt": lps(t_hunt)},
        "mb_per_sec": {"a_read_lines": mbs(t_lines), "b_decode": mbs(t_decode), "c_hunt": mbs(t_hunt)},
        "lines_per_cpu_sec": {"a_read_lines": lps(c_lines), "b_decode": lps(c_decode), "c_hunt": lps(c_hunt)},
        "mb_per_cpu_sec": {"a_read_lines": mbs(c_lines), "b_decode": mbs(c_decode), "c_hunt": mbs(c_hunt)},
        "events_per_sec": {"b_decode": events as f64 / t_decode, "c_hunt": events as f64 / t_hunt},
        "events_evaluated": evaluated, "alerts": alerts, "peak_rss_kib": rss,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{bytes} bytes, {lines} lines, {events} audit events; median of {runs} run(s), one thread, streaming from the file");
        println!("  wall clock:                                                   per CPU second of the thread:");
        let row = |name: &str, t: f64, c: f64| {
            println!(
                "  {name} {:>11.0} lines/s {:>7.1} MB/s   {:>11.0} lines/s {:>7.1} MB/s  ({:.1}x the CPU of (a))",
                lps(t),
                mbs(t),
                lps(c),
                mbs(c),
                c / c_lines
            );
        };
        row("(a) read lines (baseline)", t_lines, c_lines);
        row("(b) auditd decode        ", t_decode, c_decode);
        row("(c) hunt, rule pack      ", t_hunt, c_hunt);
        println!("  {:.0} events/s decoded, {:.0} events/s hunted (wall clock)", events as f64 / t_decode, events as f64 / t_hunt);
        println!(
            "  {} process starts, {} connects, {} problems, {} evicted by window, {} by limit; {} evaluated, {} alerts; peak RSS {} KiB",
            dstats.process_starts,
            dstats.connects,
            dstats.problems,
            dstats.evicted_by_window,
            dstats.evicted_by_limit,
            evaluated,
            alerts,
            rss.unwrap_or(0)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let mut head = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open(&args.file) {
        use std::io::Read;
        if f.read_exact(&mut head).is_ok() && imdsguard_capture::is_capture(&head) {
            return run_capture(&args);
        }
    }
    if is_audit_log(&args.file) {
        return run_auditd(&args);
    }
    let now = 1_800_000_000_000;
    let table = field_table(&args.fields)?;
    let (rules, errors) = load_rules(&args.rules, args.no_builtin);
    if errors.iter().any(|e| e.is_error()) {
        anyhow::bail!("{} rule file(s) failed to load", errors.len());
    }
    let make_hunt = || {
        let (compiled, _, _) = compile_all(rules.clone(), &table, now);
        Hunt::new(compiled)
    };
    let runs = args.runs.max(1);

    // 1. Streaming hunt from the file: peak memory of the real pipeline.
    let rss_before = peak_rss_kib();
    let t = Instant::now();
    let mut hunt = make_hunt();
    let mut stats = ReadStats::default();
    read_input(&args.file, &mut Sink { hunt: &mut hunt, prefilter: true }, &mut stats, Box::new(|_| {}));
    let (matches, hstats, compiled) = hunt.finish(&mut MemoryHistory::default())?;
    let stream_secs = t.elapsed().as_secs_f64();
    let rss_hunt = peak_rss_kib();
    let events = stats.records;
    if events == 0 {
        anyhow::bail!("{} has no events", args.file.display());
    }
    let builtin = vec![false; compiled.len()];
    let alerts_n = matches
        .iter()
        .map(|m| {
            build_alert(&AlertInput {
                rule: &compiled[m.rule].rule,
                event: &m.event,
                time: m.time,
                new_terms: m.new_terms.as_deref(),
                builtin: builtin[m.rule],
                now_millis: now,
                group: None,
                suppression: None,
                threshold: None,
            })
        })
        .count();

    // 2. In-memory stages.
    let data = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let rate = |secs: f64| events as f64 / secs;
    let time_it = |f: &mut dyn FnMut() -> u64| -> (f64, u64) {
        let mut times = Vec::new();
        let mut out = 0;
        for _ in 0..runs {
            let t = Instant::now();
            out = std::hint::black_box(f());
            times.push(t.elapsed().as_secs_f64());
        }
        (median(times), out)
    };
    let (split, n_lines) = time_it(&mut || memchr::memchr_iter(b'\n', &data).count() as u64);
    let (serde, n_serde) = time_it(&mut || {
        let mut n = 0u64;
        for line in data.split(|b| *b == b'\n') {
            if !line.is_empty() && serde_json::from_slice::<serde_json::Value>(line).is_ok() {
                n += 1;
            }
        }
        n
    });
    let (sonic, n_sonic) = time_it(&mut || {
        let mut n = 0u64;
        for line in data.split(|b| *b == b'\n') {
            if !line.is_empty() && sonic_rs::from_slice::<sonic_rs::Value>(line).is_ok() {
                n += 1;
            }
        }
        n
    });
    let origin: Arc<str> = Arc::from("bench");
    let hunt_run = |prefilter: bool| -> u64 {
        let mut hunt = make_hunt();
        let mut st = ReadStats::default();
        read_stream(&mut std::io::Cursor::new(&data[..]), &origin, &mut Sink { hunt: &mut hunt, prefilter }, &mut st);
        match hunt.finish(&mut MemoryHistory::default()) {
            Ok((m, _, _)) => m.len() as u64,
            Err(_) => 0,
        }
    };
    let (hunt_pf, alerts_pf) = time_it(&mut || hunt_run(true));
    let (hunt_full, alerts_full) = time_it(&mut || hunt_run(false));
    if alerts_pf != alerts_full {
        anyhow::bail!("prefilter changed the result: {alerts_pf} alerts with it, {alerts_full} without");
    }
    let report = serde_json::json!({
        "file": args.file.display().to_string(),
        "bytes": data.len(),
        "events": events,
        "runs": runs,
        "lines_counted": n_lines,
        "parsed_serde_json": n_serde,
        "parsed_sonic_rs": n_sonic,
        "events_per_sec": {
            "a_split_lines": rate(split),
            "b_parse_serde_json": rate(serde),
            "b_parse_sonic_rs": rate(sonic),
            "c_hunt_builtin_prefilter": rate(hunt_pf),
            "c_hunt_builtin_no_prefilter": rate(hunt_full),
            "streaming_hunt_from_file": rate(stream_secs),
        },
        "median_seconds": {"split": split, "serde_json": serde, "sonic_rs": sonic, "hunt": hunt_pf, "hunt_no_prefilter": hunt_full},
        "ratios": {
            "hunt_vs_sonic_parse": rate(hunt_pf) / rate(sonic),
            "hunt_vs_serde_parse": rate(hunt_pf) / rate(serde),
            "prefilter_speedup": hunt_full / hunt_pf,
        },
        "events_evaluated": hstats.evaluated,
        "events_prefiltered": hstats.prefiltered,
        "alerts": alerts_pf,
        "alerts_built": alerts_n,
        "peak_rss_kib": {"before": rss_before, "after_streaming_hunt": rss_hunt},
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{} events, {} bytes, median of {runs} runs, one thread", events, data.len());
        println!("  (a) split lines            {:>12.0} ev/s", rate(split));
        println!("  (b) parse, serde_json      {:>12.0} ev/s", rate(serde));
        println!("  (b) parse, sonic-rs        {:>12.0} ev/s", rate(sonic));
        println!("  (c) hunt, rule pack        {:>12.0} ev/s  ({:.2}x sonic-rs parse)", rate(hunt_pf), rate(hunt_pf) / rate(sonic));
        println!("      hunt without prefilter {:>12.0} ev/s  (prefilter speed-up {:.1}x)", rate(hunt_full), hunt_full / hunt_pf);
        println!("      streaming from file    {:>12.0} ev/s", rate(stream_secs));
        println!("  evaluated {} of {} events, {} alerts", hstats.evaluated, events, alerts_pf);
        println!(
            "  peak RSS: {} KiB before, {} KiB after the streaming hunt (the in-memory stages load the file afterwards)",
            rss_before.unwrap_or(0),
            rss_hunt.unwrap_or(0)
        );
    }
    Ok(ExitCode::SUCCESS)
}
