"""The edge's real rules in a real kernel: an outer machine routes the ingress range to a load
balancer, which spreads connections over two pods on a host and masquerades them.

::

    outer "o" 10.60.0.1 ──veth── 10.60.0.2 lb "l" 10.61.0.1 ──veth── 10.61.0.2 host "h"
    route 10.88.0.0/24            (the VIP)  table ip nestlab-edge       bridge 10.77.1.1/24
          via 10.60.0.2                      route 10.77.1.0/24          ├── pod "p1" 10.77.1.11 :8080
                                                   via 10.61.0.2         └── pod "p2" 10.77.1.12 :8080

The host has no route back to the outer machine, so a reply arrives only if the load balancer
masqueraded the connection (each pod answers with its name and the client address it saw). The
rules come from :class:`nestlab.proxy.edgeproxy.EdgeProxy` fed Service and EndpointSlice objects
directly (its informers are not started), applied with nft inside the lb namespace. Every server is
stopped by PID and every namespace (with its links) deleted at the end.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any, cast

import pytest

from nestlab.api.client import ApiClient
from nestlab.proxy.desired import SOURCE_RANGES_ANNOTATION
from nestlab.proxy.edgeproxy import EdgeProxy, install_routes
from nestlab.proxy.nft import Nft
from nestlab.runtime import proc

pytestmark = [pytest.mark.integration, pytest.mark.root]

Obj = dict[str, Any]
POOL = IPv4Network("10.88.0.0/24")
OUTER, VIP, LB_HOSTSIDE, HOST = "10.60.0.1", "10.60.0.2", "10.61.0.1", "10.61.0.2"
POD_SUBNET, GATEWAY = "10.77.1.0/24", "10.77.1.1"
PODS = {"p1": "10.77.1.11", "p2": "10.77.1.12"}
WEB_IP, POD_PORT = "10.88.0.5", 8080
REQUESTS = 30  # both pods unseen in 30 random picks: probability 2 * 2**-30
READY_S = 30.0  # servers answering after start, on a loaded machine
DROP_TIMEOUT_S = 2.0  # how long a probe waits for an answer to a dropped SYN

SERVER = r"""
import http.server, sys
address, port, who = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{who}@{self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((address, port), Handler).serve_forever()
"""
FETCH = r"""
import sys, urllib.request
url, count, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
for _ in range(count):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            print(answer.read().decode().strip(), flush=True)
    except Exception as exc:
        print("ERR:" + type(getattr(exc, "reason", exc)).__name__, flush=True)
"""


@dataclass
class EdgeLab:
    prefix: str
    namespaces: list[str] = field(default_factory=list)
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def ip(self, ns: str, *args: str) -> None:
        proc.run(["ip", "-n", self.ns(ns), *args], timeout=15)

    def in_ns(self, ns: str) -> proc.Runner:
        """A runner executing inside ``ns`` (for the code under test)."""

        def run(argv: Sequence[str], *, timeout: float, **kwargs: Any) -> proc.Result:
            return proc.run(["ip", "netns", "exec", self.ns(ns), *argv], timeout=timeout, **kwargs)

        return cast(proc.Runner, run)

    def link(self, a: str, a_addr: str, b: str, b_addr: str) -> None:
        self.ip(a, "link", "add", f"to-{b}", "type", "veth", "peer", "name", f"to-{a}", "netns", self.ns(b))
        for ns, other, address in ((a, b, a_addr), (b, a, b_addr)):
            self.ip(ns, "addr", "add", address, "dev", f"to-{other}")
            self.ip(ns, "link", "set", f"to-{other}", "up")

    def build(self) -> None:
        for name in ("o", "l", "h", *PODS):
            proc.run(["ip", "netns", "add", self.ns(name)], timeout=15)
            self.namespaces.append(self.ns(name))
            self.ip(name, "link", "set", "lo", "up")
        self.link("o", f"{OUTER}/24", "l", f"{VIP}/24")
        self.link("l", f"{LB_HOSTSIDE}/24", "h", f"{HOST}/24")
        self.ip("h", "link", "add", "br0", "type", "bridge")
        self.ip("h", "addr", "add", f"{GATEWAY}/24", "dev", "br0")
        self.ip("h", "link", "set", "br0", "up")
        for name, address in PODS.items():
            self.ip(
                "h", "link", "add", f"v{name}", "type", "veth", "peer", "name", "eth0", "netns", self.ns(name)
            )
            self.ip("h", "link", "set", f"v{name}", "master", "br0", "up")
            self.ip(name, "addr", "add", f"{address}/24", "dev", "eth0")
            self.ip(name, "link", "set", "eth0", "up")
            self.ip(name, "route", "add", "default", "via", GATEWAY)
            self.serve(name, address, POD_PORT)
        self.ip("o", "route", "add", str(POOL), "via", VIP)  # the lead's route on the outer machine
        self.ip("l", "route", "add", "default", "via", OUTER)  # as a lab node's: unknown goes back out
        for ns in ("l", "h"):
            proc.run(
                ["ip", "netns", "exec", self.ns(ns), "sysctl", "-qw", "net.ipv4.ip_forward=1"], timeout=15
            )
        for name, address in PODS.items():
            self.wait_answer("h", f"http://{address}:{POD_PORT}/", name)

    def serve(self, ns: str, address: str, port: int) -> None:
        argv = ["ip", "netns", "exec", self.ns(ns), sys.executable, "-c", SERVER, address, str(port), ns]
        self.servers.append(
            subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        )

    def fetch(self, ns: str, url: str, count: int = 1, timeout: float = 5.0) -> list[str]:
        argv = [
            "ip",
            "netns",
            "exec",
            self.ns(ns),
            sys.executable,
            "-c",
            FETCH,
            url,
            str(count),
            str(timeout),
        ]
        return proc.run(argv, timeout=30 + count * (timeout + 1)).stdout.split()

    def wait_answer(self, ns: str, url: str, who: str) -> None:
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            if self.fetch(ns, url, 1, 1.0)[0].startswith(who):
                return
            time.sleep(0.1)
        raise AssertionError(f"{url} does not answer from {ns} after {READY_S:g}s")

    def close(self) -> None:
        for server in self.servers:
            server.terminate()
        for server in self.servers:
            try:
                server.wait(5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        for ns in reversed(self.namespaces):
            proc.run(["ip", "netns", "del", ns], timeout=15, check=False)


@pytest.fixture(scope="module")
def lab() -> Iterator[EdgeLab]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    for tool in ("nft", "ip"):
        if shutil.which(tool) is None:
            pytest.skip(
                f"{tool} is not installed (Debian package {'nftables' if tool == 'nft' else 'iproute2'})"
            )
    built = EdgeLab(f"nledge{os.getpid() % 100000}")
    try:
        built.build()
        yield built
    finally:
        built.close()


def service(name: str, ip: str, port: int = 80, **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "demo", "resourceVersion": "1"},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            **spec,
        },
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
    }


def endpoint_slice(name: str, *addresses: str, version: str = "1") -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-abcde",
            "namespace": "demo",
            "resourceVersion": version,
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": POD_PORT, "protocol": "TCP"}],
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
    }


def edge(lab: EdgeLab) -> EdgeProxy:
    return EdgeProxy(cast(ApiClient, object()), POOL, Nft(prefix=["ip", "netns", "exec", lab.ns("l")]))


def test_routes_and_spreading_with_masquerade(lab: EdgeLab) -> None:
    install_routes({IPv4Network(POD_SUBNET): HOST}, run=lab.in_ns("l"))
    install_routes({IPv4Network(POD_SUBNET): HOST}, run=lab.in_ns("l"))  # idempotent
    proxy = edge(lab)
    proxy.services.apply("ADDED", service("web", WEB_IP))
    proxy.slices.apply("ADDED", endpoint_slice("web", *PODS.values()))
    asyncio.run(proxy.rebuild())
    answers = lab.fetch("o", f"http://{WEB_IP}/", REQUESTS)
    assert {a.split("@")[0] for a in answers} == set(PODS), answers
    assert {a.split("@")[1] for a in answers} == {LB_HOSTSIDE}  # masqueraded: the pods saw the lb

    # one endpoint left: an incremental transaction, only p2 answers
    proxy.slices.apply("MODIFIED", endpoint_slice("web", PODS["p2"], version="2"))
    asyncio.run(proxy.sync("demo/web"))
    assert set(lab.fetch("o", f"http://{WEB_IP}/", 5)) == {f"p2@{LB_HOSTSIDE}"}

    # no endpoint: refused at once (a TCP reset from the refuse chain), not a timeout
    proxy.slices.apply("MODIFIED", endpoint_slice("web", version="3"))
    asyncio.run(proxy.sync("demo/web"))
    assert lab.fetch("o", f"http://{WEB_IP}/", 1, timeout=20.0) == ["ERR:ConnectionRefusedError"]
    # an unknown port and an unassigned address of the range are refused too
    assert lab.fetch("o", f"http://{WEB_IP}:81/", 1, timeout=20.0) == ["ERR:ConnectionRefusedError"]
    assert lab.fetch("o", "http://10.88.0.99/", 1, timeout=20.0) == ["ERR:ConnectionRefusedError"]


def test_a_flushed_table_is_rebuilt_on_the_next_change(lab: EdgeLab) -> None:
    install_routes({IPv4Network(POD_SUBNET): HOST}, run=lab.in_ns("l"))
    proxy = edge(lab)
    proxy.services.apply("ADDED", service("web", WEB_IP))
    proxy.slices.apply("ADDED", endpoint_slice("web", PODS["p1"]))
    asyncio.run(proxy.rebuild())
    assert set(lab.fetch("o", f"http://{WEB_IP}/", 3)) == {f"p1@{LB_HOSTSIDE}"}
    proc.run(["ip", "netns", "exec", lab.ns("l"), "nft", "flush", "ruleset"], timeout=15)
    proxy.services.apply("ADDED", service("other", "10.88.0.6", 8000))
    proxy.slices.apply("ADDED", endpoint_slice("other", PODS["p2"]))
    asyncio.run(proxy.sync("demo/other"))  # its transaction is refused: the whole table is rebuilt
    assert not proxy.stale
    assert set(lab.fetch("o", f"http://{WEB_IP}/", 3)) == {f"p1@{LB_HOSTSIDE}"}
    assert set(lab.fetch("o", "http://10.88.0.6:8000/", 3)) == {f"p2@{LB_HOSTSIDE}"}
    proxy.services.apply("DELETED", service("other", "10.88.0.6", 8000))
    asyncio.run(proxy.sync("demo/other"))
    assert lab.fetch("o", "http://10.88.0.6:8000/", 1, timeout=20.0) == ["ERR:ConnectionRefusedError"]
    assert "demo/other" not in proxy.applied


def test_client_ip_affinity_sticks_and_follows_endpoint_changes(lab: EdgeLab) -> None:
    install_routes({IPv4Network(POD_SUBNET): HOST}, run=lab.in_ns("l"))
    proxy = edge(lab)
    sticky = service("sticky", "10.88.0.7", sessionAffinity="ClientIP")
    proxy.services.apply("ADDED", sticky)
    proxy.slices.apply("ADDED", endpoint_slice("sticky", *PODS.values()))
    asyncio.run(proxy.rebuild())
    answers = set(lab.fetch("o", "http://10.88.0.7/", REQUESTS))
    assert len(answers) == 1, answers  # every connection of the one client to the same pod
    (stuck,) = answers
    other = next(name for name in PODS if not stuck.startswith(name))
    # the stuck endpoint leaves: its chain and set go, the client moves to the other pod
    proxy.slices.apply("MODIFIED", endpoint_slice("sticky", PODS[other], version="2"))
    asyncio.run(proxy.sync("demo/sticky"))
    assert set(lab.fetch("o", "http://10.88.0.7/", 5)) == {f"{other}@{LB_HOSTSIDE}"}
    listing = proc.run(
        ["ip", "netns", "exec", lab.ns("l"), "nft", "list", "table", "ip", "nestlab-edge"], timeout=15
    )
    assert PODS[stuck.split("@")[0]] not in listing.stdout
    # affinity off again: endpoint chains and sets are removed with it
    proxy.services.apply("MODIFIED", service("sticky", "10.88.0.7"))
    asyncio.run(proxy.sync("demo/sticky"))
    listing = proc.run(
        ["ip", "netns", "exec", lab.ns("l"), "nft", "list", "table", "ip", "nestlab-edge"], timeout=15
    )
    assert "aff/" not in listing.stdout
    assert "ep/" not in listing.stdout


def test_source_ranges_drop_other_clients_field_or_annotation(lab: EdgeLab) -> None:
    install_routes({IPv4Network(POD_SUBNET): HOST}, run=lab.in_ns("l"))
    proxy = edge(lab)
    url = "http://10.88.0.8/"
    outside = service("ranged", "10.88.0.8", loadBalancerSourceRanges=["10.99.0.0/16"])
    proxy.services.apply("ADDED", outside)
    proxy.slices.apply("ADDED", endpoint_slice("ranged", PODS["p1"]))
    asyncio.run(proxy.rebuild())
    assert lab.fetch("o", url, 1, DROP_TIMEOUT_S) == ["ERR:TimeoutError"]  # dropped, not refused

    inside = service("ranged", "10.88.0.8", loadBalancerSourceRanges=["10.99.0.0/16", f"{OUTER}/32"])
    proxy.services.apply("MODIFIED", inside)
    asyncio.run(proxy.sync("demo/ranged"))
    assert set(lab.fetch("o", url, 3)) == {f"p1@{LB_HOSTSIDE}"}

    annotated = service("ranged", "10.88.0.8")  # the field empty: the annotation is honoured
    annotated["metadata"]["annotations"] = {SOURCE_RANGES_ANNOTATION: "10.99.0.0/16"}
    proxy.services.apply("MODIFIED", annotated)
    asyncio.run(proxy.sync("demo/ranged"))
    assert lab.fetch("o", url, 1, DROP_TIMEOUT_S) == ["ERR:TimeoutError"]
    annotated["metadata"]["annotations"] = {SOURCE_RANGES_ANNOTATION: f"10.99.0.0/16, {OUTER}/32"}
    proxy.services.apply("MODIFIED", annotated)
    asyncio.run(proxy.sync("demo/ranged"))
    assert set(lab.fetch("o", url, 3)) == {f"p1@{LB_HOSTSIDE}"}
