"""The outer machine's routes into a lab: which a plan needs, how they are written, what clashes,
and that ``down`` removes exactly the lab's own (also with its state file lost)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

from nestlab.runtime.proc import Result
from nestlab.spec import NodeName, Plan, load_spec, make_plan, parse_spec
from nestlab.substrate.local import lifecycle as lc
from nestlab.substrate.local import routes as rt
from nestlab.substrate.local import state as st
from nestlab.substrate.local.errors import LabClashError
from nestlab.substrate.local.layout import BridgeName, LabLayout, bridge_name, machine_name
from tests.unit.spec.helpers import spec_yaml

BRIDGE = BridgeName("nl-t")
SMALL = Path(__file__).parents[2] / "integration" / "substrate" / "small.lab.yaml"
U, X = rt.Kind.UNICAST, rt.Kind.UNREACHABLE


def _net(text: str) -> IPv4Network:
    return IPv4Network(text)


def _argv(command: str) -> list[str]:
    return command.split()


@pytest.fixture
def plan() -> Plan:
    """The teaching lab's defaults: 3 hosts, pods 198.19.0.0/16, services 198.18.32.0/20."""
    return make_plan(parse_spec(spec_yaml()))


def test_the_plan_routes_each_pod_subnet_to_its_host_and_services_over_every_host(plan: Plan) -> None:
    routes = [(r.key.kind, str(r.destination), [str(a) for a in r.via]) for r in rt.route_plan(plan)]
    hosts = ["198.18.0.31", "198.18.0.32", "198.18.0.33"]
    assert (
        routes
        == [
            (X, "198.19.0.0/16", []),  # the fallbacks come first: never a moment without them
            (X, "198.18.32.0/20", []),
            (X, "198.18.8.0/24", []),
            (U, "198.19.0.0/24", hosts[:1]),
            (U, "198.19.1.0/24", hosts[1:2]),
            (U, "198.19.2.0/24", hosts[2:]),
            (U, "198.18.32.0/20", hosts),
            (U, "198.18.8.0/24", ["198.18.0.5"]),  # the edge load balancer: whoever holds the VIP
        ]
    )


def test_a_stopped_host_leaves_the_service_route_and_keeps_its_pod_route(plan: Plan) -> None:
    def services_via(stopped: set[str]) -> list[list[str]]:
        routes = rt.route_plan(plan, frozenset(NodeName(n) for n in stopped))
        pods = plan.lab.networks.pods
        assert {r.destination for r in routes if r.via and r.destination.subnet_of(pods)} == {
            _net(f"198.19.{i}.0/24") for i in range(3)
        }
        return [[str(a) for a in r.via] for r in routes if r.via and r.destination.prefixlen == 20]

    assert services_via({"esx-02"}) == [["198.18.0.31", "198.18.0.33"]]
    assert services_via({"esx-01", "esx-02", "esx-03"}) == []  # the unreachable fallback holds it


def test_argv_of_each_kind_of_route(plan: Plan) -> None:
    by_key = {r.key: r for r in rt.route_plan(plan)}
    unreachable = by_key[rt.RouteKey(X, _net("198.18.8.0/24"))]
    assert rt.add_argv(unreachable, BRIDGE) == (
        _argv("ip route replace unreachable 198.18.8.0/24 proto 78 metric 65535")
    )
    pods = by_key[rt.RouteKey(U, _net("198.19.1.0/24"))]
    assert rt.add_argv(pods, BRIDGE) == (
        _argv("ip route replace unicast 198.19.1.0/24 proto 78 via 198.18.0.32 dev nl-t")
    )
    services = by_key[rt.RouteKey(U, _net("198.18.32.0/20"))]
    assert rt.add_argv(services, BRIDGE) == _argv(
        "ip route replace unicast 198.18.32.0/20 proto 78 "
        "nexthop via 198.18.0.31 dev nl-t nexthop via 198.18.0.32 dev nl-t "
        "nexthop via 198.18.0.33 dev nl-t"
    )
    assert rt.del_argv(services.key) == _argv("ip route del unicast 198.18.32.0/20 proto 78")
    assert rt.del_argv(unreachable.key) == (
        _argv("ip route del unreachable 198.18.8.0/24 proto 78 metric 65535")
    )


def test_one_host_gets_a_plain_route_for_services() -> None:
    small = make_plan(load_spec(SMALL))
    services = [r for r in rt.route_plan(small) if r.via and r.destination == small.lab.networks.services]
    assert rt.add_argv(services[0], BRIDGE)[-4:] == ["via", "198.18.241.31", "dev", "nl-t"]


@pytest.mark.parametrize("spec", [spec_yaml(), SMALL.read_text()], ids=["default", "small"])
def test_saved_plan_names_the_same_routes(spec: str) -> None:
    plan = make_plan(parse_spec(spec))
    keys = rt.keys_in_plan_dict(json.loads(json.dumps(plan.to_dict())))
    assert keys == {r.key for r in rt.route_plan(plan)}


