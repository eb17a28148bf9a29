"""The rift Helm chart, validated without a cluster: helm lint, helm template, every
rendered object decoded strictly against the Kubernetes API types (k8scheck), and the
controllers' topologies against the members' advertised addresses. Each check has a
case where it must fail, asserting the reason."""

from __future__ import annotations

import json

import pytest

import chartcheck as cc

NS = "chaos"


@pytest.fixture(scope="session", autouse=True)
def tools():
    # Never skip: a missing tool is a failure that names the installer.
    for tool in (cc.helm_bin(), cc.k8scheck_bin()):
        assert tool.is_file(), f"{tool} is missing; run {cc.INSTALLER} (or scripts/setup.sh helm)"


@pytest.fixture(scope="session")
def default_render() -> str:
    out = cc.template()
    assert out.returncode == 0, out.stderr
    return out.stdout


def rendered(text: str) -> cc.Rendered:
    return cc.Rendered(cc.objects(text), NS)


def test_helm_lint_passes_with_defaults_and_with_tls():
    out = cc.run([str(cc.helm_bin()), "lint", "--strict", str(cc.CHART)])
    assert out.returncode == 0, out.stdout + out.stderr
    out = cc.run([str(cc.helm_bin()), "lint", "--strict", str(cc.CHART),
                  "--set", "tls.enabled=true", "--set", "tls.secretName=rift-tls"])
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("args", [
    [],
    ["--set", "tls.enabled=true", "--set", "tls.secretName=rift-tls", "--set", "etcd.replicas=5"],
    ["--set", "kafka.enabled=false", "--set", "monitoring.grafana.enabled=false"],
    ["--set", "token.existingSecret=mine", "--set", "monitoring.prometheus.enabled=false"],
])
def test_every_rendered_object_decodes_strictly(args):
    out = cc.template(*args)
    assert out.returncode == 0, out.stderr
    check = cc.run([str(cc.k8scheck_bin())], stdin=out.stdout)
    assert check.returncode == 0, check.stderr
    assert f"{len(cc.objects(out.stdout))} objects decoded strictly" in check.stdout, check.stdout


def test_default_render_has_the_expected_objects(default_render):
    docs = cc.objects(default_render)
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    for expected in [
        ("StatefulSet", "rift-etcd"), ("StatefulSet", "rift-kafka"),
        ("Deployment", "rift-etcd-controller"), ("Deployment", "rift-kafka-controller"),
        ("Service", "rift-etcd-controller"), ("Service", "rift-kafka-controller"),
        ("Service", "rift-etcd"), ("Service", "rift-kafka"),
        ("Secret", "rift-token"), ("ConfigMap", "rift-prometheus"),
        ("Deployment", "rift-prometheus"), ("Deployment", "rift-grafana"),
        ("ConfigMap", "rift-grafana-dashboard"),
    ]:
        assert expected in kinds, kinds
    # Images are values.
    out = cc.template("--set", "images.rift.repository=registry.example/rift", "--set", "images.rift.tag=v9")
    assert out.returncode == 0, out.stderr
    for s in cc.find(cc.objects(out.stdout), "StatefulSet"):
        assert cc.container(s["spec"]["template"]["spec"], "rift-agent")["image"] == "registry.example/rift:v9"


@pytest.mark.parametrize("replicas", [1, 3, 5])
def test_topology_matches_the_advertised_addresses(replicas):
    out = cc.template("--set", f"etcd.replicas={replicas}", "--set", f"kafka.replicas={replicas}",
                      release="chaos-lab")
    assert out.returncode == 0, out.stderr
    r = rendered(out.stdout)
    for cluster in ("etcd", "kafka"):
        assert len(r.pods(cluster)) == replicas
        assert cc.topology_problems(r, cluster) == []
        assert cc.advertised_problems(r, cluster) == []


def test_a_member_advertising_its_own_port_is_caught(default_render):
    """An etcd member that advertises its own peer port bypasses rift: named."""
    bad = default_render.replace("--initial-advertise-peer-urls=http://$(POD_NAME).rift-etcd.chaos.svc.cluster.local:12380",
                                 "--initial-advertise-peer-urls=http://$(POD_NAME).rift-etcd.chaos.svc.cluster.local:2380")
    assert bad != default_render
    problems = cc.advertised_problems(rendered(bad), "etcd")
    assert any("rift-etcd-1: --initial-advertise-peer-urls" in p and ":2380" in p and "12380" in p
               for p in problems), problems


def test_a_kafka_voter_on_the_wrong_pod_is_caught(default_render):
    r = rendered(default_render)
    kafka = cc.container(r.sets["kafka"]["spec"]["template"]["spec"], "kafka")
    for e in kafka["env"]:
        if e["name"] == "KAFKA_CONTROLLER_QUORUM_VOTERS":
            e["value"] = e["value"].replace("2@rift-kafka-1.", "2@rift-kafka-2.")
    problems = cc.advertised_problems(r, "kafka")
    assert any("voter 2" in p and "rift-kafka-1." in p for p in problems), problems


