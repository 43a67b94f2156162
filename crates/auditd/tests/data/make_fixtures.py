#!/usr/bin/env python3
"""Writes the audit-log fixtures of imdsguard-auditd's tests (run from this directory).

The records follow what Linux 6.x writes for the commands named in each file: SYSCALL, EXECVE (a
value with spaces, quotes or control bytes is hex-encoded; long arguments are split into
aN_len/aN[i] chunks), CWD, PATH, PROCTITLE (hex, NUL-separated argv), SOCKADDR, EOE. Addresses:
the metadata service (never contacted: these are text files) and documentation addresses.
"""

def hx(s):
    return (s.encode() if isinstance(s, str) else s).hex().upper()

def arg(i, a):
    needs_hex = any(c in a for c in ' "\'\\') or any(ord(c) < 0x21 or ord(c) > 0x7e for c in a)
    return f'a{i}={hx(a)}' if needs_hex else f'a{i}="{a}"'

IDS = 'auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000'
ENRICH_IDS = 'AUID="ubuntu" UID="ubuntu" GID="ubuntu" EUID="ubuntu" SUID="ubuntu" FSUID="ubuntu" EGID="ubuntu" SGID="ubuntu" FSGID="ubuntu"'
GS = '\x1d'

def stamp(t, s):
    return f'msg=audit({t}:{s}):'

def execve(t, s, pid, ppid, argv, exe, cwd, node=None, enriched=False, key='exec'):
    pre = f'node={node} ' if node else ''
    lines = [
        f'{pre}type=SYSCALL {stamp(t, s)} arch=c000003e syscall=59 success=yes exit=0 a0=55d5c3a0b2f0 a1=55d5c3a0b4c0 '
        f'a2=55d5c3a08e10 a3=8 items=2 ppid={ppid} pid={pid} {IDS} tty=pts0 ses=3 comm="{exe.rsplit("/", 1)[1][:15]}" '
        f'exe="{exe}" subj=unconfined key="{key}"' + (f'{GS}ARCH=x86_64 SYSCALL=execve {ENRICH_IDS}' if enriched else ''),
        f'{pre}type=EXECVE {stamp(t, s)} argc={len(argv)} ' + ' '.join(arg(i, a) for i, a in enumerate(argv)),
        f'{pre}type=CWD {stamp(t, s)} cwd="{cwd}"',
        f'{pre}type=PATH {stamp(t, s)} item=0 name="{exe}" inode=1836 dev=ca:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 '
        'nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0' + (f'{GS}OUID="root" OGID="root"' if enriched else ''),
        f'{pre}type=PATH {stamp(t, s)} item=1 name="/lib64/ld-linux-x86-64.so.2" inode=3201 dev=ca:01 mode=0100755 ouid=0 '
        'ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0' + (f'{GS}OUID="root" OGID="root"' if enriched else ''),
        f'{pre}type=PROCTITLE {stamp(t, s)} proctitle={hx(chr(0).join(argv))}',
        f'{pre}type=EOE {stamp(t, s)}',
    ]
    return lines

def connect(t, s, pid, ppid, comm, exe, saddr, argv, ok=False, exit_=-115, node=None, enriched=False, errname='EINPROGRESS'):
    pre = f'node={node} ' if node else ''
    succ = 'yes' if ok else 'no'
    lines = [
        f'{pre}type=SYSCALL {stamp(t, s)} arch=c000003e syscall=42 success={succ} exit={0 if ok else exit_} a0=5 '
        f'a1=7ffd5a2c1e80 a2={16 if saddr.startswith("02") else 28} a3=0 items=0 ppid={ppid} pid={pid} {IDS} tty=pts0 ses=3 '
        f'comm="{comm}" exe="{exe}" subj=unconfined key="imds"'
        + (f'{GS}ARCH=x86_64 SYSCALL=connect ' + ('' if ok else f'EXIT={errname} ') + ENRICH_IDS if enriched else ''),
        f'{pre}type=SOCKADDR {stamp(t, s)} saddr={saddr}',
        f'{pre}type=PROCTITLE {stamp(t, s)} proctitle={hx(chr(0).join(argv))}',
        f'{pre}type=EOE {stamp(t, s)}',
    ]
    return lines

def sin(ip, port):
    return '0200' + f'{port:04X}' + ''.join(f'{int(o):02X}' for o in ip.split('.')) + '0' * 16

def sin6(hexaddr, port):
    return '0A00' + f'{port:04X}' + '00000000' + hexaddr + '00000000'

T0 = 1777629600  # 2026-05-01T10:00:00Z
CREDS = 'http://169.254.169.254/latest/meta-data/iam/security-credentials/'
IMDS_ARGV = ['curl', '-s', '-H', 'User-Agent: probe', CREDS]
BENIGN_ARGV = ['curl', '-s', 'https://example.com/index.html']

def sshd_login(t, s, node=None, enriched=False):
    pre = f'node={node} ' if node else ''
    e = f'{GS}UID="root" AUID="ubuntu"' if enriched else ''
    return [
        f"{pre}type=USER_START {stamp(t, s)} pid=4101 uid=0 auid=1000 ses=3 subj=unconfined msg='op=PAM:session_open "
        f'grantors=pam_selinux,pam_loginuid,pam_keyinit,pam_permit,pam_umask,pam_unix,pam_systemd,pam_mail,pam_limits,pam_env '
        f'acct="ubuntu" exe="/usr/sbin/sshd" hostname=198.51.100.7 addr=198.51.100.7 terminal=ssh res=success\'{e}',
        f"{pre}type=CRED_ACQ {stamp(t, s + 1)} pid=4101 uid=0 auid=1000 ses=3 subj=unconfined msg='op=PAM:setcred "
        f'grantors=pam_permit,pam_unix acct="ubuntu" exe="/usr/sbin/sshd" hostname=198.51.100.7 addr=198.51.100.7 '
        f"terminal=ssh res=success'{e}",
    ]

