//! The lab on the real kernel (root): namespaces, isolation, name resolution inside the client
//! namespace, `enter_netns`, processes stopped by pid, and teardown on drop, after a panic and with
//! `keep`. Needs root and `ip` (scripts/test-prereqs.sh); fails naming them, or prints SKIPPED with
//! IMDSGUARD_ALLOW_SKIP=1.

use imdsguard_lab::{netns_path, Lab};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn prerequisite(test: &str) -> bool {
    match imdsguard_lab::preflight() {
        Ok(()) => true,
        Err(e) => {
            let reason = format!("missing prerequisite: {e}");
            if std::env::var("IMDSGUARD_ALLOW_SKIP").as_deref() == Ok("1") {
                eprintln!("SKIPPED {test}: {reason}");
                return false;
            }
            panic!("{test}: {reason}");
        }
    }
}

fn gone(ns: &str) -> bool {
    !netns_path(ns).exists() && !Path::new("/etc/netns").join(ns).exists()
}

#[test]
fn a_lab_is_isolated_resolves_gcp_and_is_removed_on_drop() {
    let test = "a_lab_is_isolated_resolves_gcp_and_is_removed_on_drop";
    if !prerequisite(test) {
        return;
    }
    let mut lab = Lab::create("t").expect("lab");
    let (m, c) = (lab.mock_ns.clone(), lab.client_ns.clone());
    assert!(netns_path(&m).exists() && netns_path(&c).exists());
    // Two labs never share names.
    let other = Lab::create("t").expect("second lab");
    assert_ne!(other.client_ns, c);
    drop(other);

    // Inside the client namespace: metadata.google.internal is the mock; no default route.
    let out = lab.client("getent").args(["hosts", "metadata.google.internal"]).output().expect("getent");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("169.254.169.254"), "{out:?}");
    let out = lab.client("ip").args(["route", "show", "default"]).output().expect("ip route");
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    // Routes: the metadata addresses through the veth; anything else unreachable.
    let route = |addr: &str| lab.client("ip").args(["route", "get", addr]).output().expect("ip route get");
    for addr in ["169.254.169.254", "169.254.169.253", "fd00:ec2::254"] {
        let r = route(addr);
        assert!(r.status.success() && String::from_utf8_lossy(&r.stdout).contains(&lab.client_if), "{addr}: {r:?}");
    }
    for addr in ["192.0.2.1", "8.8.8.8", "2001:db8::1"] {
        let r = route(addr);
        assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("unreachable"), "{addr}: {r:?}");
    }
    // enter_netns moves only the calling thread: its view of the network is the client's.
    let (ns, veth) = (c.clone(), lab.client_if.clone());
    let seen = std::thread::spawn(move || {
        imdsguard_lab::enter_netns(&ns).expect("setns");
        std::fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_default()
    })
    .join()
    .expect("thread");
    assert!(seen.contains(&veth), "{seen}");
    assert!(!std::fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_default().contains(&veth), "the test thread did not move");
    assert!(imdsguard_lab::enter_netns("imdsguard-no-such-namespace").is_err());

    // A long-running child is stopped by pid.
    let mut sleeper = lab.client("sleep");
    sleeper.arg("30");
    let pid = lab.spawn("sleep", sleeper).expect("spawn");
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let st = lab.stop(pid, Duration::from_secs(5)).expect("stopped by SIGTERM");
    assert!(!st.success());
    // One left running is stopped by the drop.
    let mut sleeper = lab.client("sleep");
    sleeper.arg("30");
    let pid = lab.spawn("sleep", sleeper).expect("spawn");
    drop(lab);
    assert!(gone(&m) && gone(&c), "namespaces removed");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    assert!(status.is_empty() || status.contains("State:\tZ"), "child stopped: {status}");
}

#[test]
fn a_panic_tears_the_lab_down_and_keep_leaves_it() {
    let test = "a_panic_tears_the_lab_down_and_keep_leaves_it";
    if !prerequisite(test) {
        return;
    }
    let names = std::sync::Arc::new(std::sync::Mutex::new((String::new(), String::new())));
    let n2 = names.clone();
    let r = std::panic::catch_unwind(move || {
        let lab = Lab::create("p").expect("lab");
        if let Ok(mut n) = n2.lock() {
            *n = (lab.mock_ns.clone(), lab.client_ns.clone());
        }
        panic!("a failing simulation");
    });
    assert!(r.is_err());
    let (m, c) = names.lock().map(|n| n.clone()).unwrap_or_default();
    assert!(!m.is_empty() && gone(&m) && gone(&c), "torn down after the panic: {m} {c}");

    let mut lab = Lab::create("k").expect("lab");
    let cmds = lab.keep();
    let (m, c) = (lab.mock_ns.clone(), lab.client_ns.clone());
    drop(lab);
    assert!(netns_path(&m).exists() && netns_path(&c).exists(), "kept");
    assert!(cmds.iter().any(|x| x == &format!("ip netns del {c}")), "{cmds:?}");
    for ns in [&m, &c] {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
    let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&c));
    assert!(gone(&m) && gone(&c));
}
