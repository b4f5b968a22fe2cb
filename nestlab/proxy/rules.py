"""nftables commands for the distributed load balancer and the baseline pod isolation. Pure.

Everything lives in one table, ``ip nestlab``; nothing else on the host is touched. The shape is
kube-proxy's nftables mode (the design, not its code):

- ``nat-prerouting`` and ``nat-output`` (priority dstnat) jump to ``services``, which looks the
  packet's ``daddr . l4proto . dport`` up in the verdict map ``service-ips``. Each element sends a
  service port to its chain ``svc-<hash>``, which spreads new connections over its endpoints with
  ``numgen random mod N vmap`` to per-endpoint chains ``ep-<hash>`` that ``dnat`` to the endpoint.
- sessionAffinity ClientIP: each endpoint has a dynamic set ``aff-<hash>`` with the affinity
  timeout; the endpoint chain records the client (``update @set { ip saddr }``) and the service
  chain sends a client found in a set to that endpoint before ``numgen`` is consulted.
- ``loadBalancerSourceRanges`` (kube-proxy's firewall chain): ``filter-prerouting-pre-dnat`` and
  ``filter-output-pre-dnat`` (priority dstnat - 10, before any DNAT) jump to ``firewall-check``,
  which looks ``daddr . l4proto . dport`` up in ``firewall-ips``: a LoadBalancer ingress IP:port of
  a Service with source ranges goes to its chain ``fw-<hash>``, which drops every source outside
  the ranges. Only the ingress IPs are guarded (the ClusterIP stays open, as upstream), so a pod
  cannot use this host's shortcut to the ingress IP to pass the edge's check.
- A service port without endpoints is in ``no-endpoint-services`` instead, checked in the filter
  hooks, where it is rejected (plain ``reject``: ICMP port unreachable, as kube-proxy does), so a
  client fails at once instead of timing out.
- ``nat-postrouting`` masquerades DNATed connections whose replies would otherwise bypass this
  host: from a source outside the pod network (the host itself, the outer machine), to an endpoint
  outside it (the API VIP, DNS on control-plane nodes: nodes with no route back to pods), and
  hairpin (a pod reaching itself or a pod on the same bridge: the reply would go pod to pod).
  With br_netfilter on (as on these kernels), a frame DNATed back to the pod that sent it leaves
  by the port it came in on, so the pod's bridge port needs ``hairpin on`` (kubelet's
  "hairpin-veth" mode) for a pod to reach itself through a Service.
- Baseline isolation (``pod-guard``): a pod never reaches this host (input: anything from the pod
  bridge or from any pod address) nor the management network (forward), except connections a
  Service DNATed (``ct status dnat``) and replies (``ct state established,related``).

Chain and set names are short stable hashes of (namespace, name, port name[, endpoint]), so the
same service port always owns the same chains: that is what makes per-service incremental
transactions (:func:`update`) possible. :func:`full` rebuilds the table in one transaction
(``add table; delete table; add table ...``), so traffic never sees a half-built table.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from nestlab.proxy.desired import Endpoint, ServicePort

FAMILY_TABLE = "ip nestlab"
SERVICE_IPS = "service-ips"
NO_ENDPOINTS = "no-endpoint-services"
REJECT_CHAIN = "reject-chain"
FIREWALL_IPS = "firewall-ips"
FIREWALL_CHAIN = "firewall-check"
GUARD_CHAIN = "pod-guard"
HASH_CHARS = 12
"""base32 characters of the sha256 in chain names (60 bits: no collision among any lab's ports)."""
COMMENT_MAX = 128
"""nftables keeps at most 128 bytes of a comment."""
MAP_TYPE = "type ipv4_addr . inet_proto . inet_service : verdict"


@dataclass(frozen=True)
class HostNetwork:
    """This host's networks, which the NAT and isolation rules need."""

    pod_bridge: str
    """The pod bridge's name (``iifname`` of every packet a local pod sends)."""
    pods_cidr: str
    """The whole lab pod network (every host's pod subnet)."""
    management_cidr: str
    """The lab management network pods must never reach on their own."""
    pod_subnet: str = ""
    """This host's pod subnet ("" on a host without pods: no hairpin rule)."""

    def __post_init__(self) -> None:
        for name in ("pods_cidr", "management_cidr", "pod_subnet"):
            value = getattr(self, name)
            if value:
                object.__setattr__(self, name, str(ipaddress.IPv4Network(value, strict=False)))


@dataclass(frozen=True)
class Chain:
    """A regular chain of the table and its rules."""

    name: str
    comment: str
    rules: tuple[str, ...]


@dataclass
class Objects:
    """Everything the service ports put in the table (base chains excluded)."""

    chains: dict[str, Chain] = field(default_factory=dict)
    sets: dict[str, int] = field(default_factory=dict)
    """Affinity sets: name -> timeout in seconds."""
    elements: dict[tuple[str, str], str] = field(default_factory=dict)
    """(map, key) -> verdict."""


def _hash(*parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return base64.b32encode(digest).decode()[:HASH_CHARS].lower()


def svc_chain(port: ServicePort) -> str:
    """The chain choosing an endpoint for ``port``."""
    return "svc-" + _hash(port.namespace, port.name, port.port_name)


def fw_chain(port: ServicePort) -> str:
    """The chain dropping clients outside ``port``'s loadBalancerSourceRanges."""
    return "fw-" + _hash(port.namespace, port.name, port.port_name)


def ep_chain(port: ServicePort, endpoint: Endpoint) -> str:
    """The chain DNATing ``port``'s traffic to ``endpoint``."""
    return "ep-" + _hash(port.namespace, port.name, port.port_name, endpoint.ip, str(endpoint.port))


def affinity_set(port: ServicePort, endpoint: Endpoint) -> str:
    """The set of clients stuck to ``endpoint``; its name changes with the timeout (sets are immutable)."""
    timeout = str(port.affinity_timeout)
    return "aff-" + _hash(port.namespace, port.name, port.port_name, endpoint.ip, str(endpoint.port), timeout)


def element_keys(port: ServicePort) -> list[str]:
    """``address . protocol . port`` of every address of ``port``."""
    return [f"{address} . {port.protocol} . {port.port}" for address in port.addresses]


def _comment(text: str) -> str:
    return text.replace('"', "")[:COMMENT_MAX]


def objects(ports: Iterable[ServicePort]) -> Objects:
    """The chains, sets and map elements that carry ``ports``."""
    found = Objects()
    for port in ports:
        if port.source_ranges is not None and port.load_balancer_ips:
            firewall = fw_chain(port)
            allowed = f"ip saddr != {{ {', '.join(port.source_ranges)} }} " if port.source_ranges else ""
            drop = f'{allowed}counter drop comment "outside loadBalancerSourceRanges"'
            found.chains[firewall] = Chain(firewall, _comment(port.key), (drop,))
            for address in port.load_balancer_ips:
                key = f"{address} . {port.protocol} . {port.port}"
                found.elements[(FIREWALL_IPS, key)] = f"goto {firewall}"
        if not port.endpoints:
            for key in element_keys(port):
                found.elements[(NO_ENDPOINTS, key)] = f"goto {REJECT_CHAIN}"
            continue
        svc = svc_chain(port)
        sticky: list[str] = []
        targets: list[str] = []
        for endpoint in sorted(set(port.endpoints)):  # the order given must not matter
            chain = ep_chain(port, endpoint)
            rules: list[str] = []
            if port.affinity_timeout is not None:
                clients = affinity_set(port, endpoint)
                found.sets[clients] = port.affinity_timeout
                rules.append(f"update @{clients} {{ ip saddr }}")
                sticky.append(f"ip saddr @{clients} goto {chain}")
            rules.append(f"meta l4proto {port.protocol} dnat to {endpoint.ip}:{endpoint.port}")
            comment = _comment(f"{port.key} -> {endpoint.ip}:{endpoint.port}")
            found.chains[chain] = Chain(chain, comment, tuple(rules))
            targets.append(chain)
        if len(targets) == 1:
            spread = f"goto {targets[0]}"
        else:
            choices = ", ".join(f"{index} : goto {chain}" for index, chain in enumerate(targets))
            spread = f"numgen random mod {len(targets)} vmap {{ {choices} }}"
        found.chains[svc] = Chain(svc, _comment(port.key), (*sticky, spread))
        for key in element_keys(port):
            found.elements[(SERVICE_IPS, key)] = f"goto {svc}"
    return found


def _create(chain: Chain) -> str:
    return f'add chain {FAMILY_TABLE} {chain.name} {{ comment "{chain.comment}" ; }}'


def _fill(chain: Chain) -> list[str]:
    return [f"add rule {FAMILY_TABLE} {chain.name} {rule}" for rule in chain.rules]


def _add_set(name: str, timeout: int) -> str:
    return f"add set {FAMILY_TABLE} {name} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"


def _element(verb: str, where: tuple[str, str], verdict: str | None = None) -> str:
    mapping, key = where
    value = f"{key} : {verdict}" if verdict is not None else key
    return f"{verb} element {FAMILY_TABLE} {mapping} {{ {value} }}"


def base(network: HostNetwork) -> list[str]:
    """The fixed part of the table: hooks, maps, masquerading, isolation (after ``add table``)."""
    t = FAMILY_TABLE
    lookup = "ip daddr . meta l4proto . th dport vmap"
    commands = [
        f'add map {t} {SERVICE_IPS} {{ {MAP_TYPE}; comment "service port -> svc chain"; }}',
        f'add map {t} {NO_ENDPOINTS} {{ {MAP_TYPE}; comment "service ports without endpoints"; }}',
        f'add map {t} {FIREWALL_IPS} {{ {MAP_TYPE}; comment "ingress IP:port -> fw chain"; }}',
    ]
    hooks = {
        # dstnat - 10: the firewall sees the address the client used, before any DNAT
        "filter-prerouting-pre-dnat": "type filter hook prerouting priority -110; policy accept;",
        "filter-output-pre-dnat": "type filter hook output priority -110; policy accept;",
        "nat-prerouting": "type nat hook prerouting priority dstnat; policy accept;",
        # -100 is dstnat: nft 1.0.6 accepts the keyword at prerouting only
        "nat-output": "type nat hook output priority -100; policy accept;",
        "nat-postrouting": "type nat hook postrouting priority srcnat; policy accept;",
        "filter-input": "type filter hook input priority filter; policy accept;",
        "filter-forward": "type filter hook forward priority filter; policy accept;",
        "filter-output": "type filter hook output priority filter; policy accept;",
    }
    commands += [f"add chain {t} {name} {{ {spec} }}" for name, spec in hooks.items()]
    for name in ("services", "masquerading", FIREWALL_CHAIN, GUARD_CHAIN, REJECT_CHAIN):
        commands.append(f"add chain {t} {name}")
    pods, mgmt, bridge = network.pods_cidr, network.management_cidr, network.pod_bridge
    masquerade = [
        f"ct status dnat ip saddr != {pods} masquerade fully-random",  # from the host, the outer machine
        f"ct status dnat ip daddr != {pods} masquerade fully-random",  # to nodes with no route to pods
    ]
    if network.pod_subnet:  # hairpin: the reply must come back through this host, not pod to pod
        subnet = network.pod_subnet
        masquerade.append(f"ct status dnat ip saddr {subnet} ip daddr {subnet} masquerade fully-random")
    rules = [
        ("filter-prerouting-pre-dnat", f"jump {FIREWALL_CHAIN}"),
        ("filter-output-pre-dnat", f"jump {FIREWALL_CHAIN}"),
        (FIREWALL_CHAIN, f"{lookup} @{FIREWALL_IPS}"),
        ("nat-prerouting", "jump services"),
        ("nat-output", "jump services"),
        ("services", f"{lookup} @{SERVICE_IPS}"),
        ("nat-postrouting", "jump masquerading"),
        *(("masquerading", rule) for rule in masquerade),
        ("filter-input", f"{lookup} @{NO_ENDPOINTS}"),
        ("filter-forward", f"{lookup} @{NO_ENDPOINTS}"),
        ("filter-output", f"{lookup} @{NO_ENDPOINTS}"),
        ("filter-input", f'iifname "{bridge}" jump {GUARD_CHAIN}'),
        ("filter-input", f"ip saddr {pods} jump {GUARD_CHAIN}"),  # other hosts' pods, to any local address
        ("filter-forward", f'iifname "{bridge}" ip daddr {mgmt} jump {GUARD_CHAIN}'),
        (GUARD_CHAIN, "ct state established,related return"),
        (GUARD_CHAIN, "ct status dnat return"),
        (GUARD_CHAIN, 'counter drop comment "pods reach the host and management only via Services"'),
        (REJECT_CHAIN, 'counter reject comment "service port without endpoints"'),
    ]
    commands += [f"add rule {t} {chain} {rule}" for chain, rule in rules]
    return commands


def full(network: HostNetwork, ports: Iterable[ServicePort]) -> list[str]:
    """One transaction replacing the whole table with ``ports`` (start-up, recovery)."""
    wanted = objects(ports)
    commands = [f"add table {FAMILY_TABLE}", f"delete table {FAMILY_TABLE}", f"add table {FAMILY_TABLE}"]
    commands += base(network)
    commands += [_add_set(name, timeout) for name, timeout in sorted(wanted.sets.items())]
    chains = sorted(wanted.chains.values(), key=lambda chain: chain.name)
    commands += [_create(chain) for chain in chains]
    for chain in chains:
        commands += _fill(chain)
    commands += [_element("add", where, verdict) for where, verdict in sorted(wanted.elements.items())]
    return commands


def update(previous: Iterable[ServicePort], desired: Iterable[ServicePort]) -> list[str]:
    """One transaction taking one Service from ``previous`` to ``desired`` (both as last rendered).

    Only what differs is touched: stale map elements go first (nothing new may collide with them),
    then new sets and chains are created, changed chains flushed and refilled, new elements added,
    and last the chains and sets nobody references any more are flushed and deleted. Empty when
    nothing changed.
    """
    old, new = objects(previous), objects(desired)
    commands: list[str] = []
    for where, verdict in sorted(old.elements.items()):
        if new.elements.get(where) != verdict:
            commands.append(_element("delete", where))
    for name, timeout in sorted(new.sets.items()):
        if name not in old.sets:
            commands.append(_add_set(name, timeout))
    created = [chain for name, chain in sorted(new.chains.items()) if name not in old.chains]
    commands += [_create(chain) for chain in created]
    for name, chain in sorted(new.chains.items()):
        before = old.chains.get(name)
        if before is None:
            commands += _fill(chain)
        elif before != chain:
            commands.append(f"flush chain {FAMILY_TABLE} {name}")
            commands += _fill(chain)
    for where, verdict in sorted(new.elements.items()):
        if old.elements.get(where) != verdict:
            commands.append(_element("add", where, verdict))
    gone = sorted(name for name in old.chains if name not in new.chains)
    commands += [f"flush chain {FAMILY_TABLE} {name}" for name in gone]
    commands += [f"delete chain {FAMILY_TABLE} {name}" for name in gone]
    commands += [f"delete set {FAMILY_TABLE} {name}" for name in sorted(old.sets) if name not in new.sets]
    return commands
