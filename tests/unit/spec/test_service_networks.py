"""The service and ingress ranges: defaults, the well-known Service addresses, collisions named once."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from nestlab.spec import SpecError, make_plan, parse_spec
from nestlab.spec.addresses import CLUSTER_DOMAIN, cluster_dns_ip, kubernetes_service_ip
from tests.unit.spec.helpers import spec_yaml


def test_defaults_and_well_known_addresses() -> None:
    lab = parse_spec(spec_yaml())
    assert lab.networks.services == IPv4Network("198.18.32.0/20")
    assert lab.networks.ingress == IPv4Network("198.18.8.0/24")
    assert kubernetes_service_ip(lab) == IPv4Address("198.18.32.1")
    assert cluster_dns_ip(lab) == IPv4Address("198.18.32.10")
    assert CLUSTER_DOMAIN == "cluster.local"
    assert make_plan(lab).to_dict()["networks"] == {
        "management": "198.18.0.0/24",
        "pods": "198.19.0.0/16",
        "services": "198.18.32.0/20",
        "ingress": "198.18.8.0/24",
    }


def test_the_smallest_ranges_still_hold_the_well_known_addresses() -> None:
    lab = parse_spec(spec_yaml({"networks": {"services": "198.18.64.0/28", "ingress": "198.18.9.0/30"}}))
    assert cluster_dns_ip(lab) in lab.networks.services
    assert cluster_dns_ip(lab) != lab.networks.services.broadcast_address


def _issues(networks: dict[str, str]) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_yaml({"networks": networks}))
    return [str(issue) for issue in caught.value.issues]


def test_a_collision_is_reported_once_at_the_later_field() -> None:
    (issue,) = _issues({"services": "198.18.8.0/22", "ingress": "198.18.8.0/24"})
    assert issue.startswith("spec.networks.ingress: 198.18.8.0/24 overlaps the services network")


def test_the_hint_offers_the_default_only_when_it_would_fit() -> None:
    (fits,) = _issues({"ingress": "198.19.7.0/24"})
    assert fits.endswith(
        "pick a range disjoint from spec.networks.management, spec.networks.pods, "
        "spec.networks.services (the default 198.18.8.0/24 is)"
    )
    # The management network covers the default service range: offering it would be wrong.
    issues = _issues({"management": "198.18.0.0/18", "services": "198.18.0.0/20"})
    services = [i for i in issues if i.startswith("spec.networks.services")]
    assert services
    assert all("the default" not in i for i in services)
