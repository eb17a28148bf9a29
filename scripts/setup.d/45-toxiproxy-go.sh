#!/usr/bin/env bash
# Fetches the official Toxiproxy Go client (github.com/Shopify/toxiproxy/v2 v2.12.0,
# pinned in tests/toxiproxy-go/go.sum) from the Go module proxy into the module cache,
# so tests/toxiproxy_go.rs can run its suite against `rift toxiproxy` offline.
# Idempotent: `go mod download` is a no-op when the cache already holds the module.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PATH="$PATH:/usr/local/go/bin"
export HOME="${HOME:-/root}"
command -v go >/dev/null 2>&1 || { echo "45-toxiproxy-go: go toolchain not found; install Go 1.23+" >&2; exit 1; }
cd tests/toxiproxy-go
GOTOOLCHAIN=local go mod download
GOTOOLCHAIN=local GOFLAGS=-mod=readonly go vet ./...
echo "45-toxiproxy-go: Toxiproxy Go client $(go list -m -f '{{.Version}}' github.com/Shopify/toxiproxy/v2) ready"
