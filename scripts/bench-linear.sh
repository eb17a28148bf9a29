#!/usr/bin/env bash
# rift's linearizability checker side by side with porcupine (Go) on the same
# histories: generated 10,000-operation register histories (5 keys, 10 clients) and the
# Jepsen etcd logs shipped in porcupine's module (test_data/jepsen). Builds the Go driver
# in benches/porcupine (porcupine from the Go module proxy) and rift-linbench, then runs
# it; arguments go to rift-linbench. Verdicts must agree, times are only reported.
#   scripts/bench-linear.sh --out target/linbench     full run (release build), as in docs/benchmarks.md
#   scripts/bench-linear.sh --quick                   smoke run (1,000-op histories, debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
export HOME="${HOME:-/root}"
command -v go >/dev/null 2>&1 || { echo "bench-linear.sh: the go toolchain is needed to build porcupine" >&2; exit 1; }

profile="${BENCH_PROFILE:-}"
if [[ -z "$profile" ]]; then
    profile=release
    for arg in "$@"; do [[ "$arg" == "--quick" ]] && profile=debug; done
fi

driver="$PWD/target/porcupine-bench/porcupine-bench"
mkdir -p "$(dirname "$driver")"
(cd benches/porcupine && nice go build -o "$driver" .)
jepsen="$(cd benches/porcupine && go list -m -f '{{.Dir}}' github.com/anishathalye/porcupine)/test_data/jepsen"
[[ -d "$jepsen" ]] || { echo "bench-linear.sh: no $jepsen in the porcupine module" >&2; exit 1; }

case "$profile" in
    release) cargo build --release -p rift-bench --bin rift-linbench; dir=release ;;
    debug) cargo build -p rift-bench --bin rift-linbench; dir=debug ;;
    *) echo "bench-linear.sh: BENCH_PROFILE must be release or debug, not '$profile'" >&2; exit 2 ;;
esac
exec "target/$dir/rift-linbench" --porcupine "$driver" --jepsen-dir "$jepsen" "$@"
