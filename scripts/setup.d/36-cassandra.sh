#!/usr/bin/env bash
# Installs what rift's Cassandra lab needs on a fresh Debian 12 machine: Java 17 and
# Maven (apt, as for Kafka), then Apache Cassandra (org.apache.cassandra:cassandra-all)
# and its runtime dependencies from Maven Central (compose/cassandra-lab/pom.xml),
# copied into one classpath directory.
#
# The directory is $RIFT_CASSANDRA_LIBS, or <repo>/.rift/cassandra-libs; the lab
# (checkers/src/cassandra/lab/plan.rs) reads the same variable.
# Idempotent: a second run with the jars present does nothing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
pom="$repo/compose/cassandra-lab/pom.xml"
libs="${RIFT_CASSANDRA_LIBS:-$repo/.rift/cassandra-libs}"

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
    echo "36-cassandra: installing ${need_apt[*]}"
    sudo_if_needed apt-get update -q
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}"
fi

if [ "$(java_major)" -lt 17 ]; then
    echo "36-cassandra: java 17 or newer is required, found: $(java -version 2>&1 | head -n1)" >&2
    exit 1
fi

version="$(sed -n 's|.*<cassandra.version>\(.*\)</cassandra.version>.*|\1|p' "$pom")"
# The stamp names the pom's hash: editing the pom (a version bump) re-resolves.
stamp="$libs/.complete-$(sha256sum "$pom" | cut -c1-16)"
if [ -f "$stamp" ]; then
    echo "36-cassandra: Cassandra $version jars already in $libs"
    exit 0
fi

echo "36-cassandra: resolving Cassandra $version into $libs"
mkdir -p "$libs"
rm -f "$libs"/*.jar "$libs"/.complete-*
mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs"

# The lab launches this entry point by name: fail here, not in a test.
jar="$libs/cassandra-all-$version.jar"
# Listed once into a variable: `unzip | grep -q` under pipefail fails at random when
# grep stops reading early.
listing="$(unzip -l "$jar")"
class=org/apache/cassandra/service/CassandraDaemon.class
if ! grep -q " $class\$" <<<"$listing"; then
    echo "36-cassandra: $class missing from $jar" >&2
    exit 1
fi
touch "$stamp"
echo "36-cassandra: Cassandra $version ready ($(ls "$libs"/*.jar | wc -l) jars)"
