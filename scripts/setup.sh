#!/usr/bin/env bash
# Installs everything rift's lab, tests and benchmarks need on a fresh Debian 12
# machine by running the installers in scripts/setup.d in order. Each is idempotent,
# so this is cheap on a machine that already has everything.
#
#   scripts/setup.sh            # everything
#   scripts/setup.sh base etcd  # only the installers whose names contain these words
#   RIFT_SETUP_SKIP="helm" scripts/setup.sh   # all but those (scripts/test.sh runs
#                                             # 70-helm.sh in the background)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
for step in scripts/setup.d/*.sh; do
    if [ "$#" -gt 0 ]; then
        wanted=false
        for word in "$@"; do
            case "$(basename "$step")" in *"$word"*) wanted=true ;; esac
        done
        $wanted || continue
    fi
    skip=false
    for word in ${RIFT_SETUP_SKIP:-}; do
        case "$(basename "$step")" in *"$word"*) skip=true ;; esac
    done
    $skip && continue
    echo "==> setup: $step"
    bash "$step"
done
