//! `imdsguard-lab`: the isolated network lab that attack simulations (`imdsguard simulate`) and
//! end-to-end tests run in, so that no request ever reaches a real metadata service or leaves the
//! machine.
//!
//! It owns:
//! - [`Lab`]: two fresh network namespaces joined by a veth pair. The *mock* namespace holds the
//!   metadata addresses (`169.254.169.254`, `fd00:ec2::254`, and the look-alike `169.254.169.253`);
//!   the *client* (attacker) namespace holds only `lo` and its end of the veth, with no default
//!   route, so the only reachable hosts are its own loopback and the mock. `/etc/netns/<client>/`
//!   gets a `hosts` file resolving `metadata.google.internal` to the mock and a `resolv.conf`
//!   naming only loopback (`ip netns exec` bind-mounts both over `/etc` for the programs it
//!   starts). Names are unique per run (process id, a counter and the clock), so runs in parallel
//!   never collide;
//! - process management inside the namespaces ([`Lab::spawn`], [`Lab::stop`], bounded waits);
//! - teardown on drop, also after a panic or an error: children are stopped (SIGTERM, then
//!   SIGKILL), the namespaces (and with them the veth pair) and the `/etc/netns` files are removed.
//!   [`Lab::keep`] leaves the namespaces for inspection;
//! - the refusal: [`preflight`] fails with a clear [`LabError`] when not root or when `ip`
//!   (iproute2) is missing, and [`Lab::create`] fails (after removing whatever it made) when a
//!   namespace cannot be created or the client namespace is not isolated. Nothing here ever falls
//!   back to the host's network;
//! - [`enter_netns`]: move the calling thread into a named namespace (`setns`, through rustix; no
//!   `unsafe`), used by `imdsguard sensor --netns`.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The AWS/Azure/GCP metadata address, held by the mock namespace.
pub const METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// AWS's IPv6 metadata address, held by the mock namespace.
pub const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
/// A look-alike address next to the metadata service (on AWS, `.253` is the VPC's DNS resolver):
/// a benign destination on the same link, held by the mock namespace too.
pub const LOOKALIKE_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 253);
/// The client namespace's addresses.
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 10, 2);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 2);
/// The host name GCP's metadata server is reached by.
pub const GCP_METADATA_NAME: &str = "metadata.google.internal";

/// Why the lab cannot run. Every variant says what is missing; none falls back to the host's network.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("refusing to run: not root (effective uid {0}); creating network namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN), and nothing is run on the host's own network instead")]
    NotRoot(u32),
    #[error("refusing to run: `ip` (iproute2) was not found or does not run ({0}); it creates the lab's network namespaces")]
    NoIp(String),
    #[error("refusing to run: cannot create the lab's network namespaces: `{command}` failed: {stderr}")]
    Setup { command: String, stderr: String },
    #[error("refusing to run: the client namespace is not isolated: {0}")]
    NotIsolated(String),
    #[error("{0}")]
    Io(String),
}

/// The effective uid from the text of `/proc/<pid>/status` (`Uid:` real, effective, saved, fs).
pub fn effective_uid_from_status(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The preconditions of a lab: root, and a working `ip`. Checked before anything is created.
pub fn preflight() -> Result<(), LabError> {
    let uid = rustix::process::geteuid().as_raw();
    if uid != 0 {
        return Err(LabError::NotRoot(uid));
    }
    match Command::new("ip").arg("-V").stdout(Stdio::null()).stderr(Stdio::piped()).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(LabError::NoIp(format!("`ip -V` exited with {}: {}", o.status, String::from_utf8_lossy(&o.stderr).trim()))),
        Err(e) => Err(LabError::NoIp(e.to_string())),
    }
}

/// Where `ip netns` keeps the namespace named `name`.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

