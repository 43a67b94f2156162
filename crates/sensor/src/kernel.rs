//! The records the eBPF programs (`bpf/connect.bpf.c`) write to their ring buffer, parsed in user
//! space. Pure functions of the bytes (no I/O, no aya), so they are compiled and tested in every
//! build, with or without the eBPF object. Layouts (native byte order; offsets as in the C file):
//!
//! - connect (72 bytes): `kind=1`, tgid, tid, uid, family, sport, dport, pad, saddr\[16\],
//!   daddr\[16\], comm\[16\];
//! - exec (304 + args_size bytes, at most 4400): `kind=2`, tgid, ppid, uid, cgroup_id (u64),
//!   args_size, flags, comm\[16\], filename\[256\], args\[args_size\] (the new program's argument
//!   area, NUL-separated; only the bytes used are sent).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const KIND_CONNECT: u32 = 1;
pub const KIND_EXEC: u32 = 2;
/// Size of `struct connect_event`.
pub const CONNECT_SIZE: usize = 72;
/// Size of `struct exec_event` (the largest exec record).
pub const EXEC_SIZE: usize = 4400;
/// Most bytes of the argument area the kernel copies.
pub const ARGS_MAX: usize = 4096;
const EXEC_ARGS_TRUNCATED: u32 = 1;
const EXEC_ARGS_UNREADABLE: u32 = 2;
const ARGS_AT: usize = 304;

/// One connect to a metadata endpoint, seen in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectEvent {
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub comm: String,
}

/// One `exec`, seen in the kernel in the new program's context.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecRecord {
    pub tgid: u32,
    /// The real parent's process id.
    pub ppid: u32,
    pub uid: u32,
    /// The cgroup (v2) id: the inode of its directory under /sys/fs/cgroup.
    pub cgroup_id: u64,
    pub comm: String,
    /// The path given to exec.
    pub filename: String,
    /// The arguments, from the new program's argument area (what `/proc/<pid>/cmdline` shows).
    pub args: Vec<String>,
    /// The argument area was longer than [`ARGS_MAX`]: `args` holds its beginning (the last one
    /// may be cut).
    pub args_truncated: bool,
    /// The kernel could not read the argument area (`args` is empty).
    pub args_unreadable: bool,
}

/// A parsed ring-buffer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Connect(ConnectEvent),
    Exec(ExecRecord),
}

/// Why a record could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Shorter than its kind's layout (or than the kind itself).
    Short { kind: Option<u32>, len: usize, need: usize },
    UnknownKind(u32),
    /// A connect with an address family other than AF_INET (2) and AF_INET6 (10).
    Family(u16),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Short { kind: Some(k), len, need } => write!(f, "record of kind {k} has {len} bytes, needs {need}"),
            RecordError::Short { kind: None, len, need } => write!(f, "record of {len} bytes, needs at least {need}"),
            RecordError::UnknownKind(k) => write!(f, "unknown record kind {k}"),
            RecordError::Family(x) => write!(f, "connect record with address family {x}"),
        }
    }
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    b.get(o..o + 2).and_then(|s| s.try_into().ok()).map(u16::from_ne_bytes).unwrap_or(0)
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4).and_then(|s| s.try_into().ok()).map(u32::from_ne_bytes).unwrap_or(0)
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8).and_then(|s| s.try_into().ok()).map(u64::from_ne_bytes).unwrap_or(0)
}

/// A NUL-terminated (or full) C string field, lossily decoded.
fn c_str(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Parse one ring-buffer record. Callers length-check nothing: every slice is bounds-checked here.
pub fn parse_record(b: &[u8]) -> Result<Record, RecordError> {
    if b.len() < 4 {
        return Err(RecordError::Short { kind: None, len: b.len(), need: 4 });
    }
    match u32_at(b, 0) {
        KIND_CONNECT => parse_connect(b).map(Record::Connect),
        KIND_EXEC => parse_exec(b).map(Record::Exec),
        k => Err(RecordError::UnknownKind(k)),
    }
}

fn parse_connect(b: &[u8]) -> Result<ConnectEvent, RecordError> {
    if b.len() < CONNECT_SIZE {
        return Err(RecordError::Short { kind: Some(KIND_CONNECT), len: b.len(), need: CONNECT_SIZE });
    }
    let family = u16_at(b, 16);
    let addr = |o: usize| -> Option<IpAddr> {
        let a: [u8; 16] = b.get(o..o + 16)?.try_into().ok()?;
        match family {
            2 => Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
            10 => {
                let v6 = Ipv6Addr::from(a);
                Some(v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)))
            }
            _ => None,
        }
    };
    let (Some(local), Some(remote)) = (addr(24), addr(40)) else { return Err(RecordError::Family(family)) };
    Ok(ConnectEvent {
        tgid: u32_at(b, 4),
        tid: u32_at(b, 8),
        uid: u32_at(b, 12),
        local: SocketAddr::new(local, u16_at(b, 18)),
        remote: SocketAddr::new(remote, u16_at(b, 20)),
        comm: c_str(&b[56..72]),
    })
}

