#!/usr/bin/env bash
# Runs compose/etcd.yml or compose/kafka.yml on a real Docker engine, on a machine that
# may have no image registry:
#
#   scripts/compose.sh up etcd|kafka       # install/start what is missing, start the stack
#   scripts/compose.sh down etcd|kafka     # remove its containers, network and volumes
#   scripts/compose.sh prepare [etcd|kafka|all]   # everything but the rift image and `up`
#   scripts/compose.sh stop-engine         # stop the dockerd this script started, if any
#
# What is missing is installed or built once and then reused: Debian's docker.io (and
# dockerd started if none answers), the compose v2 plugin built from the Go module proxy,
# a debian:bookworm base made by debootstrap, and local stand-ins for the images the
# compose files name (etcd from the lab's binaries, Kafka from a Debian JRE and the lab's
# Maven jars, Prometheus from Debian's package, rift from the binary built on the host).
# compose/offline/<cluster>.yml swaps only those images; Grafana, which has no buildable
# source here, is not started. docs/compose.md describes both paths.
#
# Environment: RIFT_BIN (default target/debug/rift), RIFT_KAFKA_LIBS (default
# .rift/kafka-libs), RIFT_ETCD_DIR (default /opt/rift/etcd/3.6.16), RIFT_TOKEN (default
# rift-compose-token), RIFT_COMPOSE_TIMEOUT (seconds `up` waits for the cluster, 180),
# RIFT_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/go/bin"
export DEBIAN_FRONTEND=noninteractive

