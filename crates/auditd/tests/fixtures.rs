//! The decoder over the audit logs in tests/data (written by tests/data/make_fixtures.py), each
//! event checked field by field against what Auditbeat's auditd module writes.

use imdsguard_auditd::{decode_all, DecoderConfig, Decoded, Problem};
use serde_json::{json, Value};

fn data(name: &str) -> String {
    let p = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {p}: {e}"))
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for p in path.split('.') {
        cur = match cur.get(p) {
            Some(x) => x,
            None => return &Value::Null,
        };
    }
    cur
}

fn check(ev: &Value, expected: &[(&str, Value)]) {
    for (path, want) in expected {
        assert_eq!(get(ev, path), want, "{path} in {ev:#}");
    }
}

fn decode(name: &str, cfg: DecoderConfig) -> (Vec<Decoded>, Vec<Problem>) {
    let (evs, problems, _) = decode_all(&data(name), cfg);
    (evs, problems)
}

fn by_seq(evs: &[Decoded], seq: u64) -> &Value {
    &evs.iter().find(|e| get(&e.event, "auditd.sequence") == &json!(seq)).unwrap_or_else(|| panic!("no event with sequence {seq}")).event
}

fn host_cfg() -> DecoderConfig {
    DecoderConfig { host_name: Some("web-9".into()), host_id: Some("i-0abc".into()), ..DecoderConfig::default() }
}

const CREDS: &str = "http://169.254.169.254/latest/meta-data/iam/security-credentials/";

#[test]
fn curl_to_the_metadata_service_execve_and_connect() {
    let (evs, problems) = decode("curl_imds.log", host_cfg());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(evs.len(), 6, "2 PAM records, 2 execve, 2 connect");
    let exec = by_seq(&evs, 2201);
    check(
        exec,
        &[
            ("@timestamp", json!("2026-05-01T10:00:00.120Z")),
            ("event.module", json!("auditd")),
            ("event.kind", json!("event")),
            ("event.category", json!(["process"])),
            ("event.type", json!(["start"])),
            ("event.action", json!("executed")),
            ("event.outcome", json!("success")),
            ("auditd.message_type", json!("syscall")),
            ("auditd.result", json!("success")),
            ("auditd.session", json!("3")),
            ("auditd.data.syscall", json!("execve")),
            ("auditd.data.arch", json!("x86_64")),
            ("auditd.data.argc", json!("5")),
            ("auditd.data.exit", json!("0")),
            ("auditd.data.tty", json!("pts0")),
            ("auditd.summary.actor.primary", json!("1000")),
            ("auditd.summary.actor.secondary", json!("1000")),
            ("auditd.summary.how", json!("/usr/bin/curl")),
            ("auditd.summary.object.type", json!("file")),
            ("auditd.summary.object.primary", json!("/usr/bin/curl")),
            ("process.pid", json!(4188)),
            ("process.ppid", json!(4120)),
            ("process.parent.pid", json!(4120)),
            ("process.executable", json!("/usr/bin/curl")),
            ("process.name", json!("curl")),
            // a3 has a space: the kernel wrote it hex-encoded.
            ("process.args", json!(["curl", "-s", "-H", "User-Agent: probe", CREDS])),
            ("process.args_count", json!(5)),
            ("process.command_line", json!(format!("curl -s -H User-Agent: probe {CREDS}"))),
            ("process.title", json!(format!("curl -s -H User-Agent: probe {CREDS}"))),
            ("process.working_directory", json!("/home/ubuntu")),
            // Plain log: ids stay numeric, no names are guessed.
            ("user.id", json!("1000")),
            ("user.name", Value::Null),
            ("user.audit.id", json!("1000")),
            ("user.group.id", json!("1000")),
            ("user.effective", Value::Null),
            ("related", Value::Null),
            ("host.os.type", json!("linux")),
            ("host.name", json!("web-9")),
            ("host.id", json!("i-0abc")),
            ("tags", json!(["exec"])),
        ],
    );
    assert_eq!(get(exec, "auditd.paths").as_array().map(Vec::len), Some(2));
    check(
        exec,
        &[
            ("file.path", json!("/usr/bin/curl")),
            ("file.mode", json!("0755")),
            ("file.uid", json!("0")),
            ("file.gid", json!("0")),
            ("file.inode", json!("1836")),
            ("file.device", json!("00:00")),
            ("file.owner", Value::Null),
            // AppArmor label: not an SELinux context.
            ("auditd.data.subj", json!("unconfined")),
            ("user.selinux", Value::Null),
        ],
    );
    let conn = by_seq(&evs, 2202);
    check(
        conn,
        &[
            ("@timestamp", json!("2026-05-01T10:00:00.124Z")),
            ("event.category", json!(["network"])),
            ("event.type", json!(["connection", "start"])),
            ("event.action", json!("connected-to")),
            // EINPROGRESS (curl's non-blocking connect): the syscall "failed", the attempt is there.
            ("auditd.result", json!("fail")),
            ("event.outcome", json!("failure")),
            ("auditd.data.exit", json!("-115")),
            ("auditd.data.syscall", json!("connect")),
            ("auditd.data.socket.family", json!("ipv4")),
            ("auditd.data.socket.addr", json!("169.254.169.254")),
            ("auditd.data.socket.port", json!("80")),
            ("auditd.summary.object.type", json!("socket")),
            ("auditd.summary.object.primary", json!("169.254.169.254")),
            ("auditd.summary.object.secondary", json!("80")),
            ("destination.ip", json!("169.254.169.254")),
            ("destination.port", json!(80)),
            ("network.direction", json!("egress")),
            ("process.pid", json!(4188)),
            ("process.name", json!("curl")),
            ("process.executable", json!("/usr/bin/curl")),
            ("process.title", json!(format!("curl -s -H User-Agent: probe {CREDS}"))),
            ("process.args", Value::Null),
            ("host.id", json!("i-0abc")),
        ],
    );
    let benign = by_seq(&evs, 2211);
    check(benign, &[("destination.ip", json!("93.184.215.14")), ("destination.port", json!(443))]);
    let login = by_seq(&evs, 2190);
    check(
        login,
        &[
            ("auditd.message_type", json!("user_start")),
            ("event.category", json!(["session"])),
            ("event.type", json!(["start"])),
            ("event.action", json!("started-session")),
            ("auditd.result", json!("success")),
            ("auditd.data.op", json!("PAM:session_open")),
            ("auditd.data.terminal", json!("ssh")),
            ("auditd.data.addr", json!("198.51.100.7")),
            ("auditd.summary.object.primary", json!("ubuntu")),
            ("process.executable", json!("/usr/sbin/sshd")),
            ("process.pid", json!(4101)),
            ("user.id", json!("0")),
            ("user.audit.id", json!("1000")),
        ],
    );
    check(by_seq(&evs, 2191), &[("auditd.message_type", json!("cred_acq")), ("event.action", json!("acquired-credentials"))]);
}

