"""Every bad input a user can type is refused with the field path and a message that says what to do."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.spec import SpecError, parse_spec
from tests.unit.spec.helpers import spec_yaml

# (id, spec section or full-document overrides, expected path, expected message fragment)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], str, str]] = [
    ("unknown top key", {}, {"spec": {}, "extra": 1}, "extra", "unknown field"),
    ("wrong apiVersion", {}, {"apiVersion": "v1"}, "apiVersion", "must be 'nestlab.dev/v1alpha1'"),
    ("wrong kind", {}, {"kind": "Pod"}, "kind", "must be 'Lab'"),
    ("spec not a mapping", {}, {"spec": [1, 2]}, "spec", "must be a mapping, got list"),
    ("unknown spec key", {"hostz": {}}, {}, "spec.hostz", "did you mean 'hosts'"),
    ("unknown host key", {"hosts": {"cont": 3}}, {}, "spec.hosts.cont", "did you mean 'count'"),
    (
        "count is a string",
        {"hosts": {"count": "three"}},
        {},
        "spec.hosts.count",
        "must be an integer, got string",
    ),
    (
        "count is a bool",
        {"hosts": {"count": True}},
        {},
        "spec.hosts.count",
        "must be an integer, got boolean",
    ),
    ("zero hosts", {"hosts": {"count": 0}}, {}, "spec.hosts.count", "between 1 and 32"),
    (
        "even control plane",
        {"controlPlane": {"count": 2}},
        {},
        "spec.controlPlane.count",
        "use an odd number (1 or 3)",
    ),
    (
        "too many control plane",
        {"controlPlane": {"count": 11}},
        {},
        "spec.controlPlane.count",
        "between 1 and 9",
    ),
    (
        "antiAffinity not bool",
        {"controlPlane": {"antiAffinity": "yes"}},
        {},
        "spec.controlPlane.antiAffinity",
        "true or false",
    ),
    (
        "three load balancers",
        {"loadBalancers": {"count": 3}},
        {},
        "spec.loadBalancers.count",
        "between 1 and 2",
    ),
    ("memory not a size", {"hosts": {"memory": "lots"}}, {}, "spec.hosts.memory", "is not a size: 'lots'"),
    (
        "host memory too small",
        {"hosts": {"memory": "512MiB"}},
        {},
        "spec.hosts.memory",
        "use at least 1024MiB",
    ),
    (
        "cp disk too small",
        {"controlPlane": {"disk": "1GiB"}},
        {},
        "spec.controlPlane.disk",
        "below what a control-plane node needs",
    ),
    ("depot memory too small", {"depot": {"memory": 128}}, {}, "spec.depot.memory", "use at least 256MiB"),
    (
        "bad management cidr",
        {"networks": {"management": "198.18.0.1/24"}},
        {},
        "spec.networks.management",
        "has host bits set",
    ),
    (
        "management too small",
        {"networks": {"management": "198.18.0.0/28"}},
        {},
        "spec.networks.management",
        "use a /26 or larger",
    ),
    (
        "public network",
        {"networks": {"management": "8.8.8.0/24"}},
        {},
        "spec.networks.management",
        "not a private range",
    ),
    (
        "overlapping networks",
        {"networks": {"pods": "198.18.0.0/16"}},
        {},
        "spec.networks.pods",
        "overlaps the management network",
    ),
    (
        "pod prefix not longer",
        {"networks": {"pods": "198.19.0.0/24", "podPrefixLength": 24}},
        {},
        "spec.networks.podPrefixLength",
        "longer than /24",
    ),
    (
        "pod network too small",
        {"networks": {"pods": "198.19.0.0/23", "podPrefixLength": 24}},
        {},
        "spec.networks.pods",
        "holds 2 subnets of /24 but there are 3 hosts",
    ),
    (
        "services not a network",
        {"networks": {"services": "198.18.32.1/20"}},
        {},
        "spec.networks.services",
        "has host bits set",
    ),
    (
        "services too small",
        {"networks": {"services": "198.18.32.0/29"}},
        {},
        "spec.networks.services",
        "use a /28 or larger",
    ),
    (
        "services public",
        {"networks": {"services": "8.8.0.0/20"}},
        {},
        "spec.networks.services",
        "not a private range",
    ),
    (
        "services over management",
        {"networks": {"services": "198.18.0.0/20"}},
        {},
        "spec.networks.services",
        "198.18.0.0/20 overlaps the management network 198.18.0.0/24",
    ),
    (
        "services inside pods",
        {"networks": {"services": "198.19.200.0/24"}},
        {},
        "spec.networks.services",
        "overlaps the pods network 198.19.0.0/16",
    ),
    (
        "ingress too small",
        {"networks": {"ingress": "198.18.8.0/31"}},
        {},
        "spec.networks.ingress",
        "use a /30 or larger",
    ),
    (
        "ingress inside services",
        {"networks": {"ingress": "198.18.40.0/24"}},
        {},
        "spec.networks.ingress",
        "overlaps the services network 198.18.32.0/20",
    ),
    (
        "ingress over management",
        {"networks": {"ingress": "198.18.0.128/25"}},
        {},
        "spec.networks.ingress",
        "overlaps the management network",
    ),
    (
        "ingress not a string",
        {"networks": {"ingress": 42}},
        {},
        "spec.networks.ingress",
        "is not an IPv4 network: 42",
    ),
    (
        "vip outside",
        {"loadBalancers": {"vip": "198.18.1.5"}},
        {},
        "spec.loadBalancers.vip",
        "outside the management network",
    ),
    (
        "vip on a node",
        {"loadBalancers": {"vip": "198.18.0.21"}},
        {},
        "spec.loadBalancers.vip",
        "collides with node cp-1",
    ),
    (
        "vip on gateway",
        {"loadBalancers": {"vip": "198.18.0.1"}},
        {},
        "spec.loadBalancers.vip",
        "collides with the lab bridge",
    ),
    (
        "vip not an address",
        {"loadBalancers": {"vip": "vip.example"}},
        {},
        "spec.loadBalancers.vip",
        "not an IPv4 address",
    ),
    (
        "too few hosts for anti-affinity",
        {"hosts": {"count": 2}},
        {},
        "spec.controlPlane.count",
        "need 3 hosts with antiAffinity on, but the spec has 2; set spec.hosts.count: 3, or set spec.controlPlane.antiAffinity: false",
    ),
    (
        "duplicate host names",
        {"hosts": {"nodes": [{"name": "a"}, {"name": "a"}, {"name": "b"}]}},
        {},
        "spec.hosts.nodes[1].name",
        "'a' is used by more than one host",
    ),
    (
        "host named like a lab node",
        {"hosts": {"nodes": [{"name": "cp-1"}, {"name": "b"}, {"name": "c"}]}},
        {},
        "spec.hosts.nodes[0].name",
        "is the name of a lab node",
    ),
    (
        "invalid host name",
        {"hosts": {"nodes": [{"name": "ESX_1"}, {"name": "b"}, {"name": "c"}]}},
        {},
        "spec.hosts.nodes[0].name",
        "not a valid node name",
    ),
    (
        "count mismatches nodes",
        {"hosts": {"count": 4, "nodes": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}},
        {},
        "spec.hosts.count",
        "is 4 but 3 nodes are listed",
    ),
    (
        "unknown substrate",
        {"substrate": {"type": "vmware"}},
        {},
        "spec.substrate.type",
        "use one of: local, libvirt",
    ),
    (
        "uris on local",
        {"substrate": {"type": "local", "uris": ["qemu:///system"]}},
        {},
        "spec.substrate.uris",
        "applies only to the libvirt substrate",
    ),
    (
        "bad uri",
        {"substrate": {"type": "libvirt", "uris": ["system"]}},
        {},
        "spec.substrate.uris[0]",
        "not a libvirt URI",
    ),
    (
        "hypervisors for anti-affinity",
        {"substrate": {"type": "libvirt", "uris": ["qemu+ssh://a/system", "qemu+ssh://b/system"]}},
        {},
        "spec.controlPlane.count",
        "need 3 hypervisors with antiAffinity on, but hosts use 2",
    ),
    (
        "unknown kernel",
        {"podKernel": {"source": "vmlinuz"}},
        {},
        "spec.podKernel.source",
        "use one of: just-enough, debian-cloud",
    ),
    ("bad lab name", {}, {"metadata": {"name": "My Lab"}}, "metadata.name", "not a valid lab name"),
    (
        "lab name too long",
        {},
        {"metadata": {"name": "a-very-long-lab-name"}},
        "metadata.name",
        "at most 12 characters",
    ),
]


@pytest.mark.parametrize(
    ("spec", "top", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_spec_names_path_and_fix(
    spec: dict[str, Any], top: dict[str, Any], path: str, fragment: str
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_yaml(spec, **top))
    matching = [issue for issue in caught.value.issues if issue.path == path]
    assert matching, f"no issue at {path}: {[str(i) for i in caught.value.issues]}"
    assert any(fragment in str(issue) for issue in matching), [str(i) for i in matching]


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_yaml({"hosts": {"count": "x", "memory": "y"}, "depot": {"cpu": 0}}))
    assert {i.path for i in caught.value.issues} == {
        "spec.hosts.count",
        "spec.hosts.memory",
        "spec.depot.cpu",
    }


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec("apiVersion: x\nspec: [unclosed\n", source="lab.yaml")
    assert str(caught.value).startswith("lab.yaml: line ")
    assert "is not valid YAML" in str(caught.value)


def test_missing_file_is_a_spec_error(tmp_path: Any) -> None:
    from nestlab.spec import load_spec

    with pytest.raises(SpecError, match="cannot read the spec: No such file"):
        load_spec(tmp_path / "absent.yaml")
