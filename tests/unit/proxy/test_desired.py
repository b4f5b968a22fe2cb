"""Services and EndpointSlices reduced to the service ports a host proxies (kube-proxy's reading)."""

from __future__ import annotations

from typing import Any

from nestlab.proxy.desired import (
    SOURCE_RANGES_ANNOTATION,
    Endpoint,
    service_key_of_slice,
    service_ports,
    source_ranges_of,
)

Obj = dict[str, Any]


def service(name: str = "web", **spec: Any) -> Obj:
    body: Obj = {"clusterIP": "198.18.32.5", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    body.update(spec)
    return {"metadata": {"namespace": "demo", "name": name}, "spec": body}


def endpoint(ip: str, ready: bool | None = True, node: str = "esx-01") -> Obj:
    conditions = {} if ready is None else {"ready": ready}
    return {"addresses": [ip], "conditions": conditions, "nodeName": node}


def endpoint_slice(*endpoints: Obj, ports: list[Obj] | None = None, address_type: str = "IPv4") -> Obj:
    return {
        "metadata": {"namespace": "demo", "name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": address_type,
        "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": list(endpoints),
    }


def test_ready_endpoints_of_the_named_port() -> None:
    (port,) = service_ports(service(), [endpoint_slice(endpoint("198.19.1.2"), endpoint("198.19.1.3"))])
    assert (port.namespace, port.name, port.port_name, port.protocol, port.port) == (
        "demo",
        "web",
        "http",
        "tcp",
        80,
    )
    assert port.addresses == ("198.18.32.5",)
    assert port.endpoints == (Endpoint("198.19.1.2", 8080), Endpoint("198.19.1.3", 8080))
    assert port.affinity_timeout is None
    assert port.key == "demo/web:http"


def test_not_ready_is_left_out_and_unset_ready_counts_as_ready() -> None:
    slices = [endpoint_slice(endpoint("198.19.1.2", False), endpoint("198.19.1.3", None))]
    (port,) = service_ports(service(), slices)
    assert port.endpoints == (Endpoint("198.19.1.3", 8080),)


def test_ports_are_matched_by_name_and_protocol() -> None:
    spec: dict[str, Any] = {
        "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        ]
    }
    slice_ports = [
        {"name": "dns", "port": 5353, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 5354, "protocol": "TCP"},
    ]
    udp, tcp = service_ports(service(**spec), [endpoint_slice(endpoint("198.19.1.2"), ports=slice_ports)])
    assert (udp.protocol, udp.endpoints) == ("udp", (Endpoint("198.19.1.2", 5353),))
    assert (tcp.protocol, tcp.endpoints) == ("tcp", (Endpoint("198.19.1.2", 5354),))


def test_a_slice_without_the_port_gives_no_endpoints() -> None:
    (port,) = service_ports(
        service(), [endpoint_slice(endpoint("198.19.1.2"), ports=[{"name": "other", "port": 1}])]
    )
    assert port.endpoints == ()


def test_duplicates_across_slices_count_once_and_ipv6_slices_are_ignored() -> None:
    slices = [
        endpoint_slice(endpoint("198.19.1.2")),
        endpoint_slice(endpoint("198.19.1.2"), endpoint("198.19.1.4")),
        endpoint_slice(endpoint("fd00::1"), address_type="IPv6"),
    ]
    (port,) = service_ports(service(), slices)
    assert port.endpoints == (Endpoint("198.19.1.2", 8080), Endpoint("198.19.1.4", 8080))


def test_headless_and_external_name_services_are_not_proxied() -> None:
    assert service_ports(service(clusterIP="None"), [endpoint_slice(endpoint("198.19.1.2"))]) == ()
    assert service_ports(service(type="ExternalName", clusterIP="", externalName="example.org"), []) == ()


def test_external_and_load_balancer_addresses_are_proxied_too() -> None:
    svc = service(type="LoadBalancer", externalIPs=["198.18.0.77"])
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "198.18.8.5"}, {"hostname": "lb.example"}]}}
    (port,) = service_ports(svc, [])
    assert port.addresses == ("198.18.0.77", "198.18.32.5", "198.18.8.5")


