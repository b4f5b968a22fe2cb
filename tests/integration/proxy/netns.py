"""A host, its pods and a management peer as network namespaces, for testing the real rules.

::

      client "c" 10.66.0.2 ──veth── 10.66.0.1 "mgmt"  host "h"  bridge nlpods 10.77.1.1/24
      (management network, the                          ├── veth ── pod "p1" 10.77.1.11  http :8080 "p1"
       outer machine's stand-in;                        ├── veth ── pod "p2" 10.77.1.12  http :8080 "p2"
       also 10.77.2.11 on lo: a pod                     └── veth ── pod "p3" 10.77.1.13  (client only)
       of another host, routed over
       the management network)

The host forwards, has no default route (as lab nodes) but nestlab-proxy's route for the Services
CIDR and one to the other host's pod subnet (10.77.2.0/24) via the client, and listens on :9090
(answering "host"); the client listens on 10.66.0.2:9091 ("mgmt"). Every
namespace, and with it every link, is deleted by :meth:`NetLab.close`; every server is stopped by
PID. Nothing here touches the machine's own network namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nestlab.proxy import hostroute
from nestlab.proxy.nft import Nft
from nestlab.proxy.rules import HostNetwork
from nestlab.runtime import proc

PODS_CIDR, POD_SUBNET, MANAGEMENT = "10.77.0.0/16", "10.77.1.0/24", "10.66.0.0/24"
SERVICES_CIDR = "10.96.0.0/24"
GATEWAY, HOST_MGMT, CLIENT = "10.77.1.1", "10.66.0.1", "10.66.0.2"
PODS = {"p1": "10.77.1.11", "p2": "10.77.1.12", "p3": "10.77.1.13"}
REMOTE_POD, REMOTE_SUBNET = "10.77.2.11", "10.77.2.0/24"
"""A pod of another host: its packets reach this host over the management network, not the bridge."""
BRIDGE = "nlpods"
POD_PORT, HOST_PORT, CLIENT_PORT = 8080, 9090, 9091
READY_S = 30.0  # servers answering after start, on a loaded machine

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

CONNECT = r"""
import socket, sys
address, port, timeout, source = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
with socket.socket() as sock:
    sock.settimeout(timeout)
    if source:
        sock.bind((source, 0))
    try:
        sock.connect((address, port))
        print("open")
    except OSError as exc:
        print("ERR:" + type(exc).__name__)
