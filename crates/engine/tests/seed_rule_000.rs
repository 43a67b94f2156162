//! The seed rule "Suspicious Instance Metadata Service (IMDS) API Request" (built-in pack,
//! rule_id ad02da2f-443d-454c-a12e-d9e6c65831ff): firing and not firing on every branch of its query.

use imdsguard_ecs::FieldTable;
use imdsguard_engine::{compile_rule, CompiledRule};
use serde_json::{json, Value};
use std::sync::Arc;

mod common;
use common::with;

const RULE_ID: &str = "ad02da2f-443d-454c-a12e-d9e6c65831ff";

fn rule() -> CompiledRule {
    let set = imdsguard_rules::builtin();
    assert!(set.errors.is_empty(), "built-in pack errors: {:?}", set.errors);
    let r = set.rules.into_iter().find(|r| r.rule_id == RULE_ID).expect("seed rule in the built-in pack");
    compile_rule(Arc::new(r), &Arc::new(FieldTable::ecs()), 0).expect("seed rule compiles")
}

/// The base attack: curl on Linux to the AWS metadata address on port 80.
fn base() -> Value {
    json!({
        "@timestamp": "2026-05-01T09:14:03.120Z",
        "event": {"category": ["network"], "type": ["start"], "ingested": "2026-05-01T09:14:05.000Z"},
        "host": {"id": "h1", "name": "web-1", "os": {"type": "linux"}},
        "process": {"name": "curl", "executable": "/usr/bin/curl", "pid": 42},
        "destination": {"ip": "169.254.169.254", "port": 80},
    })
}


