"""A lab's routes on a real kernel: applied through the lab's own code against a lab bridge in a
throw-away network namespace with a default route of its own, so that "never the default route"
is tested where a default route exists. No lab is stood up; the namespace takes everything with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nestlab.runtime import proc
from nestlab.spec import Plan, make_plan, parse_spec
from nestlab.substrate.local import bridge as br
from nestlab.substrate.local import routes as rt
from nestlab.substrate.local.errors import LabClashError
from nestlab.substrate.local.layout import BridgeName, bridge_name

pytestmark = [
    pytest.mark.integration,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces, bridges and routes need root"),
]

SPEC = "apiVersion: nestlab.dev/v1alpha1\nkind: Lab\nmetadata:\n  name: {name}\n"
UPLINK_GATEWAY = "192.0.2.1"  # the namespace's "way out of the machine" (TEST-NET-1 on a bridge of its own)


def _plan(name: str) -> Plan:
    """The teaching lab's defaults: hosts .31-.33, pods 198.19.0.0/16, services 198.18.32.0/20."""
    return make_plan(parse_spec(SPEC.format(name=name)))


@dataclass(frozen=True)
class Namespace:
    """A network namespace and a runner whose commands run inside it."""

    name: str

    def run(self, argv: Sequence[str], *, timeout: float, check: bool = True, **kwargs: Any) -> proc.Result:
        return proc.run(["ip", "netns", "exec", self.name, *argv], timeout=timeout, check=check, **kwargs)

    def table(self) -> list[dict[str, Any]]:
        """The main routing table, as ip(8) reports it."""
        routes: list[dict[str, Any]] = json.loads(self.run(["ip", "-j", "route", "show"], timeout=30).stdout)
        return routes

    def route_get(self, address: str) -> proc.Result:
        return self.run(["ip", "route", "get", address], timeout=30, check=False)


@pytest.fixture
def netns() -> Iterator[Namespace]:
    """A namespace with a default route out through an uplink of its own; deleted whatever happens."""
    namespace = Namespace(f"nl-routes-{os.getpid()}")
    proc.run(["ip", "netns", "add", namespace.name], timeout=30)
    try:
        for argv in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "link", "add", "uplink", "type", "bridge"],  # no dummy module on this kernel
            ["ip", "addr", "add", "192.0.2.2/24", "dev", "uplink"],
            ["ip", "link", "set", "uplink", "up"],
            ["ip", "route", "add", "default", "via", UPLINK_GATEWAY],
        ):
            namespace.run(argv, timeout=30)
        yield namespace
    finally:
        proc.run(["ip", "netns", "del", namespace.name], timeout=30, check=False)
    assert namespace.name not in proc.run(["ip", "netns", "list"], timeout=30).stdout


def _bridge(netns: Namespace, plan: Plan, proc_sys: Path) -> BridgeName:
    """The lab bridge as the local substrate makes it (its forwarding switch in ``proc_sys``)."""
    bridge = bridge_name(plan.lab.name)
    (proc_sys / bridge).mkdir(parents=True)
    tag = br.owner_tag(Path("/labs") / plan.lab.name)
    network = plan.lab.networks.management
    br.ensure_bridge(netns.run, bridge, plan.gateway, network, tag=tag, proc_sys=proc_sys)
    return bridge


def _via(result: proc.Result) -> str:
    """The next hop and device of an ``ip route get`` answer: ``via A dev D``."""
    assert result.returncode == 0, result.stderr
    words = result.stdout.split()
    return " ".join(words[words.index("via") : words.index("dev") + 2])


def _unreachable(result: proc.Result) -> bool:
    return result.returncode != 0 and "No route to host" in result.stderr