"""


@dataclass
class NetLab:
    """The namespaces of one test module (``prefix`` keeps parallel runs apart)."""

    prefix: str
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    www: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="nlpx-www-")))

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    @property
    def host(self) -> str:
        return self.ns("h")

    @property
    def network(self) -> HostNetwork:
        return HostNetwork(BRIDGE, PODS_CIDR, MANAGEMENT, POD_SUBNET)

    @property
    def nft(self) -> Nft:
        """nft inside the host namespace."""
        return Nft(prefix=["ip", "netns", "exec", self.host])

    def ip(self, ns: str, *args: str) -> None:
        proc.run(["ip", "-n", self.ns(ns), *args], timeout=15)

    def sysctl(self, ns: str, setting: str) -> None:
        proc.run(["ip", "netns", "exec", self.ns(ns), "sysctl", "-qw", setting], timeout=15)

    def build(self) -> None:
        for name in ("h", "c", *PODS):
            proc.run(["ip", "netns", "add", self.ns(name)], timeout=15)
            self.namespaces.append(self.ns(name))
            self.ip(name, "link", "set", "lo", "up")
        self.ip("h", "link", "add", BRIDGE, "type", "bridge")
        self.ip("h", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        self.ip("h", "link", "set", BRIDGE, "up")
        for name, address in PODS.items():
            self.ip(
                "h", "link", "add", f"v{name}", "type", "veth", "peer", "name", "eth0", "netns", self.ns(name)
            )
            self.ip("h", "link", "set", f"v{name}", "master", BRIDGE, "up")
            # br_netfilter DNATs bridged frames: a pod reaching itself through a Service needs its frame
            # sent back out the port it came in on (kubelet's "hairpin-veth" mode; the agent does this)
            self.ip("h", "link", "set", f"v{name}", "type", "bridge_slave", "hairpin", "on")
            self.ip(name, "addr", "add", f"{address}/24", "dev", "eth0")
            self.ip(name, "link", "set", "eth0", "up")
            self.ip(name, "route", "add", "default", "via", GATEWAY)
        self.ip("h", "link", "add", "mgmt", "type", "veth", "peer", "name", "eth0", "netns", self.ns("c"))
        self.ip("h", "addr", "add", f"{HOST_MGMT}/24", "dev", "mgmt")
        self.ip("h", "link", "set", "mgmt", "up")
        self.ip("c", "addr", "add", f"{CLIENT}/24", "dev", "eth0")
        self.ip("c", "link", "set", "eth0", "up")
        self.ip("c", "route", "add", "default", "via", HOST_MGMT)
        self.ip("c", "addr", "add", f"{REMOTE_POD}/32", "dev", "lo")
        self.ip("h", "route", "add", REMOTE_SUBNET, "via", CLIENT)
        # no default route on the host, as on lab nodes: ClusterIPs are reachable through the route
        # nestlab-proxy installs at start
        hostroute.ensure(SERVICES_CIDR, prefix=["ip", "netns", "exec", self.host])
        self.sysctl("h", "net.ipv4.ip_forward=1")
        self.serve("p1", PODS["p1"], POD_PORT, "p1")
        self.serve("p2", PODS["p2"], POD_PORT, "p2")
        self.serve("h", "0.0.0.0", HOST_PORT, "host")
        self.serve("c", CLIENT, CLIENT_PORT, "mgmt")
        for ns, address, port in (("h", PODS["p1"], POD_PORT), ("h", PODS["p2"], POD_PORT)):
            self.wait_answer(ns, f"http://{address}:{port}/who")
        self.wait_answer("c", f"http://{HOST_MGMT}:{HOST_PORT}/who")
        self.wait_answer("h", f"http://{CLIENT}:{CLIENT_PORT}/who")

    def serve(self, ns: str, address: str, port: int, who: str) -> None:
        """An HTTP server in ``ns`` whose /who answers ``who``."""
        root = self.www / who
        root.mkdir()
        (root / "who").write_text(who + "\n")
        argv = ["ip", "netns", "exec", self.ns(ns), sys.executable, "-m", "http.server", str(port)]
        argv += ["--bind", address, "--directory", str(root)]
        self.servers.append(
            subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        )

    def fetch(self, ns: str, url: str, count: int = 1, timeout: float = 5.0) -> list[str]:
        """``count`` GETs of ``url`` from ``ns``, each on a new connection: bodies or ``ERR:<reason>``."""
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
        done = proc.run(argv, timeout=30 + count * (timeout + 1))
        return done.stdout.split()

    def connect(self, ns: str, address: str, port: int, source: str = "", timeout: float = 5.0) -> str:
        """A TCP connection from ``ns`` (from ``source`` when given): ``open`` or ``ERR:<reason>``."""
        argv = ["ip", "netns", "exec", self.ns(ns), sys.executable, "-c", CONNECT, address, str(port)]
        return proc.run([*argv, str(timeout), source], timeout=30 + timeout).stdout.strip()

    def wait_answer(self, ns: str, url: str) -> None:
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            if not self.fetch(ns, url, 1, 1.0)[0].startswith("ERR:"):
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
        shutil.rmtree(self.www, ignore_errors=True)


@pytest.fixture(scope="module")
def netlab() -> Iterator[NetLab]:
    """The namespaces, built once per test module and torn down after it (also on failure)."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    for tool, package in (("nft", "nftables"), ("ip", "iproute2")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian package {package})")
    lab = NetLab(f"nlpx{os.getpid() % 100000}")
    try:
        lab.build()
        yield lab
    finally:
        lab.close()
