"""The cloud-init documents that turn one shared node image into a named node at its planned address.

The management network has no DHCP (the lab's addresses are part of what it teaches), so each node
learns its address from a NoCloud disk: a network-config matching its interface by MAC, user-data
with its hostname and the lab SSH key. The MAC is derived from the address, so the two can never
disagree. Pure text rendering; the LabNode component puts the result on a CloudInitDisk.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

import yaml

from nestlab.spec import PlannedNode

LAB_USER = "nestlab"  # the account provisioning logs in as (root is authorized too, for Ansible)
MAC_PREFIX = "52:54:00"  # QEMU/KVM's locally administered OUI, what libvirt itself hands out


@dataclass(frozen=True)
class NodeDocuments:
    """The three NoCloud documents of one node."""

    meta_data: str
    user_data: str
    network_config: str


def mac_for(address: IPv4Address) -> str:
    """A MAC address unique per management address: the QEMU prefix + the address's last 3 octets."""
    octets = address.packed[1:]
    return ":".join([MAC_PREFIX, *(f"{octet:02x}" for octet in octets)])


def meta_data(lab_name: str, node: PlannedNode) -> str:
    """NoCloud meta-data: a stable instance id (so cloud-init runs once) and the hostname."""
    return yaml.safe_dump({"instance-id": f"{lab_name}-{node.name}", "local-hostname": str(node.name)})


def user_data(node: PlannedNode, ssh_public_key: str, console_password: str | None = None) -> str:
    """#cloud-config: hostname, the lab user with the SSH key (and root), no password login over SSH."""
    user: dict[str, object] = {
        "name": LAB_USER,
        "groups": ["sudo"],
        "shell": "/bin/bash",
        "sudo": "ALL=(ALL) NOPASSWD:ALL",
        "ssh_authorized_keys": [ssh_public_key],
        "lock_passwd": console_password is None,
    }
    document: dict[str, object] = {
        "hostname": str(node.name),
        "preserve_hostname": False,
        "users": [user],
        "disable_root": False,
        "ssh_authorized_keys": [ssh_public_key],
        "ssh_pwauth": False,
    }
    if console_password is not None:
        # Console-only: ssh_pwauth stays off, so the password opens `virsh console`, never SSH.
        document["chpasswd"] = {
            "expire": False,
            "users": [{"name": LAB_USER, "password": console_password, "type": "text"}],
        }
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False)


def network_config(node: PlannedNode, management: IPv4Network, mtu: int | None = None) -> str:
    """Netplan v2: the management interface, matched by MAC, with the planned static address.

    No gateway and no DNS server: lab networks are never routed out, everything is on the subnet.
    ``mtu`` is set when the network is stretched over hypervisors (VXLAN takes 50 bytes).
    """
    ethernet: dict[str, object] = {
        "match": {"macaddress": mac_for(node.address)},
        "set-name": "mgmt0",
        "addresses": [f"{node.address}/{management.prefixlen}"],
        "dhcp4": False,
        "dhcp6": False,
    }
    if mtu is not None:
        ethernet["mtu"] = mtu
    document = {
        "version": 2,
        "ethernets": {"mgmt0": ethernet},
    }
    return yaml.safe_dump(document, sort_keys=False)


def documents(
    lab_name: str,
    node: PlannedNode,
    management: IPv4Network,
    ssh_public_key: str,
    *,
    console_password: str | None = None,
    mtu: int | None = None,
) -> NodeDocuments:
    """All three documents of ``node``."""
    return NodeDocuments(
        meta_data=meta_data(lab_name, node),
        user_data=user_data(node, ssh_public_key, console_password),
        network_config=network_config(node, management, mtu),
    )
