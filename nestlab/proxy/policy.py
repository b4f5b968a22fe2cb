"""NetworkPolicy compiled to nftables: the NSX distributed firewall on one host's pod bridge (pure).

Each host filters only its own pods, as NSX programs the distributed firewall at each vNIC: a
packet leaving a local pod is checked against that pod's egress policies, a packet reaching a
local pod against its ingress policies, both in the ``forward`` hook of table ``ip
nestlab-policy`` (bridged pod-to-pod traffic reaches it through br_netfilter; the hook sees
Service traffic after DNAT, so egress rules match the endpoint chosen, as upstream specifies).

The shape keeps the rule count proportional to the policies, not to pods x policies::

    gate            ct state established,related accept       (replies always pass)
                    ip saddr @egress_isolated jump egress_check
                    goto ingress_check
    egress_check    ip saddr @np_<id>_pods jump np_<id>_out    (one rule per Egress policy)
                    counter drop
    np_<id>_out     <peer> <ports> goto ingress_check          (one rule per rule x peer kind x port kind)
    ingress_check   ip daddr != @ingress_isolated accept        (default allow)
                    ip daddr @np_<id>_pods jump np_<id>_in      (one rule per Ingress policy)
                    counter drop
    np_<id>_in      <peer> <ports> accept

Pods enter through set elements: the local pods a policy selects (``np_<id>_pods``), the pod
addresses its selector peers match anywhere in the cluster (``np_<id>_in<k>``/``_out<k>``) and,
for named ports, ``address . protocol . port`` of the pods declaring that name (``..._named``).
``<id>`` is a digest of ``namespace/name``; every rule carries the policy's name as a comment.

As upstream allows, traffic from the pod's own host (the agent's probes) is never filtered: it
leaves through the ``output`` hook, not ``forward``. Connections established before a policy
changes keep flowing (their packets are ``established``), as with most upstream plugins.

:func:`compile_ruleset` gives the desired :class:`Ruleset`; :mod:`nestlab.proxy.policynft`
turns one into nft commands (a full transaction, or the difference between two).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nestlab.api.kinds.common import selector_matches

Obj = dict[str, Any]
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Every namespace carries its own name as this label (upstream, since 1.21): what lets a
namespaceSelector pick one namespace by name."""
GATE, EGRESS, INGRESS = "gate", "egress_check", "ingress_check"
EGRESS_ISOLATED, INGRESS_ISOLATED = "egress_isolated", "ingress_isolated"
ADDRESS = "ipv4_addr"
NAMED = "ipv4_addr . inet_proto . inet_service"
_COMMENT_MAX = 120  # nftables keeps at most 128 bytes of a rule comment


@dataclass(frozen=True)
class Pod:
    """What the firewall needs of a pod: where it lives, its labels and its named ports."""

    namespace: str
    name: str
    ip: str
    node: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[tuple[str, str, int], ...] = ()
    """(name, protocol, containerPort) of every named container port."""


@dataclass(frozen=True)
class NftSet:
    """One named set of table ``ip nestlab-policy``."""

    type: str
    elements: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Ruleset:
    """The whole desired table: named sets and chains (rules as nft text, in order)."""

    sets: Mapping[str, NftSet]
    chains: Mapping[str, tuple[str, ...]]


def pod_of(obj: Obj) -> Pod | None:
    """The firewall's view of an API pod; None when it has no address or has finished."""
    meta, spec, state = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    ip = state.get("podIP")
    if not ip or state.get("phase") in ("Succeeded", "Failed") or spec.get("hostNetwork"):
        return None
    try:
        if ipaddress.ip_address(ip).version != 4:
            return None
    except ValueError:
        return None
    ports = tuple(
        (str(port["name"]), str(port.get("protocol") or "TCP"), int(port["containerPort"]))
        for container in spec.get("containers") or []
        for port in (container.get("ports") or [])
        if port.get("name") and isinstance(port.get("containerPort"), int)
    )
    return Pod(
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        str(ip),
        str(spec.get("nodeName") or ""),
        dict(meta.get("labels") or {}),
        ports,
    )


def namespace_labels(namespaces: Iterable[Obj]) -> dict[str, dict[str, str]]:
    """Namespace name -> labels, with ``kubernetes.io/metadata.name`` as upstream guarantees it."""
    found = {}
    for obj in namespaces:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        found[name] = {**(meta.get("labels") or {}), NAMESPACE_NAME_LABEL: name}
    return found


