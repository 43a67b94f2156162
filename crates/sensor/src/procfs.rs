//! Socket-to-process attribution through `/proc`: the fallback when eBPF cannot be used.
//!
//! [`Attributor::poll`] reads `/proc/net/tcp` and `/proc/net/tcp6` (of the sensor's network
//! namespace), keeps the connections whose remote address is a metadata endpoint, and for each
//! new one finds the process holding its socket inode by scanning `/proc/<pid>/fd`. Limits, by
//! construction of the method:
//! - a process that connects, talks and exits between two polls is never seen holding its socket
//!   (the connection may still be listed in TIME_WAIT, with inode 0): its events carry no
//!   `process.*` and count as attribution misses;
//! - a socket inherited or passed to several processes is attributed to the first found;
//! - reading other users' `/proc/<pid>/fd` needs root (or `CAP_SYS_PTRACE`/`CAP_DAC_READ_SEARCH`);
//! - the scan costs one `readlink` per open descriptor on the host (newest processes first, stopping
//!   when every wanted inode is found), paid only when a new metadata connection appears.
//!
//! Parsers ([`parse_net_tcp`], [`parse_status`], [`parse_cmdline`], [`parse_passwd`]) are pure.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One line of `/proc/net/tcp{,6}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEntry {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Kernel TCP state (1 ESTABLISHED, 2 SYN_SENT, 6 TIME_WAIT, 10 LISTEN, ...).
    pub state: u8,
    pub uid: u32,
    /// Socket inode; 0 when no process holds the socket any more (TIME_WAIT, orphaned).
    pub inode: u64,
}

pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_SYN_SENT: u8 = 2;
/// Processes scanned between two checks that the wanted socket still exists.
pub const SCAN_CHUNK: usize = 32;
/// Most process launches remembered for attributing their connections (eBPF path).
pub const MAX_EXECS: usize = 16_384;

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// `0100007F:1F90` (IPv4) or 32 hex digits + `:port` (IPv6); addresses are printed as native-endian
/// 32-bit words of the network-order bytes. IPv4-mapped IPv6 addresses become IPv4.
fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let word = |h: &str| u32::from_str_radix(h, 16).ok().map(u32::to_ne_bytes);
    let ip = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(a)?)),
        32 => {
            let mut o = [0u8; 16];
            for i in 0..4 {
                o[i * 4..i * 4 + 4].copy_from_slice(&word(a.get(i * 8..i * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(o))
        }
        _ => return None,
    };
    Some(SocketAddr::new(unmap(ip), port))
}

/// Parse the text of `/proc/net/tcp` or `/proc/net/tcp6`. Returns the entries and the number of
/// lines that could not be parsed (the header excluded).
pub fn parse_net_tcp(text: &str) -> (Vec<TcpEntry>, usize) {
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let entry = (|| {
            Some(TcpEntry {
                local: parse_addr(f.get(1)?)?,
                remote: parse_addr(f.get(2)?)?,
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                uid: f.get(7)?.parse().ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })();
        match entry {
            Some(e) => out.push(e),
            None => bad += 1,
        }
    }
    (out, bad)
}

/// `(PPid, effective Uid)` from `/proc/<pid>/status`.
pub fn parse_status(text: &str) -> (Option<u32>, Option<u32>) {
    let mut ppid = None;
    let mut uid = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("PPid:") {
            ppid = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("Uid:") {
            // real, effective, saved, filesystem: Elastic Defend's user.id is the effective one.
            uid = v.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        }
    }
    (ppid, uid)
}

/// Arguments from `/proc/<pid>/cmdline` (NUL-separated, lossily decoded).
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

/// The container a process runs in, from `/proc/<pid>/cgroup` (cgroup v1 or v2 paths).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerInfo {
    /// The 64-hex container id (Docker, containerd, CRI-O, Podman).
    pub id: Option<String>,
    /// `docker`, `containerd`, `cri-o` or `podman`, when the path names it.
    pub runtime: Option<String>,
    /// The Kubernetes pod uid, when the path is under a kubepods slice.
    pub pod_uid: Option<String>,
}

fn hex64(s: &str) -> Option<&str> {
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

/// Parse `/proc/<pid>/cgroup`: the container id, runtime and Kubernetes pod uid named by the
/// cgroup paths (`/docker/<id>`, `docker-<id>.scope`, `cri-containerd-<id>.scope`,
/// `crio-<id>.scope`, `libpod-<id>.scope`, `/kubepods/.../pod<uid>/<id>`,
/// `kubepods-...-pod<uid with _>.slice`). `None` fields when the process is on the host.
pub fn parse_cgroup(text: &str) -> ContainerInfo {
    let mut info = ContainerInfo::default();
    for line in text.lines() {
        // hierarchy-id:controllers:path
        let Some(path) = line.splitn(3, ':').nth(2) else { continue };
        for seg in path.split('/') {
            if info.pod_uid.is_none() {
                if let Some(rest) = seg.strip_prefix("pod").or_else(|| seg.split("-pod").nth(1)) {
                    let uid = rest.trim_end_matches(".slice").replace('_', "-");
                    if uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') && path.contains("kubepods") {
                        info.pod_uid = Some(uid);
                    }
                }
            }
            let (runtime, id) = if let Some(id) = hex64(seg) {
                (None, Some(id))
            } else {
                let scope = seg.strip_suffix(".scope").unwrap_or(seg);
                let prefixes = [("docker-", "docker"), ("cri-containerd-", "containerd"), ("crio-", "cri-o"), ("libpod-", "podman")];
                prefixes.iter().find_map(|(p, r)| scope.strip_prefix(p).and_then(hex64).map(|id| (Some(*r), Some(id)))).unwrap_or_default()
            };
            if let Some(id) = id {
                info.id = Some(id.to_string());
                let named = [("docker", "docker"), ("containerd", "containerd"), ("crio", "cri-o"), ("libpod", "podman")];
                info.runtime = runtime.map(str::to_string).or_else(|| named.iter().find(|(n, _)| path.contains(n)).map(|(_, r)| r.to_string()));
            }
        }
        if info.id.is_some() {
            break;
        }
    }
    info
}

/// uid -> user name from the text of `/etc/passwd`.
pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            (!name.is_empty() && !name.starts_with('#')).then(|| (uid, name.to_string()))
        })
        .collect()
}

