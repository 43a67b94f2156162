//! Static knowledge of the Linux audit subsystem: record type numbers, architectures, the syscall
//! numbers that matter here, and the categorisation Auditbeat (go-libaudit's
//! `normalizations.yaml`) gives syscalls and user-space record types.

/// Record type number to name (`linux/audit.h`, `libaudit.h`), for the kernel's
/// `audit: type=1300 audit(...)` form and numeric types in forwarded logs.
pub fn type_name(n: u32) -> Option<&'static str> {
    Some(match n {
        1006 => "LOGIN",
        1100 => "USER_AUTH",
        1101 => "USER_ACCT",
        1102 => "USER_MGMT",
        1103 => "CRED_ACQ",
        1104 => "CRED_DISP",
        1105 => "USER_START",
        1106 => "USER_END",
        1107 => "USER_AVC",
        1108 => "USER_CHAUTHTOK",
        1109 => "USER_ERR",
        1110 => "CRED_REFR",
        1111 => "USYS_CONFIG",
        1112 => "USER_LOGIN",
        1113 => "USER_LOGOUT",
        1114 => "ADD_USER",
        1115 => "DEL_USER",
        1116 => "ADD_GROUP",
        1117 => "DEL_GROUP",
        1123 => "USER_CMD",
        1130 => "SERVICE_START",
        1131 => "SERVICE_STOP",
        1300 => "SYSCALL",
        1302 => "PATH",
        1303 => "IPC",
        1304 => "SOCKETCALL",
        1305 => "CONFIG_CHANGE",
        1306 => "SOCKADDR",
        1307 => "CWD",
        1309 => "EXECVE",
        1317 => "FD_PAIR",
        1318 => "OBJ_PID",
        1320 => "EOE",
        1321 => "BPRM_FCAPS",
        1322 => "CAPSET",
        1323 => "MMAP",
        1325 => "NETFILTER_CFG",
        1326 => "SECCOMP",
        1327 => "PROCTITLE",
        1400 => "AVC",
        1701 => "ANOM_ABEND",
        _ => return None,
    })
}

/// Record types whose fields this decoder interprets; a token without `=` in them is a defect.
pub fn is_interpreted(rtype: &str) -> bool {
    matches!(rtype, "SYSCALL" | "EXECVE" | "CWD" | "PATH" | "SOCKADDR" | "PROCTITLE" | "EOE") || is_standalone(rtype)
}

/// Records that form an event on their own: user-space messages (PAM, sudo, systemd, auditd
/// itself), which the kernel never follows with SYSCALL/EOE records.
pub fn is_standalone(rtype: &str) -> bool {
    const PREFIXES: &[&str] = &["USER_", "CRED_", "DAEMON_", "SERVICE_", "SYSTEM_", "CRYPTO_", "ADD_", "DEL_", "GRP_", "ACCT_", "ANOM_LOGIN", "USYS_"];
    PREFIXES.iter().any(|p| rtype.starts_with(p)) || matches!(rtype, "CHGRP_ID" | "CHUSER_ID")
}

/// Records that only ever accompany a SYSCALL record.
pub fn is_auxiliary(rtype: &str) -> bool {
    matches!(rtype, "EXECVE" | "CWD" | "PATH" | "SOCKADDR" | "PROCTITLE" | "BPRM_FCAPS" | "MMAP" | "FD_PAIR" | "OBJ_PID" | "IPC" | "CAPSET" | "SOCKETCALL")
}

/// `arch=` (AUDIT_ARCH_*) to the name auditd prints.
pub fn arch_name(hex: &str) -> Option<&'static str> {
    Some(match hex.to_ascii_lowercase().as_str() {
        "c000003e" => "x86_64",
        "40000003" => "i386",
        "c00000b7" => "aarch64",
        "40000028" => "arm",
        "c0000015" => "ppc64le",
        "80000015" => "ppc64",
        "80000016" => "s390x",
        "c00000f3" => "riscv64",
        _ => return None,
    })
}

/// Syscall number to name for the syscalls this project cares about (process start, sockets,
/// identity, common file calls), per architecture. Unknown numbers stay numeric.
pub fn syscall_name(arch: &str, n: u32) -> Option<&'static str> {
    const X86_64: &[(u32, &str)] = &[
        (0, "read"), (1, "write"), (2, "open"), (4, "stat"), (5, "fstat"), (6, "lstat"), (9, "mmap"), (21, "access"),
        (41, "socket"), (42, "connect"), (43, "accept"), (44, "sendto"), (45, "recvfrom"), (46, "sendmsg"),
        (47, "recvmsg"), (49, "bind"), (50, "listen"), (56, "clone"), (57, "fork"), (58, "vfork"), (59, "execve"),
        (62, "kill"), (82, "rename"), (83, "mkdir"), (84, "rmdir"), (85, "creat"), (87, "unlink"), (88, "symlink"),
        (90, "chmod"), (92, "chown"), (105, "setuid"), (106, "setgid"), (113, "setreuid"), (117, "setresuid"),
        (165, "mount"), (166, "umount2"), (257, "openat"), (263, "unlinkat"), (288, "accept4"), (307, "sendmmsg"),
        (322, "execveat"),
    ];
    const AARCH64: &[(u32, &str)] = &[
        (34, "mkdirat"), (35, "unlinkat"), (40, "mount"), (56, "openat"), (63, "read"), (64, "write"), (129, "kill"),
        (146, "setuid"), (198, "socket"), (200, "bind"), (201, "listen"), (202, "accept"), (203, "connect"),
        (206, "sendto"), (207, "recvfrom"), (211, "sendmsg"), (212, "recvmsg"), (220, "clone"), (221, "execve"),
        (222, "mmap"), (242, "accept4"), (269, "sendmmsg"), (281, "execveat"),
    ];
    const I386: &[(u32, &str)] = &[
        (3, "read"), (4, "write"), (5, "open"), (11, "execve"), (37, "kill"), (102, "socketcall"), (120, "clone"),
        (295, "openat"), (358, "execveat"), (359, "socket"), (361, "bind"), (362, "connect"), (363, "listen"),
        (364, "accept4"),
    ];
    let table = match arch {
        "x86_64" => X86_64,
        "aarch64" | "riscv64" => AARCH64, // riscv64 uses the generic syscall table, as aarch64
        "i386" => I386,
        _ => return None,
    };
    table.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
}

