//! `imdsguard sensor`: the live Linux sensor. Packets to and from the metadata endpoints are read
//! from an `AF_PACKET` socket (kernel BPF filter), decoded into Packetbeat-shaped HTTP events by
//! the capture decoder, joined to the process that owns the connection, and run through the rules
//! in-process; alerts stream to stdout (or `--output`, rotated by size), raw events to `--events`.
//!
//! Process launches and the process of each metadata connect come from the eBPF programs
//! (`imdsguard_sensor::ebpf`: arguments captured in the kernel at exec, endpoints filtered in the
//! kernel) when they load; otherwise (or with `--no-ebpf`) from the `/proc` fallback
//! (`imdsguard_sensor::procfs`, `sock_diag`, the process events connector), and the status line
//! says which and why. Threads: one reads packets, one polls `/proc/net/tcp{,6}`, one drains the
//! eBPF ring buffer (or reads the process events connector), one waits for SIGTERM/SIGINT; the main thread decodes, joins, and runs the rules over micro-batches
//! (a fresh `Hunt` every `--batch-ms` over the batch's events, with one new_terms history kept
//! for the whole run, in the SQLite store when `--state` names one). Every queue is bounded; what
//! does not fit is dropped and counted in the status line.

use crate::load::{field_table, load_rules, render_load_error};
use crate::output::write_alerts;
use crate::Format;
use anyhow::Context;
use imdsguard_engine::history::{MemoryHistory, TermsHistory};
use imdsguard_engine::{CompiledRule, Hunt};
use imdsguard_sensor::procfs::{Attributor, Connection};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Alert formats of the live sensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SensorFormat {
    Table,
    Ndjson,
}

#[derive(clap::Args, Debug, Default)]
pub struct SensorArgs {
    /// Alert format (default: table on a terminal, ndjson otherwise).
    #[arg(long, value_enum)]
    pub format: Option<SensorFormat>,
    /// Append alerts to FILE instead of stdout; rotated to FILE.1 at --max-output-bytes.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Append the raw ECS events (credentials redacted) to FILE, rotated like --output.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Embedded store (SQLite): new_terms history, and the alerts with their workflow status;
    /// `:memory:` (the default) keeps history for this run only and stores no alerts.
    #[arg(long, value_name = "FILE")]
    pub state: Option<String>,
    /// TOML configuration; flags override its settings (see docs/sensor.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Rule file or directory. Repeatable; adds to the built-in pack.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Do not load the built-in rule pack.
    #[arg(long)]
    pub no_builtin: bool,
    /// A further metadata endpoint ADDR[=PROVIDER] (repeatable; adds to the defaults).
    #[arg(long = "metadata-endpoint", value_name = "ADDR[=PROVIDER]")]
    pub metadata_endpoints: Vec<String>,
    /// `host.name` of the events (default: the kernel host name).
    #[arg(long, value_name = "NAME")]
    pub host_name: Option<String>,
    /// `host.id` of the events (default: /etc/machine-id).
    #[arg(long, value_name = "ID")]
    pub host_id: Option<String>,
    /// How often /proc/net/tcp{,6} is read for metadata connections whose SYN was not seen
    /// (milliseconds; each read walks the kernel's connection table: milliseconds of CPU).
    #[arg(long, value_name = "MS")]
    pub poll_interval_ms: Option<u64>,
    /// Rules run over the events of each batch of this many milliseconds.
    #[arg(long, value_name = "MS")]
    pub batch_ms: Option<u64>,
    /// Print a status line on stderr every --stats-interval seconds (a final one is always printed).
    #[arg(long)]
    pub stats: bool,
    /// Seconds between status lines.
    #[arg(long, value_name = "SECS")]
    pub stats_interval: Option<u64>,
    /// Rotate --output and --events when they exceed this many bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_output_bytes: Option<u64>,
    /// Stop after this many seconds (default: run until SIGTERM/SIGINT).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Watch the network namespace NAME (`/run/netns/NAME`, as `ip netns` names it): process
    /// starts are subscribed in the current (host) namespace, where alone the kernel reports them,
    /// then capture and socket lookups run in NAME (`imdsguard simulate` uses it).
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// Do not load the eBPF programs: use the /proc fallback (process events connector,
    /// sock_diag, /proc/*/fd) even where eBPF would work.
    #[arg(long)]
    pub no_ebpf: bool,
}

/// The `--config` file. Every key is optional; flags win.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SensorConfig {
    format: Option<SensorFormat>,
    output: Option<PathBuf>,
    events: Option<PathBuf>,
    state: Option<String>,
    #[serde(default)]
    rules: Vec<PathBuf>,
    no_builtin: Option<bool>,
    #[serde(default)]
    metadata_endpoints: Vec<String>,
    host_name: Option<String>,
    host_id: Option<String>,
    poll_interval_ms: Option<u64>,
    batch_ms: Option<u64>,
    stats: Option<bool>,
    stats_interval: Option<u64>,
    max_output_bytes: Option<u64>,
    no_ebpf: Option<bool>,
}

/// The settings in force.
#[derive(Debug)]
struct Settings {
    format: SensorFormat,
    output: Option<PathBuf>,
    events: Option<PathBuf>,
    state: Option<String>,
    rules: Vec<PathBuf>,
    no_builtin: bool,
    endpoints: Vec<String>,
    host_name: Option<String>,
    host_id: Option<String>,
    poll: Duration,
    batch: Duration,
    stats: bool,
    stats_interval: Duration,
    max_output_bytes: u64,
    duration: Option<Duration>,
    netns: Option<String>,
    no_ebpf: bool,
}

