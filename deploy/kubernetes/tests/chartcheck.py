"""Checks of the rift Helm chart as rendered by `helm template`, with no cluster.

The chart works only if every address a member hands out (etcd's advertised peer and
client URLs and initial cluster, Kafka's advertised listeners and controller voters)
names its own pod's agent port for that endpoint, and the controller's topology agrees
with the pods: one agent per pod at the pod's DNS name, hosting the node of that pod,
recognising it by that DNS name, forwarding to the member's own port in the pod. Each
check returns problems naming the object, the pod and the value, like the compose checks.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import yaml

K8S_DIR = Path(__file__).resolve().parent.parent
CHART = K8S_DIR / "rift"
CHECK_MODULE = K8S_DIR / "check"
REPO = K8S_DIR.parent.parent
HELM_VERSION = "v3.22.0"
OPT = Path(os.environ.get("RIFT_OPT", "/opt/rift"))
INSTALLER = "scripts/setup.d/70-helm.sh"


def check_key() -> str:
    """Cache key of the k8scheck build: the same digest 70-helm.sh computes."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((CHECK_MODULE / name).read_bytes())
    return digest.hexdigest()[:16]


def helm_bin() -> Path:
    return OPT / "helm" / HELM_VERSION / "helm"


def k8scheck_bin() -> Path:
    return OPT / "k8scheck" / check_key() / "k8scheck"


def run(cmd: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)


def template(*args: str, release: str = "rift", namespace: str = "chaos") -> subprocess.CompletedProcess:
    return run([str(helm_bin()), "template", release, str(CHART), "--namespace", namespace, *args])


def objects(rendered: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(rendered) if d]


