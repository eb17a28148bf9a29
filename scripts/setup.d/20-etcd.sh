#!/usr/bin/env bash
# Installs what the etcd lab and the etcd checkers need on a fresh Debian 12 machine:
# the real etcd server and etcdctl (Debian's etcd 3.4), and protoc with its well-known
# types, which the etcd-client crate needs at build time. Idempotent: does nothing when
# everything is already there. Set ETCD_BIN to use another etcd binary instead.
set -euo pipefail

need=()
if [[ -z "${ETCD_BIN:-}" ]] && ! command -v etcd >/dev/null 2>&1; then
    need+=(etcd-server)
fi
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
[[ -f /usr/include/google/protobuf/empty.proto ]] || need+=(libprotobuf-dev)

if ((${#need[@]} == 0)); then
    echo "20-etcd: etcd, etcdctl and protoc already installed"
    exit 0
fi

echo "20-etcd: installing ${need[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
# Debian's etcd-server package enables and starts a system etcd on 2379/2380; the lab
# never uses those ports, but a stray service would confuse anyone reading `ss`.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
    $SUDO systemctl disable --now etcd || true
fi
if [[ -n "${ETCD_BIN:-}" ]]; then
    "$ETCD_BIN" --version
else
    etcd --version
fi
