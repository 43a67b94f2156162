//! Linux audit logs to ECS: a pure, incremental decoder (no I/O) for the raw auditd log format, as
//! written to `/var/log/audit/audit.log`, printed by `ausearch --raw`, or forwarded by syslog (any
//! prefix before `node=`/`type=` is ignored; the kernel's `audit: type=1300 audit(...)` form is
//! read too).
//!
//! Owns: line parsing (`type=`, the `msg=audit(TIME:SERIAL)` stamp, quoted, hex-encoded and nested
//! values, enriched logs' `\x1d` interpretations), grouping records into events by stamp with a
//! bounded buffer (records may arrive out of order or interleaved; an event completes on its EOE
//! record, when it is older than a time window behind the newest record, or when the buffer is
//! full — the last two are counted), and shaping each event as Auditbeat's auditd module writes
//! it: `event.{module,kind,category,type,action,outcome}`, `auditd.{message_type,sequence,result,
//! session,data,summary,paths}`, `process.*`, `user.*`, `destination.*`/`source.*`, `host.*`.
//!
//! Every defect is reported with its line number and reason ([`Problem`]) and counted; none stops
//! the decoder. Numeric ids are resolved to names only from an enriched log's interpretations.
//!
//! Differences from Auditbeat (which reads the kernel's netlink socket, not log files):
//! - `host.name` and `host.id` come from the record's `node=` prefix, else from the configuration;
//!   `host.os.type` is `linux`. Auditbeat fills `host.*` from the machine it runs on.
//! - `process.command_line` (the arguments joined by spaces) and `process.args_count` are added;
//!   Auditbeat writes `process.args` only. `process.ppid` repeats `process.parent.pid`.
//! - `destination.port`/`source.port` are numbers (ECS `long`); Auditbeat writes the strings it
//!   parsed (Elasticsearch coerces them). `auditd.data.socket.port` stays a string, as in Auditbeat.
//! - Names: Auditbeat resolves ids with the local passwd/group files (`resolve_ids`); a log may
//!   come from another machine, so only the enriched log's own interpretations are used.
//! - i386 `socketcall(2)` socket calls are categorised as the call they make (a0), so a 32-bit
//!   `connect` is a network event too; Auditbeat leaves them in the process/info catch-all.
//! - Syscall numbers are named for x86_64, aarch64/riscv64 and i386 for the calls this project
//!   uses (process start, sockets, identity, common file calls); others stay numeric unless the
//!   log is enriched.
//! - `event.original` (Auditbeat's `include_raw_message`) is not written: raw records can hold
//!   hex-encoded secrets that redaction cannot see.

mod event;
mod parse;
mod tables;

pub use event::{decode_saddr, Sockaddr};
pub use parse::{looks_like_audit_line, parse_line, unhex, Field, Line, Record};

use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// Settings of the decoder.
#[derive(Debug, Clone)]
pub struct DecoderConfig {
    /// `host.name` for records without a `node=` prefix.
    pub host_name: Option<String>,
    /// `host.id` for records without a `node=` prefix.
    pub host_id: Option<String>,
    /// An event still open this long (ms) behind the newest record seen is complete.
    pub window_ms: i64,
    /// Most events kept open at once; beyond it the oldest is completed.
    pub max_pending: usize,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig { host_name: None, host_id: None, window_ms: DEFAULT_WINDOW_MS, max_pending: DEFAULT_MAX_PENDING }
    }
}

/// Default reordering window: records of one event are written within microseconds of each other;
/// five seconds absorbs the reordering of forwarded (syslog) logs.
pub const DEFAULT_WINDOW_MS: i64 = 5_000;
/// Default bound of open events.
pub const DEFAULT_MAX_PENDING: usize = 4_096;
/// Remember this many completed events to recognise records that arrive after them.
const RECENT: usize = 4_096;

/// A line or event that could not be (fully) decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line number.
    pub line: u64,
    pub reason: String,
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Line of the event's first record.
    pub line: u64,
    pub event: Value,
}

/// What the decoder saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecoderStats {
    pub lines: u64,
    /// Lines that carry no record by design (blank, ausearch `----` separators).
    pub ignored_lines: u64,
    pub records: u64,
    pub events: u64,
    pub process_starts: u64,
    pub connects: u64,
    /// Lines that are not audit records at all (garbled), not decoded.
    pub bad_lines: u64,
    /// Records read with a defect (truncated value, bad hex, missing EXECVE argument...); the event
    /// is still produced from what could be read.
    pub damaged: u64,
    /// Groups of records without their SYSCALL record (log cut mid-event); not decoded.
    pub incomplete_events: u64,
    /// Records for an event that had already been completed; not merged.
    pub late_records: u64,
    /// How events were completed.
    pub completed_by_eoe: u64,
    pub completed_standalone: u64,
    pub evicted_by_window: u64,
    pub evicted_by_limit: u64,
    pub flushed_at_end: u64,
    /// Total problems reported.
    pub problems: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    node: Option<String>,
    ms: i64,
    serial: u64,
}

struct Pending {
    arrival: u64,
    records: Vec<Record>,
}