fn settings(args: SensorArgs) -> anyhow::Result<Settings> {
    let cfg: SensorConfig = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => SensorConfig::default(),
    };
    let output = args.output.or(cfg.output);
    let format = args.format.or(cfg.format).unwrap_or_else(|| {
        use std::io::IsTerminal;
        if output.is_none() && std::io::stdout().is_terminal() {
            SensorFormat::Table
        } else {
            SensorFormat::Ndjson
        }
    });
    let mut rules = cfg.rules;
    rules.extend(args.rules);
    let mut endpoints = cfg.metadata_endpoints;
    endpoints.extend(args.metadata_endpoints);
    let duration = match args.duration {
        Some(d) if d.is_finite() && d > 0.0 => Some(Duration::from_secs_f64(d)),
        Some(d) => anyhow::bail!("--duration {d}: must be a positive number of seconds"),
        None => None,
    };
    Ok(Settings {
        format,
        output,
        events: args.events.or(cfg.events),
        state: args.state.or(cfg.state),
        rules,
        no_builtin: args.no_builtin || cfg.no_builtin.unwrap_or(false),
        endpoints,
        host_name: args.host_name.or(cfg.host_name),
        host_id: args.host_id.or(cfg.host_id),
        poll: Duration::from_millis(args.poll_interval_ms.or(cfg.poll_interval_ms).unwrap_or(1000).max(1)),
        batch: Duration::from_millis(args.batch_ms.or(cfg.batch_ms).unwrap_or(1000).max(10)),
        stats: args.stats || cfg.stats.unwrap_or(false),
        stats_interval: Duration::from_secs(args.stats_interval.or(cfg.stats_interval).unwrap_or(10).max(1)),
        max_output_bytes: args.max_output_bytes.or(cfg.max_output_bytes).unwrap_or(100 << 20).max(4096),
        duration,
        netns: args.netns,
        no_ebpf: args.no_ebpf || cfg.no_ebpf.unwrap_or(false),
    })
}

/// An append-only output rotated to `<path>.1` when it grows past a size.
enum Sink {
    Stdout(std::io::Stdout),
    File { path: PathBuf, file: std::io::BufWriter<std::fs::File>, written: u64, max: u64 },
}

impl Sink {
    fn open(path: Option<&Path>, max: u64) -> anyhow::Result<Sink> {
        Ok(match path {
            None => Sink::Stdout(std::io::stdout()),
            Some(p) => {
                let f = std::fs::OpenOptions::new().create(true).append(true).open(p).with_context(|| format!("cannot open {}", p.display()))?;
                let written = f.metadata().map(|m| m.len()).unwrap_or(0);
                Sink::File { path: p.to_path_buf(), file: std::io::BufWriter::new(f), written, max }
            }
        })
    }

