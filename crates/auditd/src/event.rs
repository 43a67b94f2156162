//! The records of one audit event to one ECS document, shaped as Auditbeat's auditd module
//! writes it (go-libaudit `aucoalesce` + `auditbeat/module/auditd`).

use crate::parse::{text_of, unhex, Record};
use crate::tables::{self, Norm};
use serde_json::{json, Map, Value};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Host identity from the decoder configuration (used when records carry no `node=`).
pub struct HostDefaults<'a> {
    pub name: Option<&'a str>,
    pub id: Option<&'a str>,
}

/// An event built from records, with the problems found while building it.
pub struct Built {
    pub event: Option<Value>,
    /// (line, reason)
    pub problems: Vec<(u64, String)>,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ProcessStart,
    Connect,
    Other,
    Incomplete,
}

/// Keys that hold untrusted strings the kernel may hex-encode (auparse's list, as far as this
/// decoder surfaces them).
fn maybe_hex(key: &str) -> bool {
    matches!(key, "comm" | "exe" | "cwd" | "name" | "path" | "proctitle" | "cmd" | "acct" | "key" | "old-chardev" | "new-chardev")
}

const ID_KEYS: &[(&str, &str, &str)] = &[
    // (audit key, ECS path under user, enriched key)
    ("uid", "", "UID"),
    ("gid", "group", "GID"),
    ("euid", "effective", "EUID"),
    ("egid", "effective.group", "EGID"),
    ("suid", "saved", "SUID"),
    ("sgid", "saved.group", "SGID"),
    ("fsuid", "filesystem", "FSUID"),
    ("fsgid", "filesystem.group", "FSGID"),
    ("auid", "audit", "AUID"),
];

fn is_unset(v: &str) -> bool {
    v == "4294967295" || v == "-1" || v == "unset"
}

/// Put `value` at a dotted `path` inside `obj`, creating objects on the way.
fn put(obj: &mut Map<String, Value>, path: &str, value: Value) {
    let mut cur = obj;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_string(), value);
            return;
        }
        let entry = cur.entry(p.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        match entry {
            Value::Object(m) => cur = m,
            _ => return,
        }
    }
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Decode a `saddr=` hex string into the `socket.*` data Auditbeat shows and an address.
pub struct Sockaddr {
    pub family: String,
    pub addr: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
}

pub fn decode_saddr(hex: &str) -> Result<Sockaddr, String> {
    let b = unhex(hex).ok_or_else(|| format!("saddr is not hex: {:?}", hex.chars().take(40).collect::<String>()))?;
    if b.len() < 2 {
        return Err("saddr shorter than its family field".into());
    }
    // sa_family is in host byte order: little-endian on most arches, big-endian on s390x/ppc64.
    let fam = if b[0] == 0 && b[1] != 0 { u16::from(b[1]) } else { u16::from_le_bytes([b[0], b[1]]) };
    let short = |need: usize, what: &str| -> Result<(), String> {
        if b.len() < need {
            Err(format!("{what} saddr has {} bytes, needs {need} (truncated)", b.len()))
        } else {
            Ok(())
        }
    };
    match fam {
        1 => {
            let raw = &b[2..];
            let path = if raw.first() == Some(&0) {
                // Abstract socket: shown with a leading '@'.
                let end = raw[1..].iter().position(|&c| c == 0).map_or(raw.len(), |i| i + 1);
                format!("@{}", String::from_utf8_lossy(&raw[1..end]))
            } else {
                let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
                String::from_utf8_lossy(&raw[..end]).into_owned()
            };
            Ok(Sockaddr { family: "unix".into(), addr: None, port: None, path: Some(path) })
        }
        2 => {
            short(8, "AF_INET")?;
            let port = u16::from_be_bytes([b[2], b[3]]);
            let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
            Ok(Sockaddr { family: "ipv4".into(), addr: Some(ip.to_string()), port: Some(port), path: None })
        }
        10 => {
            short(24, "AF_INET6")?;
            let port = u16::from_be_bytes([b[2], b[3]]);
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[8..24]);
            let ip = Ipv6Addr::from(a);
            Ok(Sockaddr { family: "ipv6".into(), addr: Some(ip.to_string()), port: Some(port), path: None })
        }
        16 => Ok(Sockaddr { family: "netlink".into(), addr: None, port: None, path: None }),
        other => Ok(Sockaddr { family: other.to_string(), addr: None, port: None, path: None }),
    }
}

