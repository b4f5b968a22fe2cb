"""Routes on the outer machine into the lab, and only into the lab (issue 12 part 7).

The outer machine reaches a pod through the host that owns its pod subnet, a Service address
through any host (each host's proxy DNATs it): a multipath route over every host's management
address, and a LoadBalancer address through the API VIP, whose holder (lb-1 or lb-2) is the edge
load balancer (:mod:`nestlab.proxy.edge`). Behind those, ``unreachable`` routes cover the whole
pod, service and ingress ranges, so a lab address with no more specific route (no host owns that
pod subnet, the lab bridge is gone) is refused on the spot instead of following the default route
out of the machine. The fallbacks for the service and ingress ranges share their prefix with the
routes into the lab, so they sit at a higher metric and only answer when those are gone. A stopped host
leaves the multipath route (``nestlab node stop``), since the kernel would keep sending it its
share of connections.

Every route carries nestlab's own protocol number, so ``ip route`` shows whose it is. Routes via
the lab bridge die with it; the unreachable ones do not, so ``down`` removes them by name. The
pure part (:func:`route_plan`, argv, parsing, clash rules) is separate from the three functions
that call ip(8) through the process runner.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from nestlab.runtime import proc
from nestlab.spec import NodeName, Plan, Role
from nestlab.substrate.local.errors import LabClashError
from nestlab.substrate.local.layout import BridgeName

IP = "ip"
TIMEOUT_S = 30.0  # ip answers at once; a slow answer means the machine is in trouble
# The rtnetlink protocol nestlab's routes carry: free in iproute2's rt_protos ("N", 78), so
# `ip route show proto 78` lists exactly the routes labs made.
PROTO = 78
# The unreachable fallbacks lose to any route anybody adds for the same prefix: only longer
# prefixes would otherwise beat them, and the service range's multipath route has the same one.
UNREACHABLE_METRIC = 65535


class Kind(enum.StrEnum):
    """An ip(8) route type."""

    UNICAST = "unicast"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, order=True)
class RouteKey:
    """What names one of a lab's routes on the machine (with :data:`PROTO`): kept in the lab state."""

    kind: Kind
    destination: IPv4Network


@dataclass(frozen=True)
class Route:
    """One route a lab needs on the outer machine."""

    destination: IPv4Network
    via: tuple[IPv4Address, ...]
    """Next hops on the lab bridge (several: multipath); empty for an unreachable route."""
    purpose: str
    """What it is for, for people reading ``nestlab`` output."""

    @property
    def key(self) -> RouteKey:
        """The route's name on the machine."""
        return RouteKey(Kind.UNICAST if self.via else Kind.UNREACHABLE, self.destination)


def route_plan(plan: Plan, stopped: frozenset[NodeName] = frozenset()) -> tuple[Route, ...]:
    """The routes lab ``plan`` needs: unreachable fallbacks first, then the routes into the lab.

    The service range goes to the hosts not ``stopped`` only: a stopped host would otherwise keep
    its share of the outer machine's connections (the kernel does not notice it is gone).
    """
    networks = plan.lab.networks
    hosts = plan.by_role(Role.HOST)
    routes = [
        Route(networks.pods, (), "pod range: no host owns this subnet"),
        Route(networks.services, (), "service range: every host is gone"),
        Route(networks.ingress, (), "ingress range: the lab bridge is gone"),
    ]
    for host in hosts:
        if host.pod_subnet is not None:
            routes.append(Route(host.pod_subnet, (host.address,), f"pods of {host.name}"))
    via = tuple(host.address for host in hosts if host.name not in stopped)
    if via:  # every host stopped: the fallback alone holds the range
        routes.append(Route(networks.services, via, "Services: the proxy on any running host"))
    routes.append(Route(networks.ingress, (plan.vip,), "LoadBalancers: the edge load balancer with the VIP"))
    return tuple(routes)


def keys_in_plan_dict(data: dict[str, Any]) -> frozenset[RouteKey]:
    """The keys :func:`route_plan` gives, from a plan's JSON form (``plan.json`` in the lab
    directory): how ``down`` finds the routes of a lab whose state file was lost."""
    networks = data.get("networks") or {}
    keys = {
        RouteKey(kind, IPv4Network(str(networks[name])))
        for kind, name in (
            (Kind.UNREACHABLE, "pods"),
            (Kind.UNREACHABLE, "services"),
            (Kind.UNREACHABLE, "ingress"),
            (Kind.UNICAST, "services"),
            (Kind.UNICAST, "ingress"),
        )
        if networks.get(name)  # a plan written before the lab had services or ingress ranges
    }
    keys.update(
        RouteKey(Kind.UNICAST, IPv4Network(str(node["podSubnet"])))
        for node in data.get("nodes") or []
        if node.get("podSubnet")
    )
    return frozenset(keys)


def add_argv(route: Route, bridge: BridgeName) -> list[str]:
    """``ip route replace`` for ``route``, its next hops on ``bridge`` (idempotent)."""
    head = [IP, "route", "replace", str(route.key.kind), str(route.destination), "proto", str(PROTO)]
    if not route.via:
        return [*head, "metric", str(UNREACHABLE_METRIC)]
    if len(route.via) == 1:
        return [*head, "via", str(route.via[0]), "dev", bridge]
    return [*head, *(word for hop in route.via for word in ("nexthop", "via", str(hop), "dev", bridge))]


def del_argv(key: RouteKey) -> list[str]:
    """``ip route del`` for exactly the lab route named ``key`` (type, prefix and protocol match)."""
    argv = [IP, "route", "del", str(key.kind), str(key.destination), "proto", str(PROTO)]
    if key.kind is Kind.UNREACHABLE:
        argv += ["metric", str(UNREACHABLE_METRIC)]
    return argv


