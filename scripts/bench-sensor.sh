#!/usr/bin/env bash
# CPU cost of the live sensor (issue 7), measured, not asserted. Needs root, iproute2, python3.
#
# Builds two private network namespaces (the mock metadata service on 169.254.169.254:80 in one;
# the sensor, a loopback HTTP server and the load generator in the other: no traffic leaves them),
# then measures the sensor's CPU time (utime+stime from /proc/<pid>/stat) over three phases:
#   idle; RATE connections/s (one GET each) to the loopback server (not a metadata endpoint: the
#   kernel filters drop them, cost should be ~0); RATE connections/s to the mock (cost per event);
#   RATE launches/s of /bin/true on the host (cost per process start event; the fallback's
#   process events connector reports nothing to a sensor outside the host's network namespace);
# once per attribution path with the same binary: the /proc fallback (--no-ebpf), then eBPF.
# The eBPF run needs a binary built with clang (the status line says which path ran).
# Usage: scripts/bench-sensor.sh [RATE=200] [SECONDS=10]
set -euo pipefail
RATE=${1:-200}
SECS=${2:-10}
cd "$(dirname "$0")/.."
BIN=${IMDSGUARD_BIN:-target/release/imdsguard}
[ -x "$BIN" ] || cargo build --release -p imdsguard >&2
[ "$(id -u)" = 0 ] || { echo "bench-sensor: needs root (network namespaces, AF_PACKET)" >&2; exit 2; }
ID=$$
M=igbm$ID C=igbc$ID
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  ip netns del "$M" 2>/dev/null || true
  ip netns del "$C" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$M"; ip netns add "$C"
ip link add "vm$ID" type veth peer name "vc$ID"
ip link set "vm$ID" netns "$M"; ip link set "vc$ID" netns "$C"
ip -n "$M" addr add 169.254.169.254/16 dev "vm$ID"; ip -n "$C" addr add 169.254.10.2/16 dev "vc$ID"
for ns in "$M" "$C"; do ip -n "$ns" link set lo up; done
ip -n "$M" link set "vm$ID" up; ip -n "$C" link set "vc$ID" up
ip netns exec "$M" "$BIN" imds-mock --listen 169.254.169.254:80 --allow-non-loopback >/dev/null 2>&1 & PIDS+=($!)
ip netns exec "$C" python3 -m http.server 8080 --bind 127.0.0.1 >/dev/null 2>&1 & PIDS+=($!)
sleep 1
SENSOR=
ticks() {
  [ -e "/proc/$SENSOR/stat" ] || { echo "bench-sensor: the sensor exited:" >&2; tail -5 "$TMP/sensor.err" >&2; exit 1; }
  awk '{print $14+$15}' "/proc/$SENSOR/stat"
}
HZ=$(getconf CLK_TCK)
load() { # host port path
  ip netns exec "$C" python3 - "$1" "$2" "$3" "$RATE" "$SECS" <<'PY'
import socket, sys, time
host, port, path, rate, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
n = int(rate * secs); t0 = time.time(); done = 0
for i in range(n):
    target = t0 + i / rate
    d = target - time.time()
    if d > 0: time.sleep(d)
    try:
        s = socket.create_connection((host, port), timeout=2)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench/1\r\nConnection: close\r\n\r\n".encode())
        while s.recv(65536): pass
        s.close(); done += 1
    except OSError:
        pass
print(done)
PY
}
launches() { # RATE launches/s of /bin/true for SECS seconds (process start events)
  python3 - "$RATE" "$SECS" <<'PY'
import subprocess, sys, time
rate, secs = int(sys.argv[1]), float(sys.argv[2])
n = int(rate * secs); t0 = time.time()
for i in range(n):
    d = t0 + i / rate - time.time()
    if d > 0: time.sleep(d)
    subprocess.run(["/bin/true"])
print(n)
PY
}
IDLE=0
phase() { # name host port path
  local a b n
  a=$(ticks)
  if [ "$2" = idle ]; then sleep "$SECS"; n=0;
  elif [ "$2" = launches ]; then n=$(launches);
  else n=$(load "$2" "$3" "$4"); fi
  b=$(ticks)
  [ "$2" = idle ] && IDLE=$((b - a))
  awk -v name="$1" -v d="$((b - a))" -v idle="$IDLE" -v hz="$HZ" -v s="$SECS" -v n="$n" 'BEGIN {
    unit = (name ~ /launches/) ? "launch" : "connection"; units = (name ~ /launches/) ? "launches" : "connections";
    cpu = d / hz; printf "  %-30s %6d %s  sensor CPU %.2f s = %5.2f%% of a core", name, n, units, cpu, 100 * cpu / s;
    if (n > 0) printf "  = %.0f us/%s above idle", 1e6 * (d - idle) / hz / n, unit; printf "\n" }'
}
# One sensor per path, same binary, same namespaces, same load.
run_path() { # label [sensor flags...]
  local label=$1; shift
  : >"$TMP/sensor.err"
  ip netns exec "$C" "$BIN" sensor --format ndjson --output "$TMP/alerts.ndjson" --state :memory: "$@" >/dev/null 2>"$TMP/sensor.err" & SENSOR=$!; PIDS+=($SENSOR)
  sleep 2
  echo "$label: $(head -1 "$TMP/sensor.err" | cut -c1-160)..."
  phase idle idle
  phase "loopback (not metadata)" 127.0.0.1 8080 /
  phase "mock 169.254.169.254" 169.254.169.254 80 /latest/meta-data/iam/security-credentials/
  local last
  phase "process launches (/bin/true)" launches
  kill -TERM "$SENSOR"; wait "$SENSOR" 2>/dev/null || true
  last=$(grep '^sensor status:' "$TMP/sensor.err" | tail -1)
  echo "  $(echo "$last" | grep -o 'path=[^ ]*') $(echo "$last" | grep -o ' connections=[0-9]*') $(echo "$last" | grep -o ' attributed=[0-9]*') (of the mock phase's connections) $(echo "$last" | grep -o ' execs=[0-9]*') (launches seen, host-wide) $(echo "$last" | grep -o ' kernel_dropped=[0-9]*')"
}
echo "sensor CPU over ${SECS}s phases, load ${RATE} connections/s ($(nproc) CPUs, $BIN)"
run_path "/proc fallback (--no-ebpf)" --no-ebpf
run_path "eBPF" 
