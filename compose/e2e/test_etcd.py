"""compose/etcd.yml on the real Docker engine (offline stand-in images): up, the
leader-isolation scenario with --attach, Prometheus' view of it, down. Also: a failed
`up` leaves nothing behind. Run by scripts/test.sh after scripts/compose.sh prepare;
nothing here is skipped when Docker or an image is missing: scripts/compose.sh installs
or builds it, or the test fails saying why."""

import json
import socket
from pathlib import Path

import pytest

import stack

HERE = Path(__file__).resolve().parent
NODES = ["etcd1", "etcd2", "etcd3"]


def test_up_that_fails_leaves_nothing_behind():
    # Prometheus' host port is taken, so `up` fails after rift and the members started:
    # it must say so and take down everything it had started.
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 9090))
        busy.listen()
        res = stack.compose_sh("up", "etcd")
    assert res.returncode != 0, res.stdout
    assert "9090" in res.stderr, res.stderr
    assert "bringing rift-etcd down" in res.stderr, res.stderr
    assert "rift-etcd is down: no container, network or volume left" in res.stderr, res.stderr
    assert stack.leftovers("etcd") == []


@pytest.fixture(scope="module")
def up():
    res = stack.compose_sh("up", "etcd")
    try:
        assert res.returncode == 0, f"up failed:\n{res.stdout}\n{res.stderr}"
        yield res
    finally:
        stack.compose_sh("down", "etcd")


@pytest.fixture(scope="module")
def run(up, tmp_path_factory):
    out = tmp_path_factory.mktemp("etcd-leader-isolation")
    # Prometheus has rift's link states and the watcher's leader before the fault.
    stack.wait_series("rift_link_state", 12)
    stack.wait_series("rift_cluster_leader == 1", 1)
    res = stack.run_scenario("etcd", HERE / "etcd-leader-isolation.toml", out)
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else None
    return res, report


def test_up_prints_the_environment_and_waits_for_a_leader(up):
    assert "export RIFT_API=http://127.0.0.1:7070" in up.stdout.splitlines()
    assert f"export RIFT_TOKEN={stack.TOKEN}" in up.stdout.splitlines()
    assert "rift API up (nodes etcd1, etcd2, etcd3); leader etcd" in up.stderr, up.stderr


def test_leader_isolation_scenario_passes_with_attach(run):
    res, report = run
    assert res.returncode == 0, f"scenario exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    assert report is not None
    assert report["cluster"]["mode"] == "attach"
    assert report["status"] == "PASS", report["verdicts"]
    assert {v["checker"] for v in report["verdicts"]} >= {"leader-step-down", "majority-leader", "no-lost-writes"}
    assert all(v["status"] == "PASS" for v in report["verdicts"]), report["verdicts"]


def test_prometheus_scraped_the_cut_link_and_the_leader_change(run):
    _, report = run
    assert report is not None, "the scenario wrote no report"
    assert stack.scraped_problems(report, NODES) == []


def test_down_removes_every_container_network_and_volume(up):
    res = stack.compose_sh("down", "etcd")
    assert res.returncode == 0, res.stderr
    assert stack.leftovers("etcd") == []