/// The incremental decoder: feed lines, collect events, then [`AuditDecoder::finish`].
pub struct AuditDecoder {
    cfg: DecoderConfig,
    pending: HashMap<Key, Pending>,
    order: BTreeMap<u64, Key>,
    arrival: u64,
    /// Newest record time per node: forwarded logs mix hosts whose clocks differ, so each host's
    /// events age against its own clock.
    newest_ms: HashMap<Option<String>, i64>,
    recent: HashSet<Key>,
    recent_order: VecDeque<Key>,
    stats: DecoderStats,
    problems: Vec<Problem>,
}

enum Why {
    Eoe,
    Window,
    Limit,
    End,
}

impl AuditDecoder {
    pub fn new(cfg: DecoderConfig) -> Self {
        AuditDecoder {
            cfg,
            pending: HashMap::new(),
            order: BTreeMap::new(),
            arrival: 0,
            newest_ms: HashMap::new(),
            recent: HashSet::new(),
            recent_order: VecDeque::new(),
            stats: DecoderStats::default(),
            problems: Vec::new(),
        }
    }

    pub fn stats(&self) -> &DecoderStats {
        &self.stats
    }

    /// Whether problems are waiting for [`AuditDecoder::take_problems`].
    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }

    /// Problems found since the last call (each also counted in the stats).
    pub fn take_problems(&mut self) -> Vec<Problem> {
        std::mem::take(&mut self.problems)
    }

    fn problem(&mut self, line: u64, reason: String) {
        self.stats.problems += 1;
        self.problems.push(Problem { line, reason });
    }

    /// Feed one line (without its newline); completed events are appended to `out`.
    pub fn feed_line(&mut self, line_no: u64, line: &[u8], out: &mut Vec<Decoded>) {
        self.stats.lines += 1;
        let rec = match parse_line(line_no, line) {
            Ok(Line::Ignored) => {
                self.stats.ignored_lines += 1;
                return;
            }
            Ok(Line::Record(r)) => r,
            Err(reason) => {
                self.stats.bad_lines += 1;
                self.problem(line_no, reason);
                return;
            }
        };
        self.stats.records += 1;
        if !rec.problems.is_empty() {
            self.stats.damaged += 1;
        }
        match self.newest_ms.get_mut(&rec.node) {
            Some(n) => *n = (*n).max(rec.ms),
            None => {
                self.newest_ms.insert(rec.node.clone(), rec.ms);
            }
        }
        let key = Key { node: rec.node.clone(), ms: rec.ms, serial: rec.serial };
        if tables::is_standalone(&rec.rtype) && !self.pending.contains_key(&key) {
            self.stats.completed_standalone += 1;
            self.emit(vec![rec], out);
        } else if rec.rtype == "EOE" {
            if rec.problems.is_empty() && !self.pending.contains_key(&key) && self.recent.contains(&key) {
                // The event was already completed by the window; its EOE carries no data.
            } else if let Some(p) = self.pending.remove(&key) {
                self.order.remove(&p.arrival);
                self.complete(key, p.records, Why::Eoe, out);
            } else {
                self.problem(line_no, format!("EOE record for audit({}:{}) without any other record of that event", fmt_ms(rec.ms), rec.serial));
            }
        } else if self.recent.contains(&key) {
            self.stats.late_records += 1;
            self.problem(
                line_no,
                format!(
                    "{} record for audit({}:{}) arrived after its event was completed (more than {} ms late or beyond {} open events); not merged",
                    rec.rtype,
                    fmt_ms(rec.ms),
                    rec.serial,
                    self.cfg.window_ms,
                    self.cfg.max_pending
                ),
            );
        } else {
            match self.pending.get_mut(&key) {
                Some(p) => p.records.push(rec),
                None => {
                    self.arrival += 1;
                    self.order.insert(self.arrival, key.clone());
                    self.pending.insert(key, Pending { arrival: self.arrival, records: vec![rec] });
                }
            }
        }
        self.evict(out);
    }

    fn evict(&mut self, out: &mut Vec<Decoded>) {
        while let Some((&arrival, key)) = self.order.first_key_value() {
            let why = if self.pending.len() > self.cfg.max_pending.max(1) {
                Why::Limit
            } else if key.ms < self.newest_ms.get(&key.node).copied().unwrap_or(i64::MIN).saturating_sub(self.cfg.window_ms) {
                Why::Window
            } else {
                break;
            };
            let key = key.clone();
            self.order.remove(&arrival);
            if let Some(p) = self.pending.remove(&key) {
                self.complete(key, p.records, why, out);
            }
        }
    }

    /// Complete every open event (end of input).
    pub fn finish(&mut self, out: &mut Vec<Decoded>) {
        let order = std::mem::take(&mut self.order);
        for (_, key) in order {
            if let Some(p) = self.pending.remove(&key) {
                self.complete(key, p.records, Why::End, out);
            }
        }
    }

    fn complete(&mut self, key: Key, records: Vec<Record>, why: Why, out: &mut Vec<Decoded>) {
        match why {
            Why::Eoe => self.stats.completed_by_eoe += 1,
            Why::Window => self.stats.evicted_by_window += 1,
            Why::Limit => self.stats.evicted_by_limit += 1,
            Why::End => self.stats.flushed_at_end += 1,
        }
        if self.recent.insert(key.clone()) {
            self.recent_order.push_back(key);
            if self.recent_order.len() > RECENT {
                if let Some(old) = self.recent_order.pop_front() {
                    self.recent.remove(&old);
                }
            }
        }
        self.emit(records, out);
    }

    fn emit(&mut self, mut records: Vec<Record>, out: &mut Vec<Decoded>) {
        // Records in line order (they may have arrived interleaved with other events).
        records.sort_by_key(|r| r.line);
        let host = event::HostDefaults { name: self.cfg.host_name.as_deref(), id: self.cfg.host_id.as_deref() };
        let built = event::build(&records, &host);
        let line = records.first().map_or(0, |r| r.line);
        for (l, reason) in built.problems {
            self.problem(l, reason);
        }
        match built.kind {
            event::Kind::ProcessStart => self.stats.process_starts += 1,
            event::Kind::Connect => self.stats.connects += 1,
            event::Kind::Incomplete => self.stats.incomplete_events += 1,
            event::Kind::Other => {}
        }
        if let Some(ev) = built.event {
            self.stats.events += 1;
            out.push(Decoded { line, event: ev });
        }
    }

    /// One line summarising the stats, for the CLI.
    pub fn summary(&self) -> String {
        let s = &self.stats;
        format!(
            "auditd: {} lines, {} records, {} events ({} process starts, {} connects); {} unreadable lines, {} damaged records, \
             {} incomplete events, {} late records; completed by EOE {}, standalone {}, evicted by window {}, by buffer limit {}, at end {}",
            s.lines,
            s.records,
            s.events,
            s.process_starts,
            s.connects,
            s.bad_lines,
            s.damaged,
            s.incomplete_events,
            s.late_records,
            s.completed_by_eoe,
            s.completed_standalone,
            s.evicted_by_window,
            s.evicted_by_limit,
            s.flushed_at_end
        )
    }
}