/// Cgroup (v2) ids to paths: a cgroup's id is the inode number of its directory under
/// `/sys/fs/cgroup`. Built by walking the hierarchy (bounded), rebuilt on a miss at most once a
/// second, so the container of a process that has already exited is still known.
pub struct CgroupIndex {
    root: PathBuf,
    by_id: HashMap<u64, String>,
    scanned: Option<Instant>,
}

/// Most cgroup directories indexed, and how deep the walk goes.
const CGROUP_MAX: usize = 100_000;
const CGROUP_DEPTH: usize = 16;

impl CgroupIndex {
    pub fn new(root: &Path) -> CgroupIndex {
        CgroupIndex { root: root.to_path_buf(), by_id: HashMap::new(), scanned: None }
    }

    /// The path of cgroup `id` relative to the hierarchy's root (`/` for the root itself).
    pub fn path_of(&mut self, id: u64) -> Option<String> {
        if id == 0 {
            return None;
        }
        if let Some(p) = self.by_id.get(&id) {
            return Some(p.clone());
        }
        if self.scanned.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return None;
        }
        self.scan();
        self.by_id.get(&id).cloned()
    }

    fn scan(&mut self) {
        use std::os::unix::fs::MetadataExt;
        self.scanned = Some(Instant::now());
        self.by_id.clear();
        let mut stack = vec![(self.root.clone(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            let Ok(meta) = std::fs::metadata(&dir) else { continue };
            let rel = dir.strip_prefix(&self.root).map(|r| format!("/{}", r.to_string_lossy())).unwrap_or_else(|_| "/".to_string());
            self.by_id.insert(meta.ino(), rel);
            if self.by_id.len() >= CGROUP_MAX || depth >= CGROUP_DEPTH {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push((e.path(), depth + 1));
                }
            }
        }
    }
}

/// A process as the events name it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Process {
    pub pid: u32,
    pub name: Option<String>,
    pub executable: Option<String>,
    pub args: Vec<String>,
    /// The arguments were cut by the kernel's bound ([`crate::kernel::ARGS_MAX`] bytes).
    pub args_truncated: bool,
    pub parent_pid: Option<u32>,
    pub parent_name: Option<String>,
    pub user_id: Option<u32>,
    pub user_name: Option<String>,
    /// The container the process runs in (from `/proc/<pid>/cgroup`).
    pub container: ContainerInfo,
}

impl Process {
    /// `process.command_line`: the arguments joined by spaces, as Elastic Defend writes it.
    pub fn command_line(&self) -> Option<String> {
        (!self.args.is_empty()).then(|| self.args.join(" "))
    }

    /// The ECS `process` object plus `user` fields, merged into `event`.
    pub fn merge_into(&self, event: &mut serde_json::Map<String, serde_json::Value>) {
        use serde_json::{json, Value};
        let mut p = serde_json::Map::new();
        p.insert("pid".into(), json!(self.pid));
        if let Some(n) = &self.name {
            p.insert("name".into(), json!(n));
        }
        if let Some(e) = &self.executable {
            p.insert("executable".into(), json!(e));
        }
        if !self.args.is_empty() {
            p.insert("args".into(), json!(self.args));
            p.insert("args_count".into(), json!(self.args.len()));
        }
        if let Some(c) = self.command_line() {
            p.insert("command_line".into(), json!(c));
        }
        if self.parent_pid.is_some() || self.parent_name.is_some() {
            let mut parent = serde_json::Map::new();
            if let Some(pp) = self.parent_pid {
                parent.insert("pid".into(), json!(pp));
            }
            if let Some(n) = &self.parent_name {
                parent.insert("name".into(), json!(n));
            }
            p.insert("parent".into(), Value::Object(parent));
        }
        event.insert("process".into(), Value::Object(p));
        if self.args_truncated {
            let tags = event.entry("tags").or_insert_with(|| json!([]));
            if let Some(t) = tags.as_array_mut() {
                t.push(json!("imdsguard_process_args_truncated"));
            }
        }
        if self.user_id.is_some() || self.user_name.is_some() {
            let mut u = serde_json::Map::new();
            if let Some(id) = self.user_id {
                u.insert("id".into(), json!(id.to_string()));
            }
            if let Some(n) = &self.user_name {
                u.insert("name".into(), json!(n));
            }
            event.insert("user".into(), Value::Object(u));
        }
        if let Some(id) = &self.container.id {
            let mut c = serde_json::Map::new();
            c.insert("id".into(), json!(id));
            if let Some(r) = &self.container.runtime {
                c.insert("runtime".into(), json!(r));
            }
            event.insert("container".into(), Value::Object(c));
        }
        if let Some(uid) = &self.container.pod_uid {
            event.insert("orchestrator".into(), json!({"type": "kubernetes", "resource": {"type": "pod", "id": uid}}));
        }
    }
}

