"""Validates the compose clusters without a Docker engine: compose-spec schema, rift
topology against the compose services (with deliberately drifted copies that must fail),
Prometheus config with promtool, and the Grafana dashboard against rift's metric names.

Run: python3 -m pytest compose/tests (scripts/test.sh does). Missing tools are failures
that say to run scripts/setup.sh, never skips.
"""

import copy
import json
import shutil
import subprocess

import pytest

from composecheck import (
    COMPOSE_DIR,
    Cluster,
    dashboard_problems,
    etcd_problems,
    kafka_problems,
    lab_default_version,
    load_toml,
    load_yaml,
    rift_metric_names,
    schema_errors,
    version_problems,
)

CLUSTERS = {
    "etcd": ("etcd.yml", "rift-etcd.toml", etcd_problems),
    "kafka": ("kafka.yml", "rift-kafka.toml", kafka_problems),
}


def cluster(kind: str, compose=None, topology=None) -> Cluster:
    compose_file, topology_file, _ = CLUSTERS[kind]
    return Cluster(
        compose if compose is not None else load_yaml(COMPOSE_DIR / compose_file),
        topology if topology is not None else load_toml(COMPOSE_DIR / topology_file),
        f"compose/{compose_file}",
        f"compose/{topology_file}",
    )


def problems(kind: str, compose=None, topology=None) -> list[str]:
    return CLUSTERS[kind][2](cluster(kind, compose, topology))


@pytest.mark.parametrize("kind", CLUSTERS)
def test_compose_file_matches_the_compose_spec_schema(kind):
    errors = schema_errors(load_yaml(COMPOSE_DIR / CLUSTERS[kind][0]))
    assert errors == []


def test_schema_rejects_an_invalid_compose_file():
    bad = load_yaml(COMPOSE_DIR / "etcd.yml")
    bad["services"]["etcd1"]["restart"] = ["always"]
    bad["services"]["rift"]["networks"]["riftnet"]["ipv4_addres"] = "172.28.0.2"
    errors = schema_errors(bad)
    assert any("services/etcd1/restart" in e for e in errors), errors
    assert any("ipv4_addres" in e for e in errors), errors


@pytest.mark.parametrize("kind", CLUSTERS)
def test_topology_and_compose_agree_and_every_advertised_address_routes_through_rift(kind):
    assert problems(kind) == []


@pytest.mark.parametrize("kind", CLUSTERS)
def test_topology_parses_as_a_rift_topology(kind):
    topology = load_toml(COMPOSE_DIR / CLUSTERS[kind][1])
    names = [n["name"] for n in topology["node"]]
    assert len(names) == 3 and len(set(names)) == 3
    assert topology["api"]["listen"].endswith(":7070")


# Deliberately drifted copies: each must be caught with a message naming what drifted.


def test_drift_etcd_member_advertising_its_own_peer_address_is_caught():
    compose = load_yaml(COMPOSE_DIR / "etcd.yml")
    cmd = compose["services"]["etcd2"]["command"]
    cmd[cmd.index("--initial-advertise-peer-urls=http://rift:22380")] = "--initial-advertise-peer-urls=http://etcd2:2380"
    found = problems("etcd", compose=compose)
    assert any("etcd2" in p and "does not route through rift" in p for p in found), found


def test_drift_etcd_initial_cluster_pointing_at_another_members_port_is_caught():
    compose = load_yaml(COMPOSE_DIR / "etcd.yml")
    cmd = compose["services"]["etcd1"]["command"]
    i = next(i for i, a in enumerate(cmd) if a.startswith("--initial-cluster="))
    cmd[i] = cmd[i].replace("etcd3=http://rift:32380", "etcd3=http://rift:22380")
    found = problems("etcd", compose=compose)
    assert any("etcd3" in p and "32380" in p for p in found), found


def test_drift_topology_source_ip_changed_is_caught():
    topology = load_toml(COMPOSE_DIR / "rift-etcd.toml")
    topology["node"][2]["source_ips"] = ["172.28.0.99"]
    found = problems("etcd", topology=topology)
    assert any("etcd3" in p and "source_ips" in p for p in found), found


def test_drift_topology_upstream_port_changed_is_caught():
    topology = load_toml(COMPOSE_DIR / "rift-kafka.toml")
    topology["node"][1]["endpoint"][0]["upstream"] = "kafka2:9999"
    found = problems("kafka", topology=topology)
    assert any("kafka2" in p and "upstream" in p for p in found), found