/// Whether `name` is usable as a namespace name (a plain file name).
pub fn valid_netns_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name != "." && name != ".." && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Move the calling thread into the network namespace `name` (`/run/netns/<name>`, as made by
/// `ip netns add`). Threads started afterwards inherit it; sockets opened before stay where they
/// were opened. Needs CAP_SYS_ADMIN.
pub fn enter_netns(name: &str) -> std::io::Result<()> {
    if !valid_netns_name(name) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{name:?} is not a network namespace name")));
    }
    let path = netns_path(name);
    let f = std::fs::File::open(&path).map_err(|e| std::io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    rustix::thread::move_into_link_name_space(std::os::fd::AsFd::as_fd(&f), Some(rustix::thread::LinkNameSpaceType::Network))
        .map_err(|e| std::io::Error::other(format!("cannot enter network namespace {name}: {e}")))
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short unique id for this run's names: process id, a per-process counter and the clock, in
/// hex (veth names are limited to 15 bytes).
fn unique_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    // pid_max is at most 2^22 (6 hex digits); the clock part separates a later run that got the
    // same pid from namespaces an earlier one kept (`--keep`).
    format!("{:06x}{:02x}{:03x}", std::process::id() & 0xff_ffff, n & 0xff, (nanos >> 12) & 0xfff)
}

/// A process started in the lab, stopped when the lab is dropped.
struct Proc {
    name: String,
    child: Child,
}

/// Two network namespaces (mock, client) and the processes running in them; removed on drop
/// unless [`Lab::keep`] was called.
pub struct Lab {
    /// The namespace of the mock metadata service.
    pub mock_ns: String,
    /// The client (attacker) namespace: `lo` and the veth only, no default route.
    pub client_ns: String,
    /// The client namespace's end of the veth pair.
    pub client_if: String,
    created: Vec<String>,
    etc_dir: Option<PathBuf>,
    children: Vec<Proc>,
    cleanup_paths: Vec<PathBuf>,
    keep: bool,
    torn_down: bool,
}

fn run_ip(args: &[&str]) -> Result<String, LabError> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().map_err(|e| LabError::NoIp(e.to_string()))?;
    if !out.status.success() {
        return Err(LabError::Setup { command: format!("ip {}", args.join(" ")), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Lab {
    /// Create the lab. `tag` (a few letters) goes into the names, which are unique per call.
    pub fn create(tag: &str) -> Result<Lab, LabError> {
        preflight()?;
        let tag: String = tag.chars().filter(char::is_ascii_alphanumeric).take(4).collect();
        let id = unique_id();
        let mut lab = Lab {
            mock_ns: format!("imdsguard-{tag}-{id}-mock"),
            client_ns: format!("imdsguard-{tag}-{id}-client"),
            client_if: format!("igc{id}"),
            created: Vec::new(),
            etc_dir: None,
            children: Vec::new(),
            cleanup_paths: Vec::new(),
            keep: false,
            torn_down: false,
        };
        // On any error below, dropping `lab` removes what was made.
        lab.build(&format!("igm{id}"), &format!("igc{id}"))?;
        Ok(lab)
    }

    fn build(&mut self, vm: &str, vc: &str) -> Result<(), LabError> {
        let (mock, client) = (self.mock_ns.clone(), self.client_ns.clone());
        for ns in [&mock, &client] {
            run_ip(&["netns", "add", ns])?;
            self.created.push(ns.clone());
        }
        run_ip(&["link", "add", vm, "type", "veth", "peer", "name", vc])?;
        // Deleting a namespace deletes its end of the veth, and with it the pair. Until both ends
        // are moved, the pair is in the host namespace: on failure remove it explicitly.
        let moved = run_ip(&["link", "set", vm, "netns", &mock]).and_then(|_| run_ip(&["link", "set", vc, "netns", &client]));
        if let Err(e) = moved {
            let _ = Command::new("ip").args(["link", "del", vm]).stderr(Stdio::null()).status();
            return Err(e);
        }
        let (m4, l4, c4) = (format!("{METADATA_V4}/16"), format!("{LOOKALIKE_V4}/16"), format!("{CLIENT_V4}/16"));
        let (m6, c6) = (format!("{METADATA_V6}/64"), format!("{CLIENT_V6}/64"));
        run_ip(&["-n", &mock, "addr", "add", &m4, "dev", vm])?;
        run_ip(&["-n", &mock, "addr", "add", &l4, "dev", vm])?;
        run_ip(&["-n", &client, "addr", "add", &c4, "dev", vc])?;
        // IPv6 without duplicate address detection delays.
        run_ip(&["-n", &mock, "addr", "add", &m6, "dev", vm, "nodad"])?;
        run_ip(&["-n", &client, "addr", "add", &c6, "dev", vc, "nodad"])?;
        for (ns, dev) in [(&mock, vm), (&client, vc)] {
            run_ip(&["-n", ns, "link", "set", "lo", "up"])?;
            run_ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        // Name resolution inside the client namespace: `ip netns exec` bind-mounts these files
        // over /etc/hosts and /etc/resolv.conf for the programs it runs.
        let etc = Path::new("/etc/netns").join(&client);
        std::fs::create_dir_all(&etc).map_err(|e| LabError::Io(format!("cannot create {}: {e}", etc.display())))?;
        self.etc_dir = Some(etc.clone());
        std::fs::write(etc.join("hosts"), hosts_file()).map_err(|e| LabError::Io(format!("cannot write {}/hosts: {e}", etc.display())))?;
        std::fs::write(etc.join("resolv.conf"), "# imdsguard lab: no DNS server is reachable from this namespace\nnameserver 127.0.0.1\n")
            .map_err(|e| LabError::Io(format!("cannot write {}/resolv.conf: {e}", etc.display())))?;
        self.check_isolated(vc)
    }

    /// The client namespace must have only `lo` and its veth, and no default route.
    fn check_isolated(&self, vc: &str) -> Result<(), LabError> {
        let links = run_ip(&["-n", &self.client_ns, "-o", "link", "show"])?;
        let names = link_names(&links);
        if names.iter().any(|n| n != "lo" && n != vc) {
            return Err(LabError::NotIsolated(format!("interfaces {names:?}, expected only lo and {vc}")));
        }
        for fam in ["-4", "-6"] {
            let r = run_ip(&["-n", &self.client_ns, fam, "route", "show", "default"])?;
            if !r.trim().is_empty() {
                return Err(LabError::NotIsolated(format!("a default route exists: {}", r.trim())));
            }
        }
        Ok(())
    }

    /// A command running `program` in the namespace `ns` (through `ip netns exec`, which execs the
    /// program: the child's pid is the program's own).
    pub fn command_in(&self, ns: &str, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program).stdin(Stdio::null());
        c
    }

    /// A command in the client namespace.
    pub fn client(&self, program: impl AsRef<OsStr>) -> Command {
        self.command_in(&self.client_ns, program)
    }

    /// A command in the mock namespace.
    pub fn mock(&self, program: impl AsRef<OsStr>) -> Command {
        self.command_in(&self.mock_ns, program)
    }

    /// Start a long-running process, stopped when the lab is dropped; returns its pid.
    pub fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<u32, LabError> {
        let child = cmd.spawn().map_err(|e| LabError::Io(format!("cannot start {name}: {e}")))?;
        let pid = child.id();
        self.children.push(Proc { name: name.to_string(), child });
        Ok(pid)
    }

    /// The child started with [`Lab::spawn`] under `pid` (to take its pipes, or poll it).
    pub fn child_mut(&mut self, pid: u32) -> Option<&mut Child> {
        self.children.iter_mut().find(|p| p.child.id() == pid).map(|p| &mut p.child)
    }

    /// Stop a child by pid: SIGTERM, up to `grace` to exit, then SIGKILL. Returns its exit status
    /// (`None` when it is not one of ours, or had to be killed).
    pub fn stop(&mut self, pid: u32, grace: Duration) -> Option<ExitStatus> {
        let i = self.children.iter().position(|p| p.child.id() == pid)?;
        let mut p = self.children.remove(i);
        stop_child(&mut p.child, grace)
    }

    /// Remove `path` (a file or directory) at teardown.
    pub fn remove_on_drop(&mut self, path: PathBuf) {
        self.cleanup_paths.push(path);
    }

    /// Leave the namespaces and their `/etc/netns` files in place at teardown (processes are
    /// still stopped); returns the commands that remove them.
    pub fn keep(&mut self) -> Vec<String> {
        self.keep = true;
        let mut v: Vec<String> = self.created.iter().map(|ns| format!("ip netns del {ns}")).collect();
        if let Some(d) = &self.etc_dir {
            v.push(format!("rm -r {}", d.display()));
        }
        v
    }

    /// Stop every child and remove what the lab created (unless kept). Idempotent.
    pub fn teardown(&mut self) {
        for mut p in self.children.drain(..) {
            if stop_child(&mut p.child, Duration::from_secs(3)).is_none() {
                eprintln!("lab: {} (pid {}) did not stop on SIGTERM and was killed", p.name, p.child.id());
            }
        }
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        for p in self.cleanup_paths.drain(..) {
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
        if self.keep {
            return;
        }
        for ns in self.created.drain(..).rev() {
            let _ = Command::new("ip").args(["netns", "del", &ns]).stderr(Stdio::null()).status();
        }
        if let Some(d) = self.etc_dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// `/etc/hosts` of the client namespace.
pub fn hosts_file() -> String {
    format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{METADATA_V4}\t{GCP_METADATA_NAME} metadata\n")
}

/// Interface names from `ip -o link show` (`2: name@peer: <...>`).
pub fn link_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// SIGTERM, wait up to `grace`, then SIGKILL. `Some(status)` when it exited by itself.
pub fn stop_child(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(st)) = child.try_wait() {
        return Some(st);
    }
    if let Some(pid) = i32::try_from(child.id()).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Wait for `child` to exit, at most `timeout`; kill it past that. `interrupted` is polled so a
/// caller's Ctrl-C ends the wait early. Returns the status, or `None` when it had to be killed.
pub fn wait_bounded(child: &mut Child, timeout: Duration, interrupted: &dyn Fn() -> bool) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() < deadline && !interrupted() => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_uid_is_the_second_value_of_the_uid_line() {
        let cases = [
            ("Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n", Some(0)),
            ("Uid:\t0\t1000\t1000\t1000\n", Some(1000)),
            ("Name:\tx\n", None),
            ("Uid:\t0\n", None),
            ("Uid:\tx\ty\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(effective_uid_from_status(text), want, "{text:?}");
        }
    }

    #[test]
    fn link_names_strip_the_peer() {
        let text = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\n2: igc1234567@if3: <BROADCAST,MULTICAST,UP> mtu 1500\n";
        assert_eq!(link_names(text), vec!["lo".to_string(), "igc1234567".to_string()]);
        assert!(link_names("").is_empty());
    }

    #[test]
    fn namespace_names() {
        for (n, ok) in [("imdsguard-sim-0abc123-client", true), ("", false), ("..", false), ("a/b", false), ("a b", false), ("x.y_z", true)] {
            assert_eq!(valid_netns_name(n), ok, "{n}");
        }
        assert!(enter_netns("../etc").is_err());
    }

    #[test]
    fn names_are_unique_and_fit_interface_names() {
        let a = unique_id();
        let b = unique_id();
        assert_ne!(a, b);
        assert!(format!("igm{a}").len() <= 15);
    }

    proptest::proptest! {
        /// The parsers of `/proc/<pid>/status` and `ip -o link` output never panic.
        #[test]
        fn parsers_never_panic(text in "(?s).{0,400}", lines in proptest::collection::vec("[0-9]{1,3}: [a-z0-9@:<>, ]{0,30}", 0..6)) {
            let _ = effective_uid_from_status(&text);
            let _ = link_names(&text);
            let joined = lines.join("\n");
            let _ = link_names(&joined);
            let _ = effective_uid_from_status(&format!("Uid:\t{joined}"));
            let _ = valid_netns_name(&text);
        }
    }

    #[test]
    fn the_hosts_file_sends_gcp_name_to_the_mock() {
        let h = hosts_file();
        assert!(h.lines().any(|l| l.starts_with("169.254.169.254\t") && l.contains("metadata.google.internal")), "{h}");
    }
}
