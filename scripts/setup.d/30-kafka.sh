#!/usr/bin/env bash
# Installs what rift's Kafka KRaft lab needs on a fresh Debian 12 machine:
# Java 17 and Maven (apt), then the Apache Kafka broker jars from Maven Central
# (compose/kafka-lab/pom.xml) copied into one classpath directory.
#
# The default version's directory is $RIFT_KAFKA_LIBS, or <repo>/.rift/kafka-libs; the
# lab (checkers/src/lab/kafka/runtime.rs) reads the same variable. Other versions
# (compose/kafka-lab/<major.minor>/pom.xml) go to /opt/rift/kafka/<version>.
# Idempotent: a second run with the jars present does nothing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

java_major() {
    java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1
}

need_apt=()
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ]; then
    need_apt+=(openjdk-17-jre-headless)
fi
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
command -v unzip >/dev/null 2>&1 || need_apt+=(unzip)
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "30-kafka: installing ${need_apt[*]}"
    sudo_if_needed apt-get update -q
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}"
fi

if [ "$(java_major)" -lt 17 ]; then
    echo "30-kafka: java 17 or newer is required, found: $(java -version 2>&1 | head -n1)" >&2
    exit 1
fi

install_kafka() {
    local pom="$1" libs="$2" version stamp
    version="$(sed -n 's|.*<kafka.version>\(.*\)</kafka.version>.*|\1|p' "$pom")"
    # The stamp names the pom's hash: editing the pom (a version bump) re-resolves.
    stamp="$libs/.complete-$(sha256sum "$pom" | cut -c1-16)"
    if [ -f "$stamp" ]; then
        echo "30-kafka: Kafka $version jars already in $libs"
        return 0
    fi

    echo "30-kafka: resolving Kafka $version into $libs"
    mkdir -p "$libs"
    rm -f "$libs"/*.jar "$libs"/.complete-*
    mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$libs"

    # The lab launches these two entry points by name: fail here, not in a test.
    local jar="$libs/kafka_2.13-$version.jar" listing class
    # Listed once into a variable: `unzip | grep -q` under pipefail fails at random when
    # grep stops reading early.
    listing="$(unzip -l "$jar")"
    for class in kafka/Kafka.class kafka/tools/StorageTool.class; do
        if ! grep -q " $class\$" <<<"$listing"; then
            echo "30-kafka: $class missing from $jar" >&2
            exit 1
        fi
    done
    touch "$stamp"
    echo "30-kafka: Kafka $version ready ($(ls "$libs"/*.jar | wc -l) jars)"
}

# The default version (the lab's and compose's) where the lab looks by default, and
# every other version the lab offers (`rift lab up kafka --version 3.9`) in its own
# directory under /opt/rift/kafka (checkers/src/lab/versions.rs names the same).
install_kafka "$repo/compose/kafka-lab/pom.xml" "${RIFT_KAFKA_LIBS:-$repo/.rift/kafka-libs}"
for pom in "$repo"/compose/kafka-lab/*/pom.xml; do
    version="$(sed -n 's|.*<kafka.version>\(.*\)</kafka.version>.*|\1|p' "$pom")"
    install_kafka "$pom" "${RIFT_OPT:-/opt/rift}/kafka/$version"
done
