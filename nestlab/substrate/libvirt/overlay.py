"""One management network over several hypervisors: their lab bridges joined by a VXLAN mesh.

Each hypervisor's LabNetwork is an isolated bridge (``lv-<lab>``); nodes on different hypervisors
reach each other only once those bridges share a layer-2 segment. A VXLAN device per hypervisor,
enslaved to the lab bridge, with a flood entry towards every other hypervisor (head-end
replication, no multicast needed in the underlay) does that. The script runs on each hypervisor over
the same SSH access libvirt's ``qemu+ssh://`` URIs already need. The 50 bytes of VXLAN header come
out of the lab's MTU, which the networks then advertise to the nodes.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from nestlab.errors import UsageError

VXLAN_PORT = 4789  # IANA's VXLAN port
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
UNDERLAY_MTU = 1500
LAB_MTU = UNDERLAY_MTU - VXLAN_OVERHEAD
VNI_SPACE = 1 << 24  # VXLAN network identifiers are 24 bits
DEVICE_PREFIX = "vx-"  # + the lab name (<= 12 characters) stays within Linux's 15-character limit


@dataclass(frozen=True)
class SshTarget:
    """Where a hypervisor's shell is, read from its libvirt URI."""

    host: str
    user: str | None = None
    port: int | None = None

    def argv(self, *remote: str) -> list[str]:
        """ssh argv that runs ``remote`` there, never prompting."""
        where = f"{self.user}@{self.host}" if self.user else self.host
        port = ["-p", str(self.port)] if self.port else []
        return ["ssh", "-o", "BatchMode=yes", *port, where, *remote]


def ssh_target(uri: str) -> SshTarget:
    """The SSH target of a remote libvirt URI; a URI without a host has no place in a mesh."""
    parts = urlsplit(uri)
    if not parts.hostname:
        raise UsageError(
            f"{uri} names no host: a lab over several hypervisors needs each one reachable by SSH, "
            "e.g. qemu+ssh://root@hv-1/system"
        )
    return SshTarget(parts.hostname, parts.username, parts.port)


def device_name(lab_name: str) -> str:
    """The VXLAN device on every hypervisor."""
    return f"{DEVICE_PREFIX}{lab_name}"


def vni(lab_name: str) -> int:
    """A VXLAN id derived from the lab name, so two labs over the same hypervisors stay apart."""
    return int.from_bytes(hashlib.sha256(lab_name.encode()).digest()[:3], "big") % VNI_SPACE or 1


def join_script(lab_name: str, bridge: str, peers: list[str]) -> str:
    """sh script, idempotent: create the VXLAN device, flood to each peer, enslave it to ``bridge``."""
    dev = shlex.quote(device_name(lab_name))
    lines = [
        "set -eu",
        f"ip link show {dev} >/dev/null 2>&1 || ip link add {dev} type vxlan id {vni(lab_name)} "
        f"dstport {VXLAN_PORT} nolearning",
        f"ip link set {dev} mtu {LAB_MTU}",
        f"for peer in {' '.join(shlex.quote(p) for p in peers)}; do",
        "  addr=$(getent ahostsv4 \"$peer\" | awk 'NR == 1 {print $1}')",
        '  [ -n "$addr" ] || { echo "cannot resolve hypervisor $peer" >&2; exit 1; }',
        f'  bridge fdb show dev {dev} | grep -q "dst $addr " || '
        f'bridge fdb append 00:00:00:00:00:00 dev {dev} dst "$addr"',
        "done",
        f"ip link set {dev} master {shlex.quote(bridge)}",
        f"ip link set {dev} up",
    ]
    return "\n".join(lines) + "\n"


def ssh_line(target: SshTarget, script: str) -> str:
    """The local shell line that runs ``script`` with sh on ``target``.

    ssh hands its arguments to the remote login shell as one string, hence the two layers of quoting.
    """
    return shlex.join(target.argv(shlex.join(["sh", "-c", script])))


def leave_script(lab_name: str) -> str:
    """sh script removing the VXLAN device (the flood entries go with it)."""
    dev = shlex.quote(device_name(lab_name))
    return f"ip link del {dev} 2>/dev/null || true\n"
