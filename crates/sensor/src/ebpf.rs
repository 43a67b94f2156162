//! The eBPF path (cargo feature `ebpf`, on by default): two tracepoint programs
//! (`bpf/connect.bpf.c`, compiled by clang in `build.rs`, loaded with aya's user-space loader; no
//! nightly toolchain, no bpf-linker):
//!
//! - `sched:sched_process_exec`: every process launch with pid, parent pid, uid, cgroup id,
//!   `comm`, the path given to exec and the argument vector read from the new program's argument
//!   area (at most [`kernel::ARGS_MAX`] bytes, truncation flagged), in every network namespace;
//! - `sock:inet_sock_set_state`: the process of every TCP connect to a metadata endpoint (the
//!   endpoints are a hash map filled here at load, checked in the kernel, so other connections
//!   never reach user space), reported with all four addresses once the handshake ends.
//!
//! Both write to one ring buffer, drained by [`Tracer::drain`]; records are parsed by
//! [`crate::kernel`]. Needs `CAP_BPF` + `CAP_PERFMON` (or `CAP_SYS_ADMIN` before Linux 5.8),
//! kernel BTF for the two CO-RE field reads (`/sys/kernel/btf/vmlinux`), and tracefs (mounted here
//! when missing). A binary built without clang has no object: [`Tracer::load`] then says so.

use crate::kernel::{self, Record, RecordError};
use std::net::IpAddr;
use std::time::Duration;

pub use crate::kernel::ConnectEvent;

/// The BPF object built by `build.rs`, when a clang was found.
#[cfg(imdsguard_bpf_object)]
const OBJECT: Option<&[u8]> = Some(include_bytes!(concat!(env!("OUT_DIR"), "/connect.bpf.o")));
#[cfg(not(imdsguard_bpf_object))]
const OBJECT: Option<&[u8]> = None;

/// Was this binary built with the BPF object?
pub fn built_in() -> bool {
    OBJECT.is_some()
}

/// The loaded, attached programs and their ring buffer.
pub struct Tracer {
    _bpf: aya::Ebpf,
    ring: aya::maps::RingBuf<aya::maps::MapData>,
    /// A duplicate of the ring buffer's descriptor, to wait on.
    wake: std::os::fd::OwnedFd,
    drops: Option<aya::maps::Array<aya::maps::MapData, u64>>,
    /// Records that could not be parsed, with the last reason.
    pub bad_records: u64,
    pub last_bad: Option<RecordError>,
}

fn ensure_tracefs() {
    let events = std::path::Path::new("/sys/kernel/tracing/events");
    if !events.exists() && !std::path::Path::new("/sys/kernel/debug/tracing/events").exists() {
        let _ = rustix::mount::mount("nodev", "/sys/kernel/tracing", "tracefs", rustix::mount::MountFlags::empty(), None);
    }
}

fn attach(bpf: &mut aya::Ebpf, name: &str, category: &str, tracepoint: &str) -> Result<(), String> {
    let prog: &mut aya::programs::TracePoint = bpf
        .program_mut(name)
        .ok_or_else(|| format!("BPF object has no {name} program"))?
        .try_into()
        .map_err(|e| format!("{name} is not a tracepoint program: {e}"))?;
    prog.load().map_err(|e| format!("verify/load {name}: {e}"))?;
    prog.attach(category, tracepoint).map_err(|e| format!("attach {category}:{tracepoint}: {e}"))?;
    Ok(())
}

