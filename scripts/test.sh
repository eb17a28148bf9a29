#!/usr/bin/env bash
# rift's whole test suite on a fresh machine: installs what it needs (etcd, Kafka jars,
# protoc, HAProxy, Toxiproxy, promtool...), checks formatting and lints, runs every
# unit and integration test against real etcd and real Kafka, validates the compose
# files and runs both compose clusters on a real Docker engine, and runs the benchmark
# harness in its quick smoke mode.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:$HOME/.cargo/bin:/usr/local/go/bin"
started=$SECONDS
step() { echo; echo "==> test: $* ($((SECONDS - started)) s)"; }

step setup
# Helm and k8scheck are Go builds of minutes when cold: they run beside the rest of the
# setup and the Rust build, and the chart checks wait for them.
mkdir -p target
setsid nice -n 10 bash scripts/setup.d/70-helm.sh >target/setup-helm.log 2>&1 &
helm_setup=$!
trap 'kill -- -$helm_setup 2>/dev/null || true' EXIT
RIFT_SETUP_SKIP=helm scripts/setup.sh

# The Docker engine, compose plugin, base and stand-in images for the compose tests take
# minutes to build cold (the plugin alone ~15 min): they build in the background at the
# lowest priority while Rust builds and tests, and are waited for just before the compose
# tests. Where they exist already this takes seconds.
mkdir -p target
setsid nice -n 19 scripts/compose.sh prepare all >target/compose-prepare.log 2>&1 &
compose_prepare=$!
trap 'kill -- -$compose_prepare -$helm_setup 2>/dev/null || true' EXIT

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace --no-fail-fast

step "compose checks"
python3 -m pytest -q compose/tests

step "helm chart checks (waiting for 70-helm.sh)"
waited=$SECONDS
if ! wait "$helm_setup"; then
    cat target/setup-helm.log
    echo "scripts/setup.d/70-helm.sh failed" >&2
    exit 1
fi
cat target/setup-helm.log
echo "waited $((SECONDS - waited)) s for Helm and k8scheck"
python3 -m pytest -q deploy/kubernetes/tests

step "compose clusters on a real Docker engine (after the background preparation)"
waited=$SECONDS
if ! wait "$compose_prepare"; then
    cat target/compose-prepare.log
    echo "scripts/compose.sh prepare failed" >&2
    exit 1
fi
grep -h 'built in\|imported in\|prepared in' target/compose-prepare.log || true
echo "waited $((SECONDS - waited)) s for the preparation"
python3 -m pytest -q compose/e2e
scripts/compose.sh stop-engine

step "benchmark smoke"
scripts/bench.sh --quick --kafka

step "linearizability benchmark smoke (rift against porcupine, verdicts must agree)"
scripts/bench-linear.sh --quick --out target/linbench-smoke

step "done"
