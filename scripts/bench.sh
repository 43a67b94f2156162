#!/usr/bin/env bash
# Generate the standard benchmark data set and measure the pipeline on one core.
#   scripts/bench.sh [COUNT]     (default 1000000 events; data cached in bench-data/)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-1000000}
mkdir -p bench-data
data=bench-data/events-$count.ndjson
if [ ! -s "$data" ]; then
  python3 ../shared/bench/gen_events.py --count "$count" --seed 42 --out "$data"
fi
cargo build --release -p imdsguard
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
echo "== built-in pack (new_terms KQL seed + the two EQL seeds)"
"${pin[@]}" target/release/imdsguard bench "$data" --runs 5
echo "== one EQL sequence rule"
"${pin[@]}" target/release/imdsguard bench "$data" --runs 3 --no-builtin --rules scripts/bench-rules/sequence_process_then_imds.ndjson
