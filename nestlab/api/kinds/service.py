"""v1 Service: a stable virtual address (ClusterIP) and DNS name in front of a set of pods.

In vSphere with Kubernetes the NSX distributed load balancer on every ESXi host plays kube-proxy
for ClusterIP Services, and the NSX Edge serves LoadBalancer Services; the lab's ``nestlab-proxy``
and edge pair play those parts from what this kind stores. The unit gives upstream's defaults,
validation (:mod:`~nestlab.api.kinds.servicespec`), ``kubectl get svc`` columns and protobuf
table; the ClusterIP itself is allocated by the server (:mod:`nestlab.api.clusterips`) and held
through a :class:`~nestlab.api.kinds.base.Claim`, so no two Services share one.
"""

from __future__ import annotations

import re
from typing import Any

from nestlab.api import serviceips
from nestlab.api.kinds import wire
from nestlab.api.kinds.base import AGE, NAME, READ, WRITE, Claim, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import as_dict, as_list, check_metadata, check_name, immutable
from nestlab.api.kinds.printing import created
from nestlab.api.kinds.servicespec import check_source_ranges_annotation, check_spec
from nestlab.api.kinds.wiremeta import Schema, listed
from nestlab.api.status import Cause

RESOURCE = Resource(
    "services", "service", "Service", "", "v1", True, ("svc",), ("status",), True, ("all",),
)  # fmt: skip
DEFAULT_AFFINITY_SECONDS = 10800  # upstream DefaultClientIPServiceAffinitySeconds (3 hours)
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
_LB_TEXT_WIDTH = 16  # kubectl shortens a LoadBalancer's address list longer than this (not -o wide)


def needs_cluster_ip(spec: dict[str, Any]) -> bool:
    """Whether the server must allocate a ClusterIP: not ExternalName, not headless, none given."""
    return spec.get("type") != "ExternalName" and not spec.get("clusterIP")


def default(service: Obj) -> None:
    spec = service.get("spec")
    if not isinstance(spec, dict):
        return
    kind = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        config = spec.setdefault("sessionAffinityConfig", {})
        if isinstance(config, dict):
            client = config.setdefault("clientIP", {})
            if isinstance(client, dict):
                client.setdefault("timeoutSeconds", DEFAULT_AFFINITY_SECONDS)
    for port in as_list(spec.get("ports")):
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if port.get("targetPort") in (None, 0, ""):
                port["targetPort"] = port.get("port")
    if spec.get("clusterIP") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    if kind == "ExternalName":
        return
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        spec.setdefault("externalTrafficPolicy", "Cluster")
        spec.setdefault("allocateLoadBalancerNodePorts", False)  # no NodePorts on vSphere Pods


def on_create(service: Obj) -> None:
    service["status"] = {"loadBalancer": {}}


def on_update(new: Obj, old: Obj) -> None:
    """Keep the allocated ClusterIP when an update omits it (upstream ``patchAllocatedValues``), drop
    it when the type becomes ExternalName, and drop the LoadBalancer-only fields a client left
    unchanged when the type stops being LoadBalancer (upstream ``dropTypeDependentFields``)."""
    spec, before = new.get("spec"), as_dict(old.get("spec"))
    if not isinstance(spec, dict):
        return
    if spec.get("type") == "ExternalName":
        if before.get("type") != "ExternalName" and spec.get("clusterIP") == before.get("clusterIP"):
            for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
                spec.pop(field, None)
        return
    if not spec.get("clusterIP") and before.get("clusterIP"):
        spec["clusterIP"] = before["clusterIP"]
        spec["clusterIPs"] = list(before.get("clusterIPs") or [before["clusterIP"]])
    if before.get("type") == "LoadBalancer" and spec.get("type") != "LoadBalancer":
        # fields only a LoadBalancer has, left as they were by a client that changed only the type
        for field in ("allocateLoadBalancerNodePorts", "loadBalancerClass", "externalTrafficPolicy",
                      "loadBalancerIP", "loadBalancerSourceRanges"):  # fmt: skip
            if field in spec and spec.get(field) == before.get(field):
                spec.pop(field)
        new.setdefault("status", {})["loadBalancer"] = {}


def check_service_name(name: Any) -> list[Cause]:
    """Service names are DNS-1035 labels (they become DNS names and env var prefixes), as upstream."""
    if not isinstance(name, str) or not name:
        return check_name(str(name or ""), label=True)
    if len(name) > 63:
        return [Cause("metadata.name", f'Invalid value: "{name}": must be no more than 63 characters')]
    if not DNS1035_LABEL.match(name):
        return [Cause("metadata.name", f'Invalid value: "{name}": {DNS1035_MSG}')]
    return []


def validate(service: Obj) -> list[Cause]:
    causes = [c for c in check_metadata(service, label_named=True) if c.field != "metadata.name"]
    meta = as_dict(service.get("metadata"))
    kind = as_dict(service.get("spec")).get("type")
    ranges = check_source_ranges_annotation(meta.get("annotations"), kind)
    return check_service_name(meta.get("name")) + causes + check_spec(service.get("spec")) + ranges


