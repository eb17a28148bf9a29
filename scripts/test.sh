#!/usr/bin/env bash
# rift's whole test suite on a fresh machine: installs what it needs (etcd, Kafka jars,
# protoc, HAProxy, Toxiproxy, promtool...), checks formatting and lints, runs every
# unit and integration test against real etcd and real Kafka, validates the compose
# files, and runs the benchmark harness in its quick smoke mode.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:$HOME/.cargo/bin:/usr/local/go/bin"
started=$SECONDS
step() { echo; echo "==> test: $* ($((SECONDS - started)) s)"; }

step setup
scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace --no-fail-fast

step "compose checks"
python3 -m pytest -q compose/tests

step "benchmark smoke"
scripts/bench.sh --quick --kafka

step "linearizability benchmark smoke (rift against porcupine, verdicts must agree)"
scripts/bench-linear.sh --quick --out target/linbench-smoke

step "done"
