"""Placement: which host each control-plane node, load balancer and the depot lives on.

Computed once, here, for every substrate: control-plane node *i* lands on its own host (and its own
hypervisor when the lab spans several) so one host failure costs etcd one member at most. The
order is deterministic so the same spec always gives the same lab.
"""

from __future__ import annotations

from collections import defaultdict

from nestlab.spec.errors import SpecIssue
from nestlab.spec.model import HostSpec, Lab, NodeName, Role


def host_hypervisors(lab: Lab) -> dict[NodeName, int]:
    """Hypervisor index of every host: the pinned one, else round-robin over the URIs."""
    count = max(len(lab.substrate.uris), 1)
    return {
        host.name: host.hypervisor if host.hypervisor is not None else index % count
        for index, host in enumerate(lab.hosts)
    }


def spread_order(lab: Lab) -> list[HostSpec]:
    """Hosts ordered so that consecutive ones sit on different hypervisors where possible."""
    groups: dict[int, list[HostSpec]] = defaultdict(list)
    hypervisors = host_hypervisors(lab)
    for host in lab.hosts:
        groups[hypervisors[host.name]].append(host)
    order: list[HostSpec] = []
    for rank in range(max(len(group) for group in groups.values())):
        order.extend(groups[h][rank] for h in sorted(groups) if rank < len(groups[h]))
    return order


def anti_affinity_problem(lab: Lab) -> SpecIssue | None:
    """Why the control plane cannot be spread as asked, or None when it can."""
    if not lab.control_plane.anti_affinity:
        return None
    count = lab.control_plane.count
    hypervisors_used = len(set(host_hypervisors(lab).values()))
    if len(lab.substrate.uris) > 1 and hypervisors_used < count:
        return SpecIssue(
            "spec.controlPlane.count",
            f"{count} control-plane nodes need {count} hypervisors with antiAffinity on, "
            f"but hosts use {hypervisors_used}",
            "spread hosts over more spec.substrate.uris, or set spec.controlPlane.antiAffinity: false",
        )
    if len(lab.hosts) < count:
        return SpecIssue(
            "spec.controlPlane.count",
            f"{count} control-plane nodes need {count} hosts with antiAffinity on, "
            f"but the spec has {len(lab.hosts)}",
            f"set spec.hosts.count: {count}, or set spec.controlPlane.antiAffinity: false",
        )
    return None


def place(lab: Lab) -> dict[NodeName, NodeName]:
    """Map every non-host node to the host it runs on. The lab must have passed validation."""
    order = spread_order(lab)
    by_role = lab.names_by_role()
    placed: dict[NodeName, NodeName] = {}
    for role in (Role.CONTROL_PLANE, Role.LOAD_BALANCER):
        for i, name in enumerate(by_role[role]):
            placed[name] = order[i % len(order)].name
    placed[NodeName("depot")] = order[-1].name
    return placed
