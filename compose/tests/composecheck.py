"""Structural checks for the compose clusters, for machines without a Docker engine.

A compose file that parses is not enough: Kafka and etcd only work through rift if every
address a member hands out (advertised peer/client URLs, advertised listeners, controller
voters) names rift's port for that member, and rift's topology must agree with the compose
services on names, source IPs and upstream ports. Each check returns human-readable
problems naming the file, the service and the value, so a drifted file fails with a
message that says what to fix.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import yaml

COMPOSE_DIR = Path(__file__).resolve().parent.parent
REPO = COMPOSE_DIR.parent
SCHEMA = COMPOSE_DIR / "schema" / "compose-spec.json"


def load_yaml(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_toml(path: Path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def schema_errors(compose: dict) -> list[str]:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(compose), key=lambda e: list(map(str, e.absolute_path)))
    ]


def split_host_port(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


class Cluster:
    """A compose file and the rift topology it mounts, cross-indexed."""

    def __init__(self, compose: dict, topology: dict, origin: str, topology_origin: str):
        self.compose = compose
        self.topology = topology
        self.origin = origin
        self.topology_origin = topology_origin
        self.services: dict = compose.get("services", {})
        self.nodes = {n["name"]: n for n in topology.get("node", [])}
        self.rift_ip = self.ipv4("rift")
        # rift's listen ports -> (node, endpoint)
        self.listen_ports: dict[int, tuple[str, dict]] = {}
        for node in self.nodes.values():
            for ep in node.get("endpoint", []):
                self.listen_ports[split_host_port(ep["listen"])[1]] = (node["name"], ep)

    def ipv4(self, service: str) -> str | None:
        nets = self.services.get(service, {}).get("networks", {})
        if isinstance(nets, dict):
            for cfg in nets.values():
                if isinstance(cfg, dict) and cfg.get("ipv4_address"):
                    return cfg["ipv4_address"]
        return None

    def rift_host_ports(self) -> dict[int, int]:
        """Host port -> container port for the ports the rift service publishes."""
        out = {}
        for spec in self.services.get("rift", {}).get("ports", []):
            parts = str(spec).split(":")
            out[int(parts[-2])] = int(parts[-1])
        return out

    def is_rift(self, host: str) -> bool:
        return host in ("rift", self.rift_ip)

    def endpoint(self, node: str, name: str) -> dict | None:
        for ep in self.nodes.get(node, {}).get("endpoint", []):
            if ep["name"] == name:
                return ep
        return None

    def check_advertised(self, service: str, what: str, host: str, port: int, endpoint: str) -> list[str]:
        """An address that `service` hands out must reach rift's `endpoint` port of that
        same node, either on the compose network (rift:port) or on the host through a port
        rift publishes."""
        where = f"{self.origin}: service {service}: {what} {host}:{port}"
        ep = self.endpoint(service, endpoint)
        if ep is None:
            return [f"{where}: {self.topology_origin} has no endpoint {endpoint!r} for node {service!r}"]
        rift_port = split_host_port(ep["listen"])[1]
        if self.is_rift(host):
            if port != rift_port:
                return [f"{where}: rift listens for {service}/{endpoint} on port {rift_port}, not {port}"]
            return []
        if host in ("127.0.0.1", "localhost"):
            published = self.rift_host_ports()
            if published.get(port) != rift_port:
                return [f"{where}: host port {port} is not published by rift to its {service}/{endpoint} port {rift_port}"]
            return []
        return [f"{where}: does not route through rift (host must be 'rift', {self.rift_ip}, or a port rift publishes)"]

    def check_nodes(self, members: dict[str, dict[str, int]]) -> list[str]:
        """`members`: service -> {endpoint name: real port it listens on}."""
        problems = []
        for service, listens in members.items():
            node = self.nodes.get(service)
            if node is None:
                problems.append(f"{self.topology_origin}: no [[node]] named {service!r} for compose service {service}")
                continue
            ip = self.ipv4(service)
            if node.get("source_ips") != [ip]:
                problems.append(
                    f"{self.topology_origin}: node {service}: source_ips = {node.get('source_ips')} "
                    f"but {self.origin} gives {service} ipv4_address {ip}"
                )
            for name, port in listens.items():
                ep = self.endpoint(service, name)
                if ep is None:
                    problems.append(f"{self.topology_origin}: node {service} has no endpoint {name!r}")
                elif ep["upstream"] not in (f"{service}:{port}", f"{ip}:{port}"):
                    problems.append(
                        f"{self.topology_origin}: node {service} endpoint {name}: upstream = {ep['upstream']!r} "
                        f"but {service} listens on port {port}"
                    )
        for name in self.nodes:
            if name not in members:
                problems.append(f"{self.topology_origin}: node {name!r} has no matching member service in {self.origin}")
        return problems

    def check_rift_service(self, topology_file: str) -> list[str]:
        problems = []
        rift = self.services.get("rift")
        if rift is None:
            return [f"{self.origin}: no rift service"]
        mounts = [str(v).split(":") for v in rift.get("volumes", [])]
        if not any(m[0] == f"./{topology_file}" and m[1] in rift.get("command", []) for m in mounts):
            problems.append(f"{self.origin}: service rift must mount ./{topology_file} at the path its --topology names")
        listens = set(self.listen_ports)
        for host_port, container_port in self.rift_host_ports().items():
            api_port = split_host_port(self.topology.get("api", {}).get("listen", ":0"))[1]
            if container_port not in listens and container_port != api_port:
                problems.append(f"{self.origin}: rift publishes {host_port}:{container_port} but listens on no such port")
        return problems


def watch_problems(cluster: Cluster, kind: str) -> list[str]:
    """`rift watch` must name members as the topology does and read their real
    addresses (a watcher behind rift would be blinded by the partitions it reports)."""
    problems = []
    watch = cluster.services.get("watch")
    if watch is None:
        return [f"{cluster.origin}: no watch service (the dashboard's cluster gauges come from it)"]
    where = f"{cluster.origin}: service watch"
    seen = set()
    for arg in watch.get("command", []):
        flag, _, value = arg.partition("=")
        if flag in ("--etcd", "--kafka-controller"):
            name, _, addr = value.partition("=")
            seen.add(name)
            host, port = url_host_port(addr) if "://" in addr else split_host_port(addr)
            if name not in cluster.nodes:
                problems.append(f"{where}: {arg}: {name!r} is not a node of {cluster.topology_origin}")
            elif host not in (name, cluster.ipv4(name)):
                problems.append(f"{where}: {arg}: must be {name}'s own address, not {host} (rift would blind the watcher)")
            else:
                endpoint = "client" if flag == "--etcd" else "controller"
                real = cluster.endpoint(name, endpoint)
                if real is None or split_host_port(real["upstream"])[1] != port:
                    problems.append(f"{where}: {arg}: port {port} is not {name}'s real {endpoint} port")
        elif flag == "--kafka-bootstrap":
            host, port = split_host_port(value)
            if cluster.is_rift(host) or host not in {cluster.ipv4(n) for n in cluster.nodes}:
                problems.append(f"{where}: {arg}: must be a node's own address")
    missing = sorted(set(cluster.nodes) - seen)
    if missing:
        problems.append(f"{where}: does not watch {', '.join(missing)}")
    return problems


def flag_map(command: list[str]) -> dict[str, str]:
    out = {}
    for arg in command:
        if arg.startswith("--") and "=" in arg:
            key, _, value = arg[2:].partition("=")
            out[key] = value
    return out


def url_host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or 0


def etcd_problems(cluster: Cluster) -> list[str]:
    problems = cluster.check_rift_service("rift-etcd.toml")
    members = {}
    for service, svc in cluster.services.items():
        if "etcd" not in str(svc.get("image", "")):
            continue
        flags = flag_map(svc.get("command", []))
        if flags.get("name") != service:
            problems.append(f"{cluster.origin}: service {service}: --name={flags.get('name')} must equal the service name")
        members[service] = {
            "peer": url_host_port(flags.get("listen-peer-urls", ""))[1],
            "client": url_host_port(flags.get("listen-client-urls", ""))[1],
        }
        for url in flags.get("initial-advertise-peer-urls", "").split(","):
            problems += cluster.check_advertised(service, "--initial-advertise-peer-urls", *url_host_port(url), "peer")
        for url in flags.get("advertise-client-urls", "").split(","):
            problems += cluster.check_advertised(service, "--advertise-client-urls", *url_host_port(url), "client")
        for entry in flags.get("initial-cluster", "").split(","):
            name, _, url = entry.partition("=")
            problems += cluster.check_advertised(name, f"--initial-cluster of {service}", *url_host_port(url), "peer")
    return problems + cluster.check_nodes(members) + watch_problems(cluster, "etcd")


def kafka_problems(cluster: Cluster) -> list[str]:
    problems = cluster.check_rift_service("rift-kafka.toml")
    members = {}
    node_ids = {}
    for service, svc in cluster.services.items():
        if "kafka" not in str(svc.get("image", "")):
            continue
        env = svc.get("environment", {})
        node_ids[str(env.get("KAFKA_NODE_ID"))] = service
        listeners = {}
        for item in str(env.get("KAFKA_LISTENERS", "")).split(","):
            name, _, addr = item.partition("://")
            listeners[name] = split_host_port(addr)[1]
        members[service] = {name.lower(): port for name, port in listeners.items()}
        advertised = {}
        for item in str(env.get("KAFKA_ADVERTISED_LISTENERS", "")).split(","):
            name, _, addr = item.partition("://")
            advertised[name] = addr
            problems += cluster.check_advertised(service, f"advertised listener {name}", *split_host_port(addr), name.lower())
        for name in listeners:
            if name not in advertised:
                problems.append(
                    f"{cluster.origin}: service {service}: listener {name} is not in KAFKA_ADVERTISED_LISTENERS "
                    f"(peers would learn its real address and bypass rift)"
                )
    voters = set()
    for service, svc in cluster.services.items():
        env = svc.get("environment", {}) if "kafka" in str(svc.get("image", "")) else {}
        if "KAFKA_CONTROLLER_QUORUM_VOTERS" in env:
            voters.add(env["KAFKA_CONTROLLER_QUORUM_VOTERS"])
            if "KAFKA_CONTROLLER_QUORUM_BOOTSTRAP_SERVERS" in env:
                problems.append(f"{cluster.origin}: service {service}: use static controller.quorum.voters only")
    if len(voters) != 1:
        problems.append(f"{cluster.origin}: KAFKA_CONTROLLER_QUORUM_VOTERS must be set and identical on every node: {sorted(voters)}")
    for voter in next(iter(voters), "").split(","):
        node_id, _, addr = voter.partition("@")
        service = node_ids.get(node_id)
        if service is None:
            problems.append(f"{cluster.origin}: controller voter {voter}: no service has KAFKA_NODE_ID {node_id}")
            continue
        problems += cluster.check_advertised(service, "controller voter", *split_host_port(addr), "controller")
    return problems + cluster.check_nodes(members) + watch_problems(cluster, "kafka")


# Metric names appear in rift's Rust code as string literals: in metrics macros
# (proxy) or in the samples `rift watch` renders (checkers).
METRIC_LITERAL = re.compile(r'"(rift_[a-z0-9_]+)"')
PROMQL_NAME = re.compile(r"\b(rift_[a-z0-9_]+)\b")


def rift_metric_names(roots: list[Path] | None = None) -> set[str]:
    """Every `rift_*` name that rift's Rust code spells out as a string literal."""
    names = set()
    for root in roots or [REPO / "proxy" / "src", REPO / "checkers" / "src", REPO / "src"]:
        for path in root.rglob("*.rs"):
            names.update(METRIC_LITERAL.findall(path.read_text(encoding="utf-8")))
    return names