def test_a_plan_saved_before_services_existed_names_the_pod_routes_only(plan: Plan) -> None:
    data = plan.to_dict()
    data["networks"] = {"management": "198.18.0.0/24", "pods": "198.19.0.0/16"}
    assert rt.keys_in_plan_dict(data) == {
        rt.RouteKey(X, _net("198.19.0.0/16")),
        *(rt.RouteKey(U, _net(f"198.19.{i}.0/24")) for i in range(3)),
    }


# What `ip -j route show table main` printed on a machine with a lab (iproute2 6.1).
MACHINE_JSON = json.dumps(
    [
        {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0", "flags": []},
        {"dst": "192.0.2.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link", "flags": []},
        {"type": "blackhole", "dst": "10.1.0.0/16", "flags": []},
        {
            "dst": "198.18.32.0/20",
            "protocol": "78",
            "flags": [],
            "nexthops": [
                {"gateway": "198.18.0.31", "dev": "nl-t", "weight": 1, "flags": []},
                {"gateway": "198.18.0.32", "dev": "nl-t", "weight": 1, "flags": []},
            ],
        },
        {"dst": "198.19.0.0/24", "gateway": "198.18.0.31", "dev": "nl-t", "protocol": "78", "flags": []},
        {"type": "unreachable", "dst": "198.19.0.0/16", "protocol": "78", "metric": 65535, "flags": []},
        {"dst": "203.0.113.7", "gateway": "192.0.2.9", "dev": "eth0", "flags": []},
    ]
)


def test_parse_machine_routes() -> None:
    routes = rt.parse_routes(MACHINE_JSON)
    assert [(r.kind, str(r.destination), r.protocol, r.devices) for r in routes] == [
        ("unicast", "192.0.2.0/24", "kernel", ("eth0",)),
        ("blackhole", "10.1.0.0/16", "boot", ()),
        ("unicast", "198.18.32.0/20", "78", ("nl-t", "nl-t")),
        ("unicast", "198.19.0.0/24", "78", ("nl-t",)),
        ("unreachable", "198.19.0.0/16", "78", ()),
        ("unicast", "203.0.113.7/32", "boot", ("eth0",)),
    ]
    assert [r.nestlab for r in routes] == [False, False, True, True, True, False]
    assert routes[1].key is None  # a type labs never make


def _route(kind: str, dst: str, protocol: str = "boot", *devices: str) -> rt.MachineRoute:
    return rt.MachineRoute(kind, _net(dst), protocol, devices)


def test_a_machine_without_lab_ranges_has_no_clash(plan: Plan) -> None:
    machine = [
        _route("unicast", "192.0.2.0/24", "kernel", "eth0"),
        _route("unicast", "198.16.0.0/12", "static", "eth0"),  # wider: the lab's routes win
        _route("unicast", "198.18.0.0/24", "kernel", "nl-t"),  # this lab's bridge
    ]
    assert rt.find_route_clashes(machine, plan, BRIDGE, ours=frozenset()) == []


def test_this_labs_own_routes_are_no_clash(plan: Plan) -> None:
    machine = rt.parse_routes(MACHINE_JSON)
    ours = frozenset({rt.RouteKey(X, _net("198.19.0.0/16"))})
    assert rt.find_route_clashes(machine, plan, BRIDGE, ours=ours) == []


def test_another_labs_routes_clash(plan: Plan) -> None:
    machine = rt.parse_routes(MACHINE_JSON.replace("nl-t", "nl-other"))
    problems = rt.find_route_clashes(machine, plan, BRIDGE, ours=frozenset())
    assert len(problems) == 3
    assert problems[0] == (
        "networks.services 198.18.32.0/20 meets another lab's route on this machine "
        "(unicast 198.18.32.0/20 dev nl-other): take that lab down or give this lab "
        "another networks.services range"
    )
    assert "networks.pods 198.19.0.0/16" in problems[1]
    assert "(unreachable 198.19.0.0/16)" in problems[2]  # not recorded by this lab: not ours


def test_a_route_inside_a_lab_range_clashes(plan: Plan) -> None:
    machine = [_route("unicast", "198.18.8.128/25", "static", "eth0"), _route("blackhole", "198.19.9.0/24")]
    problems = rt.find_route_clashes(machine, plan, BRIDGE, ours=frozenset())
    assert [p.split(" meets")[0] for p in problems] == [
        "networks.ingress 198.18.8.0/24",
        "networks.pods 198.19.0.0/16",
    ]
    assert problems[0].endswith("give this lab another networks.ingress range")


def test_another_labs_range_over_the_management_network_clashes(plan: Plan) -> None:
    machine = [_route("unicast", "198.18.0.0/16", "78", "nl-other")]  # a lab's services, say
    problems = rt.find_route_clashes(machine, plan, BRIDGE, ours=frozenset())
    assert {p.split(" meets")[0] for p in problems} == {
        f"networks.{key} {net}"
        for key, net in [
            ("services", "198.18.32.0/20"),
            ("ingress", "198.18.8.0/24"),
            ("management", "198.18.0.0/24"),
        ]
    }


def _as_machine(plan: Plan, bridge: str) -> list[rt.MachineRoute]:
    """The routes ``plan``'s lab holds when it is up on ``bridge``."""
    table = [
        rt.MachineRoute(str(r.key.kind), r.destination, str(rt.PROTO), (bridge,) * len(r.via))
        for r in rt.route_plan(plan)
    ]
    return [*table, _route("unicast", str(plan.lab.networks.management), "kernel", bridge)]


def test_a_lab_inside_another_labs_unused_fallback_range_fits_both_ways(plan: Plan) -> None:
    # The e2e lab's networks (tests/e2e/conftest.py) beside the default lab's.
    e2e = make_plan(
        parse_spec(
            spec_yaml(
                {
                    "networks": {
                        "management": "198.18.100.0/24",
                        "pods": "198.19.100.0/22",
                        "services": "198.18.132.0/22",
                        "ingress": "198.18.108.0/24",
                    }
                }
            )
        )
    )
    assert rt.find_route_clashes(_as_machine(e2e, "nl-e2e"), plan, BRIDGE, ours=frozenset()) == []
    assert rt.find_route_clashes(_as_machine(plan, "nl-default"), e2e, BRIDGE, ours=frozenset()) == []
    # Two labs with the same ranges do clash, on every range (the management network's address
    # on the other bridge is the bridge check's to report, as for any interface).
    problems = rt.find_route_clashes(_as_machine(plan, "nl-default"), plan, BRIDGE, ours=frozenset())
    assert {p.split(" ")[0] for p in problems} == {"networks.pods", "networks.services", "networks.ingress"}


class _FakeIp:
    """A routing table that ip(8) route commands change, and a bridge that may be there."""

    def __init__(self, routes: list[dict[str, Any]], bridge_alias: str | None = None) -> None:
        self.routes = routes
        self.bridge_alias = bridge_alias
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], *, timeout: float, check: bool = True, **_: object) -> Result:
        argv = list(argv)
        self.calls.append(argv)
        out, code = "", 0
        if argv[:4] == ["ip", "-j", "route", "show"]:
            out = json.dumps(self.routes)
        elif argv[1:3] == ["route", "replace"]:
            vias = [argv[i + 1] for i, word in enumerate(argv) if word == "via"]
            entry: dict[str, Any] = {"dst": argv[4], "protocol": argv[6], "via": vias}
            self.routes = [
                r for r in self.routes if r["dst"] != argv[4] or r.get("type", "unicast") != argv[3]
            ]
            self.routes.append({**entry, "type": argv[3]} if argv[3] != "unicast" else entry)
        elif argv[1:3] == ["route", "del"]:
            kind, dst = argv[3], argv[4]
            match = [r for r in self.routes if r["dst"] == dst and r.get("type", "unicast") == kind]
            assert match, f"ip route del of a route that is not there: {argv}"
            self.routes.remove(match[0])
        elif argv[1:3] == ["-j", "link"] and "master" not in argv:
            out = json.dumps([{"ifalias": self.bridge_alias}]) if self.bridge_alias else "[]"
            code = 0 if self.bridge_alias else 1
        elif argv[1:3] == ["link", "show"]:
            code = 0 if self.bridge_alias else 1
        return Result(tuple(argv), code, out, "")


