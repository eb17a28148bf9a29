#!/usr/bin/env bash
# Installs what rift's ZooKeeper lab needs on a fresh Debian 12 machine: Java 17 and
# Maven (apt, as for Kafka), then Apache ZooKeeper's jars from Maven Central
# (compose/zookeeper-lab/pom.xml) copied into one classpath directory.
#
# The directory is $RIFT_ZOOKEEPER_LIBS, or <repo>/.rift/zookeeper-libs; the lab
# (checkers/src/zookeeper/lab.rs) reads the same variable.
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
    echo "35-zookeeper: installing ${need_apt[*]}"
    sudo_if_needed apt-get update -q
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}"
fi

if [ "$(java_major)" -lt 17 ]; then
    echo "35-zookeeper: java 17 or newer is required, found: $(java -version 2>&1 | head -n1)" >&2
    exit 1
fi

pom="$repo/compose/zookeeper-lab/pom.xml"
libs="${RIFT_ZOOKEEPER_LIBS:-$repo/.rift/zookeeper-libs}"
version="$(sed -n 's|.*<zookeeper.version>\(.*\)</zookeeper.version>.*|\1|p' "$pom")"
# The stamp names the pom's hash: editing the pom (a version bump) re-resolves.
stamp="$libs/.complete-$(sha256sum "$pom" | cut -c1-16)"
if [ -f "$stamp" ]; then
    echo "35-zookeeper: ZooKeeper $version jars already in $libs"
    exit 0
fi

echo "35-zookeeper: resolving ZooKeeper $version into $libs"
mkdir -p "$libs"
rm -f "$libs"/*.jar "$libs"/.complete-*
mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs"

# The lab launches this entry point by name: fail here, not in a test.
jar="$libs/zookeeper-$version.jar"
# Listed once into a variable: `unzip | grep -q` under pipefail fails at random when
# grep stops reading early.
listing="$(unzip -l "$jar")"
for class in org/apache/zookeeper/server/quorum/QuorumPeerMain.class; do
    if ! grep -q " $class\$" <<<"$listing"; then
        echo "35-zookeeper: $class missing from $jar" >&2
        exit 1
    fi
done
touch "$stamp"
echo "35-zookeeper: ZooKeeper $version ready ($(ls "$libs"/*.jar | wc -l) jars)"
