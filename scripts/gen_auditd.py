#!/usr/bin/env python3
"""Generate a large raw Linux audit log (the /var/log/audit/audit.log format) for benchmarking
`imdsguard bench` in auditd mode and `imdsguard hunt` on audit logs.

The mix resembles a busy server with execve and connect auditing on: process starts (SYSCALL,
EXECVE with quoted and hex-encoded arguments, CWD, two PATH, PROCTITLE, EOE), connect() calls
(SYSCALL, SOCKADDR for IPv4/IPv6/AF_UNIX, PROCTITLE, EOE), openat() calls, PAM records
(USER_ACCT, CRED_ACQ, USER_START, USER_END, CRED_DISP), a small share of events interleaved with
the next one, and a small share (--imds-per-million) of curl requests to the metadata service
(169.254.169.254, never contacted: this is text). Optionally every record gets a `node=` prefix
and enriched logs' `\x1d` interpretations.

    python3 scripts/gen_auditd.py --size-gb 2.2 --seed 7 --out bench-data/audit-2g.log

bench-data/ is gitignored.
"""

import argparse
import os
import random

GS = "\x1d"


def hx(s):
    return s.encode().hex().upper()


def arg(i, a):
    if any(c in a for c in ' "\'\\') or any(ord(c) < 0x21 or ord(c) > 0x7E for c in a):
        return f"a{i}={hx(a)}"
    return f'a{i}="{a}"'