#[test]
fn enriched_log_resolves_names_and_node_sets_the_host() {
    let (evs, problems) = decode("curl_imds_enriched.log", host_cfg());
    assert!(problems.is_empty(), "{problems:?}");
    let exec = by_seq(&evs, 2201);
    check(
        exec,
        &[
            ("user.id", json!("1000")),
            ("user.name", json!("ubuntu")),
            ("user.audit.name", json!("ubuntu")),
            ("user.group.name", json!("ubuntu")),
            ("auditd.summary.actor.primary", json!("ubuntu")),
            ("related.user", json!(["ubuntu"])),
            // node= wins over the configured host.
            ("host.name", json!("web-1")),
            ("host.id", json!("web-1")),
            ("process.args_count", json!(5)),
        ],
    );
    check(by_seq(&evs, 2190), &[("user.name", json!("root")), ("user.audit.name", json!("ubuntu"))]);
    check(exec, &[("file.owner", json!("root")), ("file.group", json!("root"))]);
    check(by_seq(&evs, 2202), &[("destination.ip", json!("169.254.169.254")), ("auditd.data.syscall", json!("connect"))]);
}

#[test]
fn long_command_line_split_across_execve_records() {
    let (evs, problems) = decode("long_cmdline.log", DecoderConfig::default());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(evs.len(), 1);
    let script = data("long_cmdline.script");
    assert_eq!(script.len(), 10_000);
    let ev = &evs[0].event;
    check(
        ev,
        &[
            ("process.args", json!(["python3", "-c", script])),
            ("process.args_count", json!(3)),
            ("process.command_line", json!(format!("python3 -c {script}"))),
            ("process.name", json!("python3")),
            ("process.executable", json!("/usr/bin/python3.12")),
            ("process.working_directory", json!("/tmp")),
            ("auditd.data.argc", json!("3")),
            ("host.name", Value::Null),
        ],
    );
    assert!(get(ev, "process.command_line").as_str().is_some_and(|c| c.contains("169.254.169.254/latest/api/token")));
}

