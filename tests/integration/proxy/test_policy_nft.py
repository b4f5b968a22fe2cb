"""NetworkPolicy rules in a real kernel: pods as network namespaces on a bridge in a "host" namespace.

::

    host "h"  bridge nlpol 10.78.1.1/24 ── veth ── pod "w" 10.78.1.11 (namespace a, app=web, http :8080)
              │                         ├── veth ── pod "b" 10.78.1.12 (namespace b, team=b)
              │                         └── veth ── pod "c" 10.78.1.13 (namespace c)
              └── veth 10.67.0.1 ── "d" 10.67.0.2: a DNS stub answering UDP :53 (a control-plane node)

Pod-to-pod traffic is bridged and reaches the ``forward`` hook through br_netfilter, as on a lab
host; traffic to the DNS stub is routed. Each step compiles the policies with
:mod:`nestlab.proxy.policy` and applies the difference (:func:`nestlab.proxy.policynft.diff`) with
the real ``nft``, so the incremental transactions are exercised too. Every namespace (and with it
every link) is deleted at the end and every server stopped by PID.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from nestlab.proxy import policy, policynft
from nestlab.proxy.policy import Pod
from nestlab.runtime import proc

pytestmark = [pytest.mark.integration, pytest.mark.root]

GATEWAY, BRIDGE, DNS_GW, DNS = "10.78.1.1", "nlpol", "10.67.0.1", "10.67.0.2"
HOST = "h"
PODS = {
    "w": Pod("a", "web", "10.78.1.11", HOST, {"app": "web"}, (("http", "TCP", 8080),)),
    "b": Pod("b", "client", "10.78.1.12", HOST, {"app": "client"}),
    "c": Pod("c", "client", "10.78.1.13", HOST, {"app": "client"}),
}
NAMESPACES = policy.namespace_labels(
    [
        {"metadata": {"name": "a"}},
        {"metadata": {"name": "b", "labels": {"team": "b"}}},
        {"metadata": {"name": "c"}},
    ]
)
PROBE_TIMEOUT_S = 1.5  # how long a probe waits before calling a dropped packet unanswered
READY_TRIES = 100  # x PROBE_TIMEOUT_S at most: servers starting on a loaded machine

TCP_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
while True:
    conn, _ = s.accept(); conn.sendall(b"web"); conn.close()
"""
UDP_STUB = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], 53))
while True:
    data, peer = s.recvfrom(512); s.sendto(b"answer:" + data, peer)
"""
PROBE = """
import socket, sys
proto, address, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
try:
    if proto == "tcp":
        with socket.create_connection((address, port), timeout=timeout) as s:
            s.settimeout(timeout); print(s.recv(64).decode() or "EMPTY")
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout); s.sendto(b"q", (address, port)); print(s.recv(64).decode())
except OSError as exc:
    print("ERR:" + type(exc).__name__)
