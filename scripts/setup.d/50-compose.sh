#!/usr/bin/env bash
# Installs what validates the compose clusters without a Docker engine: promtool (Debian
# package prometheus) for the Prometheus config, and Python's yaml, jsonschema and pytest
# for the compose-spec schema and drift tests under compose/tests.
# Idempotent: installs only what is missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

apt_install() {
    apt-get install -y --no-install-recommends "$@" ||
        { apt-get update && apt-get install -y --no-install-recommends "$@"; }
}

if ! command -v promtool >/dev/null 2>&1; then
    echo "50-compose: installing prometheus (for promtool) from apt"
    # The package enables its service on install; without systemd nothing starts, and a
    # build machine has no use for it running anyway.
    apt_install prometheus
fi
promtool --version 2>&1 | head -1

# The python3 on PATH may be a pyenv interpreter that does not see Debian's python3-*
# packages, so install into that interpreter with pip; Debian's packages are the
# fallback for a system Python that refuses pip installs (PEP 668).
declare -A pip_spec=([yaml]="PyYAML==6.0.3" [jsonschema]="jsonschema==4.26.0" [pytest]="pytest==9.0.3")
declare -A apt_pkg=([yaml]=python3-yaml [jsonschema]=python3-jsonschema [pytest]=python3-pytest)
missing=()
for module in yaml jsonschema pytest; do
    python3 -c "import $module" 2>/dev/null || missing+=("$module")
done
if ((${#missing[@]})); then
    specs=() pkgs=()
    for module in "${missing[@]}"; do specs+=("${pip_spec[$module]}"); pkgs+=("${apt_pkg[$module]}"); done
    echo "50-compose: installing ${specs[*]} for $(command -v python3)"
    python3 -m pip install --quiet "${specs[@]}" || apt_install "${pkgs[@]}"
fi
python3 -c 'import yaml, jsonschema, pytest; print("50-compose: python", yaml.__version__, pytest.__version__)'
