#!/usr/bin/env bash
# Run the whole test suite (unit, conformance over ../shared corpora, end-to-end on the real binary).
# Needs ../shared beside the checkout; tests that need it fail (never silently pass) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d ../shared ]; then
  echo "error: ../shared is missing (the corpora and conformance suites live there)" >&2
  exit 1
fi
export CARGO_TERM_COLOR=never
# CI always builds and tests the sensor's eBPF path: a missing clang is a build error, not a
# silent fallback build (crates/sensor/build.rs).
export IMDSGUARD_REQUIRE_EBPF=1
scripts/test-prereqs.sh
cargo build --workspace --all-targets --locked
cargo test --workspace --locked 2>&1 | tee target/test-output.txt
# The fuzz targets are a separate crate (cargo-fuzz); make sure they still compile on stable.
if [ -f fuzz/Cargo.toml ]; then
  cargo check --manifest-path fuzz/Cargo.toml
fi
