#!/usr/bin/env bash
# rift's main job on a fresh machine: install etcd, build rift, start a real 3-member
# etcd cluster behind rift, isolate its leader, heal, and print the verdicts.
# Extra arguments go to `rift scenario run` (e.g. --out DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh base etcd
exec cargo run --release --bin rift -- scenario run profiles/scenarios/etcd-leader-isolation.toml "$@"