/// A connection to a metadata endpoint, as seen in `/proc/net/tcp`.
#[derive(Debug, Clone)]
pub struct Connection {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
    pub inode: u64,
    /// The process holding the socket when it was first seen, if it could be found.
    pub process: Option<Arc<Process>>,
}

/// Counters of the attributor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributionStats {
    pub polls: u64,
    pub connections: u64,
    pub attributed: u64,
    /// Connections whose owning process could not be found (it exited before the poll, or its
    /// descriptors could not be read).
    pub misses: u64,
    /// Connections forgotten because the table was full.
    pub evicted: u64,
    /// `/proc/net/tcp*` lines that could not be parsed.
    pub bad_lines: u64,
    /// `/proc/net/tcp*` files that could not be read.
    pub read_errors: u64,
    /// Descriptor scans stopped early because the socket had closed meanwhile.
    pub scans_abandoned: u64,
}

struct Entry {
    conn: Arc<Connection>,
    last_seen: Instant,
}

/// Bounded table of metadata connections and their processes.
pub struct Attributor {
    proc_root: PathBuf,
    etc_passwd: PathBuf,
    endpoints: HashSet<IpAddr>,
    table: HashMap<(SocketAddr, SocketAddr), Entry>,
    max_entries: usize,
    /// How long a connection is remembered after it left `/proc/net/tcp` (HTTP events are decoded
    /// when the response completes, possibly after the connection closed).
    retention: Duration,
    users: HashMap<u32, String>,
    users_loaded: bool,
    /// Processes launched since the start, as the kernel reported them (eBPF path), by pid.
    execs: HashMap<u32, (Arc<Process>, u64)>,
    exec_order: VecDeque<(u32, u64)>,
    exec_seq: u64,
    cgroups: CgroupIndex,
    pub stats: AttributionStats,
}

impl Attributor {
    pub fn new(endpoints: impl IntoIterator<Item = IpAddr>, max_entries: usize) -> Attributor {
        Attributor::with_root(Path::new("/proc"), Path::new("/etc/passwd"), endpoints, max_entries)
    }

    /// With another `/proc` and `/etc/passwd` (tests).
    pub fn with_root(proc_root: &Path, etc_passwd: &Path, endpoints: impl IntoIterator<Item = IpAddr>, max_entries: usize) -> Attributor {
        Attributor {
            proc_root: proc_root.to_path_buf(),
            etc_passwd: etc_passwd.to_path_buf(),
            endpoints: endpoints.into_iter().map(unmap).collect(),
            table: HashMap::new(),
            max_entries: max_entries.max(1),
            retention: Duration::from_secs(30),
            users: HashMap::new(),
            users_loaded: false,
            execs: HashMap::new(),
            exec_order: VecDeque::new(),
            exec_seq: 0,
            cgroups: CgroupIndex::new(Path::new("/sys/fs/cgroup")),
            stats: AttributionStats::default(),
        }
    }

    /// Is `ip` one of the endpoints?
    pub fn is_endpoint(&self, ip: IpAddr) -> bool {
        self.endpoints.contains(&unmap(ip))
    }

    /// Read the connection tables once; return the connections to metadata endpoints that were not
    /// known before (with their process when it could be found).
    pub fn poll(&mut self) -> Vec<Arc<Connection>> {
        self.stats.polls += 1;
        let now = Instant::now();
        let mut fresh: Vec<TcpEntry> = Vec::new();
        for file in ["net/tcp", "net/tcp6"] {
            let text = match std::fs::read_to_string(self.proc_root.join(file)) {
                Ok(t) => t,
                Err(_) => {
                    self.stats.read_errors += 1;
                    continue;
                }
            };
            let (entries, bad) = parse_net_tcp(&text);
            self.stats.bad_lines += bad as u64;
            for e in entries {
                if !self.endpoints.contains(&e.remote.ip()) {
                    continue;
                }
                match self.table.get_mut(&(e.local, e.remote)) {
                    // inode 0 in the table: reported by the kernel (eBPF), the same connection.
                    Some(known) if known.conn.inode == e.inode || e.inode == 0 || known.conn.inode == 0 => known.last_seen = now,
                    _ => {
                        if e.inode != 0 && e.state != 10 {
                            fresh.push(e);
                        }
                    }
                }
            }
        }
        self.table.retain(|_, v| now.duration_since(v.last_seen) < self.retention);
        if fresh.is_empty() {
            return Vec::new();
        }
        let wanted: HashSet<u64> = fresh.iter().map(|e| e.inode).collect();
        let owners = self.find_owners(&wanted);
        let mut out = Vec::with_capacity(fresh.len());
        for e in fresh {
            out.push(self.insert(e, &owners));
        }
        out
    }

