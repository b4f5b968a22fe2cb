"""Clash detection: a lab never takes a bridge name or an address range that is already in use."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from nestlab.runtime.proc import Result
from nestlab.substrate.local import bridge as br
from nestlab.substrate.local.layout import BridgeName

NET = IPv4Network("198.18.7.0/24")
BRIDGE = BridgeName("nl-a")


def _ip_json(*entries: tuple[str, list[str]]) -> str:
    return json.dumps(
        [
            {
                "ifname": name,
                "addr_info": [
                    {"family": "inet", "local": a.split("/")[0], "prefixlen": int(a.split("/")[1])}
                    for a in addrs
                ]
                + [{"family": "inet6", "local": "fe80::1", "prefixlen": 64}],
            }
            for name, addrs in entries
        ]
    )


def test_parse_keeps_ipv4_networks_only() -> None:
    found = br.parse_interfaces(_ip_json(("lo", ["127.0.0.1/8"]), ("eth0", ["10.0.0.5/16"])))
    assert [(i.name, [str(n) for n in i.networks]) for i in found] == [
        ("lo", ["127.0.0.0/8"]),
        ("eth0", ["10.0.0.0/16"]),
    ]


def test_no_clash_on_a_clean_machine() -> None:
    interfaces = br.parse_interfaces(_ip_json(("lo", ["127.0.0.1/8"]), ("eth0", ["10.0.0.5/16"])))
    assert br.find_clashes(interfaces, BRIDGE, NET, owned=False) == []


def test_someone_elses_bridge_name_and_range_are_refused() -> None:
    interfaces = br.parse_interfaces(_ip_json(("nl-a", ["198.18.7.1/24"])))
    problems = br.find_clashes(interfaces, BRIDGE, NET, owned=False)
    assert len(problems) == 2
    assert "nl-a already exists, made by another lab with this name" in problems[0]
    assert "overlaps 198.18.7.0/24 on nl-a" in problems[1]


def test_our_own_bridge_is_not_a_clash() -> None:
    interfaces = br.parse_interfaces(_ip_json(("nl-a", ["198.18.7.1/24"])))
    assert br.find_clashes(interfaces, BRIDGE, NET, owned=True) == []


def test_overlapping_range_on_another_interface() -> None:
    interfaces = br.parse_interfaces(_ip_json(("nl-b", ["198.18.0.1/16"])))
    (problem,) = br.find_clashes(interfaces, BRIDGE, NET, owned=True)
    assert "nl-b" in problem
    assert "networks.management" in problem


class _FakeIp:
    """Records ip(8) calls; the bridge exists once added."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.present = False

    def __call__(self, argv: list[str], *, timeout: float, check: bool = True, **_: object) -> Result:
        self.calls.append(list(argv))
        if argv[1:3] == ["link", "add"]:
            self.present = True
        code = 0 if self.present or argv[1:3] != ["link", "show"] else 1
        return Result(tuple(argv), code, "", "")


def test_ensure_bridge_turns_forwarding_off(tmp_path: Path) -> None:
    (tmp_path / "nl-a").mkdir()
    (tmp_path / "nl-a" / "forwarding").write_text("1\n")
    fake = _FakeIp()
    tag = br.owner_tag(Path("/labs/a"))
    br.ensure_bridge(fake, BRIDGE, IPv4Address("198.18.7.1"), NET, tag=tag, proc_sys=tmp_path)
    assert ["ip", "link", "add", "name", "nl-a", "type", "bridge"] in fake.calls
    assert ["ip", "link", "set", "dev", "nl-a", "alias", "nestlab:/labs/a"] in fake.calls
    assert ["ip", "addr", "replace", "198.18.7.1/24", "dev", "nl-a"] in fake.calls
    assert (tmp_path / "nl-a" / "forwarding").read_text() == "0\n"
    fake.calls.clear()
    br.ensure_bridge(fake, BRIDGE, IPv4Address("198.18.7.1"), NET, tag=tag, proc_sys=tmp_path)
    assert not [c for c in fake.calls if c[1:3] == ["link", "add"]]  # idempotent


def test_a_clash_names_the_lab_directory_that_owns_the_bridge() -> None:
    interfaces = br.parse_interfaces(_ip_json(("nl-a", ["198.18.9.1/24"])))
    (problem,) = br.find_clashes(
        interfaces, BRIDGE, NET, owned=False, bridge_owner=br.owner_tag(Path("/home/u/labs/a"))
    )
    assert "made by the lab in /home/u/labs/a (`nestlab down` it there)" in problem