def policy_id(namespace: str, name: str) -> str:
    """The short, stable name fragment of a policy's chains and sets (``np_<10 hex>``)."""
    return "np_" + hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:10]


def _selects(policy: Obj, pod: Pod) -> bool:
    meta, spec = policy.get("metadata") or {}, policy.get("spec") or {}
    return pod.namespace == meta.get("namespace") and selector_matches(
        spec.get("podSelector") or {}, pod.labels
    )


def _peer_matches(peer: Obj, home: str, pod: Pod, namespaces: Mapping[str, Mapping[str, str]]) -> bool:
    """Whether a podSelector/namespaceSelector peer of a policy in ``home`` matches ``pod``."""
    pods, spaces = peer.get("podSelector"), peer.get("namespaceSelector")
    if spaces is None:
        in_namespace = pod.namespace == home
    else:
        labels = namespaces.get(pod.namespace, {NAMESPACE_NAME_LABEL: pod.namespace})
        in_namespace = selector_matches(spaces, labels)
    return in_namespace and (pods is None or selector_matches(pods, pod.labels))


def _network(text: str) -> ipaddress.IPv4Network | None:
    network = ipaddress.ip_network(text, strict=False)
    return network if isinstance(network, ipaddress.IPv4Network) else None


def _ip_block(block: Obj, field_name: str) -> str | None:
    """``ip saddr 10.0.0.0/8 ip saddr != { 10.1.0.0/16 }``; None for an IPv6 block (never matches)."""
    network = _network(str(block.get("cidr") or ""))
    if network is None:
        return None
    excepts = [n for text in block.get("except") or [] if (n := _network(str(text))) is not None]
    text = f"ip {field_name} {network}"
    if excepts:
        text += (
            f" ip {field_name} != {{ {', '.join(str(n) for n in ipaddress.collapse_addresses(excepts))} }}"
        )
    return text


def _numeric_ports(ports: list[Obj]) -> str | None:
    """The match of a rule's numeric and protocol-only ports; None when it has none."""
    entries = []
    for port in ports:
        protocol, number = str(port.get("protocol") or "TCP").lower(), port.get("port")
        if number is None:
            entries.append((protocol, ""))
        elif isinstance(number, int):
            end = port.get("endPort")
            entries.append((protocol, f"{number}-{end}" if end and end > number else str(number)))
    if not entries:
        return None
    if len(entries) == 1:
        protocol, span = entries[0]
        return f"meta l4proto {protocol}" + (f" th dport {span}" if span else "")
    items = sorted({f"{protocol} . {span or '0-65535'}" for protocol, span in entries})
    return f"meta l4proto . th dport {{ {', '.join(items)} }}"


def _named_elements(ports: list[Obj], pods: Iterable[Pod]) -> frozenset[str]:
    """``address . protocol . port`` of each pod declaring one of the rule's named ports."""
    wanted = {
        (str(p["port"]), str(p.get("protocol") or "TCP")) for p in ports if isinstance(p.get("port"), str)
    }
    return frozenset(
        f"{pod.ip} . {protocol.lower()} . {number}"
        for pod in pods
        for name, protocol, number in pod.ports
        if (name, protocol) in wanted
    )


def _comment(text: str) -> str:
    return f' comment "{text[:_COMMENT_MAX]}"'


