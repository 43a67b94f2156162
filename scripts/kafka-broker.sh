#!/usr/bin/env bash
# The Kafka-protocol test broker (tansu 0.6.0, in-memory storage) for imdsguard's Kafka tests and
# benchmark. Loopback only.
#
#   scripts/kafka-broker.sh install            build tansu once into the cache (about 14 minutes
#                                              on 2 cores the first time; later calls return at once)
#   scripts/kafka-broker.sh path               print the tansu binary's path (exit 1 if not installed)
#   scripts/kafka-broker.sh start PORT PIDFILE [LOGFILE]
#                                              start a broker on 127.0.0.1:PORT, wait until it accepts
#                                              connections (at most 30 s), write its PID to PIDFILE
#   scripts/kafka-broker.sh stop PIDFILE       stop that broker (TERM, then KILL after 10 s)
#
# The cache is ${IMDSGUARD_CACHE:-$HOME/.cache/imdsguard}/tansu-0.6.0 (tests look there too).
set -euo pipefail
VERSION=0.6.0
CACHE="${IMDSGUARD_CACHE:-$HOME/.cache/imdsguard}"
ROOT="$CACHE/tansu-$VERSION"
BIN="$ROOT/bin/tansu"

die() { echo "kafka-broker: $*" >&2; exit 1; }

install() {
  if [ -x "$BIN" ]; then
    echo "$BIN"
    return 0
  fi
  mkdir -p "$CACHE"
  # One build at a time, even when several test runs start together.
  exec 9>"$CACHE/tansu-$VERSION.lock"
  flock 9
  if [ ! -x "$BIN" ]; then
    echo "kafka-broker: building tansu $VERSION into $ROOT (about 14 minutes on 2 cores, once)" >&2
    cargo install tansu --version "$VERSION" --locked --features dynostore --root "$ROOT" >&2 \
      || die "cargo install tansu --version $VERSION failed"
  fi
  flock -u 9
  echo "$BIN"
}

start() {
  local port="${1:?usage: start PORT PIDFILE [LOGFILE]}" pidfile="${2:?usage: start PORT PIDFILE [LOGFILE]}"
  local log="${3:-/dev/null}"
  [ -x "$BIN" ] || die "tansu is not installed: run scripts/kafka-broker.sh install"
  case "$port" in ''|*[!0-9]*) die "PORT must be a number, not $port" ;; esac
  local url="tcp://127.0.0.1:$port"
  "$BIN" broker --listener-url "$url" --advertised-listener-url "$url" --storage-engine memory://tansu/ >"$log" 2>&1 &
  local pid=$!
  echo "$pid" >"$pidfile"
  for _ in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      die "tansu exited before accepting connections on $url (log: $log)"
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "kafka-broker: tansu $VERSION (pid $pid) listening on 127.0.0.1:$port" >&2
      return 0
    fi
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  die "tansu did not accept connections on $url within 30 s (log: $log)"
}

stop() {
  local pidfile="${1:?usage: stop PIDFILE}"
  [ -f "$pidfile" ] || die "no pid file $pidfile"
  local pid
  pid="$(cat "$pidfile")"
  case "$pid" in ''|*[!0-9]*) die "pid file $pidfile holds no PID" ;; esac
  kill "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

case "${1:-}" in
  install) install ;;
  path) [ -x "$BIN" ] && echo "$BIN" || die "tansu is not installed: run scripts/kafka-broker.sh install" ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
