//! Process launches on the fallback path: the kernel's process events connector (netlink
//! `NETLINK_CONNECTOR`, group `CN_IDX_PROC`) reports every `exec` with its pid; the sensor then
//! reads `/proc/<pid>` at once. Without eBPF this is how `curl http://169.254.169.254/...`
//! becomes a process start event with its command line (seed 002's second pattern). A process
//! that exits before `/proc/<pid>` is read is counted, not described (the limit of this path).
//!
//! The socket is opened through rustix's netlink address type, so no `unsafe` is needed. Message
//! layouts (native byte order): `nlmsghdr` (16 bytes), `cn_msg` (20 bytes: idx, val, seq, ack,
//! len, flags), then `proc_event` (`what`, `cpu`, `timestamp_ns`, and for `PROC_EVENT_EXEC` the
//! pid and tgid).

use rustix::fd::OwnedFd;
use rustix::net::netlink::{SocketAddrNetlink, CONNECTOR};
use rustix::net::{AddressFamily, SocketType};
use std::io;
use std::time::Duration;

const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_EVENT_EXEC: u32 = 0x0000_0002;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDR: usize = 16;
const CN_MSG: usize = 20;

/// One `exec` the kernel reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exec {
    pub pid: u32,
    /// The process (thread group) id: what `/proc/<tgid>` names.
    pub tgid: u32,
    pub timestamp_ns: u64,
}

