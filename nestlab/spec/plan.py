"""The plan: a validated lab resolved into concrete nodes, addresses and failure domains.

Every substrate, Ansible's inventory and ``nestlab plan`` read this one structure, so what the user
is shown before ``up`` is exactly what gets built.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from nestlab.spec import addresses
from nestlab.spec.model import Lab, NodeName, Role, Size
from nestlab.spec.placement import host_hypervisors, place


@dataclass(frozen=True)
class PlannedNode:
    """One node as it will be built."""

    name: NodeName
    role: Role
    address: IPv4Address
    """Management address."""
    placed_on: NodeName
    """The host whose failure domain holds this node (a host is placed on itself)."""
    hypervisor: int
    """Index of the libvirt URI this node's VM runs on (0 on the local substrate)."""
    size: Size
    pod_subnet: IPv4Network | None = None
    """The host's pod subnet; None for nodes that are not hosts."""


@dataclass(frozen=True)
class Plan:
    """A lab resolved into nodes; built by :func:`make_plan`."""

    lab: Lab
    nodes: tuple[PlannedNode, ...]
    vip: IPv4Address
    gateway: IPv4Address
    warnings: tuple[str, ...]

    def node(self, name: str) -> PlannedNode:
        """The node called ``name``; KeyError when there is none."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def by_role(self, role: Role) -> list[PlannedNode]:
        """The nodes of one role, in name order."""
        return [node for node in self.nodes if node.role is role]

    def failure_domains(self) -> dict[NodeName, list[NodeName]]:
        """For each host, the nodes that stop when it stops (itself first)."""
        domains: dict[NodeName, list[NodeName]] = {h.name: [] for h in self.by_role(Role.HOST)}
        for node in self.nodes:
            domains[node.placed_on].append(node.name)
        return domains

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, the one ``nestlab plan --json`` prints."""
        return {
            "name": self.lab.name,
            "substrate": {
                "type": str(self.lab.substrate.type),
                "uris": list(self.lab.substrate.uris),
            },
            "vip": str(self.vip),
            "gateway": str(self.gateway),
            "networks": {
                "management": str(self.lab.networks.management),
                "pods": str(self.lab.networks.pods),
                "services": str(self.lab.networks.services),
                "ingress": str(self.lab.networks.ingress),
            },
            "podKernel": str(self.lab.pod_kernel),
            "controlPlane": {"podEvictionSeconds": self.lab.control_plane.pod_eviction_seconds},
            "nodes": [
                {
                    "name": node.name,
                    "role": str(node.role),
                    "address": str(node.address),
                    "placedOn": node.placed_on,
                    "hypervisor": node.hypervisor,
                    "cpu": node.size.cpu,
                    "memoryMiB": node.size.memory_mib,
                    "diskMiB": node.size.disk_mib,
                    "podSubnet": str(node.pod_subnet) if node.pod_subnet else None,
                }
                for node in self.nodes
            ],
            "failureDomains": self.failure_domains(),
            "warnings": list(self.warnings),
        }


def make_plan(lab: Lab) -> Plan:
    """Resolve a validated lab into its plan."""
    placed = place(lab)
    hypervisors = host_hypervisors(lab)
    node_addresses = addresses.node_addresses(lab)
    sizes = {
        Role.CONTROL_PLANE: lab.control_plane.size,
        Role.LOAD_BALANCER: lab.load_balancers.size,
        Role.DEPOT: lab.depot.size,
    }
    nodes: list[PlannedNode] = []
    for index, host in enumerate(lab.hosts):
        nodes.append(
            PlannedNode(
                name=host.name,
                role=Role.HOST,
                address=node_addresses[host.name],
                placed_on=host.name,
                hypervisor=hypervisors[host.name],
                size=host.size,
                pod_subnet=addresses.pod_subnet(lab, index),
            )
        )
    for role, names in lab.names_by_role().items():
        if role is Role.HOST:
            continue
        for name in names:
            nodes.append(
                PlannedNode(
                    name=name,
                    role=role,
                    address=node_addresses[name],
                    placed_on=placed[name],
                    hypervisor=hypervisors[placed[name]],
                    size=sizes[role],
                )
            )
    return Plan(
        lab=lab,
        nodes=tuple(nodes),
        vip=addresses.vip(lab),
        gateway=addresses.gateway(lab.networks.management),
        warnings=tuple(_warnings(nodes)),
    )


def _warnings(nodes: list[PlannedNode]) -> list[str]:
    warnings: list[str] = []
    control_plane = [node for node in nodes if node.role is Role.CONTROL_PLANE]
    majority = len(control_plane) // 2 + 1
    shared = Counter(node.placed_on for node in control_plane)
    for host, count in sorted(shared.items()):
        if count < 2:
            continue
        names = ", ".join(n.name for n in control_plane if n.placed_on == host)
        consequence = (
            "etcd loses its majority and the API stops"
            if count >= majority
            else ("etcd loses several members at once")
        )
        warnings.append(f"{names} share the failure domain of {host}: if {host} stops, {consequence}")
    balancers = [node for node in nodes if node.role is Role.LOAD_BALANCER]
    if len(balancers) == 1:
        warnings.append("one load balancer: the VIP has no standby and stops with its host")
    elif len({node.placed_on for node in balancers}) < len(balancers):
        warnings.append(f"both load balancers are on {balancers[0].placed_on}: the VIP has no failover")
    if len(control_plane) == 1:
        warnings.append("one control-plane node: etcd has no redundancy")
    return warnings
