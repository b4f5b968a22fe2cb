"""The edge load balancer's nftables rules (the NSX Edge's virtual servers), rendered as text. Pure.

The outer machine routes the lab's ingress range (``spec.networks.ingress``) to the API VIP, so the
load balancer holding the VIP receives every packet for every LoadBalancer address. Table
``ip nestlab-edge`` (only ever this table) then does what an NSX Edge virtual server does:

- ``prerouting`` (and ``output``, for probes from the load balancer itself) looks the packet's
  ``ingress IP . protocol . port`` up in the verdict map ``service-ports`` and jumps to that
  service port's chain, which DNATs to one of the ready endpoints picked by ``numgen random``
  (``spec.loadBalancerSourceRanges``, or its annotation form when the field is empty, drops other
  clients first, as :func:`nestlab.proxy.desired.source_ranges_of` reads them; with
  ``sessionAffinity: ClientIP`` a client seen within the timeout goes back to its endpoint,
  recorded in a per-endpoint set as kube-proxy's nftables mode does);
- ``postrouting`` masquerades what was DNATed from an ingress address, so the pod answers the load
  balancer and the reply is un-NATed on its way back to the client (clients therefore appear to
  pods as the load balancer's address, as with an NSX Edge in SNAT mode);
- ``refuse`` (a filter chain in prerouting, right after the DNAT) refuses whatever is addressed to
  the ingress range and was not DNATed: a port with no ready endpoint, an unknown port or an
  unassigned address. TCP gets a reset ("connection refused" at once), other protocols ICMP port
  unreachable. Refusing there, before routing, matters: a packet left to the forward path would be
  sent back out the interface it came in by (the node's default route), and the ICMP redirect the
  kernel sends for that uses up the per-client ICMP budget, so the client would wait for a timeout.

Both load balancers carry the same rules, so after the VIP moves new connections work at once;
established ones break (their conntrack entries stay on the old holder; conntrackd is not used).

:func:`render_full` rebuilds the table in one transaction (start, resync after a failure);
:func:`render_update` changes one Service in one transaction. Both return the commands that
:meth:`nestlab.proxy.nft.Nft.apply` commits atomically.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any

from nestlab.proxy.desired import (
    DEFAULT_AFFINITY_TIMEOUT_S,
    PROTOCOLS,
    Endpoint,
    endpoints_of,
    source_ranges_of,
)

Obj = dict[str, Any]

TABLE = "nestlab-edge"
FAMILY = "ip"
MAP = "service-ports"
REFUSED = "ingress address, port or endpoint missing"


@dataclass(frozen=True)
class EdgePort:
    """One port of one LoadBalancer Service as the edge forwards it."""

    namespace: str
    name: str
    """The Service's name."""
    port_name: str
    """``spec.ports[].name`` ("" for a single unnamed port)."""
    protocol: str
    """nftables protocol name: ``tcp``, ``udp`` or ``sctp``."""
    port: int
    """The port clients connect to on the ingress address."""
    ips: tuple[str, ...]
    """The Service's ingress addresses inside the pool, sorted."""
    endpoints: tuple[Endpoint, ...]
    """Ready endpoints, sorted; empty: connections are refused."""
    source_ranges: tuple[str, ...] = ()
    """``spec.loadBalancerSourceRanges`` or the annotation (empty: every client)."""
    affinity_timeout: int | None = None
    """Seconds a client address sticks to its endpoint (``sessionAffinity: ClientIP``), or None."""

    @property
    def chain(self) -> str:
        """The port's chain: unique because a Service's (protocol, port) pairs are."""
        return f"svc/{self.namespace}/{self.name}/{self.protocol}/{self.port}"

    def endpoint_chain(self, endpoint: Endpoint) -> str:
        """The chain recording a client's affinity to ``endpoint`` and DNATing to it."""
        return f"ep/{self.namespace}/{self.name}/{self.protocol}/{self.port}/{endpoint.ip}/{endpoint.port}"

    def affinity_set(self, endpoint: Endpoint) -> str:
        """The clients stuck to ``endpoint``; named by its timeout too (a set's timeout is fixed)."""
        where = f"{self.namespace}/{self.name}/{self.protocol}/{self.port}/{endpoint.ip}/{endpoint.port}"
        return f"aff/{where}/{self.affinity_timeout}"

    @property
    def key(self) -> str:
        """``namespace/name:port-name`` (``namespace/name`` for an unnamed port), kube-proxy's name."""
        suffix = f":{self.port_name}" if self.port_name else ""
        return f"{self.namespace}/{self.name}{suffix}"


