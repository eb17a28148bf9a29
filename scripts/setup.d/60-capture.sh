#!/usr/bin/env bash
# Packet capture: tcpdump reads back the pcap files `rift capture` writes (the capture
# tests check them with `tcpdump -r`). Idempotent.
set -euo pipefail

sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v tcpdump >/dev/null 2>&1 && [ ! -x /usr/bin/tcpdump ] && [ ! -x /usr/sbin/tcpdump ]; then
    echo "60-capture: installing tcpdump"
    sudo_if_needed apt-get update -q
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends tcpdump
fi
echo "60-capture: $( (tcpdump --version 2>&1 || /usr/bin/tcpdump --version 2>&1) | head -1)"
