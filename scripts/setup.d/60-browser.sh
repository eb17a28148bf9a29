#!/usr/bin/env bash
# Installs Debian's chromium, the headless browser that loads report.html pages in the
# test suite (tests/history_html.rs). Idempotent: does nothing when it is there.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "60-browser: chromium already installed ($(chromium --version 2>/dev/null || echo unknown))"
    exit 0
fi

echo "60-browser: installing chromium"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq --no-install-recommends chromium ||
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium; }
chromium --version