@dataclass
class _Builder:
    """Accumulates the table's sets and chains while the policies are compiled."""

    pods: list[Pod]
    """Every pod of the cluster with an address: the candidates for peers and named ports."""
    namespaces: Mapping[str, Mapping[str, str]]
    sets: dict[str, NftSet] = field(default_factory=dict)
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def add_set(self, name: str, kind: str, elements: Iterable[str]) -> str:
        self.sets[name] = NftSet(kind, frozenset(elements))
        return name

    def chain(self, policy: Obj, direction: str, targets: list[Pod]) -> str:
        """The chain of one policy's ingress (``in``) or egress (``out``) rules; returns its name."""
        meta, spec = policy["metadata"], policy.get("spec") or {}
        key = "ingress" if direction == "in" else "egress"
        rules: list[str] = []
        for index, rule in enumerate(spec.get(key) or []):
            rules += self._rule(policy, direction, index, rule, targets)
        name = f"{policy_id(meta['namespace'], meta['name'])}_{direction}"
        self.chains[name] = tuple(rules)
        return name

    def _rule(self, policy: Obj, direction: str, index: int, rule: Obj, targets: list[Pod]) -> list[str]:
        """The nft rules of one ingress/egress rule: each kind of peer match x each kind of port match."""
        meta = policy["metadata"]
        home, ident = str(meta["namespace"]), policy_id(meta["namespace"], meta["name"])
        ingress = direction == "in"
        peers_key, address = ("from", "saddr") if ingress else ("to", "daddr")
        peers, ports = rule.get(peers_key) or [], rule.get("ports") or []
        peer_matches: list[str | None] = [] if peers else [""]
        selector_peers = [p for p in peers if p.get("ipBlock") is None]
        if selector_peers:
            matched = {
                pod.ip
                for pod in self.pods
                if any(_peer_matches(p, home, pod, self.namespaces) for p in selector_peers)
            }
            name = self.add_set(f"{ident}_{direction}{index}", ADDRESS, matched)
            peer_matches.append(f"ip {address} @{name}")
        peer_matches += [_ip_block(p["ipBlock"], address) for p in peers if p.get("ipBlock") is not None]
        port_matches: list[str | None] = [] if ports else [""]
        if ports:
            port_matches.append(_numeric_ports(ports))
        if any(isinstance(p.get("port"), str) for p in ports):
            owners = targets if ingress else self.pods  # the named port is the destination pod's
            elements = _named_elements(ports, owners)
            name = self.add_set(f"{ident}_{direction}{index}_named", NAMED, elements)
            port_matches.append(f"ip daddr . meta l4proto . th dport @{name}")
        verdict = "accept" if ingress else f"goto {INGRESS}"
        where = _comment(f"{home}/{meta['name']} {'ingress' if ingress else 'egress'}[{index}]")
        return [
            " ".join(part for part in (peer, port, verdict) if part) + where
            for peer in peer_matches
            for port in port_matches
            if peer is not None and port is not None
        ]


def compile_ruleset(
    node: str, pods: Iterable[Pod], namespaces: Mapping[str, Mapping[str, str]], policies: Iterable[Obj]
) -> Ruleset:
    """The desired table for host ``node``: its own pods isolated and allowed as the policies say.

    ``pods`` are all pods of the cluster with an address (peers may live anywhere); the pods whose
    ``node`` is ``node`` are the ones this host filters.
    """
    everyone = sorted(pods, key=lambda p: (p.namespace, p.name))
    local = [pod for pod in everyone if pod.node == node]
    build = _Builder(everyone, namespaces)
    egress_jumps, ingress_jumps = [], []
    egress_isolated: set[str] = set()
    ingress_isolated: set[str] = set()
    ordered = sorted(policies, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
    for policy in ordered:
        meta, spec = policy["metadata"], policy.get("spec") or {}
        ident, where = policy_id(meta["namespace"], meta["name"]), f"{meta['namespace']}/{meta['name']}"
        types = spec.get("policyTypes") or (["Ingress", "Egress"] if spec.get("egress") else ["Ingress"])
        targets = [pod for pod in local if _selects(policy, pod)]
        members = build.add_set(f"{ident}_pods", ADDRESS, (pod.ip for pod in targets))
        if "Ingress" in types:
            chain = build.chain(policy, "in", targets)
            ingress_jumps.append(f"ip daddr @{members} jump {chain}" + _comment(where))
            ingress_isolated.update(pod.ip for pod in targets)
        if "Egress" in types:
            chain = build.chain(policy, "out", targets)
            egress_jumps.append(f"ip saddr @{members} jump {chain}" + _comment(where))
            egress_isolated.update(pod.ip for pod in targets)
    build.add_set(EGRESS_ISOLATED, ADDRESS, egress_isolated)
    build.add_set(INGRESS_ISOLATED, ADDRESS, ingress_isolated)
    build.chains[GATE] = (
        "ct state established,related accept",
        f"ip saddr @{EGRESS_ISOLATED} jump {EGRESS}",
        f"goto {INGRESS}",
    )
    build.chains[EGRESS] = (*egress_jumps, "counter drop" + _comment("egress not allowed by any policy"))
    build.chains[INGRESS] = (
        f"ip daddr != @{INGRESS_ISOLATED} accept",
        *ingress_jumps,
        "counter drop" + _comment("ingress not allowed by any policy"),
    )
    return Ruleset(build.sets, build.chains)