@dataclass(frozen=True)
class MachineRoute:
    """One route of the outer machine's main table, as ``ip -j route show`` reports it."""

    kind: str
    """``unicast``, ``unreachable``, ``blackhole``, ``prohibit``, ..."""
    destination: IPv4Network
    protocol: str
    """``kernel``, ``static``, a number such as ``78``; ``boot`` when ip(8) omits it."""
    devices: tuple[str, ...]
    """The interfaces its next hops leave by (empty for unreachable, blackhole, ...)."""

    @property
    def nestlab(self) -> bool:
        """Whether a lab (this one or another) made it."""
        return self.protocol == str(PROTO)

    @property
    def key(self) -> RouteKey | None:
        """Its name as a lab route; None for a type labs never make."""
        return RouteKey(Kind(self.kind), self.destination) if self.kind in tuple(Kind) else None


def parse_routes(ip_json: str) -> list[MachineRoute]:
    """The IPv4 routes of ``ip -j route show``, the default route excepted."""
    routes = []
    raw: list[dict[str, Any]] = json.loads(ip_json or "[]")
    for entry in raw:
        if entry.get("dst") in (None, "default"):
            continue
        hops = entry.get("nexthops") or [entry]
        routes.append(
            MachineRoute(
                kind=str(entry.get("type", Kind.UNICAST)),
                destination=IPv4Network(str(entry["dst"])),
                protocol=str(entry.get("protocol", "boot")),
                devices=tuple(str(hop["dev"]) for hop in hops if "dev" in hop),
            )
        )
    return routes


def find_route_clashes(
    machine: list[MachineRoute],
    plan: Plan,
    bridge: BridgeName,
    *,
    ours: frozenset[RouteKey],
) -> list[str]:
    """Why this lab's routes cannot go on this machine (empty when they can).

    What a lab uses (its hosts' pod subnets, its service and ingress ranges, its management
    network) must be its alone: a route inside it (or equal to it) would win for part of it, and
    another lab's route into its own lab that is wider would lose part of that lab to this one.
    Around what is used, the fallback ranges may hold other labs (their routes are more specific,
    so both labs keep working: the e2e lab's pods sit inside the default lab's 198.19.0.0/16),
    but nothing else, and never another lab's fallback for the very same prefix. Routes on this
    lab's bridge, and those in ``ours`` (recorded by this lab), are this lab's own.
    """
    networks = plan.lab.networks
    used = [("pods", host.pod_subnet) for host in plan.by_role(Role.HOST) if host.pod_subnet]
    used += [("services", networks.services), ("ingress", networks.ingress)]
    fallbacks = [("pods", networks.pods), ("services", networks.services), ("ingress", networks.ingress)]
    declared = dict([*fallbacks, ("management", networks.management)])
    problems: dict[tuple[MachineRoute, str], str] = {}
    for route in machine:
        if route.key in ours or (route.devices and set(route.devices) == {bridge}):
            continue
        into_a_lab = route.nestlab and route.kind == Kind.UNICAST
        found = [
            key
            for key, net in [*used, ("management", networks.management)]
            if route.destination.overlaps(net)
            and (key != "management" or route.nestlab)  # other interfaces: the bridge check's job
            and (route.destination.subnet_of(net) or into_a_lab)
        ]
        found += [
            key
            for key, net in fallbacks
            if route.destination == net or (route.destination.subnet_of(net) and not route.nestlab)
        ]
        for key in found:
            problems.setdefault((route, key), _clash(route, key, declared[key]))
    return list(problems.values())


def _clash(route: MachineRoute, key: str, lab_range: IPv4Network) -> str:
    where = f" dev {','.join(dict.fromkeys(route.devices))}" if route.devices else ""
    whose = "another lab's route" if route.nestlab else "a route"
    fix = f"give this lab another networks.{key} range"
    return (
        f"networks.{key} {lab_range} meets {whose} on this machine ({route.kind} {route.destination}"
        f"{where}): " + (f"take that lab down or {fix}" if route.nestlab else fix)
    )


def machine_routes(run: proc.Runner) -> list[MachineRoute]:
    """The outer machine's main routing table now."""
    return parse_routes(run([IP, "-j", "route", "show", "table", "main"], timeout=TIMEOUT_S).stdout)


def check_route_clashes(
    run: proc.Runner, plan: Plan, bridge: BridgeName, *, ours: frozenset[RouteKey]
) -> None:
    """Raise LabClashError naming every route in the way of this lab's."""
    problems = find_route_clashes(machine_routes(run), plan, bridge, ours=ours)
    if problems:
        raise LabClashError("the lab's routes cannot be added here: " + "; ".join(problems))


def apply(run: proc.Runner, routes: tuple[Route, ...], bridge: BridgeName) -> None:
    """Add or update ``routes`` in order (unreachable fallbacks before the routes they back)."""
    for route in routes:
        run(add_argv(route, bridge), timeout=TIMEOUT_S)


def remove(run: proc.Runner, keys: frozenset[RouteKey]) -> list[RouteKey]:
    """Delete the lab routes named ``keys`` that are on the machine; return those deleted.

    Routes into the lab go first, the unreachable fallbacks last, so no lab address ever meets
    the default route on the way down.
    """
    if not keys:
        return []
    present = {route.key for route in machine_routes(run) if route.nestlab}
    order = sorted(
        (key for key in keys if key in present), key=lambda k: (k.kind is Kind.UNREACHABLE, k.destination)
    )
    for key in order:
        run(del_argv(key), timeout=TIMEOUT_S)
    return order