fn fmt_ms(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// Decode a whole text at once (tests, tools).
pub fn decode_all(text: &str, cfg: DecoderConfig) -> (Vec<Decoded>, Vec<Problem>, DecoderStats) {
    let mut d = AuditDecoder::new(cfg);
    let mut out = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        d.feed_line(i as u64 + 1, line.as_bytes(), &mut out);
    }
    d.finish(&mut out);
    let problems = d.take_problems();
    (out, problems, d.stats.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXEC: &str = "type=SYSCALL msg=audit(1700000000.100:10): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=1 ppid=10 pid=11 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=2 comm=\"ls\" exe=\"/bin/ls\" key=(null)\n\
type=EXECVE msg=audit(1700000000.100:10): argc=1 a0=\"ls\"\n";

    #[test]
    fn window_and_limit_eviction_are_counted() {
        // Two events without EOE; the second is 10 s later, so the first is completed by the window.
        let later = EXEC.replace("1700000000.100:10", "1700000010.100:11");
        let (evs, problems, st) = decode_all(&format!("{EXEC}{later}"), DecoderConfig::default());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(evs.len(), 2);
        assert_eq!((st.evicted_by_window, st.flushed_at_end), (1, 1));
        let cfg = DecoderConfig { max_pending: 1, ..DecoderConfig::default() };
        let other = EXEC.replace("1700000000.100:10", "1700000000.101:12");
        let (evs, _, st) = decode_all(&format!("{EXEC}{other}"), cfg);
        assert_eq!(evs.len(), 2);
        assert_eq!((st.evicted_by_limit, st.flushed_at_end), (1, 1));
    }

    #[test]
    fn hosts_age_against_their_own_clocks() {
        // Two forwarded hosts, one a minute behind the other, records interleaved.
        let a = EXEC.replace("type=", "node=a type=");
        let b = EXEC.replace("type=", "node=b type=").replace("1700000000.100:10", "1700000060.100:10");
        let al: Vec<&str> = a.lines().collect();
        let bl: Vec<&str> = b.lines().collect();
        let text = format!("{}\n{}\n{}\n{}\n", bl[0], al[0], bl[1], al[1]);
        let (evs, problems, st) = decode_all(&text, DecoderConfig::default());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(evs.len(), 2);
        assert_eq!((st.late_records, st.evicted_by_window, st.flushed_at_end), (0, 0, 2));
        assert!(evs.iter().all(|e| e.event["process"]["args"] == serde_json::json!(["ls"])));
    }

    #[test]
    fn late_record_is_reported_not_merged() {
        let text = format!("{EXEC}type=EOE msg=audit(1700000000.100:10): \ntype=CWD msg=audit(1700000000.100:10): cwd=\"/\"\n");
        let (evs, problems, st) = decode_all(&text, DecoderConfig::default());
        assert_eq!(evs.len(), 1);
        assert_eq!(st.late_records, 1);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 4);
        assert!(problems[0].reason.contains("arrived after its event was completed"), "{problems:?}");
    }
}
