//! An `AF_PACKET` socket receiving every interface's frames (both directions) that pass a
//! [`Program`], attached in the kernel (`SO_ATTACH_FILTER`, safe through socket2). Needs
//! `CAP_NET_RAW`.
//!
//! The socket starts receiving when it is created, before the filter is attached, so a few
//! unrelated frames may already be queued: every frame is also checked in user space with the same
//! program (a handful of instructions), and when the kernel refuses the filter the user-space
//! check is the only one (then every packet of the host is copied to the sensor: a real cost on a
//! busy host, reported in the status as `filter=user-space`).

use crate::filter::Program;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// `ETH_P_ALL`, in network byte order as `socket(2)` wants it.
const ETH_P_ALL_BE: i32 = (0x0003u16).to_be() as i32;

/// Where the address filter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterPlace {
    Kernel,
    /// The kernel refused the program (the error is kept by the caller's status).
    UserSpace,
}

pub struct PacketSocket {
    sock: Socket,
    program: Program,
    pub filter: FilterPlace,
    /// Why the kernel filter could not be attached.
    pub filter_error: Option<String>,
    /// Frames received that the program rejected (user-space filtering).
    pub rejected: u64,
}

impl PacketSocket {
    /// Open the socket, attach the filter, set a receive timeout (so a reader can notice
    /// shutdown) and a receive buffer of `rcvbuf` bytes.
    pub fn open(program: Program, timeout: Duration, rcvbuf: usize) -> io::Result<PacketSocket> {
        let sock = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(ETH_P_ALL_BE)))?;
        let (filter, filter_error) = match sock.attach_filter(&program.to_sock_filters()) {
            Ok(()) => (FilterPlace::Kernel, None),
            Err(e) => (FilterPlace::UserSpace, Some(e.to_string())),
        };
        sock.set_read_timeout(Some(timeout))?;
        // Best effort: the kernel caps it at net.core.rmem_max.
        let _ = sock.set_recv_buffer_size(rcvbuf);
        Ok(PacketSocket { sock, program, filter, filter_error, rejected: 0 })
    }

    /// Receive one accepted Ethernet frame into `buf`: `Ok(Some(len))`, or `Ok(None)` when the
    /// timeout passed (or a rejected frame was read) without one.
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match (&self.sock).read(buf) {
            Ok(n) => {
                let frame = buf.get(..n).unwrap_or(&[]);
                if self.program.accepts(frame) {
                    Ok(Some(n))
                } else {
                    self.rejected += 1;
                    Ok(None)
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The (source, destination) of an Ethernet frame that is a TCP SYN without ACK (a connection
/// being opened). The sensor looks the socket up at once when it sees one, while the connecting
/// process is still waiting for the handshake: its best chance of finding a short-lived client.
pub fn tcp_syn(frame: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let et = frame.get(12..14)?;
    let (src, dst, tcp) = match u16::from_be_bytes([et[0], et[1]]) {
        0x0800 => {
            let vihl = *frame.get(14)?;
            if frame.get(23) != Some(&6) {
                return None;
            }
            let a = |o: usize| frame.get(o..o + 4).map(|b| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])));
            (a(26)?, a(30)?, 14 + usize::from(vihl & 0x0f) * 4)
        }
        // IPv6 without extension headers (next header TCP).
        0x86dd => {
            if frame.get(20) != Some(&6) {
                return None;
            }
            let a = |o: usize| -> Option<IpAddr> {
                let b: [u8; 16] = frame.get(o..o + 16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(b)))
            };
            (a(22)?, a(38)?, 54)
        }
        _ => return None,
    };
    let flags = *frame.get(tcp + 13)?;
    if flags & 0x12 != 0x02 {
        return None;
    }
    let port = |o: usize| frame.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    Some((SocketAddr::new(src, port(tcp)?), SocketAddr::new(dst, port(tcp + 2)?)))
}

#[cfg(test)]
mod tests {
    use super::tcp_syn;

    fn is_tcp_syn(f: &[u8]) -> bool {
        tcp_syn(f).is_some()
    }

    fn v4(flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 2, 169, 254, 169, 254]);
        let mut tcp = vec![0u8; 20];
        tcp[13] = flags;
        f.extend(tcp);
        f
    }

    proptest::proptest! {
        #[test]
        fn never_panics(frame in proptest::collection::vec(proptest::num::u8::ANY, 0..100)) {
            let _ = tcp_syn(&frame);
        }
    }

    #[test]
    fn syn_addresses() {
        let mut f = v4(0x02);
        f.extend_from_slice(&[0; 4]);
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        assert_eq!(tcp_syn(&f), Some(("10.0.0.2:40000".parse().unwrap(), "169.254.169.254:80".parse().unwrap())));
    }

    #[test]
    fn recognises_syn_only() {
        let cases = [(0x02, true), (0x12, false), (0x10, false), (0x18, false), (0x01, false), (0x42, true)];
        for (flags, want) in cases {
            assert_eq!(is_tcp_syn(&v4(flags)), want, "flags {flags:#x}");
        }
        let mut udp = v4(0x02);
        udp[23] = 17;
        assert!(!is_tcp_syn(&udp));
        assert!(!is_tcp_syn(&v4(0x02)[..40]));
        assert!(!is_tcp_syn(&[]));
        let mut v6 = vec![0u8; 12];
        v6.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 20, 6, 64]);
        v6.extend_from_slice(&[0u8; 32]);
        let mut tcp = vec![0u8; 20];
        tcp[13] = 0x02;
        v6.extend(tcp);
        assert!(is_tcp_syn(&v6));
    }
}
