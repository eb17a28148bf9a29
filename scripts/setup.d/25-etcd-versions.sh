#!/usr/bin/env bash
# Builds the etcd releases the lab offers besides Debian's 3.4 (`rift lab up etcd
# --version 3.5|3.6`): etcd and etcdctl at pinned versions, from the Go module proxy
# (go.etcd.io/etcd/server/v3 and go.etcd.io/etcd/etcdctl/v3), each into its own
# directory /opt/rift/etcd/<version>/ so versions never overwrite each other.
# checkers/src/lab/versions.rs names the same versions. Idempotent: a version whose
# binaries are present and report the right version is skipped.
#
# RIFT_OPT overrides /opt/rift (tests, machines without write access to /opt).
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"

versions=(3.5.35 3.6.16)
root="${RIFT_OPT:-/opt/rift}/etcd"

if ! command -v go >/dev/null 2>&1; then
    echo "25-etcd-versions: go is required to build etcd 3.5 and 3.6 (install golang 1.24+)" >&2
    exit 1
fi

for version in "${versions[@]}"; do
    dir="$root/$version"
    # Read into a variable: `etcd --version | grep -q` fails at random under pipefail
    # when grep stops reading early.
    found="$("$dir/etcd" --version 2>/dev/null || true)"
    if [[ -x "$dir/etcdctl" && "$found" == *"etcd Version: $version"* ]]; then
        echo "25-etcd-versions: etcd $version already in $dir"
        continue
    fi
    echo "25-etcd-versions: building etcd $version into $dir (a few minutes)"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    # A throwaway main module: etcd's own go.mod files carry replace directives, which
    # `go install pkg@version` refuses; required from a module they are ignored.
    cat >"$work/go.mod" <<MOD
module rift.local/etcd-build

go 1.24
MOD
    cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
GO
    (
        cd "$work"
        go get "go.etcd.io/etcd/server/v3@v$version" "go.etcd.io/etcd/etcdctl/v3@v$version" >/dev/null 2>&1
        go mod tidy >/dev/null 2>&1
        mkdir -p "$dir.partial"
        go build -o "$dir.partial/etcd" go.etcd.io/etcd/server/v3
        go build -o "$dir.partial/etcdctl" go.etcd.io/etcd/etcdctl/v3
    )
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
    rm -rf "$work"
    trap - EXIT
    "$dir/etcd" --version | head -n1
done
