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
