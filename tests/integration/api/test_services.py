"""Services, Endpoints and EndpointSlices against the REAL nestlab-apiserver on a REAL 3-member etcd.

kubectl old (Debian's 1.20, JSON) and new (1.27+, protobuf for ``create service``) create, expose,
list and delete Services; bad input is refused as upstream refuses it (422 with causes); creates
racing on three API servers get distinct ClusterIPs; a deleted Service frees its address; the
``kubernetes`` and ``kube-dns`` Services exist from the start.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.integration.api.conftest import (
    ADVERTISE_ADDRESS,
    NODE_TOKEN,
    SERVICE_RANGE,
    ApiServer,
    EtcdMember,
    Pki,
    start_apiserver,
    wait_until,
)

pytestmark = pytest.mark.integration
RANGE = ipaddress.ip_network(SERVICE_RANGE)


def in_range(ip: str) -> bool:
    return ipaddress.ip_address(ip) in RANGE


def namespace(apiserver: ApiServer, name: str) -> str:
    code, body = apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert code in (201, 409), body
    return name


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec},
    }


def test_kubernetes_and_dns_services_exist(apiserver: ApiServer) -> None:
    def found() -> bool:
        return apiserver.request("GET", "/api/v1/namespaces/kube-system/services/kube-dns")[0] == 200

    wait_until(found, "kube-system/kube-dns", timeout=30)
    code, kubernetes = apiserver.request("GET", "/api/v1/namespaces/default/services/kubernetes")
    assert code == 200, kubernetes
    assert kubernetes["spec"]["clusterIP"] == str(RANGE.network_address + 1)
    assert kubernetes["spec"]["ports"] == [
        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}
    ]
    assert "selector" not in kubernetes["spec"]
    code, endpoints = apiserver.request("GET", "/api/v1/namespaces/default/endpoints/kubernetes")
    assert code == 200, endpoints
    assert endpoints["subsets"] == [
        {
            "addresses": [{"ip": ADVERTISE_ADDRESS}],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
        }
    ]
    _, dns = apiserver.request("GET", "/api/v1/namespaces/kube-system/services/kube-dns")
    assert dns["spec"]["clusterIP"] == str(RANGE.network_address + 10)
    assert dns["metadata"]["labels"]["k8s-app"] == "kube-dns"
    assert [(p["name"], p["port"], p["protocol"]) for p in dns["spec"]["ports"]] == [
        ("dns", 53, "UDP"),
        ("dns-tcp", 53, "TCP"),
    ]
    code, _ = apiserver.request("GET", "/api/v1/namespaces/kube-system/endpoints/kube-dns")
    assert code == 404  # nestlab-dns writes it, never the API server


def test_kubectl_creates_exposes_lists_and_deletes(kubectl, apiserver: ApiServer) -> None:
    ns = namespace(apiserver, "svc-" + kubectl.version.replace(".", "-"))
    created = kubectl("-n", ns, "create", "service", "clusterip", "web", "--tcp=80:8080", "-v=8")
    assert "service/web created" in created.stdout
    if kubectl.version == "1.33":  # 1.31+ send typed objects as protobuf: the decoder was exercised
        assert "Content-Type: application/vnd.kubernetes.protobuf" in created.stderr, created.stderr[-3000:]
    web = json.loads(kubectl("-n", ns, "get", "svc", "web", "-o", "json").stdout)
    ip = web["spec"]["clusterIP"]
    assert in_range(ip)
    assert web["spec"]["clusterIPs"] == [ip]
    assert web["spec"]["ports"] == [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}]

    kubectl("-n", ns, "create", "deployment", "app", "--image=nestlab/web:1")
    exposed = kubectl("-n", ns, "expose", "deployment", "app", "--port=80", "--target-port=8080").stdout
    assert "service/app exposed" in exposed
    kubectl("-n", ns, "create", "service", "externalname", "db", "--external-name=db.example.com")
    kubectl("-n", ns, "create", "service", "clusterip", "peers", "--clusterip=None")
    kubectl("-n", ns, "create", "service", "loadbalancer", "edge", "--tcp=443:8443")

    table = kubectl("-n", ns, "get", "svc").stdout
    header = table.splitlines()[0].split()
    assert header == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], table
    assert re.search(rf"^web\s+ClusterIP\s+{re.escape(ip)}\s+<none>\s+80/TCP\s+\d+s$", table, re.M), table
    assert re.search(r"^db\s+ExternalName\s+<none>\s+db\.example\.com\s+<none>\s", table, re.M), table
    assert re.search(r"^peers\s+ClusterIP\s+None\s+<none>\s", table, re.M), table
    assert re.search(r"^edge\s+LoadBalancer\s+198\.18\.\S+\s+<pending>\s+443/TCP\s", table, re.M), table
    described = kubectl("-n", ns, "describe", "svc", "web").stdout
    assert re.search(rf"^IPs?:\s+{re.escape(ip)}$", described, re.M), described
    wide = kubectl("-n", ns, "get", "svc", "-o", "wide").stdout
    assert wide.splitlines()[0].split()[-1] == "SELECTOR"
    assert re.search(r"^app\s+ClusterIP\s+\S+\s+<none>\s+80/TCP\s+\S+\s+app=app$", wide, re.M), wide
    assert "service/web" in kubectl("-n", ns, "get", "all", "-o", "name").stdout

    refused = kubectl("-n", ns, "create", "service", "nodeport", "np", "--tcp=80", check=False)
    assert refused.returncode != 0
    assert "ESXi carries no application traffic on its management address" in refused.stderr

    assert 'service "web" deleted' in kubectl("-n", ns, "delete", "svc", "web").stdout
    kubectl("-n", ns, "delete", "svc", "app", "db", "peers", "edge")
    kubectl("-n", ns, "delete", "deployment", "app")
    # the freed address can be asked for again
    code, body = apiserver.request(
        "POST", f"/api/v1/namespaces/{ns}/services", service("again", clusterIP=ip)
    )
    assert code == 201, body
    apiserver.request("DELETE", f"/api/v1/namespaces/{ns}/services/again")


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [
        ({"ports": [{"port": 70000}]}, "spec.ports[0].port", "must be between 1 and 65535, inclusive"),
        ({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}, "spec.ports[1].name",
         'Duplicate value: "a"'),
        ({"clusterIP": "10.96.0.20"}, "spec.clusterIPs[0]",
         f"provided IP is not in the valid range. The range of valid IPs is {SERVICE_RANGE}"),
        ({"type": "NodePort"}, "spec.type", "vSphere Pods do not support NodePort"),
        ({"selector": {"app": "no good"}}, "spec.selector", "a valid label must be"),
        ({"externalIPs": ["198.18.0.50"]}, "spec.externalIPs", "externalIPs is not supported by this lab"),
    ],
)  # fmt: skip
def test_bad_services_are_422_with_causes(
    apiserver: ApiServer, spec: dict[str, Any], field: str, text: str
) -> None:
    ns = namespace(apiserver, "svc-invalid")
    code, body = apiserver.request("POST", f"/api/v1/namespaces/{ns}/services", service("bad", **spec))
    assert code == 422, body
    assert body["reason"] == "Invalid"
    assert body["details"]["kind"] == "Service"
    causes = body["details"]["causes"]
    assert any(c["field"] == field and text in c["message"] for c in causes), causes


def test_taken_cluster_ip_is_422(apiserver: ApiServer) -> None:
    ns = namespace(apiserver, "svc-taken")
    code, first = apiserver.request("POST", f"/api/v1/namespaces/{ns}/services", service("first"))
    assert code == 201, first
    ip = first["spec"]["clusterIP"]
    code, body = apiserver.request(
        "POST", f"/api/v1/namespaces/{ns}/services", service("second", clusterIP=ip)
    )
    assert code == 422, body
    assert body["message"] == (
        f'Service "second" is invalid: spec.clusterIPs[0]: Invalid value: "{ip}": provided IP is already allocated'
    )
    code, body = apiserver.request(
        "POST",
        "/api/v1/namespaces/default/services",
        service("steal", clusterIP=str(RANGE.network_address + 1)),
    )
    assert code == 422, body  # the kubernetes Service holds .1
    apiserver.request("DELETE", f"/api/v1/namespaces/{ns}/services/first")


@pytest.fixture(scope="module")
def three_servers(
    apiserver: ApiServer, pki: Pki, etcd_cluster: list[EtcdMember], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ApiServer]]:
    """Two more API servers on the same etcd: three racing, as on the three control-plane nodes."""
    extra: list[ApiServer] = []
    try:
        for _ in range(2):
            directory = tmp_path_factory.mktemp("apiserver-extra")
            url, process, log = start_apiserver(pki, [m.client_url for m in etcd_cluster], directory)
            extra.append(ApiServer(url, pki, log, process))
        yield [apiserver, *extra]
    finally:
        for server in extra:
            server.process.stop()
    for server in extra:
        assert "Traceback" not in server.log.read_text()


def test_concurrent_creates_on_three_servers_get_distinct_addresses(three_servers: list[ApiServer]) -> None:
    ns = namespace(three_servers[0], "svc-race")

    def create(index: int) -> str:
        server = three_servers[index % 3]
        code, body = server.request("POST", f"/api/v1/namespaces/{ns}/services", service(f"s{index}"))
        assert code == 201, body
        return str(body["spec"]["clusterIP"])

    with ThreadPoolExecutor(max_workers=20) as pool:
        ips = list(pool.map(create, range(20)))
    assert len(set(ips)) == 20, ips
    assert all(in_range(ip) for ip in ips)
    code, listed = three_servers[1].request("GET", f"/api/v1/namespaces/{ns}/services")
    assert code == 200
    assert sorted(s["spec"]["clusterIP"] for s in listed["items"]) == sorted(ips)
    # deleting frees the address: another Service may take exactly it
    code, _ = three_servers[2].request("DELETE", f"/api/v1/namespaces/{ns}/services/s0")
    assert code == 200
    code, body = three_servers[0].request(
        "POST", f"/api/v1/namespaces/{ns}/services", service("t0", clusterIP=ips[0])
    )
    assert code == 201, body
    code, body = three_servers[0].request("DELETE", f"/api/v1/namespaces/{ns}")
    assert code == 200, body


def test_endpoints_and_slices(apiserver: ApiServer, kubectl) -> None:
    ns = namespace(apiserver, "eps-" + kubectl.version.replace(".", "-"))
    endpoints = {
        "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "198.19.1.5"}, {"ip": "198.19.2.7"}], "ports": [{"port": 80}]}],
    }
    code, body = apiserver.request("POST", f"/api/v1/namespaces/{ns}/endpoints", endpoints)
    assert code == 201, body
    table = kubectl("-n", ns, "get", "ep").stdout
    assert re.search(r"^web\s+198\.19\.1\.5:80,198\.19\.2\.7:80\s+\S+$", table, re.M), table
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["198.19.1.5"], "conditions": {"ready": True}}],
        "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
    }
    code, body = apiserver.request(
        "POST", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", slice_
    )
    assert code == 201, body
    table = kubectl("-n", ns, "get", "endpointslices", "-l", "kubernetes.io/service-name=web").stdout
    assert table.splitlines()[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], table
    assert re.search(r"^web-1\s+IPv4\s+80\s+198\.19\.1\.5\s+\S+$", table, re.M), table
    code, body = apiserver.request(
        "POST", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
        {**slice_, "metadata": {"name": "web-6"}, "addressType": "IPv6"},
    )  # fmt: skip
    assert code == 422, body
    assert "addressType IPv6 is not supported by this lab" in body["message"]
    code, body = apiserver.request("DELETE", f"/api/v1/namespaces/{ns}")
    assert code == 200, body


def test_node_role_reads_services(apiserver: ApiServer) -> None:
    code, body = apiserver.request("GET", "/api/v1/services", token=NODE_TOKEN)
    assert code == 200, body
    code, body = apiserver.request("GET", "/apis/discovery.k8s.io/v1/endpointslices", token=NODE_TOKEN)
    assert code == 200, body
    code, body = apiserver.request(
        "POST", "/api/v1/namespaces/default/services", service("x"), token=NODE_TOKEN
    )
    assert code == 403, body