def find(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def container(pod_spec: dict, name: str) -> dict:
    for c in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
        if c["name"] == name:
            return c
    raise KeyError(name)


def flag(args: list[str], name: str) -> str | None:
    for a in args:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return None


def env(c: dict, name: str) -> str | None:
    for e in c.get("env", []):
        if e["name"] == name:
            return e.get("value")
    return None


def host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


class Rendered:
    """The rendered chart, indexed by cluster (etcd, kafka)."""

    def __init__(self, docs: list[dict], namespace: str, domain: str = "cluster.local"):
        self.docs = docs
        self.namespace = namespace
        self.domain = domain
        self.sets = {s["metadata"]["labels"]["app.kubernetes.io/component"]: s for s in find(docs, "StatefulSet")}
        self.topologies = {}
        for cm in find(docs, "ConfigMap"):
            if "topology.toml" in cm.get("data", {}):
                cluster = cm["metadata"]["labels"]["rift.dev/cluster"]
                self.topologies[cluster] = (cm["metadata"]["name"], tomllib.loads(cm["data"]["topology.toml"]))
        self.services = {s["metadata"]["name"]: s for s in find(docs, "Service")}

    def pod_host(self, cluster: str, pod: str) -> str:
        service = self.sets[cluster]["spec"]["serviceName"]
        return f"{pod}.{service}.{self.namespace}.svc.{self.domain}"

    def pods(self, cluster: str) -> list[str]:
        s = self.sets[cluster]
        return [f"{s['metadata']['name']}-{i}" for i in range(s["spec"]["replicas"])]


def expand(text: str, pod: str) -> str:
    """What Kubernetes makes of $(POD_NAME) in args and env of pod `pod`."""
    return text.replace("$(POD_NAME)", pod)


def topology_problems(r: Rendered, cluster: str) -> list[str]:
    """The controller's topology against the pods, the agents and the headless service."""
    problems: list[str] = []
    if cluster not in r.topologies:
        return [f"{cluster}: no ConfigMap with a topology.toml for this cluster"]
    origin, topo = r.topologies[cluster]
    sset = r.sets[cluster]
    spec = sset["spec"]["template"]["spec"]
    agent = container(spec, "rift-agent")
    agent_ports = {p["name"]: p["containerPort"] for p in agent.get("ports", [])}
    api_listen = flag(agent["args"], "api-listen")
    service = r.services.get(sset["spec"]["serviceName"])
    service_ports = {p["port"] for p in (service or {}).get("spec", {}).get("ports", [])}
    if service is None:
        problems.append(f"{sset['metadata']['name']}: headless service {sset['spec']['serviceName']} not rendered")
    member = [c for c in spec["containers"] if c["name"] != "rift-agent"][0]
    member_ports = {p["containerPort"] for p in member.get("ports", [])}
    agents = {a["name"]: a for a in topo.get("agent", [])}
    nodes = {n["name"]: n for n in topo.get("node", [])}
    pods = r.pods(cluster)
    if sorted(agents) != sorted(pods):
        problems.append(f"{origin}: agents {sorted(agents)} != pods {pods}")
    if sorted(nodes) != sorted(pods):
        problems.append(f"{origin}: nodes {sorted(nodes)} != pods {pods}")
    for pod in pods:
        host = r.pod_host(cluster, pod)
        a = agents.get(pod)
        if a is not None:
            if a.get("nodes") != [pod]:
                problems.append(f"{origin}: agent {pod} hosts {a.get('nodes')}, expected [{pod!r}]")
            ahost, aport = host_port(a["api"])
            if ahost != host:
                problems.append(f"{origin}: agent {pod} api host {ahost!r} is not the pod's DNS name {host!r}")
            if api_listen is None or host_port(api_listen)[1] != aport:
                problems.append(f"{origin}: agent {pod} api port {aport} but the sidecar listens on {api_listen!r}")
            if aport not in service_ports:
                problems.append(f"{origin}: agent {pod} api port {aport} not in the headless service's ports {sorted(service_ports)}")
        n = nodes.get(pod)
        if n is None:
            continue
        if n.get("source_hosts") != [host]:
            problems.append(f"{origin}: node {pod} source_hosts {n.get('source_hosts')} != [{host!r}]")
        for ep in n.get("endpoint", []):
            lhost, lport = host_port(ep["listen"])
            if agent_ports.get(ep["name"]) != lport:
                problems.append(
                    f"{origin}: node {pod} endpoint {ep['name']} listens on {lport}, the agent container declares "
                    f"{ep['name']}={agent_ports.get(ep['name'])}"
                )
            if lport not in service_ports:
                problems.append(f"{origin}: node {pod} endpoint {ep['name']} port {lport} not published by the headless service")
            uhost, uport = host_port(ep["upstream"])
            if uhost != "127.0.0.1" or uport not in member_ports:
                problems.append(
                    f"{origin}: node {pod} endpoint {ep['name']} upstream {ep['upstream']!r} is not the member in "
                    f"the pod (127.0.0.1, ports {sorted(member_ports)})"
                )
    controller = flag(agent["args"], "controller")
    expected = f"{r.topologies[cluster][0]}.{r.namespace}.svc.{r.domain}"
    if controller is None or urlsplit(controller).hostname != expected:
        problems.append(f"{sset['metadata']['name']}: agent --controller {controller!r} is not the service {expected}")
    elif r.services.get(r.topologies[cluster][0]) is None:
        problems.append(f"{sset['metadata']['name']}: controller service {r.topologies[cluster][0]} not rendered")
    return problems


def endpoint_port(topo: dict, node: str, endpoint: str) -> int | None:
    for n in topo.get("node", []):
        if n["name"] == node:
            for ep in n.get("endpoint", []):
                if ep["name"] == endpoint:
                    return host_port(ep["listen"])[1]
    return None


def advertised_problems(r: Rendered, cluster: str) -> list[str]:
    """Every address each member hands out names its agent's port for that endpoint."""
    problems: list[str] = []
    origin, topo = r.topologies[cluster]
    sset = r.sets[cluster]
    spec = sset["spec"]["template"]["spec"]
    pods = r.pods(cluster)

    def expect(pod: str, what: str, addr: str, node: str, endpoint: str) -> None:
        host, port = host_port(addr)
        want = (r.pod_host(cluster, node), endpoint_port(topo, node, endpoint))
        if (host, port) != want:
            problems.append(f"{pod}: {what} {addr!r} should be {want[0]}:{want[1]} ({node}'s agent, endpoint {endpoint} in {origin})")

    if cluster == "etcd":
        etcd = container(spec, "etcd")
        for pod in pods:
            args = [expand(a, pod) for a in etcd["command"]]
            if flag(args, "name") != pod:
                problems.append(f"{pod}: --name={flag(args, 'name')!r} is not the pod's name")
            for what, endpoint in (("initial-advertise-peer-urls", "peer"), ("advertise-client-urls", "client")):
                for url in (flag(args, what) or "").split(","):
                    expect(pod, f"--{what}", urlsplit(url).netloc, pod, endpoint)
            members = dict(m.split("=", 1) for m in (flag(args, "initial-cluster") or "").split(",") if "=" in m)
            if sorted(members) != sorted(pods):
                problems.append(f"{pod}: --initial-cluster names {sorted(members)}, pods are {pods}")
            for name, url in members.items():
                expect(pod, f"--initial-cluster {name}", urlsplit(url).netloc, name, "peer")
    elif cluster == "kafka":
        kafka = container(spec, "kafka")
        for pod in pods:
            listeners = {}
            for item in expand(env(kafka, "KAFKA_ADVERTISED_LISTENERS") or "", pod).split(","):
                name, _, addr = item.partition("://")
                listeners[name] = addr
            for name, endpoint in (("REPLICATION", "replication"), ("CONTROLLER", "controller"), ("CLIENT", "client")):
                if name not in listeners:
                    problems.append(f"{pod}: KAFKA_ADVERTISED_LISTENERS has no {name} listener")
                else:
                    expect(pod, f"advertised {name}", listeners[name], pod, endpoint)
            voters = (env(kafka, "KAFKA_CONTROLLER_QUORUM_VOTERS") or "").split(",")
            if len(voters) != len(pods):
                problems.append(f"{pod}: KAFKA_CONTROLLER_QUORUM_VOTERS has {len(voters)} voters for {len(pods)} pods")
            for i, voter in enumerate(voters):
                node_id, _, addr = voter.partition("@")
                # The container sets KAFKA_NODE_ID to the pod's ordinal + 1.
                if i < len(pods) and node_id != str(i + 1):
                    problems.append(f"{pod}: voter {voter!r} should have id {i + 1} (ordinal {i} + 1)")
                if i < len(pods):
                    expect(pod, f"voter {node_id}", addr, pods[i], "controller")
    return problems