/// Assemble the argv of EXECVE records: `argc`, `aN`, and long arguments split as `aN_len` plus
/// `aN[0]`, `aN[1]`, ... (each chunk quoted or hex).
fn execve_args(records: &[&Record], problems: &mut Vec<(u64, String)>) -> Option<(u64, Vec<String>)> {
    let first_line = records.first().map(|r| r.line)?;
    let mut argc: Option<u64> = None;
    let mut whole: std::collections::BTreeMap<u64, String> = Default::default();
    // argument index → (declared aN_len, chunk index → bytes)
    type Chunks = std::collections::BTreeMap<u64, (Option<u64>, std::collections::BTreeMap<u64, Vec<u8>>)>;
    let mut chunks: Chunks = Default::default();
    for r in records {
        for f in r.fields() {
            let k = f.key;
            if k == "argc" {
                match f.value.parse() {
                    Ok(n) => argc = Some(n),
                    Err(_) => problems.push((r.line, format!("EXECVE argc is not a number: {:?}", f.value))),
                }
                continue;
            }
            let Some(rest) = k.strip_prefix('a') else { continue };
            if let Some(idx) = rest.strip_suffix("_len") {
                if let (Ok(i), Ok(len)) = (idx.parse::<u64>(), f.value.parse::<u64>()) {
                    chunks.entry(i).or_default().0 = Some(len);
                }
                continue;
            }
            if let Some((idx, part)) = rest.split_once('[') {
                if let (Ok(i), Some(Ok(p))) = (idx.parse::<u64>(), part.strip_suffix(']').map(str::parse::<u64>)) {
                    let bytes = if f.quoted { Some(f.value.as_bytes().to_vec()) } else { unhex(f.value) };
                    match bytes {
                        Some(b) => {
                            chunks.entry(i).or_default().1.insert(p, b);
                        }
                        None => problems.push((r.line, format!("EXECVE {k} is neither quoted nor hex (garbled)"))),
                    }
                }
                continue;
            }
            if let Ok(i) = rest.parse::<u64>() {
                if !f.quoted && unhex(f.value).is_none() && f.value != "(null)" {
                    problems.push((r.line, format!("EXECVE {k} is neither quoted nor hex (garbled or truncated)")));
                }
                whole.insert(i, text_of(f));
            }
        }
    }
    let argc = argc.or_else(|| {
        problems.push((first_line, "EXECVE record without argc (truncated?)".into()));
        None
    })?;
    let mut args = Vec::new();
    for i in 0..argc.min(1 << 16) {
        if let Some(a) = whole.get(&i) {
            args.push(a.clone());
        } else if let Some((len, parts)) = chunks.get(&i) {
            let mut buf = Vec::new();
            let mut expected = 0u64;
            for (p, bytes) in parts {
                if *p != expected {
                    problems.push((first_line, format!("EXECVE a{i}[{expected}] missing (a lost or truncated record)")));
                }
                expected = p + 1;
                buf.extend_from_slice(bytes);
            }
            if let Some(len) = len {
                if buf.len() as u64 != *len {
                    problems.push((first_line, format!("EXECVE a{i} has {} of its a{i}_len={len} bytes (records missing or truncated)", buf.len())));
                }
            }
            args.push(String::from_utf8_lossy(&buf).into_owned());
        } else {
            problems.push((first_line, format!("EXECVE argc={argc} but a{i} is missing (truncated record?)")));
            break;
        }
    }
    Some((argc, args))
}

