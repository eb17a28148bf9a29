"""Drives a compose cluster on the real Docker engine for compose/e2e: scripts/compose.sh
up/down, a scenario run from a one-off rift container, and Prometheus' HTTP API.

Everything the host talks to is on 127.0.0.1 (ports the stack publishes); the scenario
runs inside the stack's own network namespace. Every command has a time bound.
"""

import calendar
import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOKEN = os.environ.get("RIFT_TOKEN", "rift-compose-token")
PROMETHEUS = "http://127.0.0.1:9090"


def sh(args, timeout, env=None, check=False):
    """Runs a command with a deadline; the result keeps stdout and stderr for messages."""
    res = subprocess.run(
        args,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return res


def compose_sh(action, cluster, timeout=1500, env=None):
    # `up` may still build an image (the rift binary changed); building the plugin and the
    # base happened earlier (scripts/test.sh prepares them in the background).
    return sh(["scripts/compose.sh", action, cluster], timeout, env=env)


def leftovers(cluster):
    """Containers, networks and volumes carrying the stack's compose project label."""
    flt = f"label=com.docker.compose.project=rift-{cluster}"
    found = []
    for kind, cmd in (
        ("container", ["docker", "ps", "-aq", "--filter", flt]),
        ("network", ["docker", "network", "ls", "-q", "--filter", flt]),
        ("volume", ["docker", "volume", "ls", "-q", "--filter", flt]),
    ):
        out = sh(cmd, 30, check=True).stdout.split()
        found += [f"{kind} {x}" for x in out]
    return found


def container(cluster, service):
    files = ["-f", f"compose/{cluster}.yml", "-f", f"compose/offline/{cluster}.yml"]
    ids = sh(["docker", "compose", *files, "ps", "-q", service], 60, check=True).stdout.split()
    assert len(ids) == 1, f"rift-{cluster} has {len(ids)} running {service} containers: {ids}"
    return ids[0]


def run_scenario(cluster, scenario: Path, out: Path, timeout=300):
    """`rift scenario run --attach` from a one-off rift container that shares the rift
    container's network namespace: the API is 127.0.0.1:7070 there, the members' real
    addresses (etcd1:2379, kafka1:9093, ...) resolve on the stack's network, and Kafka's
    advertised client listeners (127.0.0.1:1N094) reach rift's listeners, so the run is
    the identity `client` to rift, as a user's client is."""
    out.mkdir(parents=True, exist_ok=True)
    rift = container(cluster, "rift")
    return sh(
        [
            "docker", "run", "--rm", "--network", f"container:{rift}",
            "-e", f"RIFT_TOKEN={TOKEN}",
            "-v", f"{scenario.parent}:/scenario:ro", "-v", f"{out}:/out",
            "rift:local", "scenario", "run", f"/scenario/{scenario.name}",
            "--attach", "http://127.0.0.1:7070", "--out", "/out", "--quiet",
        ],
        timeout,
    )


def report_times(report):
    """Wall-clock seconds of the fault and heal marks (started_at has 1 s resolution)."""
    started = calendar.timegm(time.strptime(report["started_at"], "%Y-%m-%dT%H:%M:%SZ"))
    marks = {p["phase"]: started + p["at_ms"] / 1000 for p in report["phases"]}
    return started, marks["fault"], marks["heal"], started + report["duration_ms"] / 1000


def prom_range(query, start, end, step=1.0):
    """[(labels, [(t, value)])] from Prometheus' query_range API."""
    q = urllib.parse.urlencode({"query": query, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{PROMETHEUS}/api/v1/query_range?{q}", timeout=10) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return [
        (r["metric"], [(float(t), float(v)) for t, v in r["values"]])
        for r in body["data"]["result"]
    ]


def prom_now(query):
    """[(labels, value)] from Prometheus' instant query API, evaluated now."""
    q = urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(f"{PROMETHEUS}/api/v1/query?{q}", timeout=10) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]


def wait_series(query, count, timeout=60):
    """Waits until the instant query returns `count` series: a check run right after
    `up` would otherwise find nothing scraped yet before its fault."""
    deadline = time.monotonic() + timeout
    got = []
    while time.monotonic() < deadline:
        got = prom_now(query)
        if len(got) == count:
            return got
        time.sleep(1)
    raise AssertionError(f"Prometheus: {query!r} gave {got} after {timeout} s, expected {count} series")


def wait_scraped(after, timeout=30):
    """Waits until Prometheus' last scrape of both rift and the watcher is later than
    `after` (epoch s), so range queries up to then see final samples."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = prom_now('min(timestamp(up{job=~"rift|rift-watch"} == 1)) and count(up{job=~"rift|rift-watch"} == 1) == 2')
        if last and last[0][1] > after:
            return
        time.sleep(1)
    raise AssertionError(f"Prometheus did not scrape rift and the watcher after {after} within {timeout} s (last {last})")


# Judging the series. These are pure so compose/tests checks them (and their failures)
# without an engine. Times are epoch seconds; the report's marks may be up to 1 s early
# (started_at has 1 s resolution) and samples up to one scrape interval old.
SCRAPE_S = 2.0
MARK_RES_S = 1.0


def _at(samples, lo, hi):
    return [v for t, v in samples if lo <= t <= hi]


def link_held_problems(samples, fault, heal, end):
    """rift_link_state of a cut link: 0 (pass) before the fault, 1 (hold) throughout the
    fault once a scrape could see it, 0 again once a scrape after the heal could."""
    problems = []
    before = _at(samples, fault - 2 * SCRAPE_S, fault)
    during = _at(samples, fault + MARK_RES_S + SCRAPE_S + 0.5, heal)
    after = _at(samples, heal + MARK_RES_S + SCRAPE_S + 0.5, end)
    for name, values, want in (("before the fault", before, 0), ("during the fault", during, 1), ("after the heal", after, 0)):
        if not values:
            problems.append(f"no sample {name}")
        elif any(v != want for v in values):
            problems.append(f"{name}: values {sorted(set(values))}, expected {want}")
    return problems


def leader_moved_problems(series, old_leader, fault, heal):
    """rift_cluster_leader{node}: the old leader is 1 just before the fault, and by the
    end of the hold it is not, while another member is."""
    problems = []
    if old_leader not in series:
        return [f"no rift_cluster_leader series for {old_leader} (have {sorted(series)})"]
    before = _at(series[old_leader], fault - SCRAPE_S, fault)
    if not before or before[-1] != 1:
        problems.append(f"{old_leader} was not the leader just before the fault: {before}")
    late = {node: _at(s, heal - 1.0, heal) for node, s in series.items()}
    if not late[old_leader] or late[old_leader][-1] != 0:
        problems.append(f"{old_leader} still leads at the end of the hold: {late[old_leader]}")
    others = sorted(n for n, v in late.items() if n != old_leader and v and v[-1] == 1)
    if len(others) != 1:
        problems.append(f"expected one new leader at the end of the hold, got {others} ({late})")
    return problems


def scraped_problems(report, nodes):
    """What Prometheus inside the stack recorded of a scenario run: the cut link from the
    isolated leader to a follower (rift's own metric) and the leader change (from
    `rift watch`), judged on the run's fault and heal marks."""
    started, fault, heal, end = report_times(report)
    wait_scraped(end)
    leader = report["fault"]["bindings"]["leader"]
    follower = next(n for n in nodes if n != leader)
    if not any(r["from"] == leader and r["to"] == follower for r in report["fault"]["rules"]):
        return [f"the fault has no rule {leader} -> {follower}: {report['fault']['rules']}"]
    link = prom_range(f'rift_link_state{{src="{leader}",dst="{follower}"}}', started - 5, end + 5)
    if len(link) != 1:
        return [f"rift_link_state{{src={leader},dst={follower}}}: {len(link)} series"]
    problems = [f"rift_link_state {leader}->{follower}: {p}" for p in link_held_problems(link[0][1], fault, heal, end + 5)]
    leaders = {m["node"]: s for m, s in prom_range("rift_cluster_leader", started - 5, end + 5)}
    if sorted(leaders) != sorted(nodes):
        return problems + [f"rift_cluster_leader has series for {sorted(leaders)}, expected {sorted(nodes)}"]
    return problems + [f"rift_cluster_leader: {p}" for p in leader_moved_problems(leaders, leader, fault, heal)]
