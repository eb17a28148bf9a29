#!/usr/bin/env bash
# Builds rift and rift-bench and runs the overhead benchmark; arguments go to rift-bench.
#   scripts/bench.sh --out target/bench          full run (release build), as in docs/benchmarks.md
#   scripts/bench.sh --quick                     smoke run, as scripts/test.sh does
# The smoke run only proves the harness works, so it reuses the debug build that
# `cargo test` already made instead of a second, release, build; BENCH_PROFILE=release
# (or debug) overrides the choice. rift-bench measures the rift built next to it.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${BENCH_PROFILE:-}"
if [[ -z "$profile" ]]; then
    profile=release
    for arg in "$@"; do [[ "$arg" == "--quick" ]] && profile=debug; done
fi
case "$profile" in
    release) cargo build --release -p rift -p rift-bench --bin rift --bin rift-bench; dir=release ;;
    debug) cargo build -p rift -p rift-bench --bin rift --bin rift-bench; dir=debug ;;
    *) echo "bench.sh: BENCH_PROFILE must be release or debug, not '$profile'" >&2; exit 2 ;;
esac
exec "target/$dir/rift-bench" "$@"