def test_drift_topology_missing_node_is_caught():
    topology = load_toml(COMPOSE_DIR / "rift-kafka.toml")
    del topology["node"][2]
    found = problems("kafka", topology=topology)
    assert any("kafka3" in p for p in found), found


def test_drift_kafka_controller_not_advertised_is_caught():
    compose = load_yaml(COMPOSE_DIR / "kafka.yml")
    env = compose["services"]["kafka1"]["environment"]
    env["KAFKA_ADVERTISED_LISTENERS"] = "REPLICATION://rift:11092,CLIENT://127.0.0.1:11094"
    found = problems("kafka", compose=compose)
    assert any("kafka1" in p and "CONTROLLER" in p for p in found), found


def test_drift_kafka_voter_bypassing_rift_is_caught():
    compose = load_yaml(COMPOSE_DIR / "kafka.yml")
    for name in ("kafka1", "kafka2", "kafka3"):
        env = compose["services"][name]["environment"]
        env["KAFKA_CONTROLLER_QUORUM_VOTERS"] = "1@rift:11093,2@kafka2:9093,3@rift:13093"
    found = problems("kafka", compose=compose)
    assert any("controller voter" in p and "kafka2:9093" in p for p in found), found


def test_drift_kafka_client_port_not_published_is_caught():
    compose = load_yaml(COMPOSE_DIR / "kafka.yml")
    compose["services"]["rift"]["ports"].remove("127.0.0.1:13094:13094")
    found = problems("kafka", compose=compose)
    assert any("kafka3" in p and "13094" in p for p in found), found


def test_drift_rift_mounting_the_wrong_topology_is_caught():
    compose = load_yaml(COMPOSE_DIR / "kafka.yml")
    compose["services"]["rift"]["volumes"] = ["./rift-etcd.toml:/etc/rift/topology.toml:ro"]
    found = problems("kafka", compose=compose)
    assert any("must mount ./rift-kafka.toml" in p for p in found), found


def test_drift_watcher_reading_through_rift_is_caught():
    compose = load_yaml(COMPOSE_DIR / "etcd.yml")
    cmd = compose["services"]["watch"]["command"]
    cmd[cmd.index("--etcd=etcd2=http://etcd2:2379")] = "--etcd=etcd2=http://rift:22379"
    found = problems("etcd", compose=compose)
    assert any("etcd2" in p and "blind" in p for p in found), found


def test_drift_watcher_missing_a_node_is_caught():
    compose = load_yaml(COMPOSE_DIR / "kafka.yml")
    compose["services"]["watch"]["command"].remove("--kafka-controller=kafka3=172.29.0.13:9093")
    found = problems("kafka", compose=compose)
    assert any("does not watch kafka3" in p for p in found), found