#[test]
fn interleaved_and_out_of_order_records() {
    let (evs, problems) = decode("interleaved.log", DecoderConfig::default());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(evs.len(), 3);
    check(
        by_seq(&evs, 2400),
        &[
            ("process.args", json!(["wget", "-qO-", "http://169.254.169.254/latest/dynamic/instance-identity/document"])),
            ("process.pid", json!(4401)),
            ("process.working_directory", json!("/root")),
            ("auditd.summary.object.primary", json!("/usr/bin/wget")),
        ],
    );
    check(
        by_seq(&evs, 2401),
        &[
            ("process.pid", json!(4402)),
            ("process.name", json!("python3")),
            ("process.title", json!("python3 agent.py")),
            ("destination.ip", json!("169.254.169.254")),
            ("destination.port", json!(80)),
            ("process.args", Value::Null),
        ],
    );
    // The PROCTITLE came first and the EXECVE before its SYSCALL: still one execve event.
    check(
        by_seq(&evs, 2402),
        &[("auditd.message_type", json!("syscall")), ("process.args", json!(["id"])), ("event.type", json!(["start"])), ("process.title", json!("id"))],
    );
    // Each event starts at the line of its first record.
    assert_eq!(evs.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 1, 12]);
}

#[test]
fn ipv6_connect() {
    let (evs, problems) = decode("ipv6.log", DecoderConfig::default());
    assert!(problems.is_empty(), "{problems:?}");
    check(
        &evs[0].event,
        &[
            ("event.category", json!(["network"])),
            ("event.type", json!(["connection", "start"])),
            ("destination.ip", json!("fd00:ec2::254")),
            ("destination.port", json!(80)),
            ("auditd.data.socket.family", json!("ipv6")),
            ("auditd.data.a2", json!("28")),
            ("process.title", json!("curl -6 http://[fd00:ec2::254]/latest/meta-data/")),
        ],
    );
}

#[test]
fn failed_connect_and_unix_socket() {
    let (evs, problems) = decode("failed_connect.log", DecoderConfig::default());
    assert!(problems.is_empty(), "{problems:?}");
    check(
        by_seq(&evs, 2600),
        &[
            ("event.category", json!(["network"])),
            ("event.type", json!(["connection", "start"])),
            ("auditd.result", json!("fail")),
            ("event.outcome", json!("failure")),
            ("auditd.data.exit", json!("-111")),
            ("destination.ip", json!("169.254.169.254")),
            ("destination.port", json!(8080)),
        ],
    );
    check(
        by_seq(&evs, 2601),
        &[
            ("auditd.result", json!("success")),
            ("auditd.data.socket.family", json!("unix")),
            ("auditd.data.socket.path", json!("/run/systemd/notify")),
            ("destination.path", json!("/run/systemd/notify")),
            ("destination.ip", Value::Null),
            ("process.name", json!("systemd-logind")),
        ],
    );
}

#[test]
fn truncated_and_garbled_lines_are_counted_and_reported() {
    let (evs, problems, stats) = decode_all(&data("damaged.log"), DecoderConfig::default());
    let got: Vec<(u64, &str)> = problems.iter().map(|p| (p.line, p.reason.as_str())).collect();
    let want: &[(u64, &str)] = &[
        (1, "SYSCALL record: audit stamp not closed (truncated line)"),
        (2, "not an audit record: no type= field"),
        (3, "SYSCALL record without an audit(TIME:SERIAL) stamp (truncated or garbled)"),
        (5, "EXECVE record: unterminated quoted value of a1 (truncated line)"),
        (11, "event audit(1777629670.200:2701) has 1 record(s) (SOCKADDR) but no SYSCALL record (the log starts or was cut mid-event); not decoded"),
    ];
    assert_eq!(got, want);
    assert_eq!((stats.bad_lines, stats.damaged, stats.incomplete_events, stats.problems), (3, 1, 1, 5));
    // The good event between the damaged lines is decoded, with what its truncated EXECVE kept.
    assert_eq!(evs.len(), 1);
    check(
        &evs[0].event,
        &[
            ("process.args", json!(["curl", "http://169.254.169.2"])),
            ("process.title", json!(format!("curl {CREDS}"))),
            ("event.type", json!(["start"])),
        ],
    );
}

