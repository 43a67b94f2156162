//! Dropping the capabilities the sensor no longer needs once its sockets are open.
//!
//! After setup the sensor keeps only what attribution uses at run time: `CAP_SYS_PTRACE` and
//! `CAP_DAC_READ_SEARCH` (reading `/proc/<pid>/fd` and `/proc/<pid>/exe` of other users'
//! processes). `CAP_NET_RAW` (the `AF_PACKET` socket is already open), `CAP_SYS_ADMIN`,
//! `CAP_DAC_OVERRIDE` and the rest go. Capabilities are per thread on Linux: call this on the main
//! thread before spawning the others (they inherit the reduced sets). Permitted capabilities
//! once dropped cannot be regained, and the sensor never executes another program.

use rustix::thread::{capabilities, set_capabilities, CapabilitySet, CapabilitySets};

/// Capabilities kept after setup.
pub fn runtime_set() -> CapabilitySet {
    CapabilitySet::SYS_PTRACE | CapabilitySet::DAC_READ_SEARCH
}

/// What [`drop_to_runtime`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Capabilities that were permitted before.
    pub before: u64,
    /// Capabilities permitted now.
    pub after: u64,
}

/// Reduce the calling thread's effective, permitted and inheritable sets to [`runtime_set`]
/// (intersected with what it had).
pub fn drop_to_runtime() -> std::io::Result<Dropped> {
    let cur = capabilities(None)?;
    let keep = cur.permitted & runtime_set();
    set_capabilities(None, CapabilitySets { effective: keep, permitted: keep, inheritable: CapabilitySet::empty() })?;
    let now = capabilities(None)?;
    Ok(Dropped { before: cur.permitted.bits(), after: now.permitted.bits() })
}

/// Names of the capabilities in a set (for the status line).
pub fn names(bits: u64) -> Vec<&'static str> {
    [
        (CapabilitySet::NET_RAW, "CAP_NET_RAW"),
        (CapabilitySet::NET_ADMIN, "CAP_NET_ADMIN"),
        (CapabilitySet::SYS_ADMIN, "CAP_SYS_ADMIN"),
        (CapabilitySet::SYS_PTRACE, "CAP_SYS_PTRACE"),
        (CapabilitySet::DAC_OVERRIDE, "CAP_DAC_OVERRIDE"),
        (CapabilitySet::DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH"),
        (CapabilitySet::BPF, "CAP_BPF"),
        (CapabilitySet::PERFMON, "CAP_PERFMON"),
    ]
    .into_iter()
    .filter(|(c, _)| bits & c.bits() != 0)
    .map(|(_, n)| n)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_sets() {
        assert_eq!(names(runtime_set().bits()), vec!["CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"]);
        assert!(names(0).is_empty());
    }

    /// In a thread of its own (capabilities are per thread), so the rest of the tests keep theirs.
    #[test]
    fn drops_in_the_calling_thread_only() {
        let before = capabilities(None).unwrap().permitted;
        let d = std::thread::spawn(drop_to_runtime).join().unwrap().unwrap();
        assert_eq!(d.before, before.bits());
        assert_eq!(d.after, (before & runtime_set()).bits());
        assert_eq!(capabilities(None).unwrap().permitted, before, "other threads keep theirs");
    }
}