"""


@dataclass
class PolicyLab:
    prefix: str
    namespaces: list[str] = field(default_factory=list)
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    applied: policy.Ruleset | None = None

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def ip(self, name: str, *args: str) -> None:
        proc.run(["ip", "-n", self.ns(name), *args], timeout=15)

    def build(self) -> None:
        for name in (HOST, "d", *PODS):
            proc.run(["ip", "netns", "add", self.ns(name)], timeout=15)
            self.namespaces.append(self.ns(name))
            self.ip(name, "link", "set", "lo", "up")
        self.ip(HOST, "link", "add", BRIDGE, "type", "bridge")
        self.ip(HOST, "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        self.ip(HOST, "link", "set", BRIDGE, "up")
        for name, pod in PODS.items():
            self.ip(
                HOST,
                "link",
                "add",
                f"v{name}",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                self.ns(name),
            )
            self.ip(HOST, "link", "set", f"v{name}", "master", BRIDGE, "up")
            self.ip(name, "addr", "add", f"{pod.ip}/24", "dev", "eth0")
            self.ip(name, "link", "set", "eth0", "up")
            self.ip(name, "route", "add", "default", "via", GATEWAY)
        self.ip(HOST, "link", "add", "vd", "type", "veth", "peer", "name", "eth0", "netns", self.ns("d"))
        self.ip(HOST, "addr", "add", f"{DNS_GW}/24", "dev", "vd")
        self.ip(HOST, "link", "set", "vd", "up")
        self.ip("d", "addr", "add", f"{DNS}/24", "dev", "eth0")
        self.ip("d", "link", "set", "eth0", "up")
        self.ip("d", "route", "add", "default", "via", DNS_GW)
        for setting in ("net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1"):
            proc.run(["ip", "netns", "exec", self.ns(HOST), "sysctl", "-qw", setting], timeout=15)
        self.spawn("w", TCP_SERVER, PODS["w"].ip, "8080")
        self.spawn("d", UDP_STUB, DNS)
        self.wait_answer("b", "tcp", PODS["w"].ip, 8080, "web")
        self.wait_answer("w", "udp", DNS, 53, "answer:q")

    def spawn(self, name: str, script: str, *args: str) -> None:
        argv = ["ip", "netns", "exec", self.ns(name), sys.executable, "-c", script, *args]
        self.servers.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # noqa: S603

    def probe(self, name: str, proto: str, address: str, port: int) -> str:
        """One new connection (TCP) or datagram (UDP) from pod ``name``: the answer or ``ERR:...``."""
        argv = ["ip", "netns", "exec", self.ns(name), sys.executable, "-c", PROBE]
        done = proc.run([*argv, proto, address, str(port), str(PROBE_TIMEOUT_S)], timeout=30)
        return done.stdout.strip()

    def wait_answer(self, name: str, proto: str, address: str, port: int, expected: str) -> None:
        for _ in range(READY_TRIES):
            if self.probe(name, proto, address, port) == expected:
                return
        raise AssertionError(f"{proto} {address}:{port} never answered {name}")

    def enforce(self, *policies: dict[str, Any]) -> list[str]:
        """Compile ``policies`` for the host and apply them (the first time whole, then the difference)."""
        wanted = policy.compile_ruleset(HOST, PODS.values(), NAMESPACES, policies)
        commands = policynft.full(wanted) if self.applied is None else policynft.diff(self.applied, wanted)
        if commands:
            argv = ["ip", "netns", "exec", self.ns(HOST), "nft", "-f", "-"]
            proc.run(argv, timeout=30, stdin="\n".join(commands) + "\n")
        self.applied = wanted
        return commands

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
def lab() -> Iterator[PolicyLab]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    for tool in ("nft", "ip"):
        if shutil.which(tool) is None:
            pytest.skip(
                f"{tool} is not installed (Debian package {'nftables' if tool == 'nft' else 'iproute2'})"
            )
    built = PolicyLab(f"nlnp{os.getpid() % 100000}")
    try:
        built.build()
        yield built
    finally:
        built.close()


def netpol(name: str, namespace: str = "a", **spec: Any) -> dict[str, Any]:
    spec.setdefault("podSelector", {})
    spec.setdefault("policyTypes", ["Ingress"])
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


DENY_ALL = netpol("deny-all")
FROM_B = netpol("from-b", ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}])
NO_EGRESS = netpol("no-egress", policyTypes=["Egress"])
DNS_OUT = netpol("dns", policyTypes=["Egress"], egress=[{"ports": [{"port": 53, "protocol": "UDP"}]}])


def test_policies_in_the_kernel(lab: PolicyLab) -> None:
    web = PODS["w"].ip
    lab.enforce()
    assert lab.probe("b", "tcp", web, 8080) == "web"  # default allow
    assert lab.probe("c", "tcp", web, 8080) == "web"

    lab.enforce(DENY_ALL)
    assert lab.probe("b", "tcp", web, 8080).startswith("ERR:")
    assert lab.probe("c", "tcp", web, 8080).startswith("ERR:")
    assert lab.probe("w", "udp", DNS, 53) == "answer:q"  # ingress isolation leaves egress alone

    commands = lab.enforce(DENY_ALL, FROM_B)
    assert not any("delete table" in c for c in commands)  # an incremental transaction
    assert lab.probe("b", "tcp", web, 8080) == "web"
    assert lab.probe("c", "tcp", web, 8080).startswith("ERR:")

    lab.enforce(DENY_ALL, FROM_B, NO_EGRESS)
    assert lab.probe("w", "udp", DNS, 53).startswith("ERR:")  # egress deny blocks DNS
    assert lab.probe("b", "tcp", web, 8080) == "web"  # replies of allowed connections still flow

    lab.enforce(DENY_ALL, FROM_B, NO_EGRESS, DNS_OUT)
    assert lab.probe("w", "udp", DNS, 53) == "answer:q"

    lab.enforce()
    assert lab.probe("c", "tcp", web, 8080) == "web"
    assert lab.probe("w", "udp", DNS, 53) == "answer:q"