def forwarded(service: Obj) -> bool:
    """Whether the edge implements this Service: type LoadBalancer of the default class."""
    spec = service.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def _in_pool(value: Any, pool: IPv4Network) -> str | None:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        return None
    return str(address) if address.version == 4 and address in pool else None


def _affinity(spec: Obj) -> int | None:
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
    return int(timeout) if timeout else DEFAULT_AFFINITY_TIMEOUT_S


def edge_ports(service: Obj, slices: Iterable[Obj], pool: IPv4Network) -> tuple[EdgePort, ...]:
    """The forwarded ports of ``service`` given its EndpointSlices (only ingress IPs in ``pool``:
    a status naming any other address, the API VIP say, is never programmed)."""
    if not forwarded(service):
        return ()
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ips = sorted({ip for entry in ingress if (ip := _in_pool(entry.get("ip"), pool)) is not None})
    if not ips:
        return ()
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    sources = source_ranges_of(service)
    if sources == ():
        return ()  # only unusable ranges: forwarding nobody is the closed reading
    slices = list(slices)
    found: list[EdgePort] = []
    for port in spec.get("ports") or []:
        protocol, number = port.get("protocol") or "TCP", port.get("port")
        if protocol not in PROTOCOLS or not isinstance(number, int):
            continue
        name = port.get("name") or ""
        found.append(
            EdgePort(
                namespace=str(meta.get("namespace") or ""),
                name=str(meta.get("name") or ""),
                port_name=name,
                protocol=PROTOCOLS[protocol],
                port=number,
                ips=tuple(ips),
                endpoints=endpoints_of(slices, name, protocol),
                source_ranges=sources or (),
                affinity_timeout=_affinity(spec),
            )
        )
    return tuple(found)


# -- rendering ------------------------------------------------------------------------------
def _elements(port: EdgePort) -> list[str]:
    return [f"{ip} . {port.protocol} . {port.port}" for ip in port.ips]


def _target(endpoint: Endpoint) -> str:
    return f"{endpoint.ip}:{endpoint.port}"


def _sets(port: EdgePort) -> dict[str, int]:
    """The affinity sets of ``port`` and their timeouts (none without affinity)."""
    if port.affinity_timeout is None:
        return {}
    return {port.affinity_set(e): port.affinity_timeout for e in port.endpoints}


def _endpoint_chains(port: EdgePort) -> list[str]:
    """The per-endpoint chains of an affinity port (none without affinity)."""
    return [port.endpoint_chain(e) for e in port.endpoints] if port.affinity_timeout is not None else []


def _chain_statements(port: EdgePort) -> list[str]:
    """Create-or-empty the port's chains (and affinity sets), then their rules.

    Without affinity one rule DNATs to ``numgen random`` over the endpoints. With ClientIP
    affinity (kube-proxy's nftables layout): a client found in an endpoint's set goes back to that
    endpoint; a new client is spread at random to an endpoint chain that records it in the set.
    """
    where = f"{FAMILY} {TABLE} {port.chain}"
    comment = f'comment "{port.key}"'
    kind = "type ipv4_addr; flags dynamic,timeout;"
    lines = [
        f"add set {FAMILY} {TABLE} {name} {{ {kind} timeout {timeout}s; }}"
        for name, timeout in sorted(_sets(port).items())
    ]
    for endpoint, chain in zip(port.endpoints, _endpoint_chains(port), strict=False):
        there = f"{FAMILY} {TABLE} {chain}"
        lines += [
            f"add chain {there}",
            f"flush chain {there}",
            f"add rule {there} update @{port.affinity_set(endpoint)} {{ ip saddr }} {comment}",
            f"add rule {there} meta l4proto {port.protocol} dnat ip to {_target(endpoint)} {comment}",
        ]
    lines += [f"add chain {where}", f"flush chain {where}"]
    if port.source_ranges:
        lines.append(f"add rule {where} ip saddr != {{ {', '.join(port.source_ranges)} }} drop {comment}")
    count = len(port.endpoints)
    if port.affinity_timeout is not None and count:
        chains = _endpoint_chains(port)
        for endpoint, chain in zip(port.endpoints, chains, strict=True):
            lines.append(f"add rule {where} ip saddr @{port.affinity_set(endpoint)} goto {chain} {comment}")
        choices = ", ".join(f"{i} : goto {c}" for i, c in enumerate(chains))
        lines.append(f"add rule {where} numgen random mod {count} vmap {{ {choices} }} {comment}")
    elif count == 1:
        lines.append(
            f"add rule {where} meta l4proto {port.protocol} dnat ip to {_target(port.endpoints[0])} {comment}"
        )
    elif count:
        choices = ", ".join(f"{i} : {e.ip} . {e.port}" for i, e in enumerate(port.endpoints))
        lines.append(
            f"add rule {where} meta l4proto {port.protocol} "
            f"dnat ip to numgen random mod {count} map {{ {choices} }} {comment}"
        )
    # no endpoint: the chain falls through and the refuse chain rejects the connection
    return lines