def test_apply_then_remove_leaves_the_table_as_it_was(plan: Plan) -> None:
    foreign = [{"dst": "192.0.2.0/24", "dev": "eth0", "protocol": "kernel"}]
    fake = _FakeIp(list(foreign))
    routes = rt.route_plan(plan)
    rt.apply(fake, routes, BRIDGE)
    rt.apply(fake, routes, BRIDGE)  # idempotent: replace, never a duplicate
    assert len(fake.routes) == 1 + len(routes)
    removed = rt.remove(fake, frozenset(r.key for r in routes))
    assert fake.routes == foreign
    # Into the lab first, the unreachable fallbacks last.
    assert [k.kind for k in removed] == [U] * 5 + [X] * 3
    fake.calls.clear()
    assert rt.remove(fake, frozenset(r.key for r in routes)) == []  # idempotent
    assert [c for c in fake.calls if "del" in c] == []


def test_remove_touches_only_the_named_routes_of_labs() -> None:
    fake = _FakeIp(json.loads(MACHINE_JSON))
    keys = frozenset({rt.RouteKey(X, _net("198.19.0.0/16")), rt.RouteKey(U, _net("192.0.2.0/24"))})
    assert rt.remove(fake, keys) == [rt.RouteKey(X, _net("198.19.0.0/16"))]  # 192.0.2.0/24 is not a lab's
    assert rt.remove(fake, frozenset()) == []


