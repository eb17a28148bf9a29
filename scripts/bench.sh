#!/usr/bin/env bash
# Builds rift and rift-bench in release mode and runs the overhead benchmark.
# Arguments go to rift-bench, e.g. `scripts/bench.sh --quick --out target/bench-quick`
# or `scripts/bench.sh --out target/bench` for the full run recorded in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin rift --bin rift-bench
exec target/release/rift-bench "$@"
