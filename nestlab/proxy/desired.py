"""What one host should do for a Service: its ports, their virtual addresses and ready endpoints.

The proxy never renders rules from raw API objects: a Service and its EndpointSlices are first
reduced to :class:`ServicePort` values (frozen, comparable), so that "did anything change for this
Service?" is an equality test and the renderer in :mod:`nestlab.proxy.rules` stays free of API
shapes. The reduction follows kube-proxy's reading of the objects:

- Services without a virtual address are not proxied: ``ExternalName`` and headless
  (``clusterIP: None``) ones are DNS-only.
- A Service's addresses are its ClusterIP(s), its ``externalIPs`` and its LoadBalancer ingress IPs
  (IPv4 only: the lab is single-stack).
- ``spec.loadBalancerSourceRanges`` (or, when the field is empty, the annotation
  ``service.beta.kubernetes.io/load-balancer-source-ranges``, as upstream's cloud providers read
  it) limits who reaches the LoadBalancer ingress IPs; the ClusterIP stays open to every client,
  as with kube-proxy's firewall chain. The edge (:mod:`nestlab.proxy.edge`) reads the same ranges.
- Endpoints come from the IPv4 EndpointSlices labelled ``kubernetes.io/service-name=<service>``,
  ports matched by name (and protocol); an endpoint is used when ``conditions.ready`` is true or
  unset ("a nil value should be interpreted as true", as the EndpointSlice API says), or, when no
  endpoint is ready, when it is serving and terminating; duplicates across slices count once.
- ``internalTrafficPolicy: Local`` keeps only the endpoints on this node.
- ``sessionAffinity: ClientIP`` carries ``sessionAffinityConfig.clientIP.timeoutSeconds``
  (upstream default 10800 s).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
"""The label tying an EndpointSlice to its Service (discovery.k8s.io/v1)."""
DEFAULT_AFFINITY_TIMEOUT_S = 10800
"""sessionAffinityConfig.clientIP.timeoutSeconds when unset (upstream's default: 3 hours)."""
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
"""Kubernetes protocol names -> nftables ``inet_proto`` names."""
SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"
"""The older, annotation form of ``spec.loadBalancerSourceRanges`` (read when the field is empty)."""


@dataclass(frozen=True, order=True)
class Endpoint:
    """One backend of a service port."""

    ip: str
    """The endpoint's IPv4 address (a pod, or any address for selector-less Services)."""
    port: int
    """The port traffic is DNATed to (the EndpointSlice's port of the same name)."""


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service as this host proxies it."""

    namespace: str
    name: str
    """The Service's name."""
    port_name: str
    """``spec.ports[].name`` ("" for a single unnamed port): unique within the Service."""
    protocol: str
    """nftables protocol name: ``tcp``, ``udp`` or ``sctp``."""
    port: int
    """The virtual port clients connect to."""
    addresses: tuple[str, ...]
    """ClusterIP, externalIPs and LoadBalancer ingress IPs, sorted."""
    endpoints: tuple[Endpoint, ...]
    """Ready endpoints, sorted and deduplicated; empty: traffic is rejected."""
    affinity_timeout: int | None = None
    """Seconds a client IP sticks to its endpoint (sessionAffinity ClientIP), or None."""
    load_balancer_ips: tuple[str, ...] = ()
    """The LoadBalancer ingress IPs among ``addresses``, sorted: the ones ``source_ranges`` guards."""
    source_ranges: tuple[str, ...] | None = None
    """Clients allowed to ``load_balancer_ips`` (IPv4 CIDRs, sorted); None: every client; empty:
    none (only unusable ranges were given: closed, never open)."""

    @property
    def key(self) -> str:
        """``namespace/name:port-name`` (``namespace/name`` when unnamed), as kube-proxy prints it."""
        service = f"{self.namespace}/{self.name}"
        return f"{service}:{self.port_name}" if self.port_name else service


def service_key_of_slice(endpoint_slice: Obj) -> str | None:
    """``namespace/service`` of the Service an EndpointSlice belongs to (None without the label)."""
    meta = endpoint_slice.get("metadata") or {}
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not service:
        return None
    return f"{meta.get('namespace') or ''}/{service}"


def _ipv4(value: Any) -> str | None:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        return None
    return str(address) if address.version == 4 else None


def addresses_of(service: Obj) -> tuple[str, ...]:
    """The IPv4 addresses a Service is reached at on a host; empty when it is not proxied."""
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return ()
    cluster_ips = list(spec.get("clusterIPs") or []) or [spec.get("clusterIP")]
    if not cluster_ips or cluster_ips[0] in (None, "", "None"):
        return ()  # headless (or not allocated yet): DNS answers with the endpoints themselves
    candidates = [*cluster_ips, *(spec.get("externalIPs") or []), *ingress_ips_of(service)]
    return tuple(sorted({ip for value in candidates if value and (ip := _ipv4(value)) is not None}))


def ingress_ips_of(service: Obj) -> tuple[str, ...]:
    """The IPv4 addresses in ``status.loadBalancer.ingress``, sorted."""
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return tuple(sorted({ip for entry in ingress if (ip := _ipv4(entry.get("ip"))) is not None}))


def source_ranges_of(service: Obj) -> tuple[str, ...] | None:
    """The IPv4 ranges allowed to reach a LoadBalancer Service's ingress IPs; None: every client.

    ``spec.loadBalancerSourceRanges``, or when it is empty the comma-separated annotation
    ``service.beta.kubernetes.io/load-balancer-source-ranges`` (upstream's cloud-provider reading).
    An entry that is not an IPv4 range is skipped (validation refuses it); ranges were given but
    none is usable: empty, read as "nobody" (a stored oddity must not open the port to all).
    """
    given: Any = (service.get("spec") or {}).get("loadBalancerSourceRanges")
    if not given:
        annotations = (service.get("metadata") or {}).get("annotations") or {}
        text = str(annotations.get(SOURCE_RANGES_ANNOTATION) or "")
        given = [part for part in text.split(",") if part.strip()]
        if not given:
            return None
    if not isinstance(given, list):
        return ()
    found: set[IPv4Network] = set()
    for value in given:
        try:
            network = ipaddress.ip_network(str(value).strip(), strict=False)
        except ValueError:
            continue
        if isinstance(network, IPv4Network):
            found.add(network)
    return tuple(str(n) for n in sorted(found))


def _affinity(spec: Obj) -> int | None:
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    config = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
    return int(config) if config else DEFAULT_AFFINITY_TIMEOUT_S


def _usable(endpoint: Obj) -> tuple[bool, bool]:
    """(ready, serving and terminating), each unset condition read as upstream reads it."""
    conditions = endpoint.get("conditions") or {}
    ready = conditions.get("ready") in (None, True)
    serving = conditions.get("serving") in (None, True)
    return ready, serving and conditions.get("terminating") is True


def endpoints_of(
    slices: Iterable[Obj], port_name: str, protocol: str, only_node: str | None = None
) -> tuple[Endpoint, ...]:
    """IPv4 endpoints of the slices' port named ``port_name`` (``protocol`` as in the API).

    The ready ones; when none is ready, the serving ones that are terminating (kube-proxy's
    ProxyTerminatingEndpoints: the last pods of a rollout keep answering while they drain).
    """
    ready: set[Endpoint] = set()
    draining: set[Endpoint] = set()
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType", "IPv4") != "IPv4":
            continue
        target = None
        for port in endpoint_slice.get("ports") or []:
            if (port.get("name") or "") == port_name and (port.get("protocol") or "TCP") == protocol:
                target = port.get("port")
        if not isinstance(target, int) or not 0 < target < 65536:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            if only_node is not None and endpoint.get("nodeName") != only_node:
                continue
            is_ready, is_draining = _usable(endpoint)
            into = ready if is_ready else draining if is_draining else None
            if into is None:
                continue
            for value in endpoint.get("addresses") or []:
                if (ip := _ipv4(value)) is not None:
                    into.add(Endpoint(ip, target))
    return tuple(sorted(ready or draining))


def service_ports(service: Obj, slices: Iterable[Obj], node_name: str = "") -> tuple[ServicePort, ...]:
    """Every proxied port of ``service`` given the EndpointSlices that belong to it."""
    addresses = addresses_of(service)
    if not addresses:
        return ()
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    local_only = node_name if spec.get("internalTrafficPolicy") == "Local" else None
    ingress = ingress_ips_of(service)
    sources = source_ranges_of(service) if ingress else None
    slices = list(slices)
    found: list[ServicePort] = []
    for port in spec.get("ports") or []:
        protocol = port.get("protocol") or "TCP"
        number = port.get("port")
        if protocol not in PROTOCOLS or not isinstance(number, int):
            continue  # validation refuses these; a stored oddity must not break the whole table
        name = port.get("name") or ""
        found.append(
            ServicePort(
                namespace=str(meta.get("namespace") or ""),
                name=str(meta.get("name") or ""),
                port_name=name,
                protocol=PROTOCOLS[protocol],
                port=number,
                addresses=addresses,
                endpoints=endpoints_of(slices, name, protocol, local_only),
                affinity_timeout=_affinity(spec),
                load_balancer_ips=ingress,
                source_ranges=sources,
            )
        )
    return tuple(found)
