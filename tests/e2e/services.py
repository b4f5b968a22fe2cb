"""Probing Services from inside pods: client pods that run a script and print tagged results.

There is no ``kubectl exec`` yet (the pod-internals issue adds it), so a probe is a pod of the
client demo image pinned to one host: it runs a shell script whose every result line starts with a
tag (``WEB <pod name>``, ``NC kubernetes 0``), ends, and its log is read with ``kubectl logs``.
The e2e tests and bench/service_latency.py probe the same way, so a figure in docs/networking.md
and a test speak about the same thing.

Debian's busybox 1.35 ``wget -T N`` segfaults; probes bound each request with ``timeout N``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from tests.e2e.conftest import LiveLab
from tests.e2e.labtools import POD_TIMEOUT_S, REGISTRY, kubectl, on_node, wait_for, wait_phase
from tests.e2e.workloads import GRACE_S, LIMITS, WEB

Obj = dict[str, Any]
CLIENT = f"{REGISTRY}/nestlab/client:1"
# The web demo page is static: each replica writes its own name (the pod's hostname) to /www/host,
# so a client can count which replicas answered.
SERVE_NAMED = ["sh", "-c", "hostname > /www/host; exec httpd -f -p 80 -h /www"]
NC_TIMEOUT_S = 4  # a refused or dropped connection; the lab's TCG pods answer in well under this


def web_deployment(name: str, namespace: str, replicas: int = 3) -> Obj:
    """The web demo Deployment, each replica serving its own name at /host."""
    container = {
        "name": "web",
        "image": WEB,
        "command": SERVE_NAMED,
        "resources": LIMITS,
        "ports": [{"name": "http", "containerPort": 80}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": GRACE_S},
            },
        },
    }


def client_pod(
    name: str, namespace: str, host: str, script: str, labels: dict[str, str] | None = None
) -> Obj:
    """A pod of the client image on ``host`` that runs ``script`` once."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {"role": "client"}},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {"kubernetes.io/hostname": host},
            "containers": [
                {"name": "probe", "image": CLIENT, "command": ["sh", "-c", script], "resources": LIMITS}
            ],
        },
    }


def fetch_loop(url: str, count: int, tag: str = "WEB") -> str:
    """Shell lines fetching ``url`` ``count`` times, printing ``TAG <body>`` (or ``TAG !rc``)."""
    return (
        f"for i in $(seq {count}); do "
        f'out=$(timeout 5 wget -q -O- {url} 2>/dev/null) && echo "{tag} $out" || echo "{tag} !$?"; '
        "done"
    )


def connect(target: str, port: int, tag: str) -> str:
    """A shell line printing ``NC <tag> <rc>``: rc 0 when a TCP connection to target:port opened."""
    return f'echo | timeout {NC_TIMEOUT_S} nc {target} {port} >/dev/null 2>&1; echo "NC {tag} $?"'


def run_probes(lab: LiveLab, namespace: str, pods: list[Obj]) -> dict[str, str]:
    """Create the probe pods (they run at once, one per host), wait for each, return name -> log."""
    for pod in pods:
        kubectl(lab, "apply", "-f", "-", stdin=json.dumps(pod))
    logs: dict[str, str] = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        wait_phase(lab, namespace, name, ("Succeeded", "Failed"))
        logs[name] = kubectl(lab, "logs", name, "-n", namespace).stdout
        kubectl(lab, "delete", "pod", name, "-n", namespace, "--wait=false", check=False)
    return logs


def tagged(log: str, tag: str) -> list[str]:
    """The values of the lines tagged ``tag`` in a probe's log."""
    prefix = tag + " "
    return [line[len(prefix) :].strip() for line in log.splitlines() if line.startswith(prefix)]


def answers(log: str, tag: str = "WEB") -> Counter[str]:
    """How often each replica answered (failed fetches count under ``!rc``)."""
    return Counter(tagged(log, tag))


def ready_addresses(lab: LiveLab, namespace: str, service: str) -> set[str]:
    """The ready endpoint addresses of ``service`` (its EndpointSlices)."""
    out = kubectl(
        lab,
        "get",
        "endpointslices",
        "-n",
        namespace,
        "-l",
        f"kubernetes.io/service-name={service}",
        "-o",
        "json",
    )
    found: set[str] = set()
    for item in json.loads(out.stdout)["items"]:
        for endpoint in item.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready", True):
                found.update(endpoint.get("addresses") or [])
    return found


def rules_mention(lab: LiveLab, host: str, address: str) -> bool:
    """Whether the host's distributed load balancer has a DNAT to ``address``."""
    out = on_node(lab, host, "nft list table ip nestlab", check=False)
    return f"dnat to {address}:" in out.stdout


def wait_rules(
    lab: LiveLab, hosts: list[str], gone: set[str], kept: set[str], timeout: float = 60.0
) -> float:
    """Seconds until no host's rules DNAT to ``gone`` and every host's rules DNAT to ``kept``."""
    start = time.monotonic()

    def settled() -> bool:
        for host in hosts:
            text = on_node(lab, host, "nft list table ip nestlab", check=False).stdout
            if any(f"dnat to {a}:" in text for a in gone) or not all(f"dnat to {a}:" in text for a in kept):
                return False
        return True

    wait_for(settled, f"rules on {hosts} without {sorted(gone)}", timeout=timeout)
    return time.monotonic() - start


def wait_endpoints(lab: LiveLab, namespace: str, service: str, count: int) -> set[str]:
    """Wait until ``service`` has exactly ``count`` ready endpoint addresses; return them."""
    seen: set[str] = set()

    def reached() -> bool:
        seen.clear()
        seen.update(ready_addresses(lab, namespace, service))
        return len(seen) == count

    wait_for(reached, f"{count} ready endpoints of {namespace}/{service}", timeout=POD_TIMEOUT_S)
    return set(seen)
