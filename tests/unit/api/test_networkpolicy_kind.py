"""The NetworkPolicy unit: upstream defaults, each validation cause, the table row, protobuf, roles."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from nestlab.api import kinds, protobuf
from nestlab.api import resources as r
from nestlab.api.registry import Registry
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd
from tests.unit.api.rbac_support import role_may

UNIT = kinds.of(r.NETWORKPOLICIES)


def policy(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": spec,
    }


def causes(obj: dict[str, Any]) -> list[str]:
    UNIT.default(obj)
    return [f"{c.field}: {c.message}" for c in UNIT.validate(obj)]


def test_resource_names() -> None:
    assert r.NETWORKPOLICIES.group_version == "networking.k8s.io/v1"
    assert r.NETWORKPOLICIES.short_names == ("netpol",)
    assert r.find("networking.k8s.io", "v1", "networkpolicies") is r.NETWORKPOLICIES
    assert r.groups()["networking.k8s.io"] == ["v1"]


def test_defaults_as_upstream() -> None:
    deny = policy()
    assert causes(deny) == []
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    both = policy(egress=[{"ports": [{"port": 53}]}], ingress=[{}])
    assert causes(both) == []
    assert both["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert both["spec"]["egress"][0]["ports"] == [{"port": 53, "protocol": "TCP"}]
    egress_only = policy(policyTypes=["Egress"])
    assert causes(egress_only) == []
    assert egress_only["spec"]["policyTypes"] == ["Egress"]
    no_spec: dict[str, Any] = {"metadata": {"name": "x", "namespace": "demo"}}
    assert causes(no_spec) == []
    assert no_spec["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_valid_peers_and_ports() -> None:
    obj = policy(
        podSelector={"matchLabels": {"app": "web"}},
        ingress=[
            {
                "from": [
                    {"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {}},
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                ],
                "ports": [
                    {"port": 80},
                    {"port": "http", "protocol": "TCP"},
                    {"port": 8000, "endPort": 9000},
                    {"protocol": "UDP"},
                ],
            }
        ],
    )
    assert causes(obj) == []


PORT = "spec.ingress[0].ports[0]"
PEER = "spec.egress[0].to[0]"
BAD = [
    (
        {"ingress": [{"ports": [{"port": 0}]}]},
        f"{PORT}.port: Invalid value: 0: must be between 1 and 65535, inclusive",
    ),
    (
        {"ingress": [{"ports": [{"port": 70000}]}]},
        f"{PORT}.port: Invalid value: 70000: must be between 1 and 65535, inclusive",
    ),
    (
        {"ingress": [{"ports": [{"port": 90, "endPort": 80}]}]},
        f"{PORT}.endPort: Invalid value: 80: must be greater than or equal to `port`",
    ),
    (
        {"ingress": [{"ports": [{"port": "http", "endPort": 80}]}]},
        f"{PORT}.endPort: Invalid value: 80: may not be specified when `port` is non-numeric",
    ),
    (
        {"ingress": [{"ports": [{"endPort": 80}]}]},
        f"{PORT}.endPort: Invalid value: 80: may not be specified when `port` is not specified",
    ),
    (
        {"ingress": [{"ports": [{"port": "Web_Port"}]}]},
        f'{PORT}.port: Invalid value: "Web_Port": '
        "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
    ),
    (
        {"ingress": [{"ports": [{"port": "a-very-long-port-name"}]}]},
        f'{PORT}.port: Invalid value: "a-very-long-port-name": must be no more than 15 characters',
    ),
    (
        {"ingress": [{"ports": [{"port": "8080x--"}]}]},
        f'{PORT}.port: Invalid value: "8080x--": must not contain consecutive hyphens',
    ),
    (
        {"ingress": [{"ports": [{"port": 80, "protocol": "ICMP"}]}]},
        f'{PORT}.protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"',
    ),
    ({"egress": [{"to": [{}]}]}, f"{PEER}: Required value: must specify a peer"),
    (
        {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]},
        f"{PEER}: Forbidden: may not specify both ipBlock and another peer",
    ),
    ({"egress": [{"to": [{"ipBlock": {}}]}]}, f"{PEER}.ipBlock.cidr: Required value"),
    (
        {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0"}}]}]},
        f'{PEER}.ipBlock.cidr: Invalid value: "10.0.0.0": '
        "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
    ),
    (
        {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]}]},
        f'{PEER}.ipBlock.except[0]: Invalid value: "11.0.0.0/16": must be a strict subset of `cidr`',
    ),
    (
        {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}]}]},
        f'{PEER}.ipBlock.except[0]: Invalid value: "10.0.0.0/8": must be a strict subset of `cidr`',
    ),
    (
        {"egress": [{"to": [{"podSelector": {"matchLabels": {"app": "bad value"}}}]}]},
        f'{PEER}.podSelector.matchLabels: Invalid value: "bad value": a valid label must be an empty string',
    ),
    (
        {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]}},
        "spec.podSelector.matchExpressions[0].values: Required value: "
        "must be specified when `operator` is 'In' or 'NotIn'",
    ),
    (
        {"policyTypes": ["Ingress", "Sideways"]},
        'spec.policyTypes[1]: Unsupported value: "Sideways": supported values: "Ingress", "Egress"',
    ),
    (
        {"policyTypes": ["Ingress", "Egress", "Ingress"]},
        'spec.policyTypes: Invalid value: []networking.PolicyType{"Ingress", "Egress", "Ingress"}: '
        "may not specify more than two policyTypes",
    ),
    ({"ingress": {"from": []}}, "spec.ingress: Invalid value: must be a list"),
]


@pytest.mark.parametrize(("spec", "expected"), BAD)
def test_each_cause(spec: dict[str, Any], expected: str) -> None:
    found = causes(policy(**copy.deepcopy(spec)))
    assert any(cause.startswith(expected) for cause in found), found


def test_row_shows_the_pod_selector() -> None:
    obj = policy(podSelector={"matchLabels": {"app": "web"}})
    obj["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    UNIT.default(obj)
    assert [c.name for c in UNIT.columns] == ["Name", "Pod-Selector", "Age"]
    assert UNIT.row(obj)[:2] == ["web", "app=web"]
    assert UNIT.row(policy())[1] == "<none>"


def test_roles() -> None:
    group = "networking.k8s.io"
    assert role_may("view", "get", "networkpolicies", group)
    assert not role_may("view", "create", "networkpolicies", group)
    for role in ("edit", "admin"):
        assert all(role_may(role, v, "networkpolicies", group) for v in ("create", "update", "delete"))
    assert UNIT.roles["node"]["networkpolicies"] == frozenset({"get", "list", "watch"})


# -- protobuf: a tiny encoder (kubectl has no typed `create networkpolicy`; Go clients may send it) --
def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number: int, value: int | str | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def test_protobuf_body_decodes_to_the_json_shape() -> None:
    meta = _field(1, "allow-dns") + _field(3, "demo")
    labels = _field(1, _field(1, "app") + _field(2, "web"))
    port = _field(1, "UDP") + _field(2, _field(1, 0) + _field(2, 53)) + _field(3, 54)
    peer = _field(3, _field(1, "10.0.0.0/8") + _field(2, "10.1.0.0/16"))
    spec = _field(1, labels) + _field(3, _field(1, port) + _field(2, peer)) + _field(4, "Egress")
    type_meta = _field(1, "networking.k8s.io/v1") + _field(2, "NetworkPolicy")
    body = protobuf.MAGIC + _field(1, type_meta) + _field(2, _field(1, meta) + _field(2, spec))
    assert protobuf.decode(body) == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-dns", "namespace": "demo"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "egress": [
                {
                    "ports": [{"protocol": "UDP", "port": 53, "endPort": 54}],
                    "to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                }
            ],
            "policyTypes": ["Egress"],
        },
    }


def test_created_through_the_registry() -> None:
    async def scenario() -> None:
        registry = Registry(Store(FakeEtcd()))  # type: ignore[arg-type]
        await registry.create(r.NAMESPACES, "", {"metadata": {"name": "demo"}})
        made = await registry.create(r.NETWORKPOLICIES, "demo", policy(ingress=[{"ports": [{"port": 80}]}]))
        assert made["metadata"]["generation"] == 1
        assert made["spec"]["policyTypes"] == ["Ingress"]
        bad = policy(ingress=[{"ports": [{"port": 0}]}])
        bad["metadata"]["name"] = "bad"
        with pytest.raises(ApiError) as error:
            await registry.create(r.NETWORKPOLICIES, "demo", bad)
        assert error.value.code == 422
        assert '"bad" is invalid: spec.ingress[0].ports[0].port: Invalid value: 0' in error.value.message
        assert error.value.details is not None
        assert [c.field for c in error.value.details.causes] == ["spec.ingress[0].ports[0].port"]

    asyncio.run(scenario())