#[test]
fn syslog_forwarded_and_kernel_forms() {
    let text = data("curl_imds.log");
    // rsyslog/audisp forwarding puts a syslog header before node=/type=.
    let forwarded: String = text
        .lines()
        .map(|l| if l.is_empty() { String::new() } else { format!("May  1 10:00:00 web-3 audisp-syslog: node=web-3 {l}\n") })
        .collect();
    let (evs, problems, _) = decode_all(&forwarded, DecoderConfig::default());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(evs.len(), 6);
    check(by_seq(&evs, 2202), &[("host.name", json!("web-3")), ("destination.ip", json!("169.254.169.254"))]);
    // The kernel's own form (dmesg, journald): numeric type, no msg=.
    let kernel = "audit: type=1300 audit(1777629600.124:7): arch=c000003e syscall=42 success=no exit=-115 a0=3 a1=7ffd a2=10 a3=0 items=0 ppid=1 pid=9 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=\"curl\" exe=\"/usr/bin/curl\" key=(null)\n\
audit: type=1306 audit(1777629600.124:7): saddr=02000050A9FEA9FE0000000000000000\n\
audit: type=1320 audit(1777629600.124:7): \n";
    let (evs, problems, _) = decode_all(kernel, DecoderConfig::default());
    assert!(problems.is_empty(), "{problems:?}");
    check(
        &evs[0].event,
        &[
            ("destination.ip", json!("169.254.169.254")),
            ("auditd.summary.actor.primary", json!("unset")),
            ("user.audit", Value::Null),
            ("auditd.session", Value::Null),
            ("tags", Value::Null),
        ],
    );
}

#[test]
fn i386_socketcall_connect_is_a_network_event() {
    // socketcall(SYS_CONNECT=3): a0 is the call number (hex), a1 points at its arguments.
    let log = "type=SYSCALL msg=audit(1777629600.500:9): arch=40000003 syscall=102 success=no exit=-115 a0=3 a1=ffd0c2a0 a2=0 a3=0 items=0 ppid=1 pid=77 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm=\"curl\" exe=\"/usr/bin/curl\" key=(null)\n\
type=SOCKADDR msg=audit(1777629600.500:9): saddr=02000050A9FEA9FE0000000000000000\n\
type=EOE msg=audit(1777629600.500:9):\n";
    let (evs, problems, _) = decode_all(log, DecoderConfig::default());
    assert!(problems.is_empty(), "{problems:?}");
    check(
        &evs[0].event,
        &[
            ("auditd.data.arch", json!("i386")),
            ("auditd.data.syscall", json!("socketcall")),
            ("event.category", json!(["network"])),
            ("event.action", json!("connected-to")),
            ("destination.ip", json!("169.254.169.254")),
        ],
    );
}

#[test]
fn selinux_subject_is_split() {
    let log = "type=SYSCALL msg=audit(1777629800.512:5150): arch=c000003e syscall=46 success=yes exit=10 a0=9 a1=7ffc3b1e5a90 a2=4000 a3=0 items=1 ppid=1 pid=612 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=\"systemd-logind\" exe=\"/usr/lib/systemd/systemd-logind\" subj=system_u:system_r:systemd_logind_t:s0 key=(null)\n\
type=SOCKADDR msg=audit(1777629800.512:5150): saddr=01002F72756E2F73797374656D642F6E6F74696679\n\
type=CWD msg=audit(1777629800.512:5150):  cwd=\"/\"\n\
type=PATH msg=audit(1777629800.512:5150): item=0 name=\"/run/systemd/notify\" inode=7731 dev=00:19 mode=0140777 ouid=0 ogid=0 rdev=00:00 obj=system_u:object_r:init_var_run_t:s0 objtype=NORMAL\n";
    let (evs, problems, _) = decode_all(log, DecoderConfig::default());
    assert!(problems.is_empty(), "{problems:?}");
    check(
        &evs[0].event,
        &[
            ("user.selinux.user", json!("system_u")),
            ("user.selinux.role", json!("system_r")),
            ("user.selinux.domain", json!("systemd_logind_t")),
            ("user.selinux.level", json!("s0")),
            ("auditd.data.syscall", json!("sendmsg")),
            ("event.action", json!("sent-to")),
            ("destination.path", json!("/run/systemd/notify")),
            ("network.direction", json!("egress")),
            ("process.working_directory", json!("/")),
            ("auditd.summary.actor.primary", json!("unset")),
            ("auditd.summary.actor.secondary", json!("0")),
        ],
    );
}

#[test]
fn ausearch_output_with_separators() {
    // `ausearch -k imds` (no -i) prints each event's raw records after a `----` and a `time->`
    // line; `ausearch --raw` prints the records only. Both decode to the same events.
    let raw = data("curl_imds.log");
    let mut plain_ausearch = String::new();
    for line in raw.lines().filter(|l| l.contains(":2202)")) {
        if line.starts_with("type=SYSCALL") {
            plain_ausearch.push_str("----\ntime->Fri May  1 10:00:00 2026\n");
        }
        plain_ausearch.push_str(line);
        plain_ausearch.push('\n');
    }
    let (evs, problems, stats) = decode_all(&plain_ausearch, DecoderConfig::default());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(stats.ignored_lines, 3, "----, time->, and the final empty line");
    assert_eq!(evs.len(), 1);
    check(&evs[0].event, &[("destination.ip", json!("169.254.169.254")), ("auditd.sequence", json!(2202))]);
}