ETCD_VERSION=3.6.16
KAFKA_VERSION=4.4.0
ETCD_IMAGE=rift-offline/etcd:v$ETCD_VERSION
KAFKA_IMAGE=rift-offline/kafka:$KAFKA_VERSION
PROMETHEUS_IMAGE=rift-offline/prometheus:bookworm
RIFT_IMAGE=rift:local
COMPOSE_MODULE=github.com/docker/compose/v2@v2.40.3
MIRROR=${RIFT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
TOKEN=${RIFT_TOKEN:-rift-compose-token}
PLUGIN=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-compose
# Images built here carry this label, so cleaning up only ever touches the project's own.
LABEL=org.rift.offline

log() { echo "compose: $*" >&2; }
die() {
    echo "compose: error: $*" >&2
    exit 1
}

apt_install() {
    apt-get install -y --no-install-recommends "$@" ||
        { apt-get update && apt-get install -y --no-install-recommends "$@"; }
}

ensure_engine() {
    if ! command -v dockerd >/dev/null 2>&1; then
        log "installing docker.io from Debian"
        apt_install docker.io
    fi
    docker info >/dev/null 2>&1 && return
    # No init system runs services on these machines: start the daemon detached, with its
    # own log, so it outlives this script and serves the later steps.
    log "starting dockerd (log /var/log/rift-dockerd.log)"
    setsid dockerd --pidfile /var/run/rift-dockerd.pid >/var/log/rift-dockerd.log 2>&1 </dev/null &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return
        sleep 1
    done
    tail -20 /var/log/rift-dockerd.log >&2 || true
    die "dockerd did not answer within 60 s"
}

ensure_plugin() {
    docker compose version >/dev/null 2>&1 && return
    command -v go >/dev/null 2>&1 || die "go is not installed (scripts/setup.sh installs it)"
    # `go install` refuses this module (its go.mod has replace directives), so it is
    # built in a scratch module; module and build caches live in the scratch directory
    # and go with it, leaving only the plugin binary behind.
    local scratch started=$SECONDS
    scratch=$(mktemp -d /var/tmp/rift-compose-plugin.XXXXXX)
    log "building the compose v2 plugin ($COMPOSE_MODULE) in $scratch"
    mkdir -p "$(dirname "$PLUGIN")"
    if ! (
        cd "$scratch"
        export GOMODCACHE=$scratch/mod GOCACHE=$scratch/cache GOFLAGS="-modcacherw -buildvcs=false"
        go mod init rift.local/compose-plugin >/dev/null 2>&1
        go get "$COMPOSE_MODULE"
        go build -mod=mod -trimpath -ldflags="-s -w -X github.com/docker/compose/v2/internal.Version=${COMPOSE_MODULE#*@}" -o "$PLUGIN.tmp" github.com/docker/compose/v2/cmd
    ); then
        rm -rf "$scratch" "$PLUGIN.tmp"
        die "building the compose plugin failed"
    fi
    mv "$PLUGIN.tmp" "$PLUGIN"
    rm -rf "$scratch"
    log "compose plugin built in $((SECONDS - started)) s: $(docker compose version)"
}

ensure_base() {
    docker image inspect debian:bookworm >/dev/null 2>&1 && return
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    local scratch started=$SECONDS
    scratch=$(mktemp -d /var/tmp/rift-debootstrap.XXXXXX)
    log "debootstrap --variant=minbase bookworm from $MIRROR into $scratch"
    if ! debootstrap --variant=minbase bookworm "$scratch/root" "$MIRROR" >"$scratch.log" 2>&1; then
        tail -20 "$scratch.log" >&2
        rm -rf "$scratch" "$scratch.log"
        die "debootstrap failed"
    fi
    local root=$scratch/root
    # Keep the images small: no docs, man pages or translations from later installs, no
    # recommends, and no services started by package scripts inside image builds.
    cat >"$root/etc/dpkg/dpkg.cfg.d/rift-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/90rift-slim"
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod +x "$root/usr/sbin/policy-rc.d"
    cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
EOF
    rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
        "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    tar -C "$root" -c . | docker import --change 'CMD ["/bin/bash"]' --change "LABEL $LABEL=base" - debian:bookworm >/dev/null
    rm -rf "$scratch" "$scratch.log"
    log "debian:bookworm imported in $((SECONDS - started)) s ($(docker image inspect -f '{{.Size}}' debian:bookworm) bytes)"
}

# build_image TAG DIR FILE...: builds compose/offline/DIR with FILE... copied into the
# context, unless TAG already exists with the same inputs (hash of the Dockerfile, the
# entrypoint and the files); the replaced image is removed rather than left dangling.
build_image() {
    local tag=$1 dir=compose/offline/$2
    shift 2
    local inputs
    inputs=$( (cat "$dir"/*; for f in "$@"; do if [ -d "$f" ]; then cat "$f"/*; else cat "$f"; fi; done) | sha256sum | cut -c1-16)
    if [ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL.inputs\"}}" "$tag" 2>/dev/null)" = "$inputs" ]; then
        return
    fi
    local ctx started=$SECONDS old
    old=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
    ctx=$(mktemp -d /var/tmp/rift-image.XXXXXX)
    log "building $tag"
    # The classic builder: BuildKit needs the buildx plugin, which is not in docker.io.
    # (errexit does not apply inside a tested subshell, hence the explicit exits.)
    if ! (
        cp -a "$dir"/. "$ctx"/ || exit 1
        for f in "$@"; do
            case "$f" in
            */rift) strip -o "$ctx/rift" "$f" || exit 1 ;;
            *) if [ -d "$f" ]; then mkdir -p "$ctx/libs" && cp "$f"/*.jar "$ctx/libs/"; else cp "$f" "$ctx/"; fi || exit 1 ;;
            esac
        done
        DOCKER_BUILDKIT=0 docker build --force-rm --label "$LABEL=1" --label "$LABEL.inputs=$inputs" \
            -t "$tag" "$ctx" >"$ctx.log" 2>&1
    ); then
        tail -30 "$ctx.log" >&2 || true
        rm -rf "$ctx" "$ctx.log"
        die "building $tag failed"
    fi
    rm -f "$ctx.log"
    rm -rf "$ctx"
    if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$tag")" ]; then
        docker image rm "$old" >/dev/null 2>&1 || true
    fi
    log "$tag built in $((SECONDS - started)) s ($(docker image inspect -f '{{.Size}}' "$tag") bytes)"
}

build_cluster_images() {
    local cluster=$1
    build_image "$PROMETHEUS_IMAGE" prometheus
    case "$cluster" in
    etcd)
        local dir=${RIFT_ETCD_DIR:-/opt/rift/etcd/$ETCD_VERSION}
        [ -x "$dir/etcd" ] && [ -x "$dir/etcdctl" ] ||
            die "$dir/etcd and etcdctl are missing (scripts/setup.sh etcd builds them)"
        build_image "$ETCD_IMAGE" etcd "$dir/etcd" "$dir/etcdctl"
        ;;
    kafka)
        local libs=${RIFT_KAFKA_LIBS:-.rift/kafka-libs}
        [ -f "$libs/kafka_2.13-$KAFKA_VERSION.jar" ] ||
            die "$libs/kafka_2.13-$KAFKA_VERSION.jar is missing (scripts/setup.sh kafka resolves the jars)"
        build_image "$KAFKA_IMAGE" kafka "$(cd "$libs" && pwd)"
        ;;
    esac
}

build_rift_image() {
    local bin=${RIFT_BIN:-target/debug/rift}
    [ -x "$bin" ] || die "$bin is missing: cargo build --bin rift (or set RIFT_BIN)"
    local ctx_bin
    ctx_bin=$(mktemp -d /var/tmp/rift-bin.XXXXXX)
    # build_image picks the binary up by its name `rift`.
    ln -s "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" "$ctx_bin/rift"
    build_image "$RIFT_IMAGE" rift "$ctx_bin/rift"
    rm -rf "$ctx_bin"
}

compose() {
    local cluster=$1
    shift
    docker compose -f "compose/$cluster.yml" -f "compose/offline/$cluster.yml" "$@"
}

# Everything the stack made, found by the label compose puts on it.
leftovers() {
    local project=rift-$1 filter
    filter="label=com.docker.compose.project=$project"
    {
        docker ps -aq --filter "$filter" | sed 's/^/container /'
        docker network ls -q --filter "$filter" | sed 's/^/network /'
        docker volume ls -q --filter "$filter" | sed 's/^/volume /'
    } 2>/dev/null
}

down() {
    local cluster=$1
    if ! docker info >/dev/null 2>&1; then
        log "no Docker engine answers: nothing of rift-$cluster can be running"
        return 0
    fi
    if docker compose version >/dev/null 2>&1; then
        compose "$cluster" down --volumes --remove-orphans --timeout 5 >&2 || log "compose down failed; removing by label"
    fi
    local left
    left=$(leftovers "$cluster")
    if [ -n "$left" ]; then
        # Whatever compose did not remove (it failed, or is missing) goes by its label.
        while read -r kind id; do
            case "$kind" in
            container) docker rm -f "$id" >/dev/null ;;
            network) docker network rm "$id" >/dev/null ;;
            volume) docker volume rm -f "$id" >/dev/null ;;
            esac
        done <<<"$left"
    fi
    left=$(leftovers "$cluster")
    [ -z "$left" ] || die "rift-$cluster still has: $(echo "$left" | tr '\n' ' ')"
    log "rift-$cluster is down: no container, network or volume left"
}

on_up_exit() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        log "up failed (exit $status): bringing rift-$UP_CLUSTER down"
        down "$UP_CLUSTER" || true
    fi
}

up() {
    local cluster=$1 services started=$SECONDS
    case "$cluster" in
    etcd) services="rift etcd1 etcd2 etcd3 watch prometheus" ;;
    kafka) services="rift kafka1 kafka2 kafka3 watch prometheus" ;;
    esac
    ensure_engine
    ensure_plugin
    ensure_base
    build_cluster_images "$cluster"
    build_rift_image
    # From here on a failed step leaves nothing behind.
    UP_CLUSTER=$cluster
    trap on_up_exit EXIT
    log "starting rift-$cluster: $services (Grafana is not started: no image can be built for it here)"
    # shellcheck disable=SC2086 # a list of service names
    RIFT_TOKEN=$TOKEN compose "$cluster" up -d --no-build --quiet-pull $services >&2
    local ready
    if ! ready=$(RIFT_TOKEN=$TOKEN python3 compose/offline/ready.py "$cluster" "${RIFT_COMPOSE_TIMEOUT:-180}"); then
        compose "$cluster" ps -a >&2 || true
        compose "$cluster" logs --tail 10 >&2 || true
        exit 1
    fi
    log "rift-$cluster up in $((SECONDS - started)) s: $ready"
    echo "export RIFT_API=http://127.0.0.1:7070"
    echo "export RIFT_TOKEN=$TOKEN"
    trap - EXIT
}

# Stops the dockerd that ensure_engine started (its pid file says which); a daemon
# started some other way is not ours to stop.
stop_engine() {
    local pidfile=/var/run/rift-dockerd.pid pid
    [ -f "$pidfile" ] || { log "no dockerd started by this script"; return 0; }
    pid=$(cat "$pidfile")
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != dockerd ]; then
        log "dockerd ($pid) is no longer running"
        rm -f "$pidfile"
        return 0
    fi
    kill "$pid"
    for _ in $(seq 30); do
        [ -d "/proc/$pid" ] || { log "dockerd ($pid) stopped"; return 0; }
        sleep 1
    done
    die "dockerd ($pid) did not stop within 30 s"
}

usage() {
    sed -n '2,8p' "$0" >&2
    exit 2
}

[ $# -ge 1 ] || usage
action=$1
target=${2:-}
case "$action" in
up | down)
    case "$target" in etcd | kafka) ;; *) usage ;; esac
    "$action" "$target"
    ;;
prepare)
    started=$SECONDS
    ensure_engine
    ensure_plugin
    ensure_base
    case "${target:-all}" in
    all) build_cluster_images etcd && build_cluster_images kafka ;;
    etcd | kafka) build_cluster_images "$target" ;;
    *) usage ;;
    esac
    log "prepared in $((SECONDS - started)) s"
    ;;
stop-engine) stop_engine ;;
*) usage ;;
esac