def test_a_topology_that_drifts_from_the_pods_is_caught(default_render):
    r = rendered(default_render)
    name, topo = r.topologies["etcd"]
    topo["node"][0]["source_hosts"] = ["rift-etcd-0.elsewhere.svc.cluster.local"]
    topo["node"][1]["endpoint"][0]["upstream"] = "127.0.0.1:2999"
    topo["agent"][2]["api"] = "rift-etcd-2.rift-etcd.chaos.svc.cluster.local:7999"
    problems = cc.topology_problems(r, "etcd")
    assert any("node rift-etcd-0 source_hosts" in p for p in problems), problems
    assert any("node rift-etcd-1 endpoint peer upstream '127.0.0.1:2999'" in p for p in problems), problems
    assert any("agent rift-etcd-2 api port 7999" in p for p in problems), problems


def test_a_bad_value_fails_naming_the_field():
    out = cc.template("--set", "etcd.replicas=two")
    assert out.returncode != 0
    assert "at '/etcd/replicas': got string, want integer" in out.stderr, out.stderr
    out = cc.template("--set", "kafka.agentPorts.controller=70000")
    assert out.returncode != 0
    assert "at '/kafka/agentPorts/controller': maximum: got 70,000, want 65,535" in out.stderr, out.stderr
    out = cc.template("--set", "etcd.replica=3")
    assert out.returncode != 0
    assert "at '/etcd': additional properties 'replica' not allowed" in out.stderr, out.stderr
    out = cc.template("--set", "tls.enabled=true")
    assert out.returncode != 0
    assert "tls.secretName is required" in out.stderr, out.stderr


def test_strict_decoding_rejects_unknown_fields_and_wrong_types(default_render):
    unknown = default_render.replace("podManagementPolicy: Parallel", "podManagementPolicy: Parallel\n  podManagmentPolicy: Parallel", 1)
    assert unknown != default_render
    check = cc.run([str(cc.k8scheck_bin())], stdin=unknown)
    assert check.returncode == 1
    assert 'unknown field "spec.podManagmentPolicy"' in check.stderr and "StatefulSet" in check.stderr, check.stderr
    wrong = default_render.replace("replicas: 1\n", 'replicas: "1"\n', 1)
    assert wrong != default_render
    check = cc.run([str(cc.k8scheck_bin())], stdin=wrong)
    assert check.returncode == 1 and "replicas" in check.stderr, check.stderr
    alien = default_render + "\n---\napiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata:\n  name: x\n"
    check = cc.run([str(cc.k8scheck_bin())], stdin=alien)
    assert check.returncode == 1 and "not a Kubernetes API type" in check.stderr, check.stderr
    check = cc.run([str(cc.k8scheck_bin())], stdin="# nothing\n")
    assert check.returncode == 1 and "no object" in check.stderr, check.stderr


def test_the_dashboard_is_composes_through_the_symlink(default_render):
    docs = cc.objects(default_render)
    dash = [d for d in cc.find(docs, "ConfigMap") if d["metadata"]["name"] == "rift-grafana-dashboard"][0]
    compose = (cc.REPO / "compose" / "grafana" / "dashboards" / "rift.json").read_text(encoding="utf-8")
    assert json.loads(dash["data"]["rift.json"]) == json.loads(compose)
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_prometheus_scrapes_every_controller_and_agent_with_the_token(default_render):
    r = rendered(default_render)
    prom = [d for d in cc.find(r.docs, "ConfigMap") if d["metadata"]["name"] == "rift-prometheus"][0]
    config = cc.yaml.safe_load(prom["data"]["prometheus.yml"])
    targets = {}
    for job in config["scrape_configs"]:
        assert job["authorization"]["credentials_file"] == "/etc/rift/token/token", job
        targets[job["job_name"]] = job["static_configs"][0]["targets"]
    for cluster in ("etcd", "kafka"):
        _, topo = r.topologies[cluster]
        assert sorted(targets[f"rift-{cluster}-agents"]) == sorted(a["api"] for a in topo["agent"])
        assert targets[f"rift-{cluster}-controller"] == [f"rift-{cluster}-controller.{NS}.svc.cluster.local:7070"]


def test_the_rendered_topologies_are_the_fixtures_rift_parses(default_render):
    """proxy/src/cluster/config.rs parses these fixtures with the controller's own
    parser; they must be what the chart renders, or that test checks something else."""
    r = rendered(default_render)
    for cluster in ("etcd", "kafka"):
        docs = [d for d in cc.find(r.docs, "ConfigMap") if d["metadata"]["name"] == r.topologies[cluster][0]]
        fixture = cc.K8S_DIR / "tests" / "fixtures" / f"{cluster}-topology.toml"
        assert docs[0]["data"]["topology.toml"] == fixture.read_text(encoding="utf-8"), (
            f"{fixture} differs from the chart's render; regenerate it from `helm template rift "
            f"deploy/kubernetes/rift --namespace chaos`"
        )
