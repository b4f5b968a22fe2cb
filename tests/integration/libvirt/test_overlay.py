"""The VXLAN join script for real: two network namespaces stand in for two hypervisors.

Each namespace gets the lab bridge ``lv-<lab>`` (as libvirt would make it) holding one node address,
and an underlay link to the other. Before the join, the nodes cannot reach each other; after the
script ran in both, a TCP exchange crosses the VXLAN; a second run changes nothing; the leave script
removes the device. Every namespace is deleted afterwards, also on failure.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from nestlab.runtime import proc
from nestlab.substrate.libvirt import overlay
from nestlab.substrate.libvirt.network import bridge_name

pytestmark = [
    pytest.mark.integration,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]

STEP_TIMEOUT = 30.0  # each ip/bridge/sh step takes milliseconds; 30 s means something hangs
CONNECT_TIMEOUT = 3.0  # seconds a TCP connect may take across the mesh before we call it unreachable
PORT = 7405
READY_ATTEMPTS = 50  # each attempt is a python start plus a connect: a few seconds in all
UNDERLAY = ("10.250.77.1", "10.250.77.2")  # addresses on the test's own veth pair, nowhere else
NODES = ("198.18.0.31", "198.18.0.32")

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4)
while True:
    c, _ = s.accept(); c.sendall(b"hello from " + sys.argv[1].encode()); c.close()
"""
CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
print(c.recv(100).decode())
"""


@dataclass(frozen=True)
class Mesh:
    lab: str
    namespaces: tuple[str, str]

    def run(self, index: int, argv: list[str], check: bool = True) -> proc.Result:
        return proc.run(
            ["ip", "netns", "exec", self.namespaces[index], *argv], timeout=STEP_TIMEOUT, check=check
        )

    def join(self, index: int) -> None:
        peer = UNDERLAY[1 - index]
        script = overlay.join_script(self.lab, bridge_name(self.lab), [peer])
        self.run(index, ["sh", "-c", script])

    def connect(self, index: int, address: str) -> proc.Result:
        argv = [sys.executable, "-c", CLIENT, address, str(PORT), str(CONNECT_TIMEOUT)]
        return self.run(index, argv, check=False)


@pytest.fixture
def mesh() -> Iterator[Mesh]:
    tag = secrets.token_hex(3)
    lab = f"t{tag}"
    namespaces = (f"nlt-{tag}-a", f"nlt-{tag}-b")
    servers: list[proc.Process] = []
    created: list[str] = []
    try:
        for name in namespaces:
            proc.run(["ip", "netns", "add", name], timeout=STEP_TIMEOUT)
            created.append(name)
        result = Mesh(lab, namespaces)
        proc.run(
            ["ip", "link", "add", f"u{tag}a", "netns", namespaces[0], "type", "veth",
             "peer", "name", f"u{tag}b", "netns", namespaces[1]],
            timeout=STEP_TIMEOUT,
        )  # fmt: skip
        for index, name in enumerate(namespaces):
            underlay = f"u{tag}{'ab'[index]}"
            bridge = bridge_name(lab)
            for argv in (
                ["ip", "link", "set", "lo", "up"],
                ["ip", "addr", "add", f"{UNDERLAY[index]}/24", "dev", underlay],
                ["ip", "link", "set", underlay, "up"],
                ["ip", "link", "add", bridge, "type", "bridge"],
                ["ip", "addr", "add", f"{NODES[index]}/24", "dev", bridge],
                ["ip", "link", "set", bridge, "up"],
            ):
                result.run(index, argv)
            servers.append(
                proc.spawn(
                    ["ip", "netns", "exec", name, sys.executable, "-c", SERVER, NODES[index], str(PORT)]
                )
            )
        yield result
    finally:
        for server in servers:
            server.stop()
        for name in created:
            proc.run(["ip", "netns", "del", name], timeout=STEP_TIMEOUT, check=False)


def _wait_listening(mesh: Mesh, index: int) -> None:
    """Until the namespace's server answers on its own address (it starts in the background)."""
    for _ in range(READY_ATTEMPTS):
        if mesh.connect(index, NODES[index]).returncode == 0:
            return
    pytest.fail(f"the test server in {mesh.namespaces[index]} never answered")


def test_the_join_script_stretches_the_lab_bridge_across_hypervisors(mesh: Mesh) -> None:
    before = mesh.connect(0, NODES[1])
    assert before.returncode != 0  # two isolated bridges: no path yet

    mesh.join(0)
    mesh.join(1)
    after = mesh.connect(0, NODES[1])
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == f"hello from {NODES[1]}"
    back = mesh.connect(1, NODES[0])
    assert back.stdout.strip() == f"hello from {NODES[0]}"

    device = overlay.device_name(mesh.lab)
    details = mesh.run(0, ["ip", "-d", "link", "show", device]).stdout
    assert f"vxlan id {overlay.vni(mesh.lab)} " in details
    assert f"mtu {overlay.LAB_MTU} " in details
    assert f"master {bridge_name(mesh.lab)} " in details


def test_joining_twice_changes_nothing_and_leaving_removes_the_device(mesh: Mesh) -> None:
    mesh.join(0)
    device = overlay.device_name(mesh.lab)
    first = mesh.run(0, ["bridge", "fdb", "show", "dev", device]).stdout
    mesh.join(0)
    assert mesh.run(0, ["bridge", "fdb", "show", "dev", device]).stdout == first
    assert first.count(f"dst {UNDERLAY[1]} ") == 1

    mesh.run(0, ["sh", "-c", overlay.leave_script(mesh.lab)])
    gone = mesh.run(0, ["ip", "link", "show", device], check=False)
    assert gone.returncode != 0
    mesh.run(0, ["sh", "-c", overlay.leave_script(mesh.lab)])  # leaving twice is fine too
