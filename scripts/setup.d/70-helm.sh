#!/usr/bin/env bash
# Builds what deploy/kubernetes/tests needs to validate the Helm chart without a cluster:
# Helm (helm.sh/helm/v3, pinned in deploy/kubernetes/check/go.mod) and k8scheck (strict
# decoding against the Kubernetes API types), both from the Go module proxy, from one
# module so they share the Kubernetes packages' build. Cached under /opt/rift:
#   /opt/rift/helm/<version>/helm            (keyed by Helm's version)
#   /opt/rift/k8scheck/<digest>/k8scheck     (keyed by go.mod, go.sum and main.go)
# Idempotent: present binaries are kept. A cold build takes minutes on 2 cores, so
# scripts/test.sh runs this in the background and waits for it before the chart checks.
#
# RIFT_OPT overrides /opt/rift.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../deploy/kubernetes/check"
export PATH="$PATH:/usr/local/go/bin"
export HOME="${HOME:-/root}"
command -v go >/dev/null 2>&1 || { echo "70-helm: go toolchain not found; install Go 1.26+" >&2; exit 1; }

opt="${RIFT_OPT:-/opt/rift}"
version="$(GOTOOLCHAIN=local go list -m -f '{{.Version}}' helm.sh/helm/v3)"
digest="$(cat go.mod go.sum main.go | sha256sum | cut -c1-16)"
helm="$opt/helm/$version/helm"
check="$opt/k8scheck/$digest/k8scheck"

# As Helm's Makefile does: the version it reports, and the Kubernetes version `helm
# template` and `helm lint` assume (from client-go v0.X -> 1.X).
client_go="$(GOTOOLCHAIN=local go list -m -f '{{.Version}}' k8s.io/client-go)"
kube_minor="$(echo "$client_go" | cut -d. -f2)"
ldflags="-s -X helm.sh/helm/v3/internal/version.version=$version"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done

build() { # build <package> <destination> [ldflags]
    local dir
    dir="$(dirname "$2")"
    mkdir -p "$dir.partial"
    GOTOOLCHAIN=local GOFLAGS=-mod=readonly go build -ldflags="${3:--s}" -o "$dir.partial/$(basename "$2")" "$1"
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
}

if [[ -x "$helm" ]] && "$helm" version --short 2>/dev/null | grep -q "^$version"; then
    echo "70-helm: helm $version already in $helm"
else
    echo "70-helm: building helm $version into $helm"
    GOTOOLCHAIN=local go mod download
    build helm.sh/helm/v3/cmd/helm "$helm" "$ldflags"
fi
if [[ -x "$check" ]]; then
    echo "70-helm: k8scheck already in $check"
else
    echo "70-helm: building k8scheck into $check"
    build . "$check"
    # Older builds of k8scheck are never used again.
    find "$opt/k8scheck" -mindepth 1 -maxdepth 1 -type d ! -name "$digest" -exec rm -rf {} +
fi
"$helm" version --short
