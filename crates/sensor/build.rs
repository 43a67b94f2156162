//! Compile `bpf/connect.bpf.c` with clang (`-target bpf`) into `$OUT_DIR/connect.bpf.o`, embedded
//! by `src/ebpf.rs`, when the `ebpf` feature is on (the default) and a clang is found: `$CLANG`
//! (or `$IMDSGUARD_CLANG`), else `clang`, `clang-19` ... `clang-14` on the PATH. The C program
//! includes no headers, so clang is the only build requirement.
//!
//! Without a clang the crate still builds (the README's quick start needs only Rust and gcc): the
//! object is left out, a cargo warning says so, and the sensor's status line names the reason
//! when it falls back to `/proc`. With `IMDSGUARD_REQUIRE_EBPF=1` (scripts/test.sh, CI) a missing
//! clang or a failed compile is a build error instead.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=bpf/connect.bpf.c");
    for v in ["CLANG", "IMDSGUARD_CLANG", "IMDSGUARD_REQUIRE_EBPF", "PATH"] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    println!("cargo::rustc-check-cfg=cfg(imdsguard_bpf_object)");
    if std::env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return;
    }
    let require = std::env::var("IMDSGUARD_REQUIRE_EBPF").is_ok_and(|v| v == "1");
    let give_up = |why: String| {
        if require {
            panic!("IMDSGUARD_REQUIRE_EBPF=1: {why}");
        }
        println!("cargo:warning=imdsguard-sensor: built WITHOUT the eBPF program ({why}); the sensor will use its /proc fallback. Install clang (Debian: apt-get install clang) and rebuild to get the eBPF path.");
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("connect.bpf.o");
    let works = |c: &str| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success());
    let explicit = std::env::var("CLANG").ok().or_else(|| std::env::var("IMDSGUARD_CLANG").ok()).filter(|c| !c.is_empty());
    let clang = match explicit {
        Some(c) if works(&c) => c,
        Some(c) => return give_up(format!("$CLANG={c} does not run")),
        None => match ["clang", "clang-20", "clang-19", "clang-18", "clang-17", "clang-16", "clang-15", "clang-14"].into_iter().find(|c| works(c)) {
            Some(c) => c.to_string(),
            None => return give_up("no clang found (tried $CLANG, clang, clang-20 ... clang-14)".to_string()),
        },
    };
    let output = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-c", "bpf/connect.bpf.c", "-o"])
        .arg(&out)
        .output();
    match output {
        Ok(o) if o.status.success() => println!("cargo:rustc-cfg=imdsguard_bpf_object"),
        Ok(o) => give_up(format!("{clang} failed on bpf/connect.bpf.c ({}): {}", o.status, String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => give_up(format!("cannot run {clang}: {e}")),
    }
}