impl Tracer {
    /// Load the programs, fill the endpoint map with `endpoints`, attach, open the ring buffer.
    /// Errors say what failed (no object in this build, no BTF, missing privileges, no tracefs).
    pub fn load(endpoints: &[IpAddr]) -> Result<Tracer, String> {
        let object = OBJECT.ok_or("this binary was built without the eBPF object (no clang at build time)")?;
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            return Err("the kernel has no BTF (/sys/kernel/btf/vmlinux; CONFIG_DEBUG_INFO_BTF)".to_string());
        }
        ensure_tracefs();
        // The ELF parser needs the bytes aligned; an embedded array is not (a Vec is).
        let object = object.to_vec();
        let mut bpf = aya::Ebpf::load(&object).map_err(|e| format!("load BPF object: {e}"))?;
        {
            let map = bpf.map_mut("ENDPOINTS").ok_or("BPF object has no ENDPOINTS map")?;
            let mut m: aya::maps::HashMap<&mut aya::maps::MapData, [u8; 16], u8> = aya::maps::HashMap::try_from(map).map_err(|e| format!("ENDPOINTS map: {e}"))?;
            for ip in endpoints {
                m.insert(kernel::endpoint_key(*ip), 1, 0).map_err(|e| format!("ENDPOINTS map insert {ip}: {e}"))?;
            }
        }
        attach(&mut bpf, "imdsguard_exec", "sched", "sched_process_exec")?;
        attach(&mut bpf, "imdsguard_connect", "sock", "inet_sock_set_state")?;
        let drops = bpf.take_map("DROPS").and_then(|m| aya::maps::Array::try_from(m).ok());
        let map = bpf.take_map("EVENTS").ok_or("BPF object has no EVENTS map")?;
        let wake = match &map {
            aya::maps::Map::RingBuf(data) => {
                use std::os::fd::AsFd;
                data.fd().as_fd().try_clone_to_owned().map_err(|e| format!("EVENTS descriptor: {e}"))?
            }
            _ => return Err("EVENTS is not a ring buffer".to_string()),
        };
        let ring = aya::maps::RingBuf::try_from(map).map_err(|e| format!("EVENTS ring buffer: {e}"))?;
        Ok(Tracer { _bpf: bpf, ring, wake, drops, bad_records: 0, last_bad: None })
    }

    /// Wait up to `timeout` for records (returns early when some arrive or on a signal).
    pub fn wait(&self, timeout: Duration) {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let mut fds = [PollFd::new(&self.wake, PollFlags::IN)];
        let ts = Timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: i64::from(timeout.subsec_nanos()) };
        let _ = poll(&mut fds, Some(&ts));
    }

    /// Every record written since the last call (unparsable ones counted in `bad_records`).
    pub fn drain(&mut self, out: &mut Vec<Record>) {
        while let Some(item) = self.ring.next() {
            match kernel::parse_record(&item) {
                Ok(r) => out.push(r),
                Err(e) => {
                    self.bad_records += 1;
                    self.last_bad = Some(e);
                }
            }
        }
    }

    /// Records the kernel could not put in the ring buffer (it was full): (exec, connect).
    pub fn kernel_drops(&self) -> (u64, u64) {
        let Some(d) = &self.drops else { return (0, 0) };
        (d.get(&0, 0).unwrap_or(0), d.get(&1, 0).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{SocketAddr, TcpListener, TcpStream};

    /// Load the programs or fail naming the prerequisite (SKIPPED with IMDSGUARD_ALLOW_SKIP=1).
    fn load_or_skip(test: &str, endpoints: &[IpAddr]) -> Option<Tracer> {
        match Tracer::load(endpoints) {
            Ok(t) => Some(t),
            Err(e) => {
                let reason = format!("eBPF cannot be loaded ({e}); needs root (CAP_BPF, CAP_PERFMON), kernel BTF and a build with clang");
                if std::env::var("IMDSGUARD_ALLOW_SKIP").as_deref() == Ok("1") {
                    eprintln!("SKIPPED {test}: {reason}");
                    return None;
                }
                panic!("{test}: missing prerequisite: {reason} (IMDSGUARD_ALLOW_SKIP=1 skips)");
            }
        }
    }

    fn collect(t: &mut Tracer, until: impl Fn(&[Record]) -> bool) -> Vec<Record> {
        let mut evs = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline && !until(&evs) {
            t.wait(Duration::from_millis(50));
            t.drain(&mut evs);
        }
        evs
    }

    /// The real kernel (root): a connect to a listed endpoint is reported with our pid and both
    /// addresses; one to an address not in the map is filtered out in the kernel.
    #[test]
    fn reports_connects_to_listed_endpoints_only() {
        let Some(mut t) = load_or_skip("reports_connects_to_listed_endpoints_only", &["127.0.0.1".parse().unwrap()]) else { return };
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.2:0").unwrap();
        let skipped = TcpStream::connect(other.local_addr().unwrap()).unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let mine = |r: &Record, local: SocketAddr| matches!(r, Record::Connect(e) if e.local == local);
        let evs = collect(&mut t, |evs| evs.iter().any(|r| mine(r, c.local_addr().unwrap())));
        let e = evs
            .iter()
            .find_map(|r| match r {
                Record::Connect(e) if e.local == c.local_addr().unwrap() => Some(e),
                _ => None,
            })
            .unwrap_or_else(|| panic!("our connect {:?} reported: {evs:?}", c.local_addr()));
        assert_eq!(e.tgid, std::process::id());
        assert_eq!(e.remote, l.local_addr().unwrap());
        assert!(!evs.iter().any(|r| mine(r, skipped.local_addr().unwrap())), "127.0.0.2 is not an endpoint: filtered in the kernel");
    }

    /// The real kernel (root): a child's exec is reported with its exact arguments, parent and
    /// executable, even after the child has exited.
    #[test]
    fn reports_execs_with_arguments() {
        let Some(mut t) = load_or_skip("reports_execs_with_arguments", &[]) else { return };
        let long = "x".repeat(5000);
        let mut child = std::process::Command::new("/bin/echo").args(["http://169.254.169.254/latest/meta-data/", "", "two words"]).stdout(std::process::Stdio::null()).spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let mut big = std::process::Command::new("/bin/echo").arg(&long).stdout(std::process::Stdio::null()).spawn().unwrap();
        let big_pid = big.id();
        big.wait().unwrap();
        let exec_of = |evs: &[Record], p: u32| -> Option<kernel::ExecRecord> {
            evs.iter().rev().find_map(|r| match r {
                Record::Exec(e) if e.tgid == p => Some(e.clone()),
                _ => None,
            })
        };
        let evs = collect(&mut t, |evs| exec_of(evs, pid).is_some() && exec_of(evs, big_pid).is_some());
        let e = exec_of(&evs, pid).unwrap_or_else(|| panic!("exec of {pid} reported"));
        assert_eq!(e.args, vec!["/bin/echo", "http://169.254.169.254/latest/meta-data/", "", "two words"]);
        assert_eq!((e.filename.as_str(), e.comm.as_str(), e.ppid), ("/bin/echo", "echo", std::process::id()));
        assert!(!e.args_truncated && !e.args_unreadable);
        assert_ne!(e.cgroup_id, 0);
        let b = exec_of(&evs, big_pid).unwrap_or_else(|| panic!("exec of {big_pid} reported"));
        assert!(b.args_truncated, "5 KB of arguments: truncated");
        assert_eq!(b.args[0], "/bin/echo");
        assert_eq!(b.args[1].len(), kernel::ARGS_MAX - "/bin/echo\0".len());
    }
}