def dashboard_problems(dashboard: dict, known: set[str], datasource_uid: str, origin: str) -> list[str]:
    problems = []
    panels = dashboard.get("panels", [])
    if not panels:
        problems.append(f"{origin}: no panels")
    for panel in panels:
        title = panel.get("title", "?")
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{origin}: panel {title!r} has no queries")
        for t in targets:
            uid = (t.get("datasource") or panel.get("datasource") or {}).get("uid")
            if uid != datasource_uid:
                problems.append(f"{origin}: panel {title!r}: datasource uid {uid!r}, provisioned is {datasource_uid!r}")
            names = PROMQL_NAME.findall(t.get("expr", ""))
            if not names:
                problems.append(f"{origin}: panel {title!r}: query {t.get('expr')!r} uses no rift metric")
            for name in names:
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                if name not in known and base not in known:
                    problems.append(f"{origin}: panel {title!r}: metric {name} is not named anywhere in rift's code")
    return problems


# The image of each system's members, and the lab's release list it must follow.
MEMBER_IMAGES = {
    "etcd": ("gcr.io/etcd-development/etcd", "ETCD_RELEASES", "v"),
    "kafka": ("apache/kafka", "KAFKA_RELEASES", ""),
}


def lab_default_version(kind: str, versions_rs: Path | None = None) -> str:
    """The newest (default) release of `kind` in checkers/src/lab/versions.rs."""
    path = versions_rs or COMPOSE_DIR.parent / "checkers/src/lab/versions.rs"
    text = path.read_text()
    table = MEMBER_IMAGES[kind][1]
    block = re.search(rf"pub const {table}: &\[Release\] = &\[(.*?)\n\];", text, re.S)
    if block is None:
        raise ValueError(f"{path}: no {table} table")
    found = re.findall(r'version: "([^"]+)"', block.group(1))
    if not found:
        raise ValueError(f"{path}: {table} lists no version")
    return found[-1]


def version_problems(kind: str, compose: dict, origin: str, default: str) -> list[str]:
    """Every member image of `compose` must run the lab's default release."""
    repo, _, prefix = MEMBER_IMAGES[kind]
    problems = []
    members = [
        (name, svc.get("image", ""))
        for name, svc in compose.get("services", {}).items()
        if str(svc.get("image", "")).startswith(repo + ":")
    ]
    if not members:
        problems.append(f"{origin}: no service runs {repo}")
    for name, image in members:
        tag = image.split(":", 1)[1]
        if tag != prefix + default:
            problems.append(
                f"{origin}: services.{name}.image = {image}, but the lab's default "
                f"{kind} is {default} (checkers/src/lab/versions.rs): use {repo}:{prefix}{default}"
            )
    return problems