/// Build the ECS event for one group of records (EOE already removed).
pub fn build(records: &[Record], host: &HostDefaults<'_>) -> Built {
    let mut problems: Vec<(u64, String)> = Vec::new();
    for r in records {
        for p in &r.problems {
            problems.push((r.line, format!("{} record: {p}", r.rtype)));
        }
    }
    let Some(first) = records.first() else {
        return Built { event: None, problems, kind: Kind::Incomplete };
    };
    let syscall = records.iter().find(|r| r.rtype == "SYSCALL");
    if syscall.is_none() && !tables::is_standalone(&first.rtype) && (records.len() > 1 || tables::is_auxiliary(&first.rtype)) {
        let types: Vec<&str> = records.iter().map(|r| r.rtype.as_str()).collect();
        problems.push((
            first.line,
            format!(
                "event audit({}.{:03}:{}) has {} record(s) ({}) but no SYSCALL record (the log starts or was cut mid-event); not decoded",
                first.ms.div_euclid(1000),
                first.ms.rem_euclid(1000),
                first.serial,
                records.len(),
                types.join(", ")
            ),
        ));
        return Built { event: None, problems, kind: Kind::Incomplete };
    }
    // The record that gives the event its type: the first non-SYSCALL record of a compound event
    // (go-libaudit's "special" record), else the SYSCALL.
    let head = match syscall {
        Some(sc) => records.iter().find(|r| r.rtype != "SYSCALL" && !tables::is_auxiliary(&r.rtype)).unwrap_or(sc),
        None => first,
    };
    let main = syscall.unwrap_or(first);
    let enriched = records.iter().any(Record::has_interps);

    let mut data = Map::new();
    let mut process = Map::new();
    let mut user = Map::new();
    let mut names: Vec<String> = Vec::new();
    let mut result = "unknown".to_string();
    let mut session: Option<String> = None;
    let mut tags: Vec<String> = Vec::new();
    let mut arch_name: Option<String> = None;
    let mut syscall_name: Option<String> = None;

    // Fields of the main record (SYSCALL, or the single user-space record).
    for f in main.fields() {
        let k = f.key;
        let v = if maybe_hex(k) { text_of(f) } else { f.value.to_string() };
        match k {
            "success" => result = if v == "yes" { "success".into() } else { "fail".into() },
            "res" => {
                result = match v.as_str() {
                    "success" | "yes" | "1" => "success".into(),
                    _ => "fail".into(),
                }
            }
            "ses" => {
                if !is_unset(&v) {
                    session = Some(v)
                }
            }
            "pid" => {
                if let Ok(n) = v.parse::<i64>() {
                    process.insert("pid".into(), json!(n));
                }
            }
            "ppid" => {
                if let Ok(n) = v.parse::<i64>() {
                    put(&mut process, "parent.pid", json!(n));
                    process.insert("ppid".into(), json!(n));
                }
            }
            "comm" => {
                process.insert("name".into(), json!(v));
            }
            "exe" => {
                process.insert("executable".into(), json!(v));
            }
            "key" => {
                if v != "(null)" {
                    tags.extend(v.split('\u{1}').filter(|s| !s.is_empty()).map(str::to_string));
                }
            }
            "items" => {}
            "arch" => {
                let name = tables::arch_name(&v).map(str::to_string).unwrap_or(v.clone());
                arch_name = Some(name.clone());
                data.insert("arch".into(), json!(name));
            }
            "syscall" => {
                syscall_name = Some(v.clone());
                data.insert("syscall".into(), json!(v));
            }
            "subj" => {
                // An SELinux context (user:role:domain:level[:category]) becomes user.selinux.*,
                // as auparse splits it; an AppArmor label ("unconfined") stays data.
                let parts: Vec<&str> = v.splitn(5, ':').collect();
                if parts.len() >= 3 {
                    for (name, part) in ["user", "role", "domain", "level", "category"].iter().zip(&parts) {
                        put(&mut user, &format!("selinux.{name}"), json!(part));
                    }
                } else {
                    data.insert("subj".into(), json!(v));
                }
            }
            _ if k.ends_with("uid") || k.ends_with("gid") => {
                if let Some((_, path, ekey)) = ID_KEYS.iter().find(|(a, _, _)| *a == k) {
                    if !is_unset(&v) {
                        let id_path = if path.is_empty() { "id".to_string() } else { format!("{path}.id") };
                        put(&mut user, &id_path, json!(v));
                        if let Some(name) = main.interp(ekey) {
                            if !is_unset(name) && name != "unset" {
                                let name_path = if path.is_empty() { "name".to_string() } else { format!("{path}.name") };
                                put(&mut user, &name_path, json!(name));
                                if !names.iter().any(|n| n == name) && !k.ends_with("gid") {
                                    names.push(name.to_string());
                                }
                            }
                        }
                    }
                } else {
                    data.insert(k.to_string(), json!(v));
                }
            }
            _ => {
                data.insert(k.to_string(), json!(v));
            }
        }
    }
    // The syscall number to its name: from the enriched interpretation, else the static table.
    if let Some(num) = syscall_name.clone() {
        if let Ok(n) = num.parse::<u32>() {
            let name = main
                .interp("SYSCALL")
                .map(str::to_string)
                .or_else(|| arch_name.as_deref().and_then(|a| tables::syscall_name(a, n)).map(str::to_string));
            if let Some(name) = name {
                data.insert("syscall".into(), json!(name));
                syscall_name = Some(name);
            }
        }
    }
    // 32-bit processes on older ABIs reach the socket calls through socketcall(2), its a0 naming
    // the call (linux/net.h). Auditbeat leaves these as "socketcall"; they are categorised here as
    // the call they make, so a 32-bit connect() is a network event too (auditd.data keeps
    // syscall=socketcall).
    let socketcall = |a0: &str| match a0 {
        "2" => Some("bind"),
        "3" => Some("connect"),
        "4" => Some("listen"),
        "5" => Some("accept"),
        "b" => Some("sendto"),
        "c" => Some("recvfrom"),
        "10" => Some("sendmsg"),
        "11" => Some("recvmsg"),
        "12" => Some("accept4"),
        _ => None,
    };
    let sc = syscall.is_some().then(|| match syscall_name.as_deref() {
        Some("socketcall") => main.value("a0").and_then(socketcall).unwrap_or("socketcall").to_string(),
        other => other.unwrap_or_default().to_string(),
    });

    // Auxiliary records.
    let mut paths: Vec<Value> = Vec::new();
    let mut first_path: Option<&Record> = None;
    let mut execve: Vec<&Record> = Vec::new();
    let mut destination: Option<Sockaddr> = None;
    for r in records {
        if std::ptr::eq(r, main) {
            continue;
        }
        match r.rtype.as_str() {
            "EXECVE" => execve.push(r),
            "CWD" => {
                if let Some(f) = r.get("cwd") {
                    process.insert("working_directory".into(), json!(text_of(f)));
                }
            }
            "PROCTITLE" => {
                if let Some(f) = r.get("proctitle") {
                    let raw = if f.quoted { f.value.as_bytes().to_vec() } else { unhex(f.value).unwrap_or_else(|| f.value.as_bytes().to_vec()) };
                    let t: Vec<u8> = raw.iter().map(|&c| if c == 0 { b' ' } else { c }).collect();
                    let t = String::from_utf8_lossy(&t).trim_end().to_string();
                    process.insert("title".into(), json!(t));
                }
            }
            "PATH" => {
                if first_path.is_none() || r.value("item") == Some("0") {
                    first_path = Some(r);
                }
                let mut m = Map::new();
                for f in r.fields() {
                    m.insert(f.key.to_string(), json!(if maybe_hex(f.key) { text_of(f) } else { f.value.to_string() }));
                }
                paths.push(Value::Object(m));
            }
            "SOCKADDR" => match r.get("saddr") {
                Some(f) => match decode_saddr(f.value) {
                    Ok(s) => {
                        put(&mut data, "socket.family", json!(s.family));
                        if let Some(a) = &s.addr {
                            put(&mut data, "socket.addr", json!(a));
                        }
                        if let Some(p) = s.port {
                            put(&mut data, "socket.port", json!(p.to_string()));
                        }
                        if let Some(p) = &s.path {
                            put(&mut data, "socket.path", json!(p));
                        }
                        if s.addr.is_none() && s.path.is_none() {
                            put(&mut data, "socket.saddr", json!(f.value));
                        }
                        destination = Some(s);
                    }
                    Err(e) => problems.push((r.line, format!("SOCKADDR record: {e}"))),
                },
                None => problems.push((r.line, "SOCKADDR record without saddr (truncated?)".into())),
            },
            _ => {
                for f in r.fields() {
                    let v = if maybe_hex(f.key) { text_of(f) } else { f.value.to_string() };
                    data.entry(f.key.to_string()).or_insert(json!(v));
                }
            }
        }
    }

    let mut kind = Kind::Other;
    let norm: Norm = match (&sc, head.rtype.as_str()) {
        (Some(name), "SYSCALL") => tables::syscall_norm(name),
        (Some(name), other) => tables::record_norm(other).unwrap_or_else(|| tables::syscall_norm(name)),
        (None, other) => tables::record_norm(other).unwrap_or(Norm { action: None, category: &[], types: &[], object: None }),
    };

    if !execve.is_empty() {
        if let Some((argc, args)) = execve_args(&execve, &mut problems) {
            data.insert("argc".into(), json!(argc.to_string()));
            if !args.is_empty() {
                process.insert("args_count".into(), json!(args.len()));
                process.insert("command_line".into(), json!(args.join(" ")));
                process.insert("args".into(), json!(args));
            }
        }
    }
    if !process.contains_key("name") {
        if let Some(exe) = process.get("executable").and_then(Value::as_str) {
            let n = basename(exe).to_string();
            process.insert("name".into(), json!(n));
        }
    }

    // Auditbeat drops user.effective when it repeats user (removeRedundantEntity).
    if user.get("effective").and_then(|e| e.get("id")).is_some() && user.get("effective").and_then(|e| e.get("id")) == user.get("id") {
        user.remove("effective");
    }

    let mut ev = Map::new();
    let ts = chrono::DateTime::from_timestamp_millis(main.ms).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
    if let Some(ts) = ts {
        ev.insert("@timestamp".into(), json!(ts));
    }
    let mut event = Map::new();
    event.insert("module".into(), json!("auditd"));
    event.insert("kind".into(), json!("event"));
    if !norm.category.is_empty() {
        event.insert("category".into(), json!(norm.category));
        event.insert("type".into(), json!(norm.types));
    }
    if let Some(a) = norm.action {
        event.insert("action".into(), json!(a));
    }
    event.insert("outcome".into(), json!(if result == "fail" { "failure" } else { result.as_str() }));
    ev.insert("event".into(), Value::Object(event));

    // Network direction and addresses for socket syscalls (go-libaudit addSockaddrRecord).
    if let (Some(s), Some(name)) = (&destination, &sc) {
        let side = match name.as_str() {
            "connect" | "sendto" | "sendmsg" => Some(("destination", "egress")),
            "accept" | "accept4" | "recvfrom" | "recvmsg" => Some(("source", "ingress")),
            _ => None,
        };
        if let Some((side, direction)) = side {
            let mut a = Map::new();
            if let Some(ip) = &s.addr {
                a.insert("ip".into(), json!(ip));
            }
            if let Some(p) = s.port {
                a.insert("port".into(), json!(p));
            }
            if let Some(p) = &s.path {
                a.insert("path".into(), json!(p));
            }
            if !a.is_empty() {
                ev.insert(side.into(), Value::Object(a));
            }
            put(&mut ev, "network.direction", json!(direction));
        }
    }
    if norm.category == ["process"] && norm.types == ["start"] && syscall.is_some() {
        kind = Kind::ProcessStart;
    }
    if sc.as_deref() == Some("connect") {
        kind = Kind::Connect;
    }

    // Summary (actor, object, how).
    let mut summary = Map::new();
    let mut ev_file: Option<Value> = None;
    let id_or_name = |id_key: &str, ekey: &str| -> Option<String> {
        let v = main.value(id_key)?;
        if is_unset(v) {
            return Some("unset".into());
        }
        Some(main.interp(ekey).filter(|n| !n.is_empty()).unwrap_or(v).to_string())
    };
    let primary_actor = id_or_name("auid", "AUID");
    let secondary_actor = if syscall.is_some() { id_or_name("uid", "UID") } else { main.value("acct").map(str::to_string).or_else(|| id_or_name("uid", "UID")) };
    if let Some(p) = primary_actor {
        put(&mut summary, "actor.primary", json!(p));
    }
    if let Some(s) = secondary_actor {
        put(&mut summary, "actor.secondary", json!(s));
    }
    if let Some(obj) = norm.object {
        put(&mut summary, "object.type", json!(obj));
        match obj {
            "file" => {
                if let Some(name) = paths.first().and_then(|p| p.get("name")).and_then(Value::as_str) {
                    put(&mut summary, "object.primary", json!(name));
                }
                // Auditbeat's file.* from the object's PATH record.
                if let Some(p) = first_path {
                    let mut file = Map::new();
                    if let Some(f) = p.get("name") {
                        file.insert("path".into(), json!(text_of(f)));
                    }
                    if let Some(v) = p.value("inode") {
                        file.insert("inode".into(), json!(v));
                    }
                    if let Some(v) = p.value("rdev") {
                        file.insert("device".into(), json!(v));
                    }
                    if let Some(mode) = p.value("mode").and_then(|m| u32::from_str_radix(m, 8).ok()) {
                        file.insert("mode".into(), json!(format!("{:04o}", mode & 0o7777)));
                    }
                    for (key, ekey, id_field, name_field) in [("ouid", "OUID", "uid", "owner"), ("ogid", "OGID", "gid", "group")] {
                        if let Some(v) = p.value(key) {
                            file.insert(id_field.into(), json!(v));
                            if let Some(n) = p.interp(ekey) {
                                file.insert(name_field.into(), json!(n));
                            }
                        }
                    }
                    if !file.is_empty() {
                        ev_file = Some(Value::Object(file));
                    }
                }
            }
            "socket" => {
                if let Some(s) = &destination {
                    if let Some(a) = s.addr.as_ref().or(s.path.as_ref()) {
                        put(&mut summary, "object.primary", json!(a));
                    }
                    if let Some(p) = s.port {
                        put(&mut summary, "object.secondary", json!(p.to_string()));
                    }
                }
            }
            "user-session" => {
                let p = main.get("acct").map(text_of).or_else(|| main.value("terminal").map(str::to_string));
                if let Some(p) = p {
                    put(&mut summary, "object.primary", json!(p));
                }
            }
            _ => {}
        }
    }
    let how = process.get("executable").or_else(|| process.get("name")).cloned();
    if let Some(h) = how {
        summary.insert("how".into(), h);
    }

    let mut auditd = Map::new();
    auditd.insert("message_type".into(), json!(head.rtype.to_ascii_lowercase()));
    auditd.insert("sequence".into(), json!(main.serial));
    auditd.insert("result".into(), json!(result));
    if let Some(s) = session {
        auditd.insert("session".into(), json!(s));
    }
    auditd.insert("data".into(), Value::Object(data));
    auditd.insert("summary".into(), Value::Object(summary));
    if !paths.is_empty() {
        auditd.insert("paths".into(), Value::Array(paths));
    }
    ev.insert("auditd".into(), Value::Object(auditd));
    if !process.is_empty() {
        ev.insert("process".into(), Value::Object(process));
    }
    if !user.is_empty() {
        ev.insert("user".into(), Value::Object(user));
    }
    if let Some(f) = ev_file {
        ev.insert("file".into(), f);
    }
    if enriched && !names.is_empty() {
        put(&mut ev, "related.user", json!(names));
    }
    if !tags.is_empty() {
        ev.insert("tags".into(), json!(tags));
    }
    let mut hostm = Map::new();
    put(&mut hostm, "os.type", json!("linux"));
    match &main.node {
        Some(node) if !node.is_empty() => {
            hostm.insert("name".into(), json!(node));
            hostm.insert("id".into(), json!(node));
        }
        _ => {
            if let Some(n) = host.name {
                hostm.insert("name".into(), json!(n));
            }
            if let Some(i) = host.id {
                hostm.insert("id".into(), json!(i));
            }
        }
    }
    ev.insert("host".into(), Value::Object(hostm));
    put(&mut ev, "service.type", json!("auditd"));
    put(&mut ev, "ecs.version", json!("8.0.0"));
    Built { event: Some(Value::Object(ev)), problems, kind }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Field;

    #[test]
    fn sockaddrs() {
        type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<u16>, Option<&'a str>);
        let cases: &[Case] = &[
            ("02000050A9FEA9FE0000000000000000", "ipv4", Some("169.254.169.254"), Some(80), None),
            ("0A00005000000000FD000EC200000000000000000000025400000000", "ipv6", Some("fd00:ec2::254"), Some(80), None),
            ("01002F72756E2F73797374656D642F6E6F74696679", "unix", None, None, Some("/run/systemd/notify")),
            ("0100006162737472616374", "unix", None, None, Some("@abstract")),
            ("1000", "netlink", None, None, None),
        ];
        for (hex, fam, addr, port, path) in cases {
            match decode_saddr(hex) {
                Ok(s) => {
                    assert_eq!(s.family, *fam, "{hex}");
                    assert_eq!((s.addr.as_deref(), s.port, s.path.as_deref()), (*addr, *port, *path), "{hex}");
                }
                Err(e) => panic!("{hex}: {e}"),
            }
        }
        assert!(decode_saddr("0200").is_err_and(|e| e.contains("truncated")));
        assert!(decode_saddr("zz").is_err());
    }

    #[test]
    fn field_helpers() {
        let f = Field { key: "a", value: "x", quoted: true };
        assert_eq!(text_of(f), "x");
        assert_eq!(basename("/usr/bin/curl"), "curl");
    }
}