def test_routes_reach_the_lab_and_only_the_lab(netns: Namespace, tmp_path: Path) -> None:
    plan = _plan("rt")
    # Before: a pod address follows the default route out of the machine (the complaint).
    assert _via(netns.route_get("198.19.1.5")) == f"via {UPLINK_GATEWAY} dev uplink"
    bridge = _bridge(netns, plan, tmp_path / "conf")
    baseline = netns.table()

    routes = rt.route_plan(plan)
    rt.check_route_clashes(netns.run, plan, bridge, ours=frozenset())
    rt.apply(netns.run, routes, bridge)
    applied = netns.table()
    rt.apply(netns.run, routes, bridge)
    assert netns.table() == applied  # a second up changes nothing

    # Each pod subnet goes to its host, the service range to any host, the ingress range to the
    # edge load balancer; nothing else of the lab's leaves.
    assert _via(netns.route_get("198.19.0.9")) == f"via 198.18.0.31 dev {bridge}"
    assert _via(netns.route_get("198.19.1.5")) == f"via 198.18.0.32 dev {bridge}"
    assert _via(netns.route_get("198.19.2.200")) == f"via 198.18.0.33 dev {bridge}"
    hosts = {f"via 198.18.0.{i} dev {bridge}" for i in (31, 32, 33)}
    assert _via(netns.route_get("198.18.32.10")) in hosts
    assert _via(netns.route_get("198.18.8.7")) == f"via 198.18.0.5 dev {bridge}"  # the VIP's holder
    for unrouted in ("198.19.9.1", "198.19.255.254"):  # in no host's pod subnet
        assert _unreachable(netns.route_get(unrouted)), unrouted
    assert _via(netns.route_get("203.0.113.1")) == f"via {UPLINK_GATEWAY} dev uplink"  # not a lab's

    # Another lab with the same ranges is refused; this lab's recorded routes are its own.
    keys = frozenset(route.key for route in routes)
    rt.check_route_clashes(netns.run, plan, bridge, ours=keys)
    with pytest.raises(LabClashError, match=r"networks\.services 198\.18\.32\.0/20 meets another lab's"):
        rt.check_route_clashes(netns.run, _plan("rt2"), bridge_name("rt2"), ours=frozenset())

    # The bridge down takes the routes into the lab with it: the fallbacks still hold every range.
    netns.run(["ip", "link", "set", "dev", bridge, "down"], timeout=30)
    for address in ("198.19.1.5", "198.18.32.10", "198.18.8.7"):
        assert _unreachable(netns.route_get(address)), address
    netns.run(["ip", "link", "set", "dev", bridge, "up"], timeout=30)
    rt.apply(netns.run, routes, bridge)
    assert netns.table() == applied

    # down removes exactly the lab's routes, also when half of them are already gone.
    netns.run(rt.del_argv(rt.RouteKey(rt.Kind.UNICAST, plan.lab.networks.services)), timeout=30)
    removed = rt.remove(netns.run, keys)
    assert len(removed) == len(routes) - 1
    assert netns.table() == baseline
    assert rt.remove(netns.run, keys) == []
    assert _via(netns.route_get("198.19.1.5")) == f"via {UPLINK_GATEWAY} dev uplink"


def test_the_fallbacks_outlive_the_bridge_and_down_removes_them(netns: Namespace, tmp_path: Path) -> None:
    plan = _plan("rt")
    bridge = _bridge(netns, plan, tmp_path / "conf")
    routes = rt.route_plan(plan)
    rt.apply(netns.run, routes, bridge)
    br.remove_bridge(netns.run, bridge)  # a crash, or the half of down that ran
    left = {(r.get("type", "unicast"), r["dst"]) for r in netns.table() if r.get("protocol") == str(rt.PROTO)}
    assert left == {
        ("unreachable", str(net))
        for net in (plan.lab.networks.pods, plan.lab.networks.services, plan.lab.networks.ingress)
    }
    assert _unreachable(netns.route_get("198.19.1.5"))  # still never the default route
    assert len(rt.remove(netns.run, frozenset(route.key for route in routes))) == 3
    assert not [r for r in netns.table() if r.get("protocol") == str(rt.PROTO)]