def _add_elements(port: EdgePort, elements: Iterable[str]) -> list[str]:
    items = ", ".join(f"{e} : goto {port.chain}" for e in elements)
    return [f"add element {FAMILY} {TABLE} {MAP} {{ {items} }}"] if items else []


def render_full(pool: IPv4Network, ports: Iterable[EdgePort]) -> list[str]:
    """The whole table, replacing any previous one: the commands of one transaction."""
    base = f"""add table {FAMILY} {TABLE}
delete table {FAMILY} {TABLE}
table {FAMILY} {TABLE} {{
  map {MAP} {{
    type ipv4_addr . inet_proto . inet_service : verdict
  }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr . meta l4proto . th dport vmap @{MAP}
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    ip daddr . meta l4proto . th dport vmap @{MAP}
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ct status dnat ct original ip daddr {pool} masquerade comment "replies come back through this edge"
  }}
  chain refuse {{
    type filter hook prerouting priority dstnat + 10; policy accept;
    ip daddr {pool} meta l4proto tcp reject with tcp reset comment "{REFUSED}"
    ip daddr {pool} reject comment "{REFUSED}"
  }}
  chain refuse-local {{
    type filter hook output priority -90; policy accept;
    ip daddr {pool} meta l4proto tcp reject with tcp reset comment "{REFUSED}"
    ip daddr {pool} reject comment "{REFUSED}"
  }}
}}
"""
    lines = [base.rstrip("\n")]
    for port in sorted(ports, key=lambda p: p.chain):
        lines += _chain_statements(port)
        lines += _add_elements(port, _elements(port))
    return lines


def render_update(old: Iterable[EdgePort], new: Iterable[EdgePort]) -> list[str]:
    """The commands of one transaction turning one Service's ``old`` ports into ``new`` (none when
    nothing changed).

    Order matters inside the transaction: map elements leave before the chains they jump to are
    deleted, and chains exist before elements point at them.
    """
    old_ports, new_ports = {p.chain: p for p in old}, {p.chain: p for p in new}
    if old_ports == new_ports:
        return []
    lines: list[str] = []
    for chain, port in sorted(old_ports.items()):
        kept = set(_elements(new_ports[chain])) if chain in new_ports else set()
        gone = [e for e in _elements(port) if e not in kept]
        if gone:
            lines.append(f"delete element {FAMILY} {TABLE} {MAP} {{ {', '.join(gone)} }}")
    for chain, port in sorted(new_ports.items()):
        if old_ports.get(chain) != port:
            lines += _chain_statements(port)
        before = set(_elements(old_ports[chain])) if chain in old_ports else set()
        lines += _add_elements(port, [e for e in _elements(port) if e not in before])
    for chain in sorted(set(old_ports) - set(new_ports)):
        lines.append(f"delete chain {FAMILY} {TABLE} {chain}")
    # what only the old endpoints used, once no port chain jumps to it any more
    wanted_chains = {c for p in new_ports.values() for c in _endpoint_chains(p)}
    wanted_sets = {n for p in new_ports.values() for n in _sets(p)}
    for port in old_ports.values():
        lines += [
            f"delete chain {FAMILY} {TABLE} {c}" for c in _endpoint_chains(port) if c not in wanted_chains
        ]
    for port in old_ports.values():
        lines += [f"delete set {FAMILY} {TABLE} {n}" for n in sorted(_sets(port)) if n not in wanted_sets]
    return lines


def render_delete() -> list[str]:
    """Remove the table (``nestlab-edge --cleanup``)."""
    return [f"add table {FAMILY} {TABLE}", f"delete table {FAMILY} {TABLE}"]