    /// Write `bytes` (whole records), rotating first when the file is full.
    fn write_record(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match self {
            Sink::Stdout(s) => {
                let mut l = s.lock();
                l.write_all(bytes)?;
                l.flush()?;
            }
            Sink::File { path, file, written, max } => {
                if *written > 0 && *written + bytes.len() as u64 > *max {
                    file.flush()?;
                    let mut old = path.clone().into_os_string();
                    old.push(".1");
                    std::fs::rename(&*path, &old).with_context(|| format!("cannot rotate {}", path.display()))?;
                    let f = std::fs::OpenOptions::new().create(true).append(true).open(&*path).with_context(|| format!("cannot open {}", path.display()))?;
                    *file = std::io::BufWriter::new(f);
                    *written = 0;
                }
                file.write_all(bytes)?;
                *written += bytes.len() as u64;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Stdout(s) => s.flush(),
            Sink::File { file, .. } => file.flush(),
        }
    }
}

/// Counters behind the status line.
#[derive(Default)]
struct Counters {
    packets: AtomicU64,
    packets_dropped: AtomicU64,
    connections_dropped: AtomicU64,
    recv_errors: AtomicU64,
    syns_dropped: AtomicU64,
    diag_errors: AtomicU64,
    /// Process launches reported by the kernel, and those gone before /proc could be read.
    execs: AtomicU64,
    exec_misses: AtomicU64,
    execs_dropped: AtomicU64,
    /// eBPF path: records the kernel could not queue (ring buffer full), records that did not
    /// parse, launches whose arguments exceeded the kernel's bound.
    kernel_dropped: AtomicU64,
    bad_records: AtomicU64,
    args_truncated: AtomicU64,
}

struct Frame {
    ts_micros: i64,
    bytes: Vec<u8>,
}

/// An HTTP event waiting for its connection to be attributed.
struct Pending {
    event: serde_json::Map<String, Value>,
    client: SocketAddr,
    server: SocketAddr,
    deadline: Instant,
}

/// Most HTTP events waiting for attribution; beyond it they go out unattributed.
const MAX_PENDING: usize = 10_000;
/// How long an HTTP event waits for the poller to attribute its connection.
const ATTRIBUTION_WAIT: Duration = Duration::from_millis(300);
/// A batch is evaluated early when it holds this many events (bounded memory under a flood).
const MAX_BATCH: usize = 10_000;

fn micros_now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

fn socket_of(v: &serde_json::Map<String, Value>, side: &str) -> Option<SocketAddr> {
    let o = v.get(side)?.as_object()?;
    let ip: IpAddr = o.get("ip")?.as_str()?.parse().ok()?;
    let port = u16::try_from(o.get("port")?.as_u64()?).ok()?;
    Some(SocketAddr::new(ip, port))
}

/// What every sensor event carries: host, agent, ingest time.
struct Stamp {
    host: Value,
    agent: Value,
}

impl Stamp {
    fn apply(&self, ev: &mut serde_json::Map<String, Value>, now_micros: i64) {
        let host = ev.entry("host").or_insert_with(|| json!({}));
        if let (Some(h), Some(ours)) = (host.as_object_mut(), self.host.as_object()) {
            for (k, v) in ours {
                h.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        ev.insert("agent".into(), self.agent.clone());
        if let Some(e) = ev.entry("event").or_insert_with(|| json!({})).as_object_mut() {
            e.insert("ingested".into(), json!(rfc3339(now_micros)));
        }
    }
}

/// An Elastic Defend-shaped network `start` event for a connection seen in /proc.
/// A process launch, as Elastic Defend shapes it (`event.category: process`, `type: start`).
fn process_start_event(p: &imdsguard_sensor::procfs::Process, now_micros: i64) -> serde_json::Map<String, Value> {
    let mut ev = serde_json::Map::new();
    ev.insert("@timestamp".into(), json!(rfc3339(now_micros)));
    ev.insert(
        "event".into(),
        json!({
            "kind": "event", "category": ["process"], "type": ["start"], "action": "exec",
            "module": "imdsguard_sensor", "dataset": "imdsguard_sensor.process", "outcome": "success",
        }),
    );
    p.merge_into(&mut ev);
    ev
}

fn connection_event(c: &Connection, now_micros: i64) -> serde_json::Map<String, Value> {
    let family = if c.remote.is_ipv4() { "ipv4" } else { "ipv6" };
    let mut ev = serde_json::Map::new();
    ev.insert("@timestamp".into(), json!(rfc3339(now_micros)));
    ev.insert(
        "event".into(),
        json!({
            "kind": "event", "category": ["network"], "type": ["start"], "action": "connection_attempted",
            "module": "imdsguard_sensor", "dataset": "imdsguard_sensor.network", "outcome": "unknown",
        }),
    );
    ev.insert("network".into(), json!({"transport": "tcp", "type": family, "direction": "egress"}));
    ev.insert("source".into(), json!({"ip": c.local.ip().to_string(), "port": c.local.port()}));
    ev.insert(
        "destination".into(),
        json!({"ip": c.remote.ip().to_string(), "port": c.remote.port(), "address": c.remote.ip().to_string()}),
    );
    if let Some(p) = &c.process {
        p.merge_into(&mut ev);
    }
    ev
}

/// The name of the sensor's stream state in the `--state` store.
const SENSOR_STREAM_STATE: &str = "sensor";

struct Engine {
    rules: Vec<CompiledRule>,
    builtin: Vec<bool>,
    history: Box<dyn TermsHistory>,
    sqlite: Option<imdsguard_store::SqliteHistory>,
    /// Alerts kept in the embedded store (the `--state` database) with their workflow status.
    store: Option<imdsguard_store::AlertStore>,
    batch: Vec<(imdsguard_ecs::Event, Vec<u8>)>,
    /// What sequences, thresholds, suppression and `max_signals` carry from one micro-batch to
    /// the next (saved in `--state` with the history).
    stream: imdsguard_engine::StreamState,
    format: SensorFormat,
    alerts: u64,
    evaluated: u64,
    redacted: usize,
}

impl Engine {
    fn push(&mut self, key: String, raw: Vec<u8>) -> anyhow::Result<()> {
        let doc: sonic_rs::Value = sonic_rs::from_slice(&raw).context("re-reading an event the sensor built")?;
        let ev = imdsguard_ecs::Event {
            doc: Arc::new(doc),
            provenance: imdsguard_ecs::Provenance { origin: Arc::from("sensor"), line: 0 },
            key,
            index: None,
        };
        self.batch.push((ev, raw));
        Ok(())
    }

    /// Run the rules over the batch and write its alerts.
    fn run_batch(&mut self, out: &mut Sink) -> anyhow::Result<()> {
        // An empty batch still runs while rules carry events: a threshold window closes by the
        // clock even when nothing else arrives.
        if self.batch.is_empty() && self.stream.carried() == 0 {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp_millis();
        self.stream.advance_clock(now);
        let mut hunt = Hunt::new(self.rules.clone());
        for (i, (ev, raw)) in self.batch.drain(..).enumerate() {
            let mut ev = ev;
            ev.provenance.line = i as u64 + 1;
            if hunt.is_candidate(&raw) {
                hunt.evaluate(&ev);
            }
        }
        let (matches, hstats, rules) = match &mut self.sqlite {
            Some(h) => {
                let r = hunt.finish_stream(h as &mut dyn TermsHistory, &mut self.stream)?;
                h.save_stream_state(SENSOR_STREAM_STATE, &self.stream)?;
                h.commit()?;
                r
            }
            None => hunt.finish_stream(self.history.as_mut(), &mut self.stream)?,
        };
        self.evaluated += hstats.evaluated;
        if matches.is_empty() {
            return Ok(());
        }
        let alerts: Vec<Value> = matches
            .iter()
            .map(|m| {
                let (a, n) = imdsguard_alerts::alert_for_match(m, &rules[m.rule].rule, self.builtin[m.rule], now);
                self.redacted += n;
                a
            })
            .collect();
        self.alerts += alerts.len() as u64;
        if let Some(store) = &mut self.store {
            store.insert(&alerts).context("writing alerts to the embedded store")?;
        }
        let mut buf = Vec::new();
        write_alerts(&mut buf, &alerts, if self.format == SensorFormat::Table { Format::Table } else { Format::Ndjson })?;
        if self.format == SensorFormat::Table {
            buf.push(b'\n');
        }
        out.write_record(&buf)?;
        out.flush()?;
        Ok(())
    }
}

pub fn run(args: SensorArgs) -> anyhow::Result<ExitCode> {
    let s = settings(args)?;
    if !cfg!(target_os = "linux") {
        anyhow::bail!("the sensor runs on Linux only");
    }
    // The connector reports only to sockets in the host's (initial) network namespace.
    let host_netns = std::fs::read_link("/proc/self/ns/net").ok() == std::fs::read_link("/proc/1/ns/net").ok();
    // --netns: subscribe to process starts here, then move (before any thread exists) into the
    // watched namespace, where every other socket is opened.
    let early_exec = match &s.netns {
        Some(ns) => {
            let e = imdsguard_sensor::exec::ExecEvents::open(Duration::from_millis(200));
            imdsguard_lab::enter_netns(ns).with_context(|| format!("--netns {ns}"))?;
            Some(e)
        }
        None => None,
    };
    // Endpoints: the decoder's defaults plus the configured ones.
    let mut imds = imdsguard_capture::ImdsConfig::default();
    for spec in &s.endpoints {
        imds.endpoints.push(imdsguard_capture::ImdsEndpoint::parse(spec).map_err(|e| anyhow::anyhow!("metadata endpoint {e}"))?);
    }
    let addrs: Vec<IpAddr> = imds
        .endpoints
        .iter()
        .filter_map(|e| match &e.addr {
            imdsguard_capture::imds::EndpointAddr::Ip(ip) => Some(*ip),
            imdsguard_capture::imds::EndpointAddr::Host(_) => None,
        })
        .collect();
    let program = imdsguard_sensor::filter::Program::for_addresses(&addrs).map_err(|e| anyhow::anyhow!("packet filter: {e}"))?;

    // Rules.
    let now = chrono::Utc::now().timestamp_millis();
    let table = field_table(&crate::FieldOpts { mappings: Vec::new() })?;
    let (rules, load_errors) = load_rules(&s.rules, s.no_builtin);
    for e in &load_errors {
        eprint!("{}", render_load_error(e));
    }
    let (compiled, builtin, failed) = crate::cmd_hunt::compile_all(rules, &table, now);
    if compiled.is_empty() {
        anyhow::bail!("no runnable rules");
    }
    let not_run: usize = failed.values().map(Vec::len).sum();

    // Host identity.
    let detected = imdsguard_sensor::host::Host::detect();
    let host_id = s.host_id.clone().or(detected.id);
    let host_name = s.host_name.clone().or(detected.name);
    let mut host = json!({"os": {"type": "linux", "family": "linux", "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|k| k.trim().to_string()).unwrap_or_default()}});
    if let Some(id) = &host_id {
        host["id"] = json!(id);
    }
    if let Some(n) = &host_name {
        host["name"] = json!(n);
        host["hostname"] = json!(n);
    }
    let started = micros_now();
    let agent = json!({"type": "imdsguard", "name": host_name.clone().unwrap_or_else(|| "imdsguard".into()), "version": env!("CARGO_PKG_VERSION"), "id": format!("{}-{}", host_id.as_deref().unwrap_or("unknown"), started)});
    let stamp = Stamp { host, agent };

    // Outputs and store.
    let mut alerts_out = Sink::open(s.output.as_deref(), s.max_output_bytes)?;
    let mut events_out = match &s.events {
        Some(p) => Some(Sink::open(Some(p), s.max_output_bytes)?),
        None => None,
    };
    let (sqlite, store) = match s.state.as_deref() {
        None | Some(":memory:") => (None, None),
        Some(p) => {
            let p = Path::new(p);
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let alerts = imdsguard_store::AlertStore::open(p).with_context(|| format!("alerts store {}", p.display()))?;
            (Some(imdsguard_store::SqliteHistory::open(p)?), Some(alerts))
        }
    };
    let mut sqlite = sqlite;
    let stream = match sqlite.as_mut() {
        Some(h) => h.load_stream_state(SENSOR_STREAM_STATE)?.unwrap_or_default(),
        None => imdsguard_engine::StreamState::default(),
    };
    let mut engine = Engine {
        rules: compiled,
        builtin,
        history: Box::new(MemoryHistory::default()),
        sqlite,
        store,
        batch: Vec::new(),
        stream,
        format: s.format,
        alerts: 0,
        evaluated: 0,
        redacted: 0,
    };

    // Capture socket (needs CAP_NET_RAW).
    let mut sock = imdsguard_sensor::packet::PacketSocket::open(program, Duration::from_millis(100), 4 << 20)
        .context("cannot open the AF_PACKET socket (the sensor needs root or CAP_NET_RAW)")?;
    let filter_place = match sock.filter {
        imdsguard_sensor::packet::FilterPlace::Kernel => "kernel".to_string(),
        imdsguard_sensor::packet::FilterPlace::UserSpace => {
            format!("user-space (kernel refused the BPF filter: {})", sock.filter_error.as_deref().unwrap_or("?"))
        }
    };
    let attributor = Arc::new(Mutex::new(Attributor::new(addrs.iter().copied(), 65_536)));
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    // Every socket is open: drop what is no longer needed, before any thread exists (capabilities
    // are per thread; the others inherit the reduced sets).
    let diag = imdsguard_sensor::diag::Diag::open().ok();
    let diag_ok = diag.is_some();
    // The eBPF path when this binary has it (cargo feature `ebpf`) and the kernel accepts it.
    #[cfg(feature = "ebpf")]
    let tracer = if s.no_ebpf { Err("disabled by --no-ebpf".to_string()) } else { imdsguard_sensor::ebpf::Tracer::load(&addrs) };
    #[cfg(feature = "ebpf")]
    let (path, path_note) = match &tracer {
        Ok(_) => ("ebpf", String::new()),
        Err(e) if s.no_ebpf => ("proc-fallback", format!("eBPF {e}; ")),
        Err(e) => ("proc-fallback", format!("eBPF load failed: {e}; ")),
    };
    #[cfg(not(feature = "ebpf"))]
    let (path, path_note) = ("proc-fallback", if s.no_ebpf { "eBPF disabled by --no-ebpf; " } else { "built without the `ebpf` feature; " }.to_string());
    let ebpf_on = path == "ebpf";
    // Process launches without eBPF: subscribe to the kernel's process events connector while
    // the sensor still holds CAP_NET_ADMIN (the subscription survives the capability drop); with
    // --netns it was opened in the host namespace before moving.
    let exec_events = if ebpf_on {
        Err(std::io::Error::other("replaced by eBPF"))
    } else {
        early_exec.unwrap_or_else(|| imdsguard_sensor::exec::ExecEvents::open(Duration::from_millis(200)))
    };
    let exec_text = match &exec_events {
        _ if ebpf_on => "process starts: eBPF on sched:sched_process_exec (arguments captured in the kernel, every network namespace)".to_string(),
        Ok(_) if host_netns => "process starts: kernel process events connector (exec, then /proc/<pid>)".to_string(),
        Ok(_) => "process starts: kernel process events connector, but the sensor is not in the host's network namespace, where alone it reports".to_string(),
        Err(e) => format!("process starts UNAVAILABLE (process events connector: {e})"),
    };
    let privileges = match imdsguard_sensor::privileges::drop_to_runtime() {
        Ok(d) => format!(
            "capabilities kept: {}",
            match imdsguard_sensor::privileges::names(d.after).join(",") {
                n if n.is_empty() => "none".to_string(),
                n => n,
            }
        ),
        Err(e) => format!("capabilities not dropped ({e})"),
    };
    crate::signals::spawn_signal_thread(stop.clone())?;
    let path_text = if ebpf_on {
        "eBPF: connects traced on sock:inet_sock_set_state (process captured in the kernel, endpoints filtered in the kernel; /proc/net/tcp read once for connections opened before the start)".to_string()
    } else {
        format!(
            "eBPF unavailable: using /proc fallback ({path_note}sock_diag lookup on each SYN{}, /proc/net/tcp every {} ms, owner from /proc/*/fd; short-lived processes may be missed)",
            if diag_ok { "" } else { " UNAVAILABLE" },
            s.poll.as_millis()
        )
    };
    eprintln!(
        "imdsguard sensor: {path_text}; {exec_text}; packet filter: {filter_place}; {privileges}; endpoints: {}; {} rule(s){}",
        addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        engine.rules.len(),
        if not_run > 0 { format!(" ({not_run} not run)") } else { String::new() }
    );

    let (exec_tx, exec_rx) = sync_channel::<Arc<imdsguard_sensor::procfs::Process>>(8192);
    let (conn_tx, conn_rx) = sync_channel::<Arc<Connection>>(8192);
    // eBPF path: process launches and metadata connects from the kernel's ring buffer.
    #[cfg(feature = "ebpf")]
    let mut ebpf_thread = match tracer {
        Ok(mut t) => {
            let (stop, counters, attributor, exec_tx, conn_tx) = (stop.clone(), counters.clone(), attributor.clone(), exec_tx.clone(), conn_tx.clone());
            Some(std::thread::Builder::new().name("ebpf".into()).spawn(move || {
                let mut records = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    t.wait(Duration::from_millis(100));
                    t.drain(&mut records);
                    if !records.is_empty() {
                        let Ok(mut a) = attributor.lock() else { break };
                        for r in records.drain(..) {
                            match r {
                                imdsguard_sensor::kernel::Record::Exec(e) => {
                                    counters.execs.fetch_add(1, Ordering::Relaxed);
                                    if e.args_truncated {
                                        counters.args_truncated.fetch_add(1, Ordering::Relaxed);
                                    }
                                    if exec_tx.try_send(a.process_from_exec(&e)).is_err() {
                                        counters.execs_dropped.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                                imdsguard_sensor::kernel::Record::Connect(c) => {
                                    if conn_tx.try_send(a.attribute_kernel(&c)).is_err() {
                                        counters.connections_dropped.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                        }
                    }
                    let (de, dc) = t.kernel_drops();
                    counters.kernel_dropped.store(de + dc, Ordering::Relaxed);
                    counters.bad_records.store(t.bad_records, Ordering::Relaxed);
                }
            })?)
        }
        Err(_) => None,
    };
    #[cfg(not(feature = "ebpf"))]
    let mut ebpf_thread: Option<std::thread::JoinHandle<()>> = None;
    let mut exec_thread = match exec_events {
        Ok(mut events) => {
            let stop = stop.clone();
            let counters = counters.clone();
            let attributor = attributor.clone();
            Some(std::thread::Builder::new().name("exec-events".into()).spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((execs, _skipped)) = events.recv() else { break };
                    for e in execs {
                        counters.execs.fetch_add(1, Ordering::Relaxed);
                        let p = attributor.lock().ok().and_then(|mut a| a.read_process(e.tgid));
                        match p {
                            Some(p) => {
                                if exec_tx.try_send(Arc::new(p)).is_err() {
                                    counters.execs_dropped.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            None => {
                                counters.exec_misses.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            })?)
        }
        Err(_) => None,
    };
    let (frame_tx, frame_rx) = sync_channel::<Frame>(8192);
    // A SYN seen on the wire is looked up at once by the poller (bounded; overflow counted).
    let (syn_tx, syn_rx) = sync_channel::<(SocketAddr, SocketAddr)>(1024);
    let mut capture = Some({
        let stop = stop.clone();
        let counters = counters.clone();
        std::thread::Builder::new().name("capture".into()).spawn(move || {
            let mut buf = vec![0u8; imdsguard_sensor::filter::SNAPLEN as usize];
            while !stop.load(Ordering::Relaxed) {
                match sock.recv(&mut buf) {
                    Ok(Some(n)) => {
                        counters.packets.fetch_add(1, Ordering::Relaxed);
                        // With eBPF the kernel reports the connects: no SYN lookups.
                        if let Some(syn) = imdsguard_sensor::packet::tcp_syn(buf.get(..n).unwrap_or(&[])).filter(|_| !ebpf_on) {
                            if syn_tx.try_send(syn).is_err() {
                                counters.syns_dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        let f = Frame { ts_micros: micros_now(), bytes: buf.get(..n).unwrap_or(&[]).to_vec() };
                        match frame_tx.try_send(f) {
                            Ok(()) => {}
                            Err(TrySendError::Full(_)) => {
                                counters.packets_dropped.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(TrySendError::Disconnected(_)) => break,
                        }
                    }
                    Ok(None) => {}
                    Err(_) => {
                        counters.recv_errors.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })?
    });
    let mut poller = Some({
        let stop = stop.clone();
        let counters = counters.clone();
        let attributor = attributor.clone();
        let interval = s.poll;
        let mut diag = diag;
        std::thread::Builder::new().name("proc-poller".into()).spawn(move || {
            let mut next_poll = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let mut wait = next_poll.saturating_duration_since(Instant::now());
                if ebpf_on {
                    wait = wait.min(Duration::from_millis(200));
                }
                // Exact lookups of the connections whose SYN was just seen, then (periodically)
                // the full read of /proc/net/tcp{,6} for whatever the SYN path missed.
                match syn_rx.recv_timeout(wait) {
                    Ok(_) if ebpf_on => continue,
                    Ok((local, remote)) => {
                        let Ok(mut a) = attributor.lock() else { break };
                        if !a.is_endpoint(remote.ip()) {
                            continue;
                        }
                        let t0 = Instant::now();
                        let found = match diag.as_mut().map(|d| d.lookup(local, remote)) {
                            Some(Ok(Some(info))) => {
                                let inode = info.inode;
                                // Stop scanning /proc/*/fd once the socket is closed: nobody holds it.
                                let mut still_open = || match diag.as_mut().map(|d| d.lookup(local, remote)) {
                                    Some(Ok(Some(now))) => now.inode == inode,
                                    Some(Ok(None)) => false,
                                    _ => true,
                                };
                                a.attribute(local, remote, u64::from(inode), info.state, &mut still_open)
                            }
                            Some(Err(_)) => {
                                counters.diag_errors.fetch_add(1, Ordering::Relaxed);
                                None
                            }
                            _ => None,
                        };
                        drop(a);
                        tracing::debug!(elapsed_us = t0.elapsed().as_micros() as u64, found = found.is_some(), "SYN lookup");
                        if let Some(c) = found {
                            if conn_tx.try_send(c).is_err() {
                                counters.connections_dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        continue;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(interval.min(Duration::from_millis(50))),
                }
                if Instant::now() < next_poll {
                    continue;
                }
                let t0 = Instant::now();
                let fresh = match attributor.lock() {
                    Ok(mut a) => a.poll(),
                    Err(_) => break,
                };
                tracing::debug!(elapsed_us = t0.elapsed().as_micros() as u64, fresh = fresh.len(), "proc poll");
                for c in fresh {
                    if conn_tx.try_send(c).is_err() {
                        counters.connections_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // With eBPF every new connect is reported by the kernel: /proc/net/tcp is read
                // once, for the connections opened before the start.
                next_poll = Instant::now() + if ebpf_on { Duration::from_secs(365 * 86_400) } else { interval };
            }
        })?
    });

    let mut decoder = imdsguard_capture::CaptureDecoder::new(imdsguard_capture::DecoderConfig {
        imds,
        host_name: host_name.clone(),
        host_id: host_id.clone(),
        ..Default::default()
    });
    let mut state = Loop {
        pending: VecDeque::new(),
        seq: 0,
        started,
        events: 0,
        http_events: 0,
        http_unattributed: 0,
        bad_events: 0,
    };
    let t_start = Instant::now();
    let mut last_batch = Instant::now();
    let mut last_stats = Instant::now();
    let mut decoded: Vec<Vec<u8>> = Vec::new();
    loop {
        let stopping = stop.load(Ordering::Relaxed) || s.duration.is_some_and(|d| t_start.elapsed() >= d);
        if stopping {
            stop.store(true, Ordering::SeqCst);
        }
        match frame_rx.recv_timeout(Duration::from_millis(20)) {
            Ok(f) => {
                decoder.feed_frame(1, f.ts_micros, &f.bytes, f.bytes.len(), &mut decoded);
                // Drain what else is queued without waiting.
                while let Ok(f) = frame_rx.try_recv() {
                    decoder.feed_frame(1, f.ts_micros, &f.bytes, f.bytes.len(), &mut decoded);
                    if decoded.len() > MAX_BATCH {
                        break;
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {}
        }
        if stopping {
            // Let the poller finish its last round, then flush every stage.
            for t in [capture.take(), poller.take(), exec_thread.take(), ebpf_thread.take()].into_iter().flatten() {
                let _ = t.join();
            }
            while let Ok(f) = frame_rx.try_recv() {
                decoder.feed_frame(1, f.ts_micros, &f.bytes, f.bytes.len(), &mut decoded);
            }
            decoder.finish(&mut decoded);
            if let Ok(mut a) = attributor.lock() {
                for c in a.poll() {
                    state.connection(&c, &stamp, &mut engine, events_out.as_mut())?;
                }
            }
        }
        state.connections(&conn_rx, &stamp, &mut engine, events_out.as_mut())?;
        while let Ok(p) = exec_rx.try_recv() {
            state.emit(process_start_event(&p, micros_now()), &stamp, &mut engine, events_out.as_mut())?;
        }
        state.http(&mut decoded, &attributor, &stamp, &mut engine, events_out.as_mut(), stopping)?;
        if stopping || last_batch.elapsed() >= s.batch || engine.batch.len() >= MAX_BATCH {
            engine.run_batch(&mut alerts_out)?;
            if let Some(e) = events_out.as_mut() {
                e.flush()?;
            }
            last_batch = Instant::now();
        }
        if s.stats && last_stats.elapsed() >= s.stats_interval {
            eprintln!("{}", status_line(path, &counters, &attributor, &state, &engine, &decoder));
            last_stats = Instant::now();
        }
        if stopping {
            break;
        }
    }
    alerts_out.flush()?;
    if let Some(e) = events_out.as_mut() {
        e.flush()?;
    }
    eprintln!("{}", status_line(path, &counters, &attributor, &state, &engine, &decoder));
    if engine.redacted > 0 {
        eprintln!("redacted {} credential value(s) from the alerts", engine.redacted);
    }
    Ok(ExitCode::SUCCESS)
}

struct Loop {
    pending: VecDeque<Pending>,
    seq: u64,
    started: i64,
    events: u64,
    http_events: u64,
    http_unattributed: u64,
    bad_events: u64,
}

impl Loop {
    fn emit(&mut self, mut ev: serde_json::Map<String, Value>, stamp: &Stamp, engine: &mut Engine, events_out: Option<&mut Sink>) -> anyhow::Result<()> {
        stamp.apply(&mut ev, micros_now());
        self.seq += 1;
        let key = format!("sensor-{}-{}", self.started, self.seq);
        let mut v = Value::Object(ev);
        let raw = serde_json::to_vec(&v)?;
        if let Some(out) = events_out {
            imdsguard_ecs::redact(&mut v);
            let mut line = serde_json::to_vec(&v)?;
            line.push(b'\n');
            out.write_record(&line)?;
        }
        self.events += 1;
        engine.push(key, raw)
    }

    fn connection(&mut self, c: &Connection, stamp: &Stamp, engine: &mut Engine, events_out: Option<&mut Sink>) -> anyhow::Result<()> {
        self.emit(connection_event(c, micros_now()), stamp, engine, events_out)
    }

    fn connections(&mut self, rx: &Receiver<Arc<Connection>>, stamp: &Stamp, engine: &mut Engine, mut events_out: Option<&mut Sink>) -> anyhow::Result<()> {
        while let Ok(c) = rx.try_recv() {
            self.connection(&c, stamp, engine, events_out.as_deref_mut())?;
        }
        Ok(())
    }

    /// Join decoded HTTP events with their connection's process; events whose connection is not
    /// attributed yet wait up to [`ATTRIBUTION_WAIT`] (all are released when `flush_all`).
    fn http(
        &mut self,
        decoded: &mut Vec<Vec<u8>>,
        attributor: &Mutex<Attributor>,
        stamp: &Stamp,
        engine: &mut Engine,
        mut events_out: Option<&mut Sink>,
        flush_all: bool,
    ) -> anyhow::Result<()> {
        let now = Instant::now();
        for raw in decoded.drain(..) {
            match serde_json::from_slice::<Value>(&raw) {
                Ok(Value::Object(ev)) => {
                    self.http_events += 1;
                    match (socket_of(&ev, "source"), socket_of(&ev, "destination")) {
                        (Some(client), Some(server)) => {
                            if self.pending.len() >= MAX_PENDING {
                                if let Some(p) = self.pending.pop_front() {
                                    self.http_unattributed += 1;
                                    self.emit(p.event, stamp, engine, events_out.as_deref_mut())?;
                                }
                            }
                            self.pending.push_back(Pending { event: ev, client, server, deadline: now + ATTRIBUTION_WAIT });
                        }
                        _ => {
                            self.http_unattributed += 1;
                            self.emit(ev, stamp, engine, events_out.as_deref_mut())?;
                        }
                    }
                }
                _ => self.bad_events += 1,
            }
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let a = attributor.lock().map_err(|_| anyhow::anyhow!("attribution table poisoned"))?;
        let mut keep = VecDeque::new();
        let mut ready = Vec::new();
        for mut p in self.pending.drain(..) {
            match a.lookup(p.client, p.server).and_then(|c| c.process.clone()) {
                Some(proc_) => {
                    proc_.merge_into(&mut p.event);
                    ready.push(p.event);
                }
                None if flush_all || now >= p.deadline => {
                    self.http_unattributed += 1;
                    ready.push(p.event);
                }
                None => keep.push_back(p),
            }
        }
        drop(a);
        self.pending = keep;
        for ev in ready {
            self.emit(ev, stamp, engine, events_out.as_deref_mut())?;
        }
        Ok(())
    }
}

fn status_line(path: &str, c: &Counters, attributor: &Mutex<Attributor>, l: &Loop, e: &Engine, d: &imdsguard_capture::CaptureDecoder) -> String {
    let a = attributor.lock().map(|a| a.stats.clone()).unwrap_or_default();
    let ds = d.stats();
    format!(
        "sensor status: path={path} execs={} exec_misses={} execs_dropped={} args_truncated={} kernel_dropped={} bad_records={} packets={} packets_dropped={} recv_errors={} http_events={} events={} events_evaluated={} alerts={} connections={} attributed={} attribution_misses={} http_unattributed={} connections_dropped={} syns_dropped={} diag_errors={} scans_abandoned={} table_evicted={} decoder_flows_evicted={} bad_events={}",
        c.execs.load(Ordering::Relaxed),
        c.exec_misses.load(Ordering::Relaxed),
        c.execs_dropped.load(Ordering::Relaxed),
        c.args_truncated.load(Ordering::Relaxed),
        c.kernel_dropped.load(Ordering::Relaxed),
        c.bad_records.load(Ordering::Relaxed),
        c.packets.load(Ordering::Relaxed),
        c.packets_dropped.load(Ordering::Relaxed),
        c.recv_errors.load(Ordering::Relaxed),
        l.http_events,
        l.events,
        e.evaluated,
        e.alerts,
        a.connections,
        a.attributed,
        a.misses,
        l.http_unattributed,
        c.connections_dropped.load(Ordering::Relaxed),
        c.syns_dropped.load(Ordering::Relaxed),
        c.diag_errors.load(Ordering::Relaxed),
        a.scans_abandoned,
        a.evicted,
        ds.tcp.flows_evicted,
        l.bad_events,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn config_file_and_flags_merge_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("sensor.toml");
        std::fs::write(
            &cfg,
            "format = \"table\"\noutput = \"/var/log/a.ndjson\"\npoll_interval_ms = 100\nmetadata_endpoints = [\"10.0.0.254=openstack\"]\nrules = [\"/etc/r1\"]\n",
        )
        .unwrap();
        let args = SensorArgs { config: Some(cfg.clone()), format: Some(SensorFormat::Ndjson), rules: vec!["/etc/r2".into()], ..Default::default() };
        let s = settings(args).unwrap();
        assert_eq!(s.format, SensorFormat::Ndjson);
        assert_eq!(s.output.as_deref(), Some(Path::new("/var/log/a.ndjson")));
        assert_eq!(s.poll, Duration::from_millis(100));
        assert_eq!(s.batch, Duration::from_millis(1000));
        assert_eq!(s.endpoints, vec!["10.0.0.254=openstack".to_string()]);
        assert_eq!(s.rules, vec![PathBuf::from("/etc/r1"), PathBuf::from("/etc/r2")]);
        std::fs::write(&cfg, "pol_interval_ms = 5\n").unwrap();
        let err = settings(SensorArgs { config: Some(cfg.clone()), ..Default::default() }).err().unwrap().to_string();
        assert!(err.contains("sensor.toml") && err.contains("pol_interval_ms"), "{err}");
        assert!(settings(SensorArgs { duration: Some(-1.0), ..Default::default() }).is_err());
        // The fallback can be forced from the file or the flag; eBPF is the default.
        assert!(!settings(SensorArgs::default()).unwrap().no_ebpf);
        std::fs::write(&cfg, "no_ebpf = true\n").unwrap();
        assert!(settings(SensorArgs { config: Some(cfg.clone()), ..Default::default() }).unwrap().no_ebpf);
        assert!(settings(SensorArgs { no_ebpf: true, ..Default::default() }).unwrap().no_ebpf);
    }

    #[test]
    fn output_rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alerts.ndjson");
        let mut sink = Sink::open(Some(&p), 4096).unwrap();
        let line = vec![b'x'; 1000];
        for _ in 0..9 {
            sink.write_record(&line).unwrap();
        }
        sink.flush().unwrap();
        let cur = std::fs::metadata(&p).unwrap().len();
        let old = std::fs::metadata(dir.path().join("alerts.ndjson.1")).unwrap().len();
        // Writes 1-4 fill the file; 5 rotates (FILE.1 = 1-4); 9 rotates again (FILE.1 = 5-8).
        assert_eq!((cur, old), (1000, 4000));
    }

    #[test]
    fn connection_events_are_elastic_defend_shaped() {
        let c = Connection {
            local: "10.0.0.2:40000".parse().unwrap(),
            remote: "169.254.169.254:80".parse().unwrap(),
            state: 2,
            inode: 1,
            process: Some(Arc::new(imdsguard_sensor::procfs::Process { pid: 9, name: Some("curl".into()), ..Default::default() })),
        };
        let v = Value::Object(connection_event(&c, 1_700_000_000_000_000));
        assert_eq!(v["event"]["category"], json!(["network"]));
        assert_eq!(v["event"]["type"], json!(["start"]));
        assert_eq!(v["destination"]["ip"], "169.254.169.254");
        assert_eq!(v["destination"]["port"], 80);
        assert_eq!(v["process"]["name"], "curl");
        assert_eq!(v["@timestamp"], "2023-11-14T22:13:20.000000Z");
    }
}