def test_session_affinity_defaults_to_three_hours() -> None:
    (port,) = service_ports(service(sessionAffinity="ClientIP"), [])
    assert port.affinity_timeout == 10800
    config = {"clientIP": {"timeoutSeconds": 60}}
    (port,) = service_ports(service(sessionAffinity="ClientIP", sessionAffinityConfig=config), [])
    assert port.affinity_timeout == 60


def test_internal_traffic_policy_local_keeps_this_nodes_endpoints() -> None:
    slices = [endpoint_slice(endpoint("198.19.1.2", node="esx-01"), endpoint("198.19.2.2", node="esx-02"))]
    (port,) = service_ports(service(internalTrafficPolicy="Local"), slices, "esx-02")
    assert port.endpoints == (Endpoint("198.19.2.2", 8080),)
    (port,) = service_ports(service(), slices, "esx-02")
    assert len(port.endpoints) == 2


def test_a_slice_names_its_service_by_label() -> None:
    assert service_key_of_slice(endpoint_slice()) == "demo/web"
    assert service_key_of_slice({"metadata": {"namespace": "demo", "name": "orphan"}}) is None


def test_serving_terminating_endpoints_are_used_only_when_none_is_ready() -> None:
    draining = endpoint("198.19.1.5", False)
    draining["conditions"] |= {"serving": True, "terminating": True}
    gone = endpoint("198.19.1.6", False)
    gone["conditions"] |= {"serving": False, "terminating": True}
    (port,) = service_ports(service(), [endpoint_slice(draining, gone, endpoint("198.19.1.2"))])
    assert port.endpoints == (Endpoint("198.19.1.2", 8080),)
    (port,) = service_ports(service(), [endpoint_slice(draining, gone)])
    assert port.endpoints == (Endpoint("198.19.1.5", 8080),)


def load_balancer(**spec: Any) -> Obj:
    svc = service(type="LoadBalancer", **spec)
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "198.18.8.5"}]}}
    return svc


def test_source_ranges_guard_the_ingress_ips_only() -> None:
    (port,) = service_ports(load_balancer(loadBalancerSourceRanges=["10.0.0.0/8", " 198.18.0.0/24"]), [])
    assert port.addresses == ("198.18.32.5", "198.18.8.5")
    assert port.load_balancer_ips == ("198.18.8.5",)
    assert port.source_ranges == ("10.0.0.0/8", "198.18.0.0/24")
    (port,) = service_ports(load_balancer(), [])
    assert port.source_ranges is None  # no ranges: every client
    pending = load_balancer(loadBalancerSourceRanges=["10.0.0.0/8"])
    pending["status"] = {}
    (port,) = service_ports(pending, [])
    assert (port.load_balancer_ips, port.source_ranges) == ((), None)  # no ingress IP yet: nothing to guard


def test_source_ranges_annotation_is_read_when_the_field_is_empty() -> None:
    svc = load_balancer()
    svc["metadata"]["annotations"] = {SOURCE_RANGES_ANNOTATION: "192.168.0.0/16, 10.1.2.3/32 "}
    assert source_ranges_of(svc) == ("10.1.2.3/32", "192.168.0.0/16")
    (port,) = service_ports(svc, [])
    assert port.source_ranges == ("10.1.2.3/32", "192.168.0.0/16")
    svc["spec"]["loadBalancerSourceRanges"] = ["172.16.0.0/12"]
    assert source_ranges_of(svc) == ("172.16.0.0/12",)  # the field wins, as upstream
    svc["metadata"]["annotations"] = {SOURCE_RANGES_ANNOTATION: "  "}
    del svc["spec"]["loadBalancerSourceRanges"]
    assert source_ranges_of(svc) is None


def test_unusable_source_ranges_close_the_port_instead_of_opening_it() -> None:
    assert source_ranges_of(load_balancer(loadBalancerSourceRanges=["nonsense", "fd00::/8"])) == ()
    assert source_ranges_of(load_balancer(loadBalancerSourceRanges="10.0.0.0/8")) == ()
    assert source_ranges_of(load_balancer(loadBalancerSourceRanges=["nonsense", "10.0.0.0/8"])) == (
        "10.0.0.0/8",
    )
