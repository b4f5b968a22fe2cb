"""Placement, addresses, failure domains and warnings of good specs, table-driven."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from nestlab.paths import repo_root
from nestlab.spec import Role, load_spec, make_plan, parse_spec
from tests.unit.spec.helpers import spec_yaml


def test_default_file_is_the_teaching_lab_and_equals_the_defaults() -> None:
    from_file = make_plan(load_spec(repo_root() / "stacks" / "default.lab.yaml"))
    from_defaults = make_plan(parse_spec(spec_yaml(metadata={"name": "default"})))
    assert from_file.to_dict() == from_defaults.to_dict()
    counts = {role: len(from_file.by_role(role)) for role in Role}
    assert counts == {Role.HOST: 3, Role.CONTROL_PLANE: 3, Role.LOAD_BALANCER: 2, Role.DEPOT: 1}


def test_teaching_lab_layout() -> None:
    plan = make_plan(parse_spec(spec_yaml()))
    placed = {node.name: node.placed_on for node in plan.nodes}
    assert placed == {
        "esx-01": "esx-01", "esx-02": "esx-02", "esx-03": "esx-03",
        "cp-1": "esx-01", "cp-2": "esx-02", "cp-3": "esx-03",
        "lb-1": "esx-01", "lb-2": "esx-02", "depot": "esx-03",
    }  # fmt: skip
    addresses = {node.name: str(node.address) for node in plan.nodes}
    assert addresses["cp-1"] == "198.18.0.21"
    assert addresses["esx-01"] == "198.18.0.31"
    assert addresses["lb-2"] == "198.18.0.12"
    assert addresses["depot"] == "198.18.0.10"
    assert plan.vip == IPv4Address("198.18.0.5")
    assert plan.gateway == IPv4Address("198.18.0.1")
    assert plan.node("esx-02").pod_subnet == IPv4Network("198.19.1.0/24")
    assert plan.failure_domains()["esx-02"] == ["esx-02", "lb-2", "cp-2"]
    assert plan.warnings == ()


@pytest.mark.parametrize(
    ("section", "expected_cp_hosts"),
    [
        ({"hosts": {"count": 5}}, ["esx-01", "esx-02", "esx-03"]),
        ({"hosts": {"count": 1}, "controlPlane": {"count": 1}, "loadBalancers": {"count": 1}}, ["esx-01"]),
        (
            {"hosts": {"count": 5}, "controlPlane": {"count": 5}},
            ["esx-01", "esx-02", "esx-03", "esx-04", "esx-05"],
        ),
        ({"hosts": {"count": 2}, "controlPlane": {"antiAffinity": False}}, ["esx-01", "esx-02", "esx-01"]),
        (
            {
                "substrate": {
                    "type": "libvirt",
                    "uris": ["qemu+ssh://a/system", "qemu+ssh://b/system", "qemu+ssh://c/system"],
                },
                "hosts": {
                    "nodes": [
                        {"name": "a1", "hypervisor": 0},
                        {"name": "a2", "hypervisor": 0},
                        {"name": "b1", "hypervisor": 1},
                        {"name": "c1", "hypervisor": 2},
                    ]
                },
            },
            ["a1", "b1", "c1"],
        ),
    ],
    ids=["more hosts than cp", "single node lab", "five cp", "anti-affinity off", "three hypervisors"],
)
def test_control_plane_placement(section: dict[str, Any], expected_cp_hosts: list[str]) -> None:
    plan = make_plan(parse_spec(spec_yaml(section)))
    assert [node.placed_on for node in plan.by_role(Role.CONTROL_PLANE)] == expected_cp_hosts


def test_anti_affinity_off_warns_about_shared_failure_domain() -> None:
    plan = make_plan(parse_spec(spec_yaml({"hosts": {"count": 2}, "controlPlane": {"antiAffinity": False}})))
    assert any(
        "cp-1, cp-3 share the failure domain of esx-01" in w and "majority" in w for w in plan.warnings
    )
    assert plan.failure_domains()["esx-01"] == ["esx-01", "lb-1", "cp-1", "cp-3"]


def test_single_load_balancer_warns() -> None:
    plan = make_plan(parse_spec(spec_yaml({"loadBalancers": {"count": 1}})))
    assert any("VIP has no standby" in w for w in plan.warnings)


def test_libvirt_hosts_round_robin_over_hypervisors() -> None:
    uris = ["qemu+ssh://a/system", "qemu+ssh://b/system", "qemu+ssh://c/system"]
    plan = make_plan(
        parse_spec(spec_yaml({"substrate": {"type": "libvirt", "uris": uris}, "hosts": {"count": 6}}))
    )
    assert [n.hypervisor for n in plan.by_role(Role.HOST)] == [0, 1, 2, 0, 1, 2]
    assert sorted(n.hypervisor for n in plan.by_role(Role.CONTROL_PLANE)) == [0, 1, 2]
    assert plan.to_dict()["substrate"]["uris"] == uris


def test_libvirt_defaults_to_local_system_uri() -> None:
    lab = parse_spec(spec_yaml({"substrate": {"type": "libvirt"}}))
    assert lab.substrate.uris == ("qemu:///system",)


def test_sizes_accept_units() -> None:
    lab = parse_spec(spec_yaml({"hosts": {"memory": "2G", "disk": 8192}, "depot": {"disk": "1TiB"}}))
    assert lab.hosts[0].size.memory_mib == 2048
    assert lab.hosts[0].size.disk_mib == 8192
    assert lab.depot.size.disk_mib == 1024 * 1024


def test_name_override_replaces_metadata_and_is_validated() -> None:
    from nestlab.spec import SpecError

    assert parse_spec(spec_yaml(), name="second").name == "second"
    with pytest.raises(SpecError, match=r"metadata\.name: .Bad Name. is not a valid lab name"):
        parse_spec(spec_yaml(), name="Bad Name")