fn parse_exec(b: &[u8]) -> Result<ExecRecord, RecordError> {
    if b.len() < ARGS_AT {
        return Err(RecordError::Short { kind: Some(KIND_EXEC), len: b.len(), need: ARGS_AT });
    }
    let flags = u32_at(b, 28);
    let size = (u32_at(b, 24) as usize).min(ARGS_MAX);
    // The ring buffer rounds records up to 8 bytes: more than needed is fine, less is not.
    let Some(area) = b.get(ARGS_AT..ARGS_AT + size) else {
        return Err(RecordError::Short { kind: Some(KIND_EXEC), len: b.len(), need: ARGS_AT + size });
    };
    Ok(ExecRecord {
        tgid: u32_at(b, 4),
        ppid: u32_at(b, 8),
        uid: u32_at(b, 12),
        cgroup_id: u64_at(b, 16),
        comm: c_str(&b[32..48]),
        filename: c_str(&b[48..ARGS_AT]),
        args: crate::procfs::parse_cmdline(area),
        args_truncated: flags & EXEC_ARGS_TRUNCATED != 0,
        args_unreadable: flags & EXEC_ARGS_UNREADABLE != 0,
    })
}

/// The key of an endpoint in the kernel's `ENDPOINTS` map: IPv6, IPv4 as `::ffff:a.b.c.d` (the
/// program builds the same form from IPv4 sockets, and v4-mapped IPv6 sockets carry it as is).
pub fn endpoint_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(family: u16, saddr: &[u8], daddr: &[u8], sport: u16, dport: u16, comm: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; CONNECT_SIZE];
        b[0..4].copy_from_slice(&KIND_CONNECT.to_ne_bytes());
        b[4..8].copy_from_slice(&1234u32.to_ne_bytes());
        b[8..12].copy_from_slice(&1235u32.to_ne_bytes());
        b[12..16].copy_from_slice(&1000u32.to_ne_bytes());
        b[16..18].copy_from_slice(&family.to_ne_bytes());
        b[18..20].copy_from_slice(&sport.to_ne_bytes());
        b[20..22].copy_from_slice(&dport.to_ne_bytes());
        b[24..24 + saddr.len()].copy_from_slice(saddr);
        b[40..40 + daddr.len()].copy_from_slice(daddr);
        b[56..56 + comm.len()].copy_from_slice(comm);
        b
    }

    fn exec(filename: &[u8], args: &[u8], size: u32, flags: u32) -> Vec<u8> {
        let mut b = vec![0u8; EXEC_SIZE];
        b[0..4].copy_from_slice(&KIND_EXEC.to_ne_bytes());
        b[4..8].copy_from_slice(&4321u32.to_ne_bytes());
        b[8..12].copy_from_slice(&4000u32.to_ne_bytes());
        b[12..16].copy_from_slice(&0u32.to_ne_bytes());
        b[16..24].copy_from_slice(&77u64.to_ne_bytes());
        b[24..28].copy_from_slice(&size.to_ne_bytes());
        b[28..32].copy_from_slice(&flags.to_ne_bytes());
        b[32..36].copy_from_slice(b"curl");
        b[48..48 + filename.len()].copy_from_slice(filename);
        b[ARGS_AT..ARGS_AT + args.len()].copy_from_slice(args);
        b
    }

    #[test]
    fn connect_records() {
        let mapped = {
            let mut a = [0u8; 16];
            a[10] = 0xff;
            a[11] = 0xff;
            a[12..].copy_from_slice(&[169, 254, 169, 254]);
            a
        };
        let v6: Ipv6Addr = "fd00:ec2::254".parse().unwrap();
        // (record, Ok((local, remote, comm)) or the error)
        type Case = (Vec<u8>, Result<(&'static str, &'static str, &'static str), RecordError>);
        let cases: Vec<Case> = vec![
            (connect(2, &[10, 0, 0, 2], &[169, 254, 169, 254], 40000, 80, b"curl"), Ok(("10.0.0.2:40000", "169.254.169.254:80", "curl"))),
            // An IPv6 socket talking to an IPv4 endpoint: the mapped address becomes IPv4.
            (connect(10, &mapped, &mapped, 40001, 80, b"python3"), Ok(("169.254.169.254:40001", "169.254.169.254:80", "python3"))),
            (connect(10, &v6.octets(), &v6.octets(), 5, 80, b"wget"), Ok(("[fd00:ec2::254]:5", "[fd00:ec2::254]:80", "wget"))),
            // comm fills its 16 bytes with no NUL.
            (connect(2, &[1, 2, 3, 4], &[5, 6, 7, 8], 1, 2, b"0123456789abcdef"), Ok(("1.2.3.4:1", "5.6.7.8:2", "0123456789abcdef"))),
            (connect(7, &[1, 2, 3, 4], &[5, 6, 7, 8], 1, 2, b"x"), Err(RecordError::Family(7))),
            (connect(2, &[1; 4], &[2; 4], 1, 2, b"x")[..71].to_vec(), Err(RecordError::Short { kind: Some(1), len: 71, need: CONNECT_SIZE })),
            (vec![1, 0], Err(RecordError::Short { kind: None, len: 2, need: 4 })),
            (9u32.to_ne_bytes().to_vec(), Err(RecordError::UnknownKind(9))),
        ];
        for (bytes, want) in cases {
            let got = parse_record(&bytes).map(|r| match r {
                Record::Connect(c) => {
                    assert_eq!((c.tgid, c.tid, c.uid), (1234, 1235, 1000));
                    (c.local.to_string(), c.remote.to_string(), c.comm)
                }
                Record::Exec(e) => panic!("not an exec: {e:?}"),
            });
            let want = want.map(|(l, r, c)| (l.to_string(), r.to_string(), c.to_string()));
            assert_eq!(got, want);
        }
    }

    #[test]
    fn exec_records() {
        let area = b"curl\0-s\0\0http://169.254.169.254/latest/meta-data/\0";
        let e = |b: Vec<u8>| match parse_record(&b) {
            Ok(Record::Exec(e)) => e,
            other => panic!("{other:?}"),
        };
        let r = e(exec(b"/usr/bin/curl", area, area.len() as u32, 0));
        assert_eq!((r.tgid, r.ppid, r.uid, r.cgroup_id), (4321, 4000, 0, 77));
        assert_eq!((r.comm.as_str(), r.filename.as_str()), ("curl", "/usr/bin/curl"));
        // Empty arguments are kept; the final NUL ends the last one.
        assert_eq!(r.args, vec!["curl", "-s", "", "http://169.254.169.254/latest/meta-data/"]);
        assert!(!r.args_truncated && !r.args_unreadable);
        let cases: Vec<(Vec<u8>, Vec<&str>, bool, bool)> = vec![
            // Truncated by the kernel: the last argument is cut, the flag set.
            (exec(b"/bin/echo", b"echo\0aaaa", 9, 1), vec!["echo", "aaaa"], true, false),
            // Unreadable area.
            (exec(b"/bin/echo", b"", 0, 2), vec![], false, true),
            // Invalid UTF-8 is decoded lossily.
            (exec(b"/bin/echo", b"echo\0\xff\0", 7, 0), vec!["echo", "\u{fffd}"], false, false),
        ];
        for (bytes, args, truncated, unreadable) in cases {
            let r = e(bytes);
            assert_eq!(r.args, args, "{r:?}");
            assert_eq!((r.args_truncated, r.args_unreadable), (truncated, unreadable));
        }
        // A size beyond the bound is clamped to it.
        let r = e(exec(b"/bin/echo", b"echo\0", u32::MAX, 0));
        assert_eq!((r.args[0].as_str(), r.args.iter().map(|a| a.len() + 1).sum::<usize>()), ("echo", ARGS_MAX));
        let long = vec![b'a'; ARGS_MAX];
        let r = e(exec(b"/bin/x", &long, ARGS_MAX as u32, 1));
        assert_eq!((r.args.len(), r.args[0].len(), r.args_truncated), (1, ARGS_MAX, true));
        // Records carry only the argument bytes used; fewer than announced is an error.
        let r = e(exec(b"/bin/echo", b"echo\0hi\0", 8, 0)[..ARGS_AT + 8].to_vec());
        assert_eq!(r.args, vec!["echo", "hi"]);
        assert_eq!(parse_record(&exec(b"/bin/echo", b"echo\0hi\0", 8, 0)[..ARGS_AT + 7]), Err(RecordError::Short { kind: Some(2), len: ARGS_AT + 7, need: ARGS_AT + 8 }));
        assert_eq!(parse_record(&exec(b"/bin/x", b"", 0, 0)[..ARGS_AT - 1]), Err(RecordError::Short { kind: Some(2), len: ARGS_AT - 1, need: ARGS_AT }));
    }

    #[test]
    fn endpoint_keys() {
        assert_eq!(endpoint_key("169.254.169.254".parse().unwrap())[10..], [0xff, 0xff, 169, 254, 169, 254]);
        assert_eq!(endpoint_key("fd00:ec2::254".parse().unwrap()), "fd00:ec2::254".parse::<Ipv6Addr>().unwrap().octets());
    }

    proptest::proptest! {
        /// Whatever the ring buffer holds, parsing never panics, and a record of a known kind and
        /// full size always parses (bar a connect's unknown family).
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..5000), kind in 0u32..4) {
            let mut b = bytes;
            if b.len() >= 4 {
                b[0..4].copy_from_slice(&kind.to_ne_bytes());
            }
            let r = parse_record(&b);
            if kind == KIND_EXEC && b.len() >= EXEC_SIZE {
                // A full-size record always holds the announced (clamped) argument bytes.
                let e = match r { Ok(Record::Exec(e)) => e, other => panic!("{other:?}") };
                proptest::prop_assert!(e.args.iter().map(|a| a.len()).sum::<usize>() <= ARGS_MAX * 3);
            }
        }
    }
}
