//! The eBPF attribution path (cargo feature `ebpf`, off by default): a tracepoint program on
//! `sock:inet_sock_set_state` (`bpf/connect.bpf.c`, compiled by clang in `build.rs`, loaded with
//! aya's user-space loader) remembers the connecting task of every TCP connect (pid, tid, uid,
//! `comm`, taken inside `connect()`) and reports it with the four addresses when the handshake
//! ends (the source port is not chosen yet at SYN_SENT), plus the executable recorded at exec
//! time by a second program on `sched:sched_process_exec`. Unlike the `/proc` fallback this cannot miss a
//! short-lived client: pid, name and executable are captured in the kernel. The command line is
//! still read from `/proc/<pid>` right after (capturing arguments at exec is the next step).
//!
//! Needs `CAP_BPF` + `CAP_PERFMON` (or `CAP_SYS_ADMIN`) and tracefs (mounted here when missing).

use aya::maps::{MapData, RingBuf};
use aya::programs::TracePoint;
use aya::Ebpf;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One connect seen in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectEvent {
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub comm: String,
    /// The executable as exec'd (recorded in the kernel at exec time), when known.
    pub exe: Option<String>,
}

/// Size of `struct connect_event`.
pub const EVENT_SIZE: usize = 324;

/// Parse one ring-buffer record (`struct connect_event`, native endianness).
pub fn parse_event(b: &[u8]) -> Option<ConnectEvent> {
    if b.len() < EVENT_SIZE {
        return None;
    }
    let u32_at = |o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let u16_at = |o: usize| u16::from_ne_bytes([b[o], b[o + 1]]);
    let (family, sport, dport) = (u16_at(12), u16_at(14), u16_at(16));
    let addr = |o: usize| -> Option<IpAddr> {
        match family {
            2 => Some(IpAddr::V4(Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]))),
            10 => {
                let a: [u8; 16] = b.get(o..o + 16)?.try_into().ok()?;
                let v6 = Ipv6Addr::from(a);
                Some(v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)))
            }
            _ => None,
        }
    };
    let comm_bytes = &b[52..68];
    let end = comm_bytes.iter().position(|c| *c == 0).unwrap_or(16);
    Some(ConnectEvent {
        tgid: u32_at(0),
        tid: u32_at(4),
        uid: u32_at(8),
        local: SocketAddr::new(addr(20)?, sport),
        remote: SocketAddr::new(addr(36)?, dport),
        comm: String::from_utf8_lossy(&comm_bytes[..end]).into_owned(),
        exe: {
            let x = &b[68..324];
            let end = x.iter().position(|c| *c == 0).unwrap_or(x.len());
            (end > 0).then(|| String::from_utf8_lossy(&x[..end]).into_owned())
        },
    })
}

/// The loaded, attached program and its ring buffer.
pub struct ConnectTracer {
    _bpf: Ebpf,
    ring: RingBuf<MapData>,
    /// Records that could not be parsed.
    pub bad_records: u64,
}

fn ensure_tracefs() {
    let events = std::path::Path::new("/sys/kernel/tracing/events");
    if !events.exists() && !std::path::Path::new("/sys/kernel/debug/tracing/events").exists() {
        let _ = rustix::mount::mount("nodev", "/sys/kernel/tracing", "tracefs", rustix::mount::MountFlags::empty(), None);
    }
}

impl ConnectTracer {
    /// Load the program, attach it, open the ring buffer. Errors say what failed (kernel too old,
    /// missing privileges, no tracefs).
    pub fn load() -> Result<ConnectTracer, String> {
        ensure_tracefs();
        let object = include_bytes!(concat!(env!("OUT_DIR"), "/connect.bpf.o")).to_vec();
        let mut bpf = Ebpf::load(&object).map_err(|e| format!("load BPF object: {e}"))?;
        let prog: &mut TracePoint = bpf
            .program_mut("imdsguard_connect")
            .ok_or("BPF object has no imdsguard_connect program")?
            .try_into()
            .map_err(|e| format!("imdsguard_connect is not a tracepoint program: {e}"))?;
        prog.load().map_err(|e| format!("verify/load tracepoint program: {e}"))?;
        prog.attach("sock", "inet_sock_set_state").map_err(|e| format!("attach sock:inet_sock_set_state: {e}"))?;
        let exec: &mut TracePoint = bpf
            .program_mut("imdsguard_exec")
            .ok_or("BPF object has no imdsguard_exec program")?
            .try_into()
            .map_err(|e| format!("imdsguard_exec is not a tracepoint program: {e}"))?;
        exec.load().map_err(|e| format!("verify/load exec tracepoint program: {e}"))?;
        exec.attach("sched", "sched_process_exec").map_err(|e| format!("attach sched:sched_process_exec: {e}"))?;
        let map = bpf.take_map("EVENTS").ok_or("BPF object has no EVENTS map")?;
        let ring = RingBuf::try_from(map).map_err(|e| format!("EVENTS ring buffer: {e}"))?;
        Ok(ConnectTracer { _bpf: bpf, ring, bad_records: 0 })
    }

    /// Every connect recorded since the last call.
    pub fn drain(&mut self, out: &mut Vec<ConnectEvent>) {
        while let Some(item) = self.ring.next() {
            match parse_event(&item) {
                Some(e) => out.push(e),
                None => self.bad_records += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records() {
        let mut b = vec![0u8; 324];
        b[0..4].copy_from_slice(&1234u32.to_ne_bytes());
        b[4..8].copy_from_slice(&1235u32.to_ne_bytes());
        b[12..14].copy_from_slice(&2u16.to_ne_bytes());
        b[14..16].copy_from_slice(&40000u16.to_ne_bytes());
        b[16..18].copy_from_slice(&80u16.to_ne_bytes());
        b[20..24].copy_from_slice(&[10, 0, 0, 2]);
        b[36..40].copy_from_slice(&[169, 254, 169, 254]);
        b[52..56].copy_from_slice(b"curl");
        let e = parse_event(&b).unwrap();
        assert_eq!((e.tgid, e.tid, e.comm.as_str()), (1234, 1235, "curl"));
        assert_eq!(e.remote, "169.254.169.254:80".parse().unwrap());
        assert_eq!(e.local, "10.0.0.2:40000".parse().unwrap());
        assert_eq!(e.exe, None);
        b[68..81].copy_from_slice(b"/usr/bin/curl");
        assert_eq!(parse_event(&b).unwrap().exe.as_deref(), Some("/usr/bin/curl"));
        assert!(parse_event(&b[..323]).is_none());
        b[12] = 7;
        assert!(parse_event(&b).is_none(), "unknown family");
    }

    /// The real kernel (root): our own loopback connect is reported with our pid and name.
    #[test]
    fn reports_own_connect() {
        let mut t = ConnectTracer::load().expect("load the eBPF program (root, CAP_BPF)");
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let mut evs = Vec::new();
        for _ in 0..50 {
            t.drain(&mut evs);
            if evs.iter().any(|e| e.local == c.local_addr().unwrap()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let e = evs.iter().find(|e| e.local == c.local_addr().unwrap()).unwrap_or_else(|| panic!("our connect {:?} reported: {evs:?}", c.local_addr()));
        assert_eq!(e.tgid, std::process::id());
        assert_eq!(e.remote, l.local_addr().unwrap());
    }
}