def curl_log(node=None, enriched=False):
    out = []
    out += sshd_login(f'{T0 - 60}.010', 2190, node, enriched)
    out += execve(f'{T0}.120', 2201, 4188, 4120, IMDS_ARGV, '/usr/bin/curl', '/home/ubuntu', node, enriched)
    out += connect(f'{T0}.124', 2202, 4188, 4120, 'curl', '/usr/bin/curl', sin('169.254.169.254', 80), IMDS_ARGV, node=node, enriched=enriched)
    out += execve(f'{T0 + 5}.300', 2210, 4190, 4120, BENIGN_ARGV, '/usr/bin/curl', '/home/ubuntu', node, enriched)
    out += connect(f'{T0 + 5}.310', 2211, 4190, 4120, 'curl', '/usr/bin/curl', sin('93.184.215.14', 443), BENIGN_ARGV, node=node, enriched=enriched)
    return out

def write(name, lines):
    with open(name, 'w', newline='\n') as f:
        f.write('\n'.join(lines) + '\n')

write('curl_imds.log', curl_log())
write('curl_imds_enriched.log', curl_log(node='web-1', enriched=True))

# A long command line: python3 -c with a 10 000-byte script, split by the kernel into chunks.
script = ('import urllib.request\n# ' + 'x' * 9800 + '\nprint(urllib.request.urlopen("http://169.254.169.254/latest/api/token").read())\n')
script = script[:10000 - 1] + '\n' if len(script) > 10000 else script + '#' * (10000 - len(script))
assert len(script) == 10000
t, s = f'{T0 + 30}.500', 2300
c = [script[:3600], script[3600:7200], script[7200:]]
long_lines = [
    f'type=SYSCALL {stamp(t, s)} arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=2 ppid=4120 pid=4301 '
    f'{IDS} tty=pts0 ses=3 comm="python3" exe="/usr/bin/python3.12" subj=unconfined key="exec"',
    f'type=EXECVE {stamp(t, s)} argc=3 a0="python3" a1="-c" a2_len=10000 a2[0]={hx(c[0])}',
    f'type=EXECVE {stamp(t, s)} a2[1]={hx(c[1])}',
    f'type=EXECVE {stamp(t, s)} a2[2]={hx(c[2])}',
    f'type=CWD {stamp(t, s)} cwd="/tmp"',
    f'type=PATH {stamp(t, s)} item=0 name="/usr/bin/python3" inode=2001 dev=ca:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL',
    f'type=PROCTITLE {stamp(t, s)} proctitle={hx(chr(0).join(["python3", "-c", script])[:128])}',
    f'type=EOE {stamp(t, s)}',
]
write('long_cmdline.log', long_lines)
with open('long_cmdline.script', 'w') as f:
    f.write(script)

# Interleaved and out of order: two processes' events, records mixed; one event's EOE comes last.
a = execve(f'{T0 + 40}.001', 2400, 4401, 4120, ['wget', '-qO-', 'http://169.254.169.254/latest/dynamic/instance-identity/document'], '/usr/bin/wget', '/root')
b = connect(f'{T0 + 40}.002', 2401, 4402, 4120, 'python3', '/usr/bin/python3.12', sin('169.254.169.254', 80), ['python3', 'agent.py'])
inter = [a[0], b[0], a[1], b[2], a[2], b[1], a[3], b[3], a[4], a[5], a[6]]
# ...and a record of a third event written before the SYSCALL of that event.
cc = execve(f'{T0 + 40}.003', 2402, 4403, 4120, ['id'], '/usr/bin/id', '/root')
inter += [cc[5], cc[1], cc[0], cc[2], cc[3], cc[4], cc[6]]
write('interleaved.log', inter)

# IPv6: curl -6 to the AWS IPv6 endpoint fd00:ec2::254, port 80.
v6argv = ['curl', '-6', 'http://[fd00:ec2::254]/latest/meta-data/']
write('ipv6.log', connect(f'{T0 + 50}.700', 2500, 4501, 4120, 'curl', '/usr/bin/curl', sin6('FD000EC2000000000000000000000254', 80), v6argv))

# A failed connect (ECONNREFUSED) to the metadata address on port 8080, and a AF_UNIX connect.
failed = connect(f'{T0 + 60}.100', 2600, 4601, 4120, 'curl', '/usr/bin/curl', sin('169.254.169.254', 8080), ['curl', 'http://169.254.169.254:8080/'], exit_=-111, errname='ECONNREFUSED')
unix = connect(f'{T0 + 60}.200', 2601, 812, 1, 'systemd-logind', '/usr/lib/systemd/systemd-logind', '01002F72756E2F73797374656D642F6E6F7469667900', ['/usr/lib/systemd/systemd-logind'], ok=True)
write('failed_connect.log', failed + unix)

# Truncated and garbled lines among good ones.
good = execve(f'{T0 + 70}.100', 2700, 4701, 4120, ['curl', CREDS], '/usr/bin/curl', '/home/ubuntu')
damaged = [
    'type=SYSCALL msg=audit(1777629670.0',                       # cut inside the stamp
    '\x00\x13\x8b garbage \x7f',                                  # not a record
    'type=SYSCALL arch=c000003e syscall=59',                       # no stamp
] + good[:1] + [
    good[1][:good[1].index(CREDS) + 20],                          # EXECVE cut inside a quoted argument
] + good[2:] + [
    'type=SOCKADDR msg=audit(1777629670.200:2701): saddr=0200005',  # odd-length hex, orphan record
    'type=EOE msg=audit(1777629670.200:2701):',
]
write('damaged.log', damaged)
