#!/usr/bin/env bash
# Kafka consume throughput on loopback: starts a tansu broker (scripts/kafka-broker.sh) on a free
# port, produces EVENTS events (default 200,000) to a 4-partition topic, then consumes them twice in
# one process: consume-and-commit only (the baseline), and with the built-in rules, the embedded
# store sink and the state changelog. Bounded: the event count and a 10 s idle exit per run.
#   scripts/bench-kafka.sh [EVENTS] [BATCH]
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-200000}"
batch="${2:-5000}"
scripts/kafka-broker.sh path >/dev/null
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
pidfile="$(mktemp)"
trap 'scripts/kafka-broker.sh stop "$pidfile" || true' EXIT
scripts/kafka-broker.sh start "$port" "$pidfile"
cargo run --release --locked -q -p imdsguard-kafka --example consume_bench -- "127.0.0.1:$port" "$events" "$batch"
