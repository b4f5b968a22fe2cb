"""Properties every accepted spec has, over generated specs (hypothesis)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from nestlab.spec import Role, SpecError, make_plan, parse_spec
from tests.unit.spec.helpers import spec_yaml


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """Specs across the interesting ranges, valid or not."""
    hosts = draw(st.integers(1, 12))
    uris = [f"qemu+ssh://h{i}/system" for i in range(draw(st.integers(0, 4)))]
    section: dict[str, Any] = {
        "hosts": {"count": hosts},
        "controlPlane": {"count": draw(st.sampled_from([1, 3, 5, 7])), "antiAffinity": draw(st.booleans())},
        "loadBalancers": {"count": draw(st.integers(1, 2))},
        "networks": {
            "management": f"198.18.{draw(st.integers(0, 3)) * 64}.0/{draw(st.integers(24, 26))}",
            "pods": f"198.19.0.0/{draw(st.integers(16, 22))}",
            "podPrefixLength": draw(st.integers(22, 28)),
        },
    }
    if uris:
        section["substrate"] = {"type": "libvirt", "uris": uris}
    if draw(st.booleans()):
        section["loadBalancers"]["vip"] = f"198.18.0.{draw(st.integers(0, 255))}"
    return section


@settings(max_examples=300, deadline=None)
@given(specs())
def test_accepted_specs_yield_a_sound_plan(section: dict[str, Any]) -> None:
    try:
        lab = parse_spec(spec_yaml(section))
    except SpecError as refused:
        issues = refused.issues
        lab = None
    if lab is None:
        assert issues, "a refusal always names at least one problem"
        return
    plan = make_plan(lab)
    addresses = [node.address for node in plan.nodes] + [plan.vip, plan.gateway]
    assert len(set(addresses)) == len(addresses), "every node, the VIP and the gateway differ"
    management = lab.networks.management
    for address in addresses:
        assert address in management
        assert address not in (management.network_address, management.broadcast_address)

    control_plane = plan.by_role(Role.CONTROL_PLANE)
    if lab.control_plane.anti_affinity:
        assert len({node.placed_on for node in control_plane}) == len(control_plane)
        if len(lab.substrate.uris) > 1:
            assert len({node.hypervisor for node in control_plane}) == len(control_plane)

    subnets = [node.pod_subnet for node in plan.by_role(Role.HOST)]
    assert all(subnet is not None for subnet in subnets)
    for i, subnet in enumerate(subnets):
        assert subnet is not None
        assert subnet.subnet_of(lab.networks.pods)
        assert not subnet.overlaps(management)
        for other in subnets[i + 1 :]:
            assert other is not None
            assert not subnet.overlaps(other)

    domains = plan.failure_domains()
    members = Counter(name for names in domains.values() for name in names)
    assert set(members) == {node.name for node in plan.nodes}
    assert set(members.values()) == {1}, "every node is in exactly one failure domain"
