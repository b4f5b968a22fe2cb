"""What makes one node itself: hostname, static address, root's authorized key, host key, machine-id.

The builders return text (pure, unit-tested); :func:`write_node_files` puts it into the node's
mounted root, so it lands in the node's own overlay layer and never in the shared image.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from nestlab.spec import NodeName

NETWORK_FILE = "etc/systemd/network/10-nestlab-host0.network"
NSPAWN_INTERFACE = "host0"  # the name nspawn gives the node's end of its veth pair


@dataclass(frozen=True)
class NodeIdentity:
    """What a node's files are made from."""

    name: NodeName
    address: IPv4Address
    network: IPv4Network
    """The management network (the node's prefix length comes from it)."""
    authorized_key: str
    """The lab's SSH public key line."""
    host_key: bytes
    """The node's private SSH host key (OpenSSH format)."""
    host_key_pub: str
    machine_id: str
    """32 hex digits, stable for the node's life."""


def network_file(address: IPv4Address, network: IPv4Network) -> str:
    """systemd-networkd config: a static address on host0, no gateway, no IPv6 autoconfiguration."""
    return (
        "# Written by nestlab: the node's management address. No Gateway= on purpose: lab nodes\n"
        "# have no route off the lab network.\n"
        "[Match]\n"
        f"Name={NSPAWN_INTERFACE}\n"
        "\n"
        "[Network]\n"
        f"Address={address}/{network.prefixlen}\n"
        "LinkLocalAddressing=no\n"
        "IPv6AcceptRA=no\n"
    )


def hosts_file(name: NodeName, address: IPv4Address) -> str:
    """/etc/hosts naming the node itself."""
    return f"127.0.0.1\tlocalhost\n{address}\t{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def known_hosts_line(name: NodeName, address: IPv4Address, host_key_pub: str) -> str:
    """A known_hosts entry for the node under its address and its name."""
    key_type, key_data = host_key_pub.split()[:2]
    return f"{address},{name} {key_type} {key_data}\n"


def new_machine_id() -> str:
    """A random machine-id (what systemd-machine-id-setup would write)."""
    return uuid.uuid4().hex


def _write(root: Path, relative: str, content: str | bytes, mode: int = 0o644) -> None:
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    tmp = target.with_name(f".{target.name}.nestlab-tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    tmp.replace(target)


def write_node_files(root: Path, node: NodeIdentity) -> None:
    """Write the node's identity into its mounted root (idempotent)."""
    _write(root, "etc/hostname", f"{node.name}\n")
    hosts = root / "etc" / "hosts"
    # Provisioning (roles/common) replaces this with the lab-wide file; a reboot must keep that one.
    if not hosts.exists() or node.name not in hosts.read_text(encoding="utf-8").split():
        _write(root, "etc/hosts", hosts_file(node.name, node.address))
    _write(root, "etc/machine-id", f"{node.machine_id}\n", 0o444)
    _write(root, NETWORK_FILE, network_file(node.address, node.network))
    (root / "root" / ".ssh").mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(root, "root/.ssh/authorized_keys", node.authorized_key.strip() + "\n", 0o600)
    _write(root, "etc/ssh/ssh_host_ed25519_key", node.host_key, 0o600)
    _write(root, "etc/ssh/ssh_host_ed25519_key.pub", node.host_key_pub.strip() + "\n")