def test_prometheus_config_passes_promtool():
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: run scripts/setup.sh (installs the Debian package prometheus)"
    result = subprocess.run(
        [promtool, "check", "config", str(COMPOSE_DIR / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_config(tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: run scripts/setup.sh (installs the Debian package prometheus)"
    broken = tmp_path / "prometheus.yml"
    broken.write_text((COMPOSE_DIR / "prometheus" / "prometheus.yml").read_text().replace("scrape_interval: 2s", "scrape_interval: soon", 1))
    result = subprocess.run([promtool, "check", "config", str(broken)], capture_output=True, text=True)
    assert result.returncode != 0


@pytest.mark.parametrize("kind", CLUSTERS)
def test_prometheus_scrapes_rift_and_the_watcher_where_they_listen(kind):
    c = cluster(kind)
    prom = load_yaml(COMPOSE_DIR / "prometheus" / "prometheus.yml")
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    api_port = c.topology["api"]["listen"].rsplit(":", 1)[1]
    assert f"rift:{api_port}" in targets
    watch_cmd = c.services["watch"]["command"]
    listen = next(a.split("=", 1)[1] for a in watch_cmd if a.startswith("--listen="))
    assert f"watch:{listen.rsplit(':', 1)[1]}" in targets
    assert c.services["prometheus"]["volumes"][0].startswith("./prometheus/prometheus.yml:")


def datasource_uid() -> str:
    ds = load_yaml(COMPOSE_DIR / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    return ds["datasources"][0]["uid"]


def test_dashboard_uses_only_rift_metrics_and_the_provisioned_datasource():
    dashboard = json.loads((COMPOSE_DIR / "grafana" / "dashboards" / "rift.json").read_text(encoding="utf-8"))
    known = rift_metric_names()
    assert {"rift_link_state", "rift_bytes_total", "rift_connections_active", "rift_relay_delay_seconds"} <= known
    assert dashboard_problems(dashboard, known, datasource_uid(), "rift.json") == []
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("link state", "bytes", "connections", "relay delay", "leader", "term", "isr"):
        assert topic in titles


def test_dashboard_check_catches_an_unknown_metric_and_a_wrong_datasource():
    dashboard = json.loads((COMPOSE_DIR / "grafana" / "dashboards" / "rift.json").read_text(encoding="utf-8"))
    broken = copy.deepcopy(dashboard)
    broken["panels"][1]["targets"][0]["expr"] = "rate(rift_bytes_sent_total[10s])"
    broken["panels"][2]["targets"][0]["datasource"] = {"type": "prometheus", "uid": "other"}
    found = dashboard_problems(broken, rift_metric_names(), datasource_uid(), "rift.json")
    assert any("rift_bytes_sent_total" in p for p in found), found
    assert any("'other'" in p for p in found), found


def test_grafana_provisioning_points_at_the_mounted_dashboards():
    provider = load_yaml(COMPOSE_DIR / "grafana" / "provisioning" / "dashboards" / "rift.yml")
    path = provider["providers"][0]["options"]["path"]
    for kind in CLUSTERS:
        grafana = cluster(kind).services["grafana"]
        assert f"./grafana/dashboards:{path}:ro" in grafana["volumes"]
        assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]


def test_dockerfile_builds_the_rift_binary_in_stages():
    text = (COMPOSE_DIR.parent / "Dockerfile").read_text(encoding="utf-8")
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) >= 2, stages
    assert "--bin rift" in text
    assert 'ENTRYPOINT ["/usr/local/bin/rift"]' in text
    for kind in CLUSTERS:
        rift = cluster(kind).services["rift"]
        assert rift["build"]["dockerfile"] == "Dockerfile" and rift["build"]["context"] == ".."


@pytest.mark.parametrize("kind", CLUSTERS)
def test_rift_api_off_loopback_has_a_token_and_prometheus_sends_it(kind):
    c = cluster(kind)
    assert not c.topology["api"]["listen"].startswith("127."), "the API is only on loopback"
    token = c.services["rift"]["environment"]["RIFT_TOKEN"]
    default = token.split(":-", 1)[1].rstrip("}") if ":-" in token else token
    assert default, f"rift in {kind} has no default token: {token!r}"
    prom = load_yaml(COMPOSE_DIR / "prometheus" / "prometheus.yml")
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "rift")
    assert job["authorization"]["credentials"] == default


@pytest.mark.parametrize("kind", CLUSTERS)
def test_compose_members_run_the_labs_default_version(kind):
    compose_file = CLUSTERS[kind][0]
    compose = load_yaml(COMPOSE_DIR / compose_file)
    default = lab_default_version(kind)
    assert version_problems(kind, compose, f"compose/{compose_file}", default) == []


def test_drift_compose_pinning_an_older_release_than_the_lab_is_caught():
    compose = load_yaml(COMPOSE_DIR / "etcd.yml")
    compose = copy.deepcopy(compose)
    compose["services"]["etcd2"]["image"] = "gcr.io/etcd-development/etcd:v3.5.21"
    found = version_problems("etcd", compose, "compose/etcd.yml", lab_default_version("etcd"))
    assert len(found) == 1, found
    assert "services.etcd2.image = gcr.io/etcd-development/etcd:v3.5.21" in found[0]
    assert "default etcd is 3.6.16" in found[0]


def test_lab_default_version_reads_the_last_release(tmp_path):
    rs = tmp_path / "versions.rs"
    rs.write_text(
        'pub const KAFKA_RELEASES: &[Release] = &[\n    Release {\n        line: "3.9",\n'
        '        version: "3.9.2",\n    },\n    Release {\n        line: "4.4",\n'
        '        version: "4.4.0",\n    },\n];\n'
    )
    assert lab_default_version("kafka", rs) == "4.4.0"
