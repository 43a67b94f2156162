//! With the `ebpf` feature, compile `bpf/connect.bpf.c` with clang (`-target bpf`) into
//! `$OUT_DIR/connect.bpf.o`, embedded by `src/ebpf.rs`. Without it (the default), nothing: the
//! default build never needs clang.

fn main() {
    println!("cargo:rerun-if-changed=bpf/connect.bpf.c");
    println!("cargo:rerun-if-env-changed=IMDSGUARD_CLANG");
    if std::env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return;
    }
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("connect.bpf.o");
    let clang = std::env::var("IMDSGUARD_CLANG").ok().or_else(|| {
        ["clang", "clang-19", "clang-18", "clang-17", "clang-16", "clang-15", "clang-14"]
            .iter()
            .find(|c| std::process::Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
            .map(|c| c.to_string())
    });
    let Some(clang) = clang else {
        panic!("feature `ebpf` needs clang (Debian: apt-get install clang-14 libbpf-dev; or set IMDSGUARD_CLANG)");
    };
    let arch_include = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let status = std::process::Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I{arch_include}"))
        .args(["-c", "bpf/connect.bpf.c", "-o"])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{clang} failed on bpf/connect.bpf.c ({s}); needs libbpf-dev for <bpf/bpf_helpers.h>"),
        Err(e) => panic!("cannot run {clang}: {e}"),
    }
}
