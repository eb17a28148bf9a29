"""Readiness of a compose cluster, seen from the host through the ports the stack
publishes on 127.0.0.1 (the same way a user's client reaches it). Used by
scripts/compose.sh after `up`, and by compose/e2e.

  python3 compose/offline/ready.py etcd  TIMEOUT_S   # a leader every member agrees on
  python3 compose/offline/ready.py kafka TIMEOUT_S   # all three brokers registered

Prints one line naming what it found and exits 0, or exits 1 naming what was last seen
when the deadline passed.
"""

import json
import os
import socket
import struct
import sys
import time
import urllib.request

API = "http://127.0.0.1:7070"
ETCD_CLIENTS = {"etcd1": 12379, "etcd2": 22379, "etcd3": 32379}
KAFKA_CLIENTS = {"kafka1": 11094, "kafka2": 12094, "kafka3": 13094}


def rift_api(token: str, path: str = "/status") -> dict:
    req = urllib.request.Request(API + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=2) as resp:
        return json.load(resp)


def etcd_status(port: int) -> dict:
    """Maintenance Status through etcd's JSON gateway (member id and the leader it sees)."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v3/maintenance/status", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(req, timeout=2) as resp:
        return json.load(resp)


def etcd_leader() -> str:
    """The leader's name when every member reports the same non-zero leader id."""
    ids, leaders = {}, {}
    for name, port in ETCD_CLIENTS.items():
        status = etcd_status(port)
        ids[status["header"]["member_id"]] = name
        leaders[name] = status.get("leader", "0")
    seen = set(leaders.values())
    if len(seen) != 1 or "0" in seen or next(iter(seen)) not in ids:
        raise RuntimeError(f"no agreed leader yet: {leaders}")
    return ids[next(iter(seen))]


def kafka_string(data: bytes, at: int) -> tuple[str, int]:
    (n,) = struct.unpack_from(">h", data, at)
    at += 2
    return data[at : at + max(n, 0)].decode(), at + max(n, 0)


def kafka_brokers(port: int) -> list[tuple[int, str, int]]:
    """Registered brokers from a Metadata v0 request (api key 3) with no topics."""
    client = b"rift-compose-ready"
    body = struct.pack(">hhih", 3, 0, 7, len(client)) + client + struct.pack(">i", 0)
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        head = b""
        while len(head) < 4:
            chunk = sock.recv(4 - len(head))
            if not chunk:
                raise RuntimeError(f"127.0.0.1:{port} closed the connection")
            head += chunk
        (size,) = struct.unpack(">i", head)
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                raise RuntimeError(f"127.0.0.1:{port} closed mid-response")
            data += chunk
    correlation, count = struct.unpack_from(">ii", data, 0)
    if correlation != 7:
        raise RuntimeError(f"127.0.0.1:{port}: correlation id {correlation}, sent 7")
    at, brokers = 8, []
    for _ in range(count):
        (node,) = struct.unpack_from(">i", data, at)
        host, at = kafka_string(data, at + 4)
        (bport,) = struct.unpack_from(">i", data, at)
        at += 4
        brokers.append((node, host, bport))
    return sorted(brokers)


def kafka_registered() -> str:
    """All three brokers registered, as every broker's own metadata says."""
    views = {name: kafka_brokers(port) for name, port in KAFKA_CLIENTS.items()}
    for name, brokers in views.items():
        if [b[0] for b in brokers] != [1, 2, 3]:
            raise RuntimeError(f"{name} lists brokers {brokers}")
    return f"brokers {views['kafka1']}"


def wait(what: str, timeout: float) -> str:
    token = os.environ.get("RIFT_TOKEN", "rift-compose-token")
    cluster = {"etcd": lambda: f"leader {etcd_leader()}", "kafka": kafka_registered}[what]

    def check() -> str:
        nodes = [n["name"] for n in rift_api(token, "/topology")["node"]]
        return f"rift API up (nodes {', '.join(nodes)}); {cluster()}"

    deadline = time.monotonic() + timeout
    last = "nothing answered"
    while True:
        try:
            return check()
        except (OSError, RuntimeError, ValueError, KeyError, TypeError, struct.error) as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s; last: {last}")
        time.sleep(1)


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("etcd", "kafka"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(wait(sys.argv[1], float(sys.argv[2])))
    except TimeoutError as e:
        print(f"ready: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