/// The subscription message (`PROC_CN_MCAST_LISTEN`) sent from port `port`.
pub fn listen_message(port: u32) -> [u8; 40] {
    let mut m = [0u8; 40];
    m[0..4].copy_from_slice(&40u32.to_ne_bytes());
    m[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
    m[12..16].copy_from_slice(&port.to_ne_bytes());
    m[16..20].copy_from_slice(&CN_IDX_PROC.to_ne_bytes());
    m[20..24].copy_from_slice(&CN_VAL_PROC.to_ne_bytes());
    m[32..34].copy_from_slice(&4u16.to_ne_bytes());
    m[36..40].copy_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
    m
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The `exec` events in one datagram (other process events and malformed messages are skipped;
/// the count of skipped messages is returned).
pub fn parse(datagram: &[u8]) -> (Vec<Exec>, usize) {
    let mut out = Vec::new();
    let mut skipped = 0;
    let mut at = 0usize;
    while at + NLMSG_HDR <= datagram.len() {
        let Some(len) = u32_at(datagram, at).map(|l| l as usize) else { break };
        if len < NLMSG_HDR || at + len > datagram.len() {
            skipped += 1;
            break;
        }
        let msg = &datagram[at..at + len];
        let ev = NLMSG_HDR + CN_MSG;
        match (u32_at(msg, NLMSG_HDR), u32_at(msg, ev)) {
            (Some(CN_IDX_PROC), Some(PROC_EVENT_EXEC)) => match (u64_at(msg, ev + 8), u32_at(msg, ev + 16), u32_at(msg, ev + 20)) {
                (Some(ts), Some(pid), Some(tgid)) => out.push(Exec { pid, tgid, timestamp_ns: ts }),
                _ => skipped += 1,
            },
            (Some(CN_IDX_PROC), Some(_)) => {}
            _ => skipped += 1,
        }
        // Messages are aligned to 4 bytes.
        at += (len + 3) & !3;
    }
    (out, skipped)
}

/// A subscription to the kernel's process events (needs CAP_NET_ADMIN, i.e. root).
pub struct ExecEvents {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl ExecEvents {
    /// Subscribe; fails without privileges or when the kernel lacks `CONFIG_PROC_EVENTS`.
    pub fn open(read_timeout: Duration) -> io::Result<ExecEvents> {
        let fd = rustix::net::socket(AddressFamily::NETLINK, SocketType::DGRAM, Some(CONNECTOR))?;
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, CN_IDX_PROC))?;
        rustix::net::sockopt::set_socket_timeout(&fd, rustix::net::sockopt::Timeout::Recv, Some(read_timeout))?;
        // The port the kernel gave the socket (0 asks it to pick one).
        let port = SocketAddrNetlink::try_from(rustix::net::getsockname(&fd)?).map(|a| a.pid()).unwrap_or(0);
        let msg = listen_message(port);
        rustix::net::send(&fd, &msg, rustix::net::SendFlags::empty())?;
        Ok(ExecEvents { fd, buf: vec![0u8; 16 * 1024] })
    }

    /// The next `exec` events (empty after the read timeout) and how many messages were skipped.
    pub fn recv(&mut self) -> io::Result<(Vec<Exec>, usize)> {
        match rustix::net::recv(&self.fd, &mut self.buf[..], rustix::net::RecvFlags::empty()) {
            Ok((n, _)) => Ok(parse(self.buf.get(..n).unwrap_or(&[]))),
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => Ok((Vec::new(), 0)),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec_datagram(pid: u32, tgid: u32) -> Vec<u8> {
        let mut m = vec![0u8; NLMSG_HDR + CN_MSG + 24];
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m[16..20].copy_from_slice(&CN_IDX_PROC.to_ne_bytes());
        m[20..24].copy_from_slice(&CN_VAL_PROC.to_ne_bytes());
        m[36..40].copy_from_slice(&PROC_EVENT_EXEC.to_ne_bytes());
        m[44..52].copy_from_slice(&77u64.to_ne_bytes());
        m[52..56].copy_from_slice(&pid.to_ne_bytes());
        m[56..60].copy_from_slice(&tgid.to_ne_bytes());
        m
    }

    #[test]
    fn listen_message_layout() {
        let m = listen_message(4242);
        assert_eq!(u32_at(&m, 0), Some(40));
        assert_eq!(u32_at(&m, 12), Some(4242));
        assert_eq!((u32_at(&m, 16), u32_at(&m, 20)), (Some(1), Some(1)));
        assert_eq!(u32_at(&m, 36), Some(PROC_CN_MCAST_LISTEN));
    }

    #[test]
    fn exec_events_and_garbage() {
        assert_eq!(parse(&exec_datagram(10, 10)), (vec![Exec { pid: 10, tgid: 10, timestamp_ns: 77 }], 0));
        let mut two = exec_datagram(10, 10);
        two.extend(exec_datagram(11, 10));
        assert_eq!(parse(&two).0.len(), 2);
        // A fork event (what = 1) is skipped silently; a foreign connector message is counted.
        let mut fork = exec_datagram(12, 12);
        fork[36..40].copy_from_slice(&1u32.to_ne_bytes());
        assert_eq!(parse(&fork), (vec![], 0));
        let mut foreign = exec_datagram(12, 12);
        foreign[16..20].copy_from_slice(&9u32.to_ne_bytes());
        assert_eq!(parse(&foreign), (vec![], 1));
        // Truncated and garbage input never panic.
        assert_eq!(parse(&exec_datagram(1, 1)[..30]).0, vec![]);
        assert_eq!(parse(&[0xff; 7]).0, vec![]);
        let mut huge = exec_datagram(1, 1);
        huge[0..4].copy_from_slice(&9999u32.to_ne_bytes());
        assert_eq!(parse(&huge), (vec![], 1));
    }

    /// The real kernel (root only): a child's exec is reported with its pid.
    #[test]
    fn reports_a_real_exec() {
        let events = match ExecEvents::open(Duration::from_millis(200)) {
            Ok(e) => e,
            Err(e) => {
                if std::env::var("IMDSGUARD_ALLOW_SKIP").as_deref() == Ok("1") {
                    eprintln!("SKIPPED reports_a_real_exec: process events connector unavailable: {e}");
                    return;
                }
                panic!("reports_a_real_exec: prerequisite missing: root (CAP_NET_ADMIN) for the process events connector: {e} (IMDSGUARD_ALLOW_SKIP=1 skips)");
            }
        };
        let mut events = events;
        let child = std::process::Command::new("/bin/sh").args(["-c", "sleep 0.2"]).spawn().expect("spawn");
        let pid = child.id();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut seen = false;
        while !seen && std::time::Instant::now() < deadline {
            let (execs, _) = events.recv().expect("recv");
            seen = execs.iter().any(|e| e.tgid == pid);
        }
        let mut child = child;
        let _ = child.wait();
        assert!(seen, "the exec of pid {pid} was reported");
    }
}