def test_check_route_clashes_raises_with_every_problem(plan: Plan) -> None:
    fake = _FakeIp(json.loads(MACHINE_JSON.replace("nl-t", "nl-other")))
    with pytest.raises(LabClashError, match=r"the lab's routes cannot be added here: .*; .*; "):
        rt.check_route_clashes(fake, plan, BRIDGE, ours=frozenset())


def _lab_dir(tmp_path: Path, plan: Plan, routes: frozenset[rt.RouteKey]) -> LabLayout:
    layout = lc.layout_for(plan.lab.name, tmp_path / "lab")
    state = st.with_routes(st.LabState(name=plan.lab.name), routes)
    st.save(layout.state_file, state)
    layout.files.plan.write_text(json.dumps(plan.to_dict()), encoding="utf-8")
    return layout


def _table_with_lab(plan: Plan) -> _FakeIp:
    fake = _FakeIp([{"dst": "192.0.2.0/24", "dev": "eth0", "protocol": "kernel"}])
    rt.apply(fake, rt.route_plan(plan), BRIDGE)
    return fake


def test_down_removes_the_recorded_routes(plan: Plan, tmp_path: Path) -> None:
    layout = _lab_dir(tmp_path, plan, frozenset({rt.RouteKey(X, _net("198.18.8.0/24"))}))
    fake = _table_with_lab(plan)
    done = lc.down(plan.lab.name, lab_root=layout.root, run=fake)
    assert done.routes_removed == ("unreachable 198.18.8.0/24",)  # exactly what was recorded
    assert len(fake.routes) == 1 + len(rt.route_plan(plan)) - 1
    assert not layout.root.exists()


def test_down_with_the_state_lost_finds_the_routes_in_the_saved_plan(plan: Plan, tmp_path: Path) -> None:
    layout = _lab_dir(tmp_path, plan, frozenset())
    layout.state_file.unlink()
    fake = _table_with_lab(plan)
    fake.bridge_alias = f"nestlab:{layout.root}"  # the bridge says the lab is this directory's
    done = lc.down(plan.lab.name, lab_root=layout.root, run=fake)
    assert len(done.routes_removed) == len(rt.route_plan(plan))
    assert fake.routes == [{"dst": "192.0.2.0/24", "dev": "eth0", "protocol": "kernel"}]


def test_down_of_a_lab_that_does_not_own_the_bridge_leaves_routes_alone(plan: Plan, tmp_path: Path) -> None:
    layout = _lab_dir(tmp_path, plan, frozenset())
    layout.state_file.unlink()
    fake = _table_with_lab(plan)
    fake.bridge_alias = "nestlab:/somewhere/else"
    before = list(fake.routes)
    assert lc.down(plan.lab.name, lab_root=layout.root, run=fake).routes_removed == ()
    assert fake.routes == before


def test_stopping_hosts_moves_services_to_the_others_before_they_go(plan: Plan, tmp_path: Path) -> None:
    layout = LabLayout(plan.lab.name, tmp_path / "lab")
    lab = st.with_bridge(st.LabState(name=plan.lab.name), bridge_name(plan.lab.name), "198.18.0.0/24")
    for node in plan.nodes:
        # PID 1 cannot be a node's nspawn: halt stops it without signals.
        lab = st.started(st.mounted(lab, node.name, machine_name(lab.name, node.name)), node.name, 1)
    st.save(layout.state_file, lab)
    fake = _table_with_lab(plan)
    fake.bridge_alias = "nestlab:somewhere"

    def services() -> list[list[str]]:
        return [r["via"] for r in fake.routes if r["dst"] == "198.18.32.0/20" and "type" not in r]

    lc.stop_node(plan, "esx-02", lab_root=layout.root, run=fake)
    assert services() == [["198.18.0.31", "198.18.0.33"]]
    lc.stop_node(plan, "cp-1", lab_root=layout.root, run=fake)  # not a host: routes unchanged
    assert services() == [["198.18.0.31", "198.18.0.33"]]
    lc.stop_node(plan, "esx-01", lab_root=layout.root, run=fake)
    lc.stop_node(plan, "esx-03", lab_root=layout.root, run=fake)
    assert services() == []
    assert {"dst": "198.18.32.0/20", "protocol": "78", "type": "unreachable", "via": []} in fake.routes
    assert rt.RouteKey(U, _net("198.18.32.0/20")) not in st.load(layout.state_file, plan.lab.name).routes