COMMANDS = [
    ("/usr/bin/ls", ["ls", "-la", "/var/log"]),
    ("/usr/bin/grep", ["grep", "-r", "error", "/var/log/syslog"]),
    ("/usr/bin/python3.12", ["python3", "/opt/app/worker.py", "--queue", "default"]),
    ("/usr/bin/bash", ["bash", "-c", "echo 'health check ok' > /tmp/health"]),
    ("/usr/bin/systemctl", ["systemctl", "is-active", "nginx"]),
    ("/usr/bin/curl", ["curl", "-s", "https://api.example.com/v1/status"]),
    ("/usr/bin/git", ["git", "-C", "/srv/repo", "fetch", "--prune"]),
    ("/usr/sbin/logrotate", ["logrotate", "/etc/logrotate.conf"]),
    ("/usr/bin/awk", ["awk", "{print $1}", "/var/log/nginx/access.log"]),
    ("/usr/lib/jvm/java-17-openjdk-amd64/bin/java", ["java", "-Xmx2g", "-jar", "/opt/svc/app.jar"]),
]
IMDS = ("/usr/bin/curl", ["curl", "-s", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"])
DESTS = [
    ("02000050" + "0A000A05" + "0" * 16, None),  # 10.0.10.5:80
    ("020001BB" + "5DB8D70E" + "0" * 16, None),  # 93.184.215.14:443
    ("02000CEA" + "0A00010A" + "0" * 16, None),  # 10.0.1.10:3306
    ("0A0001BB00000000" + "20010DB8000000000000000000000001" + "00000000", None),  # [2001:db8::1]:443
    ("01002F72756E2F73797374656D642F6A6F75726E616C2F736F636B657400", None),  # /run/systemd/journal/socket
]
IMDS_DEST = "02000050A9FEA9FE" + "0" * 16


class Gen:
    def __init__(self, rnd, node, enriched):
        self.rnd = rnd
        self.t = 1777600000.0
        self.serial = 100000
        self.pre = f"node={node} " if node else ""
        self.enriched = enriched
        self.ids = "auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000"
        self.eids = GS + 'ARCH=x86_64 SYSCALL={} AUID="ubuntu" UID="ubuntu" GID="ubuntu" EUID="ubuntu" SUID="ubuntu" FSUID="ubuntu" EGID="ubuntu" SGID="ubuntu" FSGID="ubuntu"'

    def stamp(self):
        self.t += self.rnd.random() * 0.002
        self.serial += 1
        return f"msg=audit({self.t:.3f}:{self.serial}):"

    def syscall(self, st, nr, name, ok, exit_, pid, comm, exe, items, key):
        e = self.eids.format(name) if self.enriched else ""
        return (f"{self.pre}type=SYSCALL {st} arch=c000003e syscall={nr} success={'yes' if ok else 'no'} exit={exit_} "
                f"a0=7ffd1c2a a1=55d5c3a0 a2=55d5c3a1 a3=8 items={items} ppid=1200 pid={pid} {self.ids} tty=pts0 ses=3 "
                f'comm="{comm}" exe="{exe}" subj=unconfined key="{key}"{e}')

    def execve(self, exe, argv):
        st = self.stamp()
        pid = self.rnd.randint(2000, 60000)
        p = self.pre
        return [
            self.syscall(st, 59, "execve", True, 0, pid, argv[0][:15], exe, 2, "exec"),
            f"{p}type=EXECVE {st} argc={len(argv)} " + " ".join(arg(i, a) for i, a in enumerate(argv)),
            f'{p}type=CWD {st} cwd="/home/ubuntu"',
            f'{p}type=PATH {st} item=0 name="{exe}" inode=1836 dev=ca:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0',
            f'{p}type=PATH {st} item=1 name="/lib64/ld-linux-x86-64.so.2" inode=3201 dev=ca:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0',
            f"{p}type=PROCTITLE {st} proctitle={hx(chr(0).join(argv))[:256]}",
            f"{p}type=EOE {st}",
        ]

    def connect(self, exe, argv, saddr):
        st = self.stamp()
        pid = self.rnd.randint(2000, 60000)
        ok = saddr.startswith("01")
        p = self.pre
        return [
            self.syscall(st, 42, "connect", ok, 0 if ok else -115, pid, argv[0][:15], exe, 0, "net"),
            f"{p}type=SOCKADDR {st} saddr={saddr}",
            f"{p}type=PROCTITLE {st} proctitle={hx(chr(0).join(argv))[:256]}",
            f"{p}type=EOE {st}",
        ]

    def openat(self):
        st = self.stamp()
        p = self.pre
        return [
            self.syscall(st, 257, "openat", True, 3, 1800, "nginx", "/usr/sbin/nginx", 1, "files"),
            f"{p}type=CWD {st} cwd=\"/\"",
            f'{p}type=PATH {st} item=0 name="/etc/nginx/nginx.conf" inode=5521 dev=ca:01 mode=0100644 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0',
            f"{p}type=PROCTITLE {st} proctitle={hx('nginx: worker process')}",
            f"{p}type=EOE {st}",
        ]

    def pam(self):
        out = []
        e = GS + 'UID="root" AUID="ubuntu"' if self.enriched else ""
        for rtype, op in [("USER_ACCT", "PAM:accounting"), ("CRED_ACQ", "PAM:setcred"), ("USER_START", "PAM:session_open"),
                          ("USER_END", "PAM:session_close"), ("CRED_DISP", "PAM:setcred")]:
            st = self.stamp()
            out.append(f"{self.pre}type={rtype} {st} pid=4101 uid=0 auid=1000 ses=3 subj=unconfined msg='op={op} "
                       f'grantors=pam_permit,pam_unix acct="ubuntu" exe="/usr/bin/sudo" hostname=? addr=? terminal=/dev/pts/0 res=success\'{e}')
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gb", type=float, default=2.2, help="stop after this many GB (1e9 bytes)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default="bench-data/audit.log")
    ap.add_argument("--node", default=None, help="prefix every record with node=NAME")
    ap.add_argument("--enriched", action="store_true", help="add the \\x1d interpretations (log_format=ENRICHED)")
    ap.add_argument("--imds-per-million", type=int, default=50, help="curl-to-metadata events per million events")
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    g = Gen(rnd, args.node, args.enriched)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    limit = int(args.size_gb * 1e9)
    written = 0
    events = 0
    imds = 0
    with open(args.out, "w", buffering=1 << 22, newline="\n") as f:
        pending = None
        while written < limit:
            r = rnd.random()
            if rnd.random() * 1e6 < args.imds_per_million:
                recs = g.execve(*IMDS) + g.connect(IMDS[0], IMDS[1], IMDS_DEST)
                imds += 1
            elif r < 0.45:
                recs = g.execve(*rnd.choice(COMMANDS))
            elif r < 0.75:
                exe, argv = rnd.choice(COMMANDS)
                recs = g.connect(exe, argv, rnd.choice(DESTS)[0])
            elif r < 0.95:
                recs = g.openat()
            else:
                recs = g.pam()
            events += 1
            # About 2% of events are interleaved with the next one, as on a multi-CPU host.
            if pending is not None:
                a, b = pending, recs
                recs = [x for pair in zip(a, b) for x in pair] + a[len(b):] + b[len(a):]
                pending = None
            elif rnd.random() < 0.02:
                pending = recs
                continue
            chunk = "\n".join(recs) + "\n"
            f.write(chunk)
            written += len(chunk)
    print(f"wrote {written} bytes, {events} events ({imds} curl-to-metadata pairs) to {args.out}")


if __name__ == "__main__":
    main()
