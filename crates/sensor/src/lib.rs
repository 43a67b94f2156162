//! The live sensor's edges on Linux (I/O: sockets and `/proc`), used by `imdsguard sensor`.
//!
//! - [`packet`]: an `AF_PACKET` socket with a classic BPF filter attached in the kernel
//!   ([`filter`]) so that only packets to or from the metadata endpoints are copied to user space;
//!   frames go to the pure capture decoder (`imdsguard_capture::CaptureDecoder::feed_frame`).
//! - [`procfs`]: the fallback attribution path (no eBPF): `/proc/net/tcp{,6}` names each
//!   connection to a metadata endpoint and its socket inode, `/proc/<pid>/fd` finds the process
//!   holding that inode, `/proc/<pid>/{comm,exe,cmdline,status}` describe it. Parsers are pure
//!   functions of the file contents; [`procfs::Attributor`] keeps a bounded table of connections.
//! - [`diag`]: exact socket lookup by four-tuple through netlink `sock_diag` (on each SYN).
//! - [`ebpf`] (feature `ebpf`, default): tracepoint programs that capture process launches (with
//!   their arguments) and the process of each metadata connect in the kernel; [`kernel`] parses
//!   their ring-buffer records.
//! - [`exec`]: process launches from the kernel's process events connector (the fallback).
//! - [`privileges`]: dropping the capabilities not needed after setup.
//! - [`host`]: the host identity (`/etc/machine-id`, host name) written into every event.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod diag;
pub mod exec;
#[cfg(feature = "ebpf")]
pub mod ebpf;
pub mod filter;
pub mod host;
pub mod kernel;
pub mod packet;
pub mod privileges;
pub mod procfs;
