#!/usr/bin/env bash
# Installs the peers that rift-bench compares rift with: HAProxy and socat from Debian,
# and the Toxiproxy server built from its Go module at a pinned version.
# Idempotent: each step is skipped when the right version is already installed.
set -euo pipefail

TOXIPROXY_VERSION="${TOXIPROXY_VERSION:-2.12.0}"
TOXIPROXY_BIN=/usr/local/bin/toxiproxy-server

missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v socat >/dev/null 2>&1 || missing+=(socat)
if ((${#missing[@]})); then
    echo "40-bench: installing ${missing[*]} from apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" ||
        { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }
fi

if [[ -x "$TOXIPROXY_BIN" ]] && "$TOXIPROXY_BIN" -version 2>/dev/null | grep -q "version ${TOXIPROXY_VERSION}\$"; then
    echo "40-bench: toxiproxy-server ${TOXIPROXY_VERSION} already installed"
    exit 0
fi

# Go is preinstalled on the build machines but not always on PATH for non-login shells,
# and its build cache needs a home.
export PATH="$PATH:/usr/local/go/bin"
export HOME="${HOME:-/root}"
command -v go >/dev/null 2>&1 || { echo "40-bench: go toolchain not found; install Go to build Toxiproxy" >&2; exit 1; }

gobin="$(mktemp -d)"
trap 'rm -rf "$gobin"' EXIT
echo "40-bench: building toxiproxy-server ${TOXIPROXY_VERSION} (go install)"
# The version string is stamped by Toxiproxy's own release build; without it the binary says "git".
GOBIN="$gobin" go install \
    -ldflags "-X github.com/Shopify/toxiproxy/v2.Version=${TOXIPROXY_VERSION}" \
    "github.com/Shopify/toxiproxy/v2/cmd/server@v${TOXIPROXY_VERSION}"
install -m 0755 "$gobin/server" "$TOXIPROXY_BIN"
"$TOXIPROXY_BIN" -version
