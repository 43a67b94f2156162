//! Exact socket lookup through netlink `sock_diag` (`SOCK_DIAG_BY_FAMILY` without `NLM_F_DUMP`):
//! given a TCP connection's four addresses, the kernel finds the socket with one hash lookup and
//! returns its state, owner uid and inode, in microseconds. The sensor does this the moment it
//! sees a SYN, while a short-lived client is still alive, instead of waiting for the next read
//! of `/proc/net/tcp` (which walks the whole connection hash table: milliseconds per read).
//!
//! Messages are built and parsed as bytes (no `unsafe`): `nlmsghdr` + `inet_diag_req_v2` out,
//! `nlmsghdr` + `inet_diag_msg` (or `NLMSG_ERROR`) back.

use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

const AF_NETLINK: i32 = 16;
const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const IPPROTO_TCP: u8 = 6;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// What the kernel says about one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockInfo {
    pub state: u8,
    pub uid: u32,
    pub inode: u32,
}

/// Build the request for the socket `local` -> `remote` (both of the same family).
pub fn request(local: SocketAddr, remote: SocketAddr, seq: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(72);
    b.extend_from_slice(&72u32.to_ne_bytes());
    b.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    // inet_diag_req_v2
    b.push(if local.is_ipv4() { AF_INET } else { AF_INET6 });
    b.push(IPPROTO_TCP);
    b.push(0); // ext
    b.push(0); // pad
    b.extend_from_slice(&u32::MAX.to_ne_bytes()); // all states
    // inet_diag_sockid: ports and addresses in network order.
    b.extend_from_slice(&local.port().to_be_bytes());
    b.extend_from_slice(&remote.port().to_be_bytes());
    for a in [local.ip(), remote.ip()] {
        let mut o = [0u8; 16];
        match a {
            IpAddr::V4(v4) => o[..4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => o = v6.octets(),
        }
        b.extend_from_slice(&o);
    }
    b.extend_from_slice(&0u32.to_ne_bytes()); // interface: any
    b.extend_from_slice(&u32::MAX.to_ne_bytes()); // INET_DIAG_NOCOOKIE
    b.extend_from_slice(&u32::MAX.to_ne_bytes());
    b
}

/// Parse the kernel's answer: `Ok(Some(info))`, `Ok(None)` when there is no such socket,
/// `Err` for anything malformed.
pub fn parse_response(buf: &[u8]) -> Result<Option<SockInfo>, String> {
    let u32_at = |o: usize| buf.get(o..o + 4).map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]));
    let len = u32_at(0).ok_or("short netlink header")? as usize;
    if len < 16 || len > buf.len() {
        return Err(format!("netlink length {len} for {} bytes", buf.len()));
    }
    let ty = buf.get(4..6).map(|s| u16::from_ne_bytes([s[0], s[1]])).ok_or("short netlink header")?;
    match ty {
        NLMSG_ERROR => {
            let code = u32_at(16).ok_or("short netlink error")? as i32;
            if code == 0 || code == -2 {
                Ok(None) // ENOENT: no such socket (it is gone already)
            } else {
                Err(format!("sock_diag error {code}"))
            }
        }
        SOCK_DIAG_BY_FAMILY => {
            let state = *buf.get(17).ok_or("short inet_diag_msg")?;
            let uid = u32_at(16 + 64).ok_or("short inet_diag_msg")?;
            let inode = u32_at(16 + 68).ok_or("short inet_diag_msg")?;
            Ok(Some(SockInfo { state, uid, inode }))
        }
        other => Err(format!("unexpected netlink message type {other}")),
    }
}

/// A `NETLINK_SOCK_DIAG` socket.
pub struct Diag {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Diag {
    pub fn open() -> io::Result<Diag> {
        let sock = Socket::new(Domain::from(AF_NETLINK), Type::DGRAM, Some(Protocol::from(NETLINK_SOCK_DIAG)))?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(Diag { sock, seq: 0, buf: vec![0u8; 8192] })
    }

    /// Look up the TCP socket from `local` to `remote` in the sensor's network namespace.
    pub fn lookup(&mut self, local: SocketAddr, remote: SocketAddr) -> io::Result<Option<SockInfo>> {
        if local.is_ipv4() != remote.is_ipv4() {
            return Ok(None);
        }
        self.seq = self.seq.wrapping_add(1);
        (&self.sock).write_all(&request(local, remote, self.seq))?;
        loop {
            let n = (&self.sock).read(&mut self.buf)?;
            let msg = self.buf.get(..n).unwrap_or(&[]);
            // Skip stale answers to earlier requests that timed out.
            if msg.get(8..12).map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]])) != Some(self.seq) {
                continue;
            }
            return parse_response(msg).map_err(io::Error::other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let r = request("10.0.0.2:40000".parse().unwrap(), "169.254.169.254:80".parse().unwrap(), 7);
        assert_eq!(r.len(), 72);
        assert_eq!(&r[16..18], &[AF_INET, IPPROTO_TCP]);
        assert_eq!(&r[24..26], &40000u16.to_be_bytes());
        assert_eq!(&r[26..28], &80u16.to_be_bytes());
        assert_eq!(&r[28..32], &[10, 0, 0, 2]);
        assert_eq!(&r[44..48], &[169, 254, 169, 254]);
    }

    #[test]
    fn parses_answers_and_rejects_garbage() {
        let mut ok = vec![0u8; 16 + 72];
        ok[..4].copy_from_slice(&88u32.to_ne_bytes());
        ok[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        ok[17] = 2;
        ok[80..84].copy_from_slice(&1000u32.to_ne_bytes());
        ok[84..88].copy_from_slice(&4242u32.to_ne_bytes());
        assert_eq!(parse_response(&ok), Ok(Some(SockInfo { state: 2, uid: 1000, inode: 4242 })));
        let mut enoent = vec![0u8; 36];
        enoent[..4].copy_from_slice(&36u32.to_ne_bytes());
        enoent[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        enoent[16..20].copy_from_slice(&(-2i32).to_ne_bytes());
        assert_eq!(parse_response(&enoent), Ok(None));
        assert!(parse_response(&[1, 2, 3]).is_err());
        assert!(parse_response(&ok[..40]).is_err());
    }

    /// The real kernel: our own loopback connection is found with its inode.
    #[test]
    fn finds_own_connection() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let mut d = Diag::open().expect("netlink sock_diag socket (Linux)");
        let info = d.lookup(c.local_addr().unwrap(), l.local_addr().unwrap()).unwrap().expect("socket found");
        assert_eq!(info.state, 1);
        assert!(info.inode > 0);
        let missing = d.lookup("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap()).unwrap();
        assert_eq!(missing, None);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..120)) {
            let _ = parse_response(&b);
        }
    }
}