def validate_update(new: Obj, old: Obj) -> list[Cause]:
    spec, before = as_dict(new.get("spec")), as_dict(old.get("spec"))
    if "ExternalName" in (spec.get("type"), before.get("type")) or not before.get("clusterIP"):
        return []  # to and from ExternalName the address is allocated or released instead
    return immutable(spec.get("clusterIP"), before.get("clusterIP"), "spec.clusterIP")


def claims(service: Obj) -> tuple[Claim, ...]:
    """The ClusterIP a Service holds (a headless or ExternalName Service holds none)."""
    ip = as_dict(service.get("spec")).get("clusterIP")
    if not ip or ip == "None" or not isinstance(ip, str):
        return ()
    return (serviceips.claim(ip),)


# -- kubectl get svc (upstream printers.go printService) -------------------------------------------
def _ingress_text(service: Obj, wide: bool) -> str:
    ingress = as_list(as_dict(as_dict(service.get("status")).get("loadBalancer")).get("ingress"))
    text = ",".join(str(i.get("ip") or i.get("hostname")) for i in ingress if isinstance(i, dict))
    if not wide and len(text) > _LB_TEXT_WIDTH:
        return text[:13] + "..."
    return text


def external_ip(service: Obj, wide: bool = False) -> str:
    """The EXTERNAL-IP column: external IPs, the load balancer's ingress (``<pending>``) or the name."""
    spec = as_dict(service.get("spec"))
    kind, external = spec.get("type"), [str(ip) for ip in as_list(spec.get("externalIPs"))]
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        ingress = _ingress_text(service, wide)
        found = ([*ingress.split(",")] if ingress else []) + external
        return ",".join(found) or "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


def ports_text(ports: Any) -> str:
    """The PORT(S) column: ``80/TCP,53/UDP`` (``<none>`` without ports)."""
    parts = []
    for port in as_list(ports):
        if isinstance(port, dict):
            node = f":{port['nodePort']}" if port.get("nodePort") else ""
            parts.append(f"{port.get('port')}{node}/{port.get('protocol', 'TCP')}")
    return ",".join(parts) or "<none>"


def selector_text(selector: Any) -> str:
    """A map selector as ``labels.FormatLabels`` prints it (sorted ``k=v``, ``<none>`` when empty)."""
    if not isinstance(selector, dict) or not selector:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def row(service: Obj) -> list[Any]:
    spec = as_dict(service.get("spec"))
    return [
        service["metadata"]["name"],
        spec.get("type", ""),
        spec.get("clusterIP") or "<none>",
        external_ip(service),
        ports_text(spec.get("ports")),
        created(service),
        selector_text(spec.get("selector")),
    ]


# -- protobuf (k8s.io/api core/v1 generated.proto) -------------------------------------------------
SERVICE_PORT: Schema = {
    1: ("name", "str"),
    2: ("protocol", "str"),
    3: ("port", "int0"),
    4: ("targetPort", "intstr"),
    5: ("nodePort", "int0"),
    6: ("appProtocol", "str"),
}
SERVICE_SPEC: Schema = {
    1: ("ports", listed(SERVICE_PORT)),
    2: ("selector", "map"),
    3: ("clusterIP", "str"),
    4: ("type", "str"),
    5: ("externalIPs", "strs"),
    7: ("sessionAffinity", "str"),
    8: ("loadBalancerIP", "str"),
    9: ("loadBalancerSourceRanges", "strs"),
    10: ("externalName", "str"),
    11: ("externalTrafficPolicy", "str"),
    12: ("healthCheckNodePort", "int0"),
    13: ("publishNotReadyAddresses", "bool0"),
    14: ("sessionAffinityConfig", {1: ("clientIP", {1: ("timeoutSeconds", "int")})}),
    17: ("ipFamilyPolicy", "str"),
    18: ("clusterIPs", "strs"),
    19: ("ipFamilies", "strs"),
    20: ("allocateLoadBalancerNodePorts", "bool"),
    21: ("loadBalancerClass", "str"),
    22: ("internalTrafficPolicy", "str"),
    23: ("trafficDistribution", "str"),
}

KIND = Kind(
    RESOURCE,
    model="V1Service",
    default=default,
    on_create=on_create,
    on_update=on_update,
    validate=validate,
    validate_update=validate_update,
    columns=(
        NAME,
        Column("Type", "string", 0, "type determines how the Service is exposed."),
        Column("Cluster-IP", "string", 0, "clusterIP is the IP address of the service."),
        Column(
            "External-IP",
            "string",
            0,
            "externalIPs is a list of IP addresses for which nodes in the "
            "cluster will also accept traffic for this service.",
        ),
        Column("Port(s)", "string", 0, "The list of ports that are exposed by this service."),
        AGE,
        Column(
            "Selector",
            "string",
            1,
            "Route service traffic to pods with label keys and values matching this selector.",
        ),
    ),
    row=row,
    selectable=("spec.clusterIP", "spec.type"),
    roles={
        "view": {"services": READ, "services/status": READ},
        "edit": {"services": READ | WRITE, "services/status": READ},
        "node": {"services": READ},
    },
    protobuf=wire.top(SERVICE_SPEC),
    claims=claims,
)
