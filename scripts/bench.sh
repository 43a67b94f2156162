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
echo "== packet capture decoding (1.1 GB, 1% metadata flows; and metadata-only)"
[ -s bench-data/capture-1g.pcap ] || python3 scripts/gen_capture.py --bytes 1100000000 --imds-rate 0.01 --out bench-data/capture-1g.pcap
[ -s bench-data/capture-imds.pcap ] || python3 scripts/gen_capture.py --bytes 200000000 --imds-rate 1.0 --out bench-data/capture-imds.pcap
"${pin[@]}" target/release/imdsguard bench bench-data/capture-1g.pcap --runs 3
"${pin[@]}" target/release/imdsguard bench bench-data/capture-imds.pcap --runs 3
echo "== one EQL sequence rule"
"${pin[@]}" target/release/imdsguard bench "$data" --runs 3 --no-builtin --rules scripts/bench-rules/sequence_process_then_imds.ndjson
