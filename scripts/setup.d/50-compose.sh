#!/usr/bin/env bash
# Installs what validates the compose clusters without a Docker engine: promtool (Debian
# package prometheus) for the Prometheus config, and Python's yaml, jsonschema and pytest
# for the compose-spec schema and drift tests under compose/tests.
# Idempotent: installs only what is missing.
set -euo pipefail

packages=()
command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
python3 -c 'import yaml' 2>/dev/null || packages+=(python3-yaml)
python3 -c 'import jsonschema' 2>/dev/null || packages+=(python3-jsonschema)
python3 -c 'import pytest' 2>/dev/null || packages+=(python3-pytest)

if ((${#packages[@]})); then
    echo "50-compose: installing ${packages[*]} from apt"
    export DEBIAN_FRONTEND=noninteractive
    # The prometheus package enables its service on install; a build machine has no use
    # for it running, and without systemd the start attempt is a no-op.
    apt-get install -y --no-install-recommends "${packages[@]}" ||
        { apt-get update && apt-get install -y --no-install-recommends "${packages[@]}"; }
fi
promtool --version 2>&1 | head -1