    /// Attribute one socket found by an exact lookup (a SYN just seen, `sock_diag`): returns the
    /// new connection, or `None` when it is already known.
    /// `still_open` is asked every [`SCAN_CHUNK`] processes of the descriptor scan whether the
    /// socket still exists: once it is closed no process can hold it, and the rest of the scan
    /// (the whole host when the client has exited) is skipped.
    pub fn attribute(&mut self, local: SocketAddr, remote: SocketAddr, inode: u64, state: u8, still_open: &mut dyn FnMut() -> bool) -> Option<Arc<Connection>> {
        let key = (SocketAddr::new(unmap(local.ip()), local.port()), SocketAddr::new(unmap(remote.ip()), remote.port()));
        if inode == 0 || self.table.get(&key).is_some_and(|e| e.conn.inode == inode) {
            return None;
        }
        let (owners, abandoned) = self.find_owners_while(&HashSet::from([inode]), still_open);
        if abandoned {
            self.stats.scans_abandoned += 1;
        }
        Some(self.insert(TcpEntry { local: key.0, remote: key.1, state, uid: 0, inode }, &owners))
    }

    /// Describe a process launch the kernel reported (the eBPF path) from the record alone:
    /// pid, arguments, parent pid, uid and cgroup were captured at exec, so the description does
    /// not depend on the process still existing. In user space: the executable (the path given to
    /// exec, symlinks resolved as `/proc/<pid>/exe` would show them, when it exists in the
    /// sensor's mount namespace), the parent's name (the launches seen, else `/proc/<ppid>/comm`),
    /// the user name (`/etc/passwd`) and the container (the cgroup id's directory under
    /// `/sys/fs/cgroup`, else `/proc/<pid>/cgroup`). The result is remembered by pid (bounded) for
    /// the process's connections.
    pub fn process_from_exec(&mut self, r: &crate::kernel::ExecRecord) -> Arc<Process> {
        let executable = if r.filename.starts_with('/') {
            Some(std::fs::canonicalize(&r.filename).map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|_| r.filename.clone()))
        } else {
            // Relative (execve("./x")): only the process's own view resolves it.
            std::fs::read_link(self.proc_root.join(r.tgid.to_string()).join("exe"))
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
                .or_else(|| (!r.filename.is_empty()).then(|| r.filename.clone()))
        };
        let name = executable
            .as_deref()
            .and_then(|e| e.rsplit('/').next())
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .or_else(|| (!r.comm.is_empty()).then(|| r.comm.clone()));
        let mut args = r.args.clone();
        if args.is_empty() {
            // The kernel could not read the argument area: /proc while the process lives.
            args = std::fs::read(self.proc_root.join(r.tgid.to_string()).join("cmdline")).map(|b| parse_cmdline(&b)).unwrap_or_default();
        }
        let parent_name = (r.ppid != 0)
            .then(|| {
                self.execs
                    .get(&r.ppid)
                    .and_then(|(p, _)| p.name.clone())
                    .or_else(|| std::fs::read_to_string(self.proc_root.join(r.ppid.to_string()).join("comm")).ok().map(|s| s.trim_end_matches('\n').to_string()))
            })
            .flatten();
        let mut container = self.cgroups.path_of(r.cgroup_id).map(|p| parse_cgroup(&format!("0::{p}\n"))).unwrap_or_default();
        if container.id.is_none() {
            if let Ok(t) = std::fs::read_to_string(self.proc_root.join(r.tgid.to_string()).join("cgroup")) {
                container = parse_cgroup(&t);
            }
        }
        let process = Arc::new(Process {
            pid: r.tgid,
            name,
            executable,
            args,
            args_truncated: r.args_truncated,
            parent_pid: (r.ppid != 0).then_some(r.ppid),
            parent_name,
            user_id: Some(r.uid),
            user_name: self.user_name(r.uid),
            container,
        });
        self.remember_exec(process.clone());
        process
    }

    fn remember_exec(&mut self, p: Arc<Process>) {
        self.exec_seq += 1;
        let pid = p.pid;
        self.execs.insert(pid, (p, self.exec_seq));
        self.exec_order.push_back((pid, self.exec_seq));
        while self.execs.len() > MAX_EXECS || self.exec_order.len() > 2 * MAX_EXECS {
            let Some((old, seq)) = self.exec_order.pop_front() else { break };
            // A pid exec'd again since has a newer sequence number: keep it.
            if self.execs.get(&old).is_some_and(|(_, s)| *s == seq) {
                self.execs.remove(&old);
            }
        }
    }

    /// The process launch the kernel reported for `pid`, if remembered.
    pub fn exec_of(&self, pid: u32) -> Option<Arc<Process>> {
        self.execs.get(&pid).map(|(p, _)| p.clone())
    }

    /// Attribute a connection whose process the kernel reported (the eBPF path): the process as
    /// described at its exec (arguments included, even when it has exited since); for processes
    /// launched before the sensor, `/proc/<pid>`; when that is gone too, pid, uid and `comm`.
    /// Replaces what was known for these addresses (a new connection reusing them).
    pub fn attribute_kernel(&mut self, e: &crate::kernel::ConnectEvent) -> Arc<Connection> {
        let key = (SocketAddr::new(unmap(e.local.ip()), e.local.port()), SocketAddr::new(unmap(e.remote.ip()), e.remote.port()));
        let process = match self.exec_of(e.tgid) {
            Some(p) => p,
            None => Arc::new(match self.read_process(e.tgid) {
                Some(p) => p,
                None => Process {
                    pid: e.tgid,
                    name: (!e.comm.is_empty()).then(|| e.comm.clone()),
                    user_id: Some(e.uid),
                    user_name: self.user_name(e.uid),
                    ..Default::default()
                },
            }),
        };
        self.stats.connections += 1;
        self.stats.attributed += 1;
        let conn = Arc::new(Connection { local: key.0, remote: key.1, state: TCP_ESTABLISHED, inode: 0, process: Some(process) });
        if !self.table.contains_key(&key) && self.table.len() >= self.max_entries {
            if let Some(oldest) = self.table.iter().min_by_key(|(_, v)| v.last_seen).map(|(k, _)| *k) {
                self.table.remove(&oldest);
                self.stats.evicted += 1;
            }
        }
        self.table.insert(key, Entry { conn: conn.clone(), last_seen: Instant::now() });
        conn
    }

    fn insert(&mut self, e: TcpEntry, owners: &HashMap<u64, u32>) -> Arc<Connection> {
        let process = owners.get(&e.inode).and_then(|pid| self.read_process(*pid)).map(Arc::new);
        self.stats.connections += 1;
        if process.is_some() {
            self.stats.attributed += 1;
        } else {
            self.stats.misses += 1;
        }
        let conn = Arc::new(Connection { local: e.local, remote: e.remote, state: e.state, inode: e.inode, process });
        if self.table.len() >= self.max_entries {
            if let Some(oldest) = self.table.iter().min_by_key(|(_, v)| v.last_seen).map(|(k, _)| *k) {
                self.table.remove(&oldest);
                self.stats.evicted += 1;
            }
        }
        self.table.insert((e.local, e.remote), Entry { conn: conn.clone(), last_seen: Instant::now() });
        conn
    }

    /// The known connection from `local` to `remote`.
    pub fn lookup(&self, local: SocketAddr, remote: SocketAddr) -> Option<Arc<Connection>> {
        let key = (SocketAddr::new(unmap(local.ip()), local.port()), SocketAddr::new(unmap(remote.ip()), remote.port()));
        self.table.get(&key).map(|e| e.conn.clone())
    }

    /// Scan `/proc/<pid>/fd` for the wanted socket inodes; stop when all are found.
    fn find_owners(&self, wanted: &HashSet<u64>) -> HashMap<u64, u32> {
        self.find_owners_while(wanted, &mut || true).0
    }

    /// [`Attributor::find_owners`], giving up when `go_on` says so (checked every
    /// [`SCAN_CHUNK`] processes); the flag says whether it gave up.
    fn find_owners_while(&self, wanted: &HashSet<u64>, go_on: &mut dyn FnMut() -> bool) -> (HashMap<u64, u32>, bool) {
        let mut found = HashMap::new();
        let Ok(dir) = std::fs::read_dir(&self.proc_root) else { return (found, false) };
        // Newest processes first: the one that just connected is most likely among them, and a
        // short-lived client must be reached before it exits.
        let mut pids: Vec<u32> = dir.flatten().filter_map(|d| d.file_name().to_str().and_then(|s| s.parse::<u32>().ok())).collect();
        pids.sort_unstable_by(|a, b| b.cmp(a));
        for (i, pid) in pids.into_iter().enumerate() {
            if i > 0 && i % SCAN_CHUNK == 0 && !go_on() {
                return (found, true);
            }
            let Ok(fds) = std::fs::read_dir(self.proc_root.join(pid.to_string()).join("fd")) else { continue };
            for fd in fds.flatten() {
                let Ok(target) = std::fs::read_link(fd.path()) else { continue };
                let Some(inode) = target.to_str().and_then(|t| t.strip_prefix("socket:[")).and_then(|t| t.strip_suffix(']')).and_then(|t| t.parse::<u64>().ok())
                else {
                    continue;
                };
                if wanted.contains(&inode) {
                    found.entry(inode).or_insert(pid);
                }
            }
            if found.len() == wanted.len() {
                break;
            }
        }
        (found, false)
    }

    fn user_name(&mut self, uid: u32) -> Option<String> {
        if !self.users_loaded {
            self.users_loaded = true;
            if let Ok(t) = std::fs::read_to_string(&self.etc_passwd) {
                self.users = parse_passwd(&t);
            }
        }
        self.users.get(&uid).cloned()
    }

    /// Describe a process from `/proc/<pid>`; `None` when it is gone.
    pub fn read_process(&mut self, pid: u32) -> Option<Process> {
        let dir = self.proc_root.join(pid.to_string());
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        let (parent_pid, user_id) = parse_status(&status);
        let comm = std::fs::read_to_string(dir.join("comm")).ok().map(|s| s.trim_end_matches('\n').to_string());
        let executable = std::fs::read_link(dir.join("exe")).ok().map(|p| p.to_string_lossy().into_owned());
        let executable = executable.map(|e| e.strip_suffix(" (deleted)").map(str::to_string).unwrap_or(e));
        let args = std::fs::read(dir.join("cmdline")).map(|b| parse_cmdline(&b)).unwrap_or_default();
        // Elastic Defend names a process after its executable's file name (comm is cut at 15 bytes).
        let name = executable.as_deref().and_then(|e| e.rsplit('/').next()).filter(|n| !n.is_empty()).map(str::to_string).or(comm);
        let parent_name = parent_pid.and_then(|pp| std::fs::read_to_string(self.proc_root.join(pp.to_string()).join("comm")).ok()).map(|s| s.trim_end_matches('\n').to_string());
        let user_name = user_id.and_then(|u| self.user_name(u));
        let container = std::fs::read_to_string(dir.join("cgroup")).map(|t| parse_cgroup(&t)).unwrap_or_default();
        Some(Process { pid, name, executable, args, args_truncated: false, parent_pid, parent_name, user_id, user_name, container })
    }

    /// Connections currently remembered.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_from_cgroup_paths() {
        let id = "3f4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566aabb";
        // (cgroup file, container id, runtime, pod uid)
        type Case<'a> = (String, Option<&'a str>, Option<&'a str>, Option<&'a str>);
        let cases: &[Case] = &[
            (format!("0::/system.slice/docker-{id}.scope\n"), Some(id), Some("docker"), None),
            (format!("12:memory:/docker/{id}\n11:cpu:/docker/{id}\n"), Some(id), Some("docker"), None),
            (
                format!("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0d1c5a3e_5f6b_4b7a_9a51_2f3c1d0e9a01.slice/cri-containerd-{id}.scope\n"),
                Some(id),
                Some("containerd"),
                Some("0d1c5a3e-5f6b-4b7a-9a51-2f3c1d0e9a01"),
            ),
            (format!("0::/kubepods/burstable/pod0d1c5a3e-5f6b-4b7a-9a51-2f3c1d0e9a01/{id}\n"), Some(id), None, Some("0d1c5a3e-5f6b-4b7a-9a51-2f3c1d0e9a01")),
            (format!("0::/machine.slice/libpod-{id}.scope/container\n"), Some(id), Some("podman"), None),
            (format!("0::/crio-{id}.scope\n"), Some(id), Some("cri-o"), None),
            ("0::/user.slice/user-1000.slice/session-3.scope\n".to_string(), None, None, None),
            ("0::/\n".to_string(), None, None, None),
            ("garbage".to_string(), None, None, None),
        ];
        for (text, want_id, runtime, pod) in cases {
            let c = parse_cgroup(text);
            assert_eq!((c.id.as_deref(), c.runtime.as_deref(), c.pod_uid.as_deref()), (*want_id, *runtime, *pod), "{text}");
        }
    }

    const NET_TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 3500007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 17046 1 0000000000000000 100 0 0 10 0
   1: 0200000A:A2C4 FEA9FEA9:0050 01 00000000:00000000 00:00000000 00000000     0        0 424242 1 0000000000000000 20 4 30 10 -1
   2: 0200000A:A2C6 FEA9FEA9:0050 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   3: garbage
