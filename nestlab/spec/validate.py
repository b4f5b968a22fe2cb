"""Rules that tie several spec fields together: networks, the VIP, names and anti-affinity.

Run by :func:`nestlab.spec.parse.parse_spec` on a structurally sound spec; each rule appends a
:class:`SpecIssue` naming the field to change, so a spec is refused before anything is created.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from nestlab.spec import addresses
from nestlab.spec.errors import SpecIssue
from nestlab.spec.model import Lab, Role
from nestlab.spec.placement import anti_affinity_problem

MIN_SERVICES_PREFIX = 28  # 14 usable addresses: .1 (kubernetes), .10 (DNS) and a few Services
MIN_INGRESS_PREFIX = 30  # 2 usable addresses: the smallest pool that is still a pool


def validate(lab: Lab, issues: list[SpecIssue]) -> None:
    """Append an issue for every cross-field rule the lab breaks."""
    _names(lab, issues)
    _networks(lab, issues)
    _vip(lab, issues)
    problem = anti_affinity_problem(lab)
    if problem is not None:
        issues.append(problem)


def _names(lab: Lab, issues: list[SpecIssue]) -> None:
    by_role = lab.names_by_role()
    reserved = {name for role, names in by_role.items() if role is not Role.HOST for name in names}
    first_index: dict[str, int] = {}
    for index, host in enumerate(lab.hosts):
        path = f"spec.hosts.nodes[{index}].name"
        if host.name in first_index:
            issues.append(
                SpecIssue(
                    path,
                    f"{host.name!r} is used by more than one host (also nodes[{first_index[host.name]}])",
                    "rename one",
                )
            )
        elif host.name in reserved:
            issues.append(SpecIssue(path, f"{host.name!r} is the name of a lab node", "pick another name"))
        first_index.setdefault(host.name, index)


def _networks(lab: Lab, issues: list[SpecIssue]) -> None:
    networks = lab.networks
    management, pods = networks.management, networks.pods
    for key, net in _named_networks(lab):
        if not net.is_private:
            issues.append(
                SpecIssue(
                    f"spec.networks.{key}",
                    f"{net} is not a private range and lab networks are never routed out",
                    "use a range inside 198.18.0.0/15 (the default)",
                )
            )
    needed = addresses.addresses_needed(len(lab.hosts))
    if management.num_addresses < needed:
        prefix = 32 - (needed - 1).bit_length()
        issues.append(
            SpecIssue(
                "spec.networks.management",
                f"{management} has {management.num_addresses} addresses but the lab needs {needed} "
                f"(hosts start at .{addresses.HOST_OFFSET})",
                f"use a /{prefix} or larger",
            )
        )
    if management.overlaps(pods):
        issues.append(
            SpecIssue(
                "spec.networks.pods",
                f"{pods} overlaps the management network {management}",
                "pick disjoint ranges, e.g. 198.18.0.0/24 and 198.19.0.0/16",
            )
        )
    if networks.pod_prefix <= pods.prefixlen:
        issues.append(
            SpecIssue(
                "spec.networks.podPrefixLength",
                f"/{networks.pod_prefix} per host does not cut {pods} into host subnets",
                f"use a prefix longer than /{pods.prefixlen}",
            )
        )
    elif addresses.pod_subnets_available(lab) < len(lab.hosts):
        issues.append(
            SpecIssue(
                "spec.networks.pods",
                f"{pods} holds {addresses.pod_subnets_available(lab)} subnets of "
                f"/{networks.pod_prefix} but there are {len(lab.hosts)} hosts",
                "use a larger pod network or a longer podPrefixLength",
            )
        )
    _service_networks(lab, issues)


def _named_networks(lab: Lab) -> list[tuple[str, IPv4Network]]:
    """Every lab range with its spec key, in the order a lab's ranges are written."""
    networks = lab.networks
    return [
        ("management", networks.management),
        ("pods", networks.pods),
        ("services", networks.services),
        ("ingress", networks.ingress),
    ]


def _service_networks(lab: Lab, issues: list[SpecIssue]) -> None:
    """services and ingress: big enough, and disjoint from every range written before them."""
    named = _named_networks(lab)
    for key, least, default, why in (
        (
            "services",
            MIN_SERVICES_PREFIX,
            addresses.DEFAULT_SERVICES,
            "the kubernetes Service takes .1 and the cluster DNS .10",
        ),
        ("ingress", MIN_INGRESS_PREFIX, addresses.DEFAULT_INGRESS, "a pool needs two addresses at least"),
    ):
        net = dict(named)[key]
        path = f"spec.networks.{key}"
        if net.prefixlen > least:
            issues.append(SpecIssue(path, f"{net} is too small: {why}", f"use a /{least} or larger"))
        others = [(k, other) for k, other in named if k != key]
        hint = "pick a range disjoint from " + ", ".join(f"spec.networks.{k}" for k, _ in others)
        if not any(default.overlaps(other) for _, other in others):
            hint += f" (the default {default} is)"
        for other_key, other in named:
            if other_key == key:
                break  # a pair is reported once, at the field written later
            if net.overlaps(other):
                issues.append(SpecIssue(path, f"{net} overlaps the {other_key} network {other}", hint))


def _vip(lab: Lab, issues: list[SpecIssue]) -> None:
    vip = lab.load_balancers.vip
    if vip is None:
        return
    management = lab.networks.management
    path = "spec.loadBalancers.vip"
    if vip not in management:
        issues.append(
            SpecIssue(
                path,
                f"{vip} is outside the management network {management}",
                f"pick an address inside {management}",
            )
        )
        return
    taken = {
        management.network_address: "the network address",
        management.broadcast_address: "the broadcast address",
        addresses.gateway(management): "the lab bridge (gateway)",
    }
    taken.update({address: f"node {name}" for name, address in addresses.node_addresses(lab).items()})
    if vip in taken:
        issues.append(
            SpecIssue(
                path,
                f"{vip} collides with {taken[vip]}",
                f"use a free address such as {addresses.nth(management, addresses.VIP_OFFSET)}",
            )
        )
