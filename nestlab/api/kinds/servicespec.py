"""Validation of a v1 Service spec: upstream's rules and messages, plus what vSphere Pods refuse.

The causes follow upstream ``ValidateService`` (pkg/apis/core/validation) field paths and messages,
so a learner reading the Kubernetes documentation recognises every 422. Where the lab does not
implement a field (NodePort, external IPs, ``Local`` traffic policies, IPv6,
load-balancer classes) the field is refused by name, never accepted and dropped: NodePort with the
reason vSphere gives for it, the rest saying what the lab's proxy and edge do instead.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from nestlab.api.kinds.common import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    LABEL_MSG,
    SUBDOMAIN_MSG,
    as_dict,
    as_list,
    check_labels,
    type_causes,
)
from nestlab.api.status import Cause

TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
SERVED_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer")
PROTOCOLS = ("TCP", "UDP")
AFFINITIES = ("ClientIP", "None")
NODEPORT_REASON = (
    "vSphere Pods do not support NodePort because ESXi carries no application traffic on its "
    "management address; use LoadBalancer"
)
_MAX_AFFINITY_SECONDS = 86400  # upstream MaxClientIPServiceAffinitySeconds (one day)
_IANA_NAME = re.compile(r"^[-a-z0-9]+$")
_LETTER = re.compile(r"[a-z]")
_IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
_NOT_HERE = "is not supported by this lab"
_REFUSED: dict[str, str] = {
    "externalIPs": "use a LoadBalancer Service: its address comes from the lab's ingress pool",
    "loadBalancerClass": "the lab's edge pair is the one load-balancer implementation",
    "healthCheckNodePort": NODEPORT_REASON,
    "trafficDistribution": "the lab's service proxy spreads traffic over all ready endpoints",
}


def _unsupported(path: str, value: Any, supported: tuple[str, ...], why: str = "") -> Cause:
    allowed = ", ".join(f'"{s}"' for s in supported)
    reason = f" ({why})" if why else ""
    return Cause(path, f'Unsupported value: "{value}": supported values: {allowed}{reason}',
                 "FieldValueNotSupported")  # fmt: skip


def _forbidden(path: str, message: str) -> Cause:
    return Cause(path, f"Forbidden: {message}", "FieldValueForbidden")


def check_port_number(value: Any, path: str) -> list[Cause]:
    """upstream ``IsValidPortNum``."""
    if not isinstance(value, int) or isinstance(value, bool):
        return [Cause(path, "Invalid value: must be an integer", "FieldValueTypeInvalid")]
    if not 1 <= value <= 65535:
        return [Cause(path, f"Invalid value: {value}: must be between 1 and 65535, inclusive")]
    return []


def check_port_name(name: str, path: str) -> list[Cause]:
    """upstream ``IsValidPortName`` (an IANA_SVC_NAME), as a named targetPort must be."""
    problems = []
    if len(name) > 15:
        problems.append("must be no more than 15 characters")
    if not _IANA_NAME.match(name):
        problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _LETTER.search(name):
        problems.append("must contain at least one letter (a-z)")
    if "--" in name:
        problems.append("must not contain consecutive hyphens")
    if name.startswith("-") or name.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    return [Cause(path, f'Invalid value: "{name}": {problem}') for problem in problems]


def check_ip(value: Any, path: str) -> list[Cause]:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return [Cause(path, f'Invalid value: "{value}": {_IP_MSG}')]
    return []


def _port_repr(port: dict[str, Any]) -> str:
    """How upstream prints the duplicate key (Go's ``%#v`` of a ServicePort holding protocol and port)."""
    return (
        f'core.ServicePort{{Name:"", Protocol:"{port.get("protocol")}", AppProtocol:(*string)(nil), '
        f'Port:{port.get("port")}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, '
        "NodePort:0}"
    )


def _check_port(port: dict[str, Any], path: str, many: bool) -> list[Cause]:
    """One ServicePort on its own: name, protocol, port, targetPort, no nodePort."""
    causes = type_causes(port, {"name": str, "protocol": str, "appProtocol": str}, f"{path}.")
    name = port.get("name") or ""
    if many and not name:
        causes.append(Cause(f"{path}.name", "Required value", "FieldValueRequired"))
    elif isinstance(name, str) and name and (not DNS1123_LABEL.match(name) or len(name) > 63):
        causes.append(Cause(f"{path}.name", f'Invalid value: "{name}": {LABEL_MSG}'))
    protocol = port.get("protocol")
    if protocol == "SCTP":
        why = "the lab's nftables service proxy carries TCP and UDP; SCTP is not supported"
        causes.append(_unsupported(f"{path}.protocol", protocol, PROTOCOLS, why))
    elif protocol not in PROTOCOLS:
        causes.append(_unsupported(f"{path}.protocol", protocol, ("SCTP", *PROTOCOLS)))
    causes += check_port_number(port.get("port"), f"{path}.port")
    target = port.get("targetPort")
    if isinstance(target, str):
        causes += check_port_name(target, f"{path}.targetPort")
    else:
        causes += check_port_number(target, f"{path}.targetPort")
    if port.get("nodePort"):
        causes.append(_forbidden(f"{path}.nodePort", NODEPORT_REASON))
    return causes


def check_ports(ports: Any, need_ports: bool) -> list[Cause]:
    """Each ServicePort, then unique names and unique port+protocol pairs (upstream's order)."""
    if ports is None or ports == []:
        return [Cause("spec.ports", "Required value", "FieldValueRequired")] if need_ports else []
    if not isinstance(ports, list):
        return [Cause("spec.ports", "Invalid value: must be a list", "FieldValueTypeInvalid")]
    causes: list[Cause] = []
    names: set[Any] = set()
    pairs: set[tuple[Any, Any]] = set()
    for index, port in enumerate(ports):
        path = f"spec.ports[{index}]"
        if not isinstance(port, dict):
            causes.append(Cause(path, "Invalid value: must be an object", "FieldValueTypeInvalid"))
            continue
        causes += _check_port(port, path, len(ports) > 1)
        name = port.get("name")
        if name and name in names:
            causes.append(Cause(f"{path}.name", f'Duplicate value: "{name}"', "FieldValueDuplicate"))
        names.add(name)
        pair = (port.get("protocol"), port.get("port"))
        if pair in pairs:
            causes.append(Cause(path, f"Duplicate value: {_port_repr(port)}", "FieldValueDuplicate"))
        pairs.add(pair)
    return causes


def _check_cluster_ips(spec: dict[str, Any], kind: Any) -> list[Cause]:
    ips = spec.get("clusterIPs")
    if ips is not None and not (isinstance(ips, list) and all(isinstance(i, str) for i in ips)):
        return [Cause("spec.clusterIPs", "Invalid value: must be a list of strings", "FieldValueTypeInvalid")]
    ips = ips or []
    if kind == "ExternalName":
        forbidden = spec.get("clusterIP") or ips
        return (
            [_forbidden("spec.clusterIPs", "may not be set for ExternalName services")] if forbidden else []
        )
    causes = []
    if len(ips) > 1:
        causes.append(Cause("spec.clusterIPs", "Invalid value: may specify no more than one IP for each IP "
                            "family (the lab's Services are IPv4 only)"))  # fmt: skip
    elif ips and spec.get("clusterIP") != ips[0]:
        causes.append(Cause("spec.clusterIPs", f"Invalid value: {ips}: first value must match `clusterIP`"))
    elif ips == ["None"] and kind != "ClusterIP":
        message = 'Invalid value: "None": may only be set to None for services of type ClusterIP'
        causes.append(Cause("spec.clusterIPs[0]", message))
    elif ips and ips != ["None"]:
        causes += check_ip(ips[0], "spec.clusterIPs[0]")
        if not causes and ipaddress.ip_address(ips[0]).version != 4:
            message = f"IPv6 {_NOT_HERE}: the lab's Services are IPv4 only"
            causes.append(_forbidden("spec.clusterIPs[0]", message))
    return causes


def _check_families(spec: dict[str, Any], kind: Any) -> list[Cause]:
    if kind == "ExternalName":
        return []
    causes = []
    for index, family in enumerate(as_list(spec.get("ipFamilies"))):
        if family == "IPv6":
            causes.append(_forbidden(f"spec.ipFamilies[{index}]", f"IPv6 {_NOT_HERE}: the lab's Services "
                                     "are IPv4 only"))  # fmt: skip
        elif family != "IPv4":
            causes.append(_unsupported(f"spec.ipFamilies[{index}]", family, ("IPv4", "IPv6")))
    if len(as_list(spec.get("ipFamilies"))) > 1:
        causes.append(Cause("spec.ipFamilies", "Invalid value: may specify no more than one IP family "
                            "(the lab's Services are IPv4 only)"))  # fmt: skip
    policy = spec.get("ipFamilyPolicy")
    if policy == "RequireDualStack":
        causes.append(_forbidden("spec.ipFamilyPolicy", f"RequireDualStack {_NOT_HERE}: the lab's "
                                 "Services are IPv4 only"))  # fmt: skip
    elif policy not in (None, "SingleStack", "PreferDualStack"):
        causes.append(_unsupported("spec.ipFamilyPolicy", policy,
                                   ("PreferDualStack", "RequireDualStack", "SingleStack")))  # fmt: skip
    return causes


def _check_affinity(spec: dict[str, Any]) -> list[Cause]:
    affinity, config = spec.get("sessionAffinity"), spec.get("sessionAffinityConfig")
    if affinity not in AFFINITIES:
        return [_unsupported("spec.sessionAffinity", affinity, AFFINITIES)]
    if affinity == "None":
        if config is not None:
            message = f"Invalid value: {config}: must not be set when session affinity is None"
            return [Cause("spec.sessionAffinityConfig", message)]
        return []
    seconds = as_dict(as_dict(config).get("clientIP")).get("timeoutSeconds")
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 < seconds <= _MAX_AFFINITY_SECONDS:
        message = f"Invalid value: {seconds}: must be greater than 0 and less than {_MAX_AFFINITY_SECONDS}"
        return [Cause("spec.sessionAffinityConfig.clientIP.timeoutSeconds", message)]
    return []


def _check_policies(spec: dict[str, Any], kind: Any) -> list[Cause]:
    causes = []
    external = spec.get("externalTrafficPolicy")
    if external is not None:
        if kind not in ("LoadBalancer", "NodePort"):
            causes.append(Cause("spec.externalTrafficPolicy", f'Invalid value: "{external}": may only be set '
                                "for externally-accessible services"))  # fmt: skip
        elif external == "Local":
            causes.append(_forbidden("spec.externalTrafficPolicy", f"Local {_NOT_HERE}: the lab's edge "
                                     "spreads over the endpoints on every host; use Cluster"))  # fmt: skip
        elif external != "Cluster":
            causes.append(_unsupported("spec.externalTrafficPolicy", external, ("Cluster", "Local")))
    internal = spec.get("internalTrafficPolicy")
    if internal == "Local":
        causes.append(_forbidden("spec.internalTrafficPolicy", f"Local {_NOT_HERE}: the lab's service "
                                 "proxy spreads over the endpoints on every host; use Cluster"))  # fmt: skip
    elif internal not in (None, "Cluster"):
        causes.append(_unsupported("spec.internalTrafficPolicy", internal, ("Cluster", "Local")))
    allocate = spec.get("allocateLoadBalancerNodePorts")
    if allocate is not None and kind != "LoadBalancer":
        message = "may only be used when `type` is 'LoadBalancer'"
        causes.append(_forbidden("spec.allocateLoadBalancerNodePorts", message))
    elif allocate is True:
        causes.append(_forbidden("spec.allocateLoadBalancerNodePorts", f"may not be true: {NODEPORT_REASON}"))
    return causes


def _check_load_balancer_fields(spec: dict[str, Any], kind: Any) -> list[Cause]:
    """loadBalancerIP (deprecated upstream, honoured by the lab's edge when inside the ingress pool)
    and loadBalancerSourceRanges (enforced by nestlab-edge and every host's nestlab-proxy): LoadBalancer
    only, well-formed."""
    causes: list[Cause] = []
    only_lb = "may only be used when `type` is 'LoadBalancer'"
    ip = spec.get("loadBalancerIP")
    if ip:
        if kind != "LoadBalancer":
            causes.append(_forbidden("spec.loadBalancerIP", only_lb))
        else:
            try:
                ipaddress.IPv4Address(str(ip))
            except ValueError:
                causes.append(
                    Cause("spec.loadBalancerIP", f'Invalid value: "{ip}": must be a valid IP address')
                )
    ranges = spec.get("loadBalancerSourceRanges")
    if ranges:
        if kind != "LoadBalancer":
            causes.append(_forbidden("spec.loadBalancerSourceRanges", only_lb))
        elif not isinstance(ranges, list):
            causes.append(Cause("spec.loadBalancerSourceRanges", "Invalid value: must be a list of IP ranges",
                                "FieldValueTypeInvalid"))  # fmt: skip
        else:
            for i, cidr in enumerate(ranges):
                try:
                    ipaddress.IPv4Network(str(cidr).strip(), strict=False)
                except ValueError:
                    example = "For example, 10.240.0.0/24,10.250.0.0/24 "
                    message = f'Invalid value: "{cidr}": must be a list of IP ranges. {example}'
                    causes.append(Cause(f"spec.loadBalancerSourceRanges[{i}]", message))
    return causes


SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"
"""The annotation form of loadBalancerSourceRanges, honoured when the field is empty (as upstream)."""


def check_source_ranges_annotation(annotations: Any, kind: Any) -> list[Cause]:
    """Upstream's check of the source-ranges annotation: LoadBalancer only, comma-separated ranges."""
    if not isinstance(annotations, dict) or SOURCE_RANGES_ANNOTATION not in annotations:
        return []
    path = f"metadata.annotations[{SOURCE_RANGES_ANNOTATION}]"
    causes: list[Cause] = []
    if kind != "LoadBalancer":
        causes.append(_forbidden(path, "may only be used when `type` is 'LoadBalancer'"))
    value = str(annotations.get(SOURCE_RANGES_ANNOTATION) or "").strip()
    for cidr in value.split(",") if value else []:
        try:
            ipaddress.IPv4Network(cidr.strip(), strict=False)
        except ValueError:
            example = "For example, 10.240.0.0/24,10.250.0.0/24 "
            message = f'Invalid value: "{cidr.strip()}": must be a list of IP ranges. {example}'
            causes.append(Cause(path, message))
    return causes


def check_spec(spec: Any) -> list[Cause]:
    """Every cause of a (defaulted) Service spec."""
    if not isinstance(spec, dict):
        return [Cause("spec", "Required value", "FieldValueRequired")]
    kind = spec.get("type")
    if kind == "NodePort":
        return [_unsupported("spec.type", kind, SERVED_TYPES, NODEPORT_REASON)]
    if kind not in TYPES:
        return [_unsupported("spec.type", kind, TYPES)]
    causes = type_causes(spec, {"selector": dict, "externalName": str, "publishNotReadyAddresses": bool})
    for field, why in _REFUSED.items():
        if spec.get(field):
            causes.append(_forbidden(f"spec.{field}", f"{field} {_NOT_HERE}: {why}"))
    headless = spec.get("clusterIP") == "None"
    causes += check_ports(spec.get("ports"), need_ports=kind != "ExternalName" and not headless)
    causes += check_labels(spec.get("selector"), "spec.selector")
    causes += _check_cluster_ips(spec, kind)
    causes += _check_families(spec, kind)
    causes += _check_affinity(spec)
    causes += _check_policies(spec, kind)
    causes += _check_load_balancer_fields(spec, kind)
    if kind == "ExternalName":
        name = spec.get("externalName")
        if not name:
            causes.append(Cause("spec.externalName", "Required value", "FieldValueRequired"))
        elif isinstance(name, str):
            bare = name.removesuffix(".")
            if len(bare) > 253 or not DNS1123_SUBDOMAIN.match(bare):
                causes.append(Cause("spec.externalName", f'Invalid value: "{name}": {SUBDOMAIN_MSG}'))
    return causes


__all__ = [
    "NODEPORT_REASON",
    "SOURCE_RANGES_ANNOTATION",
    "check_ip",
    "check_port_name",
    "check_port_number",
    "check_source_ranges_annotation",
    "check_spec",
]