";

    #[test]
    fn parses_proc_net_tcp() {
        let (e, bad) = parse_net_tcp(NET_TCP);
        assert_eq!(bad, 1);
        assert_eq!(e.len(), 3);
        if cfg!(target_endian = "little") {
            assert_eq!(e[0].local, "127.0.0.53:53".parse().unwrap());
            assert_eq!(e[1].local, "10.0.0.2:41668".parse().unwrap());
            assert_eq!(e[1].remote, "169.254.169.254:80".parse().unwrap());
        }
        assert_eq!((e[0].state, e[0].uid, e[0].inode), (10, 101, 17046));
        assert_eq!((e[1].state, e[1].inode), (TCP_ESTABLISHED, 424242));
        assert_eq!((e[2].state, e[2].inode), (6, 0));
    }

    #[test]
    fn parses_proc_net_tcp6_and_unmaps_v4() {
        let text = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000200000A:A2C4 0000000000000000FFFF0000FEA9FEA9:0050 02 00000000:00000000 00:00000000 00000000  1000        0 99 1
   1: 0000EC0F000000000000000054020000:A2C4 000000000000000000000000000000FD:0050 01 00000000:00000000 00:00000000 00000000  1000        0 98 1
";
        let (e, bad) = parse_net_tcp(text);
        assert_eq!((e.len(), bad), (2, 0));
        if cfg!(target_endian = "little") {
            assert_eq!(e[0].remote, "169.254.169.254:80".parse().unwrap());
            assert_eq!(e[0].local, "10.0.0.2:41668".parse().unwrap());
            assert!(e[1].remote.is_ipv6());
        }
        assert_eq!((e[0].state, e[0].uid), (TCP_SYN_SENT, 1000));
    }

    #[test]
    fn parses_status_cmdline_passwd() {
        type Case<'a> = (&'a str, (Option<u32>, Option<u32>));
        let cases: Vec<Case> = vec![
            ("Name:\tcurl\nPPid:\t42\nUid:\t1000\t0\t0\t0\n", (Some(42), Some(0))),
            ("PPid:\t0\n", (Some(0), None)),
            ("", (None, None)),
            ("Uid: x y\n", (None, None)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_status(text), want, "{text:?}");
        }
        assert_eq!(parse_cmdline(b"curl\0-s\0http://169.254.169.254/\0"), vec!["curl", "-s", "http://169.254.169.254/"]);
        assert_eq!(parse_cmdline(b""), Vec::<String>::new());
        assert_eq!(parse_cmdline(b"a\0\0b"), vec!["a", "", "b"]);
        let users = parse_passwd("root:x:0:0:root:/root:/bin/bash\nbad line\nalice:x:1000:1000::/home/alice:/bin/sh\n");
        assert_eq!(users.get(&0).map(String::as_str), Some("root"));
        assert_eq!(users.get(&1000).map(String::as_str), Some("alice"));
        assert_eq!(users.len(), 2);
    }

    #[test]
    fn process_fields_merge_as_ecs() {
        let p = Process {
            pid: 7,
            name: Some("curl".into()),
            executable: Some("/usr/bin/curl".into()),
            args: vec!["curl".into(), "-s".into()],
            args_truncated: false,
            parent_pid: Some(1),
            parent_name: Some("bash".into()),
            user_id: Some(0),
            user_name: Some("root".into()),
            container: ContainerInfo {
                id: Some("ab".repeat(32)),
                runtime: Some("containerd".into()),
                pod_uid: Some("0d1c5a3e-5f6b-4b7a-9a51-2f3c1d0e9a01".into()),
            },
        };
        let mut m = serde_json::Map::new();
        p.merge_into(&mut m);
        let v = serde_json::Value::Object(m);
        assert_eq!(v["process"]["command_line"], "curl -s");
        assert_eq!(v["container"], serde_json::json!({"id": "ab".repeat(32), "runtime": "containerd"}));
        assert_eq!(v["orchestrator"]["resource"]["id"], "0d1c5a3e-5f6b-4b7a-9a51-2f3c1d0e9a01");
        assert_eq!(v["process"]["parent"]["pid"], 1);
        assert_eq!(v["user"]["id"], "0");
        assert_eq!(v["user"]["name"], "root");
    }

    /// The live path on this very process: a loopback listener and a connection to it, attributed
    /// to our own pid through the real /proc.
    #[test]
    fn attributes_own_loopback_connection() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let c = std::net::TcpStream::connect(addr).unwrap();
        let mut a = Attributor::new([addr.ip()], 16);
        let conns = a.poll();
        // Both directions of loopback are listed; ours has the listener as remote.
        let mine = conns.iter().find(|c2| c2.remote == addr && c2.local == c.local_addr().unwrap()).expect("connection listed");
        let p = mine.process.as_ref().expect("attributed");
        assert_eq!(p.pid, std::process::id());
        assert!(a.lookup(c.local_addr().unwrap(), addr).is_some());
        assert!(a.poll().iter().all(|c2| c2.remote != addr || c2.local != c.local_addr().unwrap()), "not reported twice");
        // An exact attribution of the listener's side (the accepted socket): found, and known after.
        let (srv, peer) = l.accept().unwrap();
        let inode = parse_net_tcp(&std::fs::read_to_string("/proc/net/tcp").unwrap()).0.into_iter().find(|e| e.local == addr && e.remote == peer).unwrap().inode;
        let got = a.attribute(addr, peer, inode, 1, &mut || true).expect("new");
        assert_eq!(got.process.as_ref().map(|p| p.pid), Some(std::process::id()));
        assert!(a.attribute(addr, peer, inode, 1, &mut || true).is_none(), "known");
        // A socket that is gone: the scan gives up at the first check.
        let mut asked = 0;
        assert!(a.attribute("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap(), u64::MAX, 1, &mut || { asked += 1; false }).is_some_and(|c| c.process.is_none()));
        let procs = std::fs::read_dir("/proc").unwrap().flatten().filter(|d| d.file_name().to_str().is_some_and(|n| n.parse::<u32>().is_ok())).count();
        assert_eq!((asked, a.stats.scans_abandoned), (usize::from(procs > SCAN_CHUNK), u64::from(procs > SCAN_CHUNK)));
        drop(srv);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,300}") {
            let _ = parse_net_tcp(&s);
            let _ = parse_status(&s);
            let _ = parse_passwd(&s);
            let _ = parse_cmdline(s.as_bytes());
            let c = parse_cgroup(&s);
            proptest::prop_assert!(c.id.as_ref().is_none_or(|id| id.len() == 64));
        }
    }

    #[test]
    fn cgroup_ids_resolve_to_paths() {
        use std::os::unix::fs::MetadataExt;
        let root = std::env::temp_dir().join(format!("imdsguard-cgroup-test-{}", std::process::id()));
        let id = "3f4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566aabb";
        let leaf = root.join("system.slice").join(format!("docker-{id}.scope"));
        std::fs::create_dir_all(&leaf).unwrap();
        let mut idx = CgroupIndex::new(&root);
        let ino = std::fs::metadata(&leaf).unwrap().ino();
        let path = idx.path_of(ino).unwrap();
        assert_eq!(path, format!("/system.slice/docker-{id}.scope"));
        assert_eq!(parse_cgroup(&format!("0::{path}\n")).id.as_deref(), Some(id));
        assert_eq!(idx.path_of(std::fs::metadata(&root).unwrap().ino()).as_deref(), Some("/"));
        // A miss right after a scan does not walk again (at most once a second).
        let late = root.join("late");
        std::fs::create_dir_all(&late).unwrap();
        assert_eq!(idx.path_of(std::fs::metadata(&late).unwrap().ino()), None);
        assert_eq!(idx.path_of(0), None);
        let _ = std::fs::remove_dir_all(&root);
    }

    /// The eBPF path: a launch described from the kernel's record alone keeps its arguments for
    /// its connections after it has exited (no /proc/<pid>), and the parent is named.
    #[test]
    fn exec_records_describe_exited_processes() {
        let gone = 999_999_999u32;
        let mut a = Attributor::new(["169.254.169.254".parse().unwrap()], 16);
        let rec = crate::kernel::ExecRecord {
            tgid: gone,
            ppid: std::process::id(),
            uid: 0,
            cgroup_id: 0,
            comm: "sh".into(),
            filename: "/bin/sh".into(),
            args: vec!["sh".into(), "-c".into(), "curl http://169.254.169.254/latest/meta-data/".into()],
            args_truncated: true,
            args_unreadable: false,
        };
        let p = a.process_from_exec(&rec);
        let real_sh = std::fs::canonicalize("/bin/sh").unwrap().to_string_lossy().into_owned();
        assert_eq!(p.executable.as_deref(), Some(real_sh.as_str()));
        assert_eq!(p.name.as_deref(), real_sh.rsplit('/').next());
        assert_eq!(p.command_line().as_deref(), Some("sh -c curl http://169.254.169.254/latest/meta-data/"));
        assert_eq!((p.parent_pid, p.user_id, p.user_name.as_deref()), (Some(std::process::id()), Some(0), Some("root")));
        let own_comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(p.parent_name.as_deref(), Some(own_comm.trim_end()));
        let mut ev = serde_json::Map::new();
        p.merge_into(&mut ev);
        assert_eq!(ev["tags"], serde_json::json!(["imdsguard_process_args_truncated"]));
        // Its connection, reported after it exited, carries the exec-time description.
        let conn = |tgid: u32, comm: &str, port: u16| crate::kernel::ConnectEvent {
            tgid,
            tid: tgid,
            uid: 1000,
            local: SocketAddr::new("10.0.0.2".parse().unwrap(), port),
            remote: "169.254.169.254:80".parse().unwrap(),
            comm: comm.into(),
        };
        let c = a.attribute_kernel(&conn(gone, "sh", 40000));
        assert_eq!(c.process.as_deref().map(|p| p.args.clone()), Some(rec.args.clone()));
        assert!(a.lookup(c.local, c.remote).is_some());
        // Never seen, already gone: pid, comm and uid from the kernel.
        let c = a.attribute_kernel(&conn(gone - 1, "mystery", 40001));
        let p = c.process.as_deref().unwrap();
        assert_eq!((p.pid, p.name.as_deref(), p.user_id, p.args.len()), (gone - 1, Some("mystery"), Some(1000), 0));
        // Launched before the sensor and alive: /proc.
        let c = a.attribute_kernel(&conn(std::process::id(), "x", 40002));
        assert!(c.process.as_deref().is_some_and(|p| !p.args.is_empty() && p.executable.is_some()));
        // The launches remembered are bounded; a pid exec'd again keeps its newest description.
        for i in 0..(MAX_EXECS as u32 + 10) {
            a.process_from_exec(&crate::kernel::ExecRecord { tgid: 1_000_000 + i, filename: "/x".into(), ..Default::default() });
        }
        assert!(a.execs.len() <= MAX_EXECS && a.exec_of(gone).is_none() && a.exec_of(1_000_000 + MAX_EXECS as u32).is_some());
    }
}
