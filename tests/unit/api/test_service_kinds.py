"""Service, Endpoints and EndpointSlice units: upstream defaults, each cause, kubectl columns, protobuf."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nestlab.api import protobuf
from nestlab.api.kinds import endpoints, endpointslice, service
from nestlab.api.status import Cause

Obj = dict[str, Any]


def svc(**spec: Any) -> Obj:
    body: Obj = {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    body["spec"].update(spec)
    return body


def causes(obj: Obj) -> list[Cause]:
    obj = copy.deepcopy(obj)
    service.default(obj)
    return service.validate(obj)


def paths(found: list[Cause]) -> list[str]:
    return [c.field for c in found]


def test_defaults_follow_upstream() -> None:
    obj = svc()
    service.default(obj)
    spec = obj["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["ipFamilies"] == ["IPv4"]
    assert spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert "sessionAffinityConfig" not in spec
    assert service.validate(obj) == []


def test_client_ip_affinity_and_load_balancer_defaults() -> None:
    obj = svc(type="LoadBalancer", sessionAffinity="ClientIP", clusterIP="198.18.32.5")
    service.default(obj)
    spec = obj["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert spec["allocateLoadBalancerNodePorts"] is False
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert spec["clusterIPs"] == ["198.18.32.5"]
    assert service.validate(obj) == []


def test_external_name_gets_no_address_fields() -> None:
    obj = {"metadata": {"name": "db"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}}
    service.default(obj)
    assert "ipFamilies" not in obj["spec"]
    assert service.validate(obj) == []
    assert service.claims(obj) == ()


def test_target_port_zero_from_protobuf_is_defaulted() -> None:
    obj = svc(ports=[{"port": 443, "targetPort": 0}])
    service.default(obj)
    assert obj["spec"]["ports"][0]["targetPort"] == 443


@pytest.mark.parametrize(
    ("spec", "path", "text"),
    [
        ({"ports": [{"port": 0}]}, "spec.ports[0].port", "Invalid value: 0: must be between 1 and 65535, inclusive"),
        ({"ports": [{"port": 65536}]}, "spec.ports[0].port", "must be between 1 and 65535"),
        ({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}, "spec.ports[1].name",
         'Duplicate value: "a"'),
        ({"ports": [{"name": "a", "port": 80}, {"port": 81}]}, "spec.ports[1].name", "Required value"),
        ({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}, "spec.ports[1]",
         'Duplicate value: core.ServicePort{Name:"", Protocol:"TCP"'),
        ({"ports": [{"port": 80, "protocol": "SCTP"}]}, "spec.ports[0].protocol", "SCTP is not supported"),
        ({"ports": [{"port": 80, "protocol": "ICMP"}]}, "spec.ports[0].protocol",
         'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'),
        ({"ports": [{"port": 80, "targetPort": "no_such"}]}, "spec.ports[0].targetPort", "alpha-numeric"),
        ({"ports": [{"port": 80, "nodePort": 30080}]}, "spec.ports[0].nodePort", "ESXi carries no application"),
        ({"ports": []}, "spec.ports", "Required value"),
        ({"selector": {"bad key!": "x"}}, "spec.selector", "name part must consist"),
        ({"selector": {"app": "bad value!"}}, "spec.selector", "a valid label must be"),
        ({"type": "NodePort"}, "spec.type",
         'Unsupported value: "NodePort": supported values: "ClusterIP", "ExternalName", "LoadBalancer" '
         "(vSphere Pods do not support NodePort because ESXi carries no application traffic on its "
         "management address; use LoadBalancer)"),
        ({"type": "Balanced"}, "spec.type", "Unsupported value"),
        ({"clusterIP": "abc"}, "spec.clusterIPs[0]", "must be a valid IP address"),
        ({"clusterIP": "fd00::1"}, "spec.clusterIPs[0]", "IPv6 is not supported"),
        ({"clusterIP": "None", "type": "LoadBalancer"}, "spec.clusterIPs[0]", "may only be set to None"),
        ({"externalIPs": ["1.2.3.4"]}, "spec.externalIPs", "externalIPs is not supported by this lab"),
        ({"loadBalancerSourceRanges": ["1.0.0.0/8"]}, "spec.loadBalancerSourceRanges",
         "may only be used when `type` is 'LoadBalancer'"),
        ({"loadBalancerSourceRanges": ["1.0.0.0/33"], "type": "LoadBalancer"}, "spec.loadBalancerSourceRanges[0]",
         "must be a list of IP ranges"),
        ({"loadBalancerIP": "198.18.8.7"}, "spec.loadBalancerIP", "may only be used when `type` is 'LoadBalancer'"),
        ({"loadBalancerIP": "nope", "type": "LoadBalancer"}, "spec.loadBalancerIP", "must be a valid IP address"),
        ({"loadBalancerClass": "x/y", "type": "LoadBalancer"}, "spec.loadBalancerClass", "not supported"),
        ({"healthCheckNodePort": 31000, "type": "LoadBalancer"}, "spec.healthCheckNodePort", "NodePort"),
        ({"externalTrafficPolicy": "Local", "type": "LoadBalancer"}, "spec.externalTrafficPolicy",
         "Local is not supported"),
        ({"externalTrafficPolicy": "Cluster"}, "spec.externalTrafficPolicy", "externally-accessible"),
        ({"internalTrafficPolicy": "Local"}, "spec.internalTrafficPolicy", "Local is not supported"),
        ({"ipFamilies": ["IPv6"]}, "spec.ipFamilies[0]", "IPv6 is not supported"),
        ({"ipFamilyPolicy": "RequireDualStack"}, "spec.ipFamilyPolicy", "RequireDualStack is not supported"),
        ({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": True}, "spec.allocateLoadBalancerNodePorts",
         "may not be true: vSphere Pods do not support NodePort"),
        ({"allocateLoadBalancerNodePorts": False}, "spec.allocateLoadBalancerNodePorts",
         "may only be used when `type` is 'LoadBalancer'"),
        ({"sessionAffinity": "Sticky"}, "spec.sessionAffinity", "Unsupported value"),
        ({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}},
         "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "must be greater than 0 and less than 86400"),
        ({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}, "spec.sessionAffinityConfig",
         "must not be set when session affinity is None"),
        ({"type": "ExternalName"}, "spec.externalName", "Required value"),
        ({"type": "ExternalName", "externalName": "Not_A_Name"}, "spec.externalName", "RFC 1123 subdomain"),
        ({"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "198.18.32.9"},
         "spec.clusterIPs", "may not be set for ExternalName services"),
        ({"clusterIP": "198.18.32.9", "clusterIPs": ["198.18.32.8"]}, "spec.clusterIPs",
         "first value must match `clusterIP`"),
    ],
)  # fmt: skip
def test_each_cause(spec: Obj, path: str, text: str) -> None:
    found = causes(svc(**spec))
    assert path in paths(found), found
    assert any(text in c.message for c in found if c.field == path), found


def test_headless_needs_no_ports_and_claims_nothing() -> None:
    obj = svc(clusterIP="None", ports=[])
    assert causes(obj) == []
    service.default(obj)
    assert obj["spec"]["clusterIPs"] == ["None"]
    assert service.claims(obj) == ()


@pytest.mark.parametrize("name", ["web.v1", "1web", "Web", "x" * 64, ""])
def test_service_name_must_be_a_dns_1035_label(name: str) -> None:
    obj = svc()
    obj["metadata"]["name"] = name
    assert paths(causes(obj)) == ["metadata.name"]


def test_dns_1035_message_is_upstreams() -> None:
    obj = svc()
    obj["metadata"]["name"] = "1web"
    (cause,) = causes(obj)
    assert cause.message.startswith('Invalid value: "1web": a DNS-1035 label must consist of lower case')


def test_cluster_ip_is_immutable_and_kept_when_omitted() -> None:
    old = svc(clusterIP="198.18.32.9")
    service.default(old)
    new = svc()
    service.default(new)
    service.on_update(new, old)
    assert new["spec"]["clusterIP"] == "198.18.32.9"
    assert service.validate_update(new, old) == []
    changed = svc(clusterIP="198.18.32.10")
    found = service.validate_update(changed, old)
    assert [(c.field, c.message) for c in found] == [
        ("spec.clusterIP", 'Invalid value: "198.18.32.10": field is immutable')
    ]


def test_becoming_external_name_drops_the_address() -> None:
    old = svc(clusterIP="198.18.32.9")
    service.default(old)
    new = copy.deepcopy(old)
    new["spec"].update(type="ExternalName", externalName="db.example.com")
    service.on_update(new, old)
    assert "clusterIP" not in new["spec"]
    assert service.validate(new) == []
    assert service.claims(new) == ()
    assert [c.key for c in service.claims(old)] == ["/registry/ranges/serviceips/198.18.32.9"]


def test_leaving_load_balancer_drops_its_unchanged_fields() -> None:
    old = svc(clusterIP="198.18.32.9", type="LoadBalancer")
    service.default(old)
    assert old["spec"]["allocateLoadBalancerNodePorts"] is False
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ClusterIP"  # kubectl patch -p '{"spec":{"type":"ClusterIP"}}'
    service.on_update(new, old)
    assert "allocateLoadBalancerNodePorts" not in new["spec"]
    assert "externalTrafficPolicy" not in new["spec"]
    assert service.validate(new) == []
    assert service.validate_update(new, old) == []


def row(obj: Obj) -> list[Any]:
    obj = copy.deepcopy(obj)
    obj["metadata"]["creationTimestamp"] = None
    service.default(obj)
    return service.row(obj)


def test_kubectl_columns() -> None:
    obj = svc(clusterIP="198.18.32.9", ports=[{"name": "http", "port": 80}, {"name": "dns", "port": 53,
              "protocol": "UDP"}])  # fmt: skip
    assert [c.name for c in service.KIND.columns] == [
        "Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector",
    ]  # fmt: skip
    assert [c.priority for c in service.KIND.columns] == [0, 0, 0, 0, 0, 0, 1]
    assert row(obj) == ["web", "ClusterIP", "198.18.32.9", "<none>", "80/TCP,53/UDP", "<unknown>", "app=web"]
    balancer = svc(type="LoadBalancer", clusterIP="198.18.32.9", selector={})
    assert row(balancer)[3] == "<pending>"
    assert row(balancer)[6] == "<none>"
    balancer["status"] = {"loadBalancer": {"ingress": [{"ip": "198.18.8.3"}]}}
    assert row(balancer)[3] == "198.18.8.3"
    named = {"metadata": {"name": "db"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}}
    assert row(named)[1:5] == ["ExternalName", "<none>", "db.example.com", "<none>"]
    assert row(svc(clusterIP="None"))[2] == "None"


# -- protobuf: what kubectl 1.31+ sends for `create service clusterip web --tcp=80:8080` -------------
def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number: int, value: int | str | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def test_decodes_a_service_body() -> None:
    target = _field(1, 0) + _field(2, 8080)  # IntOrString{Type: Int, IntVal: 8080}
    port = _field(1, "80-8080") + _field(2, "TCP") + _field(3, 80) + _field(4, target) + _field(5, 0)
    selector = _field(2, _field(1, "app") + _field(2, "web"))
    spec = _field(1, port) + selector + _field(4, "ClusterIP") + _field(13, 0)
    obj = _field(1, _field(1, "web") + _field(11, _field(1, "app") + _field(2, "web"))) + _field(2, spec)
    body = b"k8s\x00" + _field(1, _field(1, "v1") + _field(2, "Service")) + _field(2, obj)
    decoded = protobuf.decode(body)
    assert decoded["spec"] == {
        "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
        "selector": {"app": "web"},
        "type": "ClusterIP",
    }


# -- Endpoints and EndpointSlices ---------------------------------------------------------------------
def eps(*subsets: Obj) -> Obj:
    return {"metadata": {"name": "web", "creationTimestamp": None}, "subsets": list(subsets)}


def test_endpoints_validation() -> None:
    good = eps({"addresses": [{"ip": "198.19.1.5"}], "ports": [{"name": "http", "port": 80}]})
    endpoints.default(good)
    assert endpoints.validate(good) == []
    bad = eps(
        {
            "addresses": [{"ip": "nope"}, {"ip": "127.0.0.1"}],
            "ports": [
                {"name": "a", "port": 0, "protocol": "TCP"},
                {"name": "a", "port": 80, "protocol": "X"},
            ],
        }
    )
    found = {(c.field, c.message.split(":")[0]) for c in endpoints.validate(bad)}
    assert found == {
        ("subsets[0].addresses[0].ip", "Invalid value"),
        ("subsets[0].addresses[1].ip", "Invalid value"),
        ("subsets[0].ports[0].port", "Invalid value"),
        ("subsets[0].ports[1].name", "Duplicate value"),
        ("subsets[0].ports[1].protocol", "Unsupported value"),
    }


def test_endpoints_column() -> None:
    ips = [{"ip": f"198.19.{i}.5"} for i in (1, 2, 3)]
    assert endpoints.endpoints_text(eps()) == "<none>"
    assert endpoints.endpoints_text(eps({"addresses": ips[:2], "ports": [{"port": 80}]})) == (
        "198.19.1.5:80,198.19.2.5:80"
    )
    many = eps({"addresses": ips, "ports": [{"port": 80}, {"port": 443}]})
    assert endpoints.endpoints_text(many) == "198.19.1.5:80,198.19.2.5:80,198.19.3.5:80 + 3 more..."
    assert endpoints.endpoints_text(eps({"addresses": ips[:1]})) == "198.19.1.5"


def slice_(address_type: str = "IPv4", **extra: Any) -> Obj:
    return {
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": address_type,
        "endpoints": [{"addresses": ["198.19.1.5"], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        **extra,
    }


def test_endpoint_slice_validation() -> None:
    assert endpointslice.validate(slice_()) == []
    assert endpointslice.validate(slice_(ports=[{"protocol": "TCP"}, {"name": "x", "protocol": "UDP"}])) == []
    for kind in ("IPv6", "FQDN"):
        found = endpointslice.validate(slice_(kind))
        assert [(c.field, c.reason) for c in found] == [("addressType", "FieldValueForbidden")]
        assert kind in found[0].message
    bad = slice_(endpoints=[{"addresses": ["fd00::1"]}, {"addresses": []}], ports=[{"port": 70000}])
    endpointslice.default(bad)
    assert {c.field for c in endpointslice.validate(bad)} == {
        "endpoints[0].addresses[0]",
        "endpoints[1].addresses",
        "ports[0].port",
    }
    assert endpointslice.validate_update(slice_("IPv6"), slice_())[0].field == "addressType"


def test_topology_hints_are_refused_not_ignored() -> None:
    hinted = slice_(endpoints=[{"addresses": ["198.19.1.5"], "hints": {"forZones": [{"name": "a"}]}}])
    (cause,) = endpointslice.validate(hinted)
    assert cause.field == "endpoints[0].hints"
    assert "not supported by this lab" in cause.message


def test_endpoint_slice_columns() -> None:
    obj = slice_()
    obj["metadata"]["creationTimestamp"] = None
    assert endpointslice.row(obj) == ["web-abc", "IPv4", "80", "198.19.1.5", "<unknown>"]
    crowded = slice_(endpoints=[{"addresses": [f"198.19.1.{i}"]} for i in range(5)], ports=[])
    assert endpointslice.endpoints_text(crowded) == "198.19.1.0,198.19.1.1,198.19.1.2 + 2 more..."
    assert endpointslice.ports_text(crowded) == "<unset>"