fn check(cases: &[(&str, Value, bool)]) {
    let r = rule();
    let mut failures = Vec::new();
    for (name, doc, want) in cases {
        let got = r.matcher.matches(doc);
        if got != *want {
            failures.push(format!("{name}: expected {}, got {} for {doc}", want, got));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn base_attack_matches_and_metadata_is_published() {
    let r = rule();
    assert!(r.matcher.matches(&base()));
    let rule = &r.rule;
    assert_eq!(rule.name, "Suspicious Instance Metadata Service (IMDS) API Request");
    assert_eq!(rule.rule_type.as_str(), "new_terms");
    assert_eq!(rule.severity.as_str(), "medium");
    assert_eq!(rule.risk_score, 47);
    assert_eq!(rule.timestamp_override.as_deref(), Some("event.ingested"));
    assert_eq!(rule.from, "now-9m");
    let nt = rule.new_terms.as_ref().expect("new_terms");
    assert_eq!(nt.fields, vec!["host.id", "process.executable"]);
    assert_eq!(nt.history_window_start, "now-7d");
}

#[test]
fn category_os_destination_and_port_branches() {
    let b = base;
    check(&[
        ("category as string", with(b(), "event.category", json!("network")), true),
        ("category process", with(b(), "event.category", json!(["process"])), false),
        ("category array with network", with(b(), "event.category", json!(["process", "network"])), true),
        ("category missing", with(b(), "event.category", Value::Null), false),
        ("category wrong case", with(b(), "event.category", json!("Network")), false),
        ("os windows", with(b(), "host.os.type", json!("windows")), true),
        ("os macos", with(b(), "host.os.type", json!("macos")), true),
        ("os freebsd", with(b(), "host.os.type", json!("freebsd")), false),
        ("os missing", with(b(), "host.os.type", Value::Null), false),
        ("ECS task metadata address", with(b(), "destination.ip", json!("169.254.170.2")), false),
        ("IPv4-mapped IPv6 spelling", with(b(), "destination.ip", json!("::ffff:169.254.169.254")), true),
        ("IPv4-mapped IPv6 hex", with(b(), "destination.ip", json!("::FFFF:A9FE:A9FE")), true),
        (
            "destination.address only",
            with(with(b(), "destination.ip", Value::Null), "destination.address", json!("169.254.169.254")),
            true,
        ),
        (
            "destination.address other",
            with(with(b(), "destination.ip", Value::Null), "destination.address", json!("metadata.google.internal")),
            false,
        ),
        ("destination missing", with(b(), "destination", Value::Null), false),
        ("destination ip array", with(b(), "destination.ip", json!(["10.0.0.1", "169.254.169.254"])), true),
        ("port as string", with(b(), "destination.port", json!("80")), true),
        ("port as float", with(b(), "destination.port", json!(80.0)), true),
        ("port 8080", with(b(), "destination.port", json!(8080)), false),
        ("port 443", with(b(), "destination.port", json!(443)), false),
        ("port missing", with(b(), "destination.port", Value::Null), false),
    ]);
}

#[test]
fn every_process_name_in_the_include_list() {
    let names = [
        "bash", "dash", "sh", "tcsh", "tclsh", "wish", "csh", "zsh", "ksh", "fish", "mksh", "busybox", "ld.so",
        "ld-linux-x86-64.so.2", "bun", "bun.exe", "node", "node.exe", "nodejs", "deno", "deno.exe", "java", "java.exe",
        "env", "timeout", "setsid", "flock", "curl", "curl.exe", "wget", "wget.exe", "powershell.exe", "cmd.exe",
        "pwsh.exe", "wscript.exe", "cscript.exe", "regsvr32.exe", "mshta.exe", "rundll32.exe", "vbc.exe", "msbuild.exe",
        "wmic.exe", "cmstp.exe", "RegAsm.exe", "installutil.exe", "RegSvcs.exe", "msxsl.exe", "xwizard.exe", "csc.exe",
        "pwsh", "python", "python3.11", "perl", "perl5.36", "ruby", "ruby3.2", "lua", "lua5.4", "php", "php-fpm8.2",
        "terminal", "osascript", "nohup", ".hidden", "javaw", "javaw.exe",
    ];
    let mut cases: Vec<(String, Value, bool)> = names
        .iter()
        .map(|n| (format!("name {n}"), with(with(base(), "process.name", json!(n)), "process.executable", json!("/usr/bin/x")), true))
        .collect();
    for n in ["nginx", "Curl", "CURL.EXE", "amazon-ssm-agent", "Python3", "xpython", "hidden.", "javaws"] {
        cases.push((format!("name {n}"), with(with(base(), "process.name", json!(n)), "process.executable", json!("/usr/bin/x")), false));
    }
    let cases: Vec<(&str, Value, bool)> = cases.iter().map(|(n, d, w)| (n.as_str(), d.clone(), *w)).collect();
    check(&cases);
}

#[test]
fn every_executable_pattern_in_the_include_list() {
    let yes = [
        "./payload", "/boot/x", "/dev/shm/x", "/run/x", "/var/run/x", "/tmp/x", "/tmp/.cache/python3", "/var/tmp/x",
        "/var/www/html/shell", "/home/alice/x", "/home/alice/bin/x", "/root/x", "/private/var/tmp/x", "/var/folders/x",
        "/Users/Shared/x", "/var/root/x",
    ];
    let no = ["/usr/sbin/nginx", "/home/alice", "/opt/app/bin/x", "tmp/x", "/TMP/x", "C:\\Windows\\x.exe", "/usr/tmp/x"];
    let mut cases = Vec::new();
    for e in yes {
        cases.push((format!("exe {e}"), with(with(base(), "process.name", json!("nginx")), "process.executable", json!(e)), true));
    }
    for e in no {
        cases.push((format!("exe {e}"), with(with(base(), "process.name", json!("nginx")), "process.executable", json!(e)), false));
    }
    let cases: Vec<(&str, Value, bool)> = cases.iter().map(|(n, d, w)| (n.as_str(), d.clone(), *w)).collect();
    check(&cases);
}

#[test]
fn every_exclusion() {
    let node = |os: &str, exe: &str| with(with(with(base(), "host.os.type", json!(os)), "process.name", json!("node")), "process.executable", json!(exe));
    let helper = |name: &str, trusted: bool, id: &str| {
        let d = with(with(base(), "process.name", json!(name)), "process.executable", json!(format!("/Users/Shared/App/{name}")));
        let d = with(d, "process.code_signature.trusted", json!(trusted));
        with(d, "process.code_signature.signing_id", json!(id))
    };
    check(&[
        ("node on macos", node("macos", "/usr/local/bin/node"), false),
        ("node on linux", node("linux", "/usr/local/bin/node"), true),
        ("node on windows", node("windows", "C:\\node.exe"), true),
        ("vscode server node", node("linux", "/vscode/vscode-server/bin/linux-x64/0f0d87fa9e96/node"), false),
        ("vscode server node, other layout", node("linux", "/home/u/.vscode-server/bin/0f0d/node"), true),
        ("vscode server path for another binary", with(node("linux", "/vscode/vscode-server/bin/linux-x64/0f0d/node2"), "process.name", json!("curl")), true),
        ("Cursor helper signed by Electron", helper("Cursor Helper (Plugin)", true, "com.github.Electron.helper"), false),
        ("Cursor helper untrusted", helper("Cursor Helper (Plugin)", false, "com.github.Electron.helper"), true),
        ("Cursor helper other signer", helper("Cursor Helper (Plugin)", true, "com.microsoft.VSCode.helper"), true),
        ("Code helper signed by VSCode", helper("Code Helper (Plugin)", true, "com.microsoft.VSCode.helper"), false),
        ("Code helper signed by Electron", helper("Code Helper (Plugin)", true, "com.github.Electron.helper"), false),
        ("Code helper trusted as string", with(helper("Code Helper (Plugin)", true, "com.microsoft.VSCode.helper"), "process.code_signature.trusted", json!("true")), false),
        ("Code helper untrusted", helper("Code Helper (Plugin)", false, "com.microsoft.VSCode.helper"), true),
        ("Code helper unsigned", with(helper("Code Helper (Plugin)", true, "x"), "process.code_signature", Value::Null), true),
    ]);
}

#[test]
fn document_shapes_nested_dotted_mixed_and_arrays() {
    let dotted = json!({
        "@timestamp": "2026-05-01T09:14:03.120Z",
        "event.category": "network",
        "host.os.type": "linux",
        "host.id": "h1",
        "process.name": "curl",
        "process.executable": "/usr/bin/curl",
        "destination.ip": "169.254.169.254",
        "destination.port": 80,
    });
    let mixed = json!({
        "event": {"category": "network"},
        "host.os": {"type": "linux"},
        "process": {"name": "wget", "code_signature.trusted": true},
        "destination": {"ip": "169.254.169.254", "port": "80"},
    });
    let arrays = json!({
        "event": {"category": ["network"]},
        "host": {"os": {"type": ["linux"]}},
        "process": [{"name": "sshd"}, {"name": "curl"}],
        "destination": {"ip": ["169.254.169.254"], "port": [80]},
    });
    check(&[
        ("literal dotted keys", dotted.clone(), true),
        ("dotted keys, other port", with(dotted, "x", json!(1)).as_object().map(|o| {
            let mut o = o.clone();
            o.insert("destination.port".into(), json!(22));
            Value::Object(o)
        }).unwrap_or_default(), false),
        ("mixed nested and dotted", mixed, true),
        ("arrays of objects and values", arrays, true),
    ]);
}