/// Auditbeat's categorisation of an event: `event.action` (`auditd.summary` action), ECS
/// `event.category` and `event.type`, and what kind of object the summary names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Norm {
    pub action: Option<&'static str>,
    pub category: &'static [&'static str],
    pub types: &'static [&'static str],
    pub object: Option<&'static str>,
}

const PROCESS_INFO: Norm = Norm { action: None, category: &["process"], types: &["info"], object: None };

/// Syscall events (go-libaudit `normalizations.yaml`; the catch-all is process/info).
pub fn syscall_norm(name: &str) -> Norm {
    let n = |action, category, types, object| Norm { action: Some(action), category, types, object: Some(object) };
    match name {
        "execve" | "execveat" => n("executed", &["process"], &["start"], "file"),
        "connect" => n("connected-to", &["network"], &["connection", "start"], "socket"),
        "accept" | "accept4" => n("accepted-connection-from", &["network"], &["connection", "start"], "socket"),
        "bind" => n("bound-socket", &["network"], &["start"], "socket"),
        "listen" => n("listen-for-connections", &["network"], &["start"], "socket"),
        "sendto" | "sendmsg" | "send" | "sendmmsg" => n("sent-to", &["network"], &["connection", "info"], "socket"),
        "recvfrom" | "recvmsg" | "recv" | "recvmmsg" => n("received-from", &["network"], &["connection", "info"], "socket"),
        "open" | "openat" => n("opened-file", &["file"], &["info"], "file"),
        "creat" => n("opened-file", &["file"], &["creation"], "file"),
        "unlink" | "unlinkat" | "rmdir" => n("deleted", &["file"], &["deletion"], "file"),
        "kill" | "tkill" | "tgkill" => n("killed-pid", &["process"], &["end"], "process"),
        "setuid" | "setgid" | "setreuid" | "setresuid" | "setregid" | "setresgid" | "setfsuid" | "setfsgid" => {
            n("changed-identity-of", &["process"], &["change"], "process")
        }
        _ => PROCESS_INFO,
    }
}

/// User-space record types.
pub fn record_norm(rtype: &str) -> Option<Norm> {
    let n = |action, category, types| Norm { action: Some(action), category, types, object: Some("user-session") };
    Some(match rtype {
        "USER_LOGIN" => n("logged-in", &["authentication"], &["start"]),
        "USER_LOGOUT" => n("logged-out", &["authentication"], &["end"]),
        "USER_AUTH" => n("authenticated", &["authentication"], &["info"]),
        "USER_ACCT" => n("was-authorized", &["authentication"], &["info"]),
        "USER_START" => n("started-session", &["session"], &["start"]),
        "USER_END" => n("ended-session", &["session"], &["end"]),
        "USER_ERR" => n("error", &["authentication"], &["info"]),
        "CRED_ACQ" => n("acquired-credentials", &["authentication"], &["info"]),
        "CRED_DISP" => n("disposed-credentials", &["authentication"], &["info"]),
        "CRED_REFR" => n("refreshed-credentials", &["authentication"], &["info"]),
        "USER_CMD" => Norm { action: Some("ran-command"), category: &["process"], types: &["start"], object: Some("process") },
        "USER_CHAUTHTOK" => Norm { action: Some("changed-password"), category: &["iam"], types: &["user", "change"], object: Some("user") },
        "LOGIN" => Norm { action: Some("changed-login-id-to"), category: &["authentication"], types: &["start"], object: Some("user-session") },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(type_name(1300), Some("SYSCALL"));
        assert_eq!(type_name(1327), Some("PROCTITLE"));
        assert_eq!(arch_name("C000003E"), Some("x86_64"));
        assert_eq!(syscall_name("x86_64", 59), Some("execve"));
        assert_eq!(syscall_name("x86_64", 42), Some("connect"));
        assert_eq!(syscall_name("aarch64", 203), Some("connect"));
        assert_eq!(syscall_name("i386", 11), Some("execve"));
        assert_eq!(syscall_name("x86_64", 9999), None);
        assert_eq!(syscall_norm("connect").types, &["connection", "start"]);
        assert_eq!(syscall_norm("futex"), PROCESS_INFO);
        assert!(is_standalone("USER_START") && is_standalone("CRED_ACQ") && !is_standalone("SYSCALL"));
    }
}
