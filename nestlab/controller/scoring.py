"""One pod's scheduling cycle: what it works out once over all nodes, the filters that read it, the scores.

Upstream's PreFilter and PreScore plugins compute, once per pod, what the per-node Filter and Score
calls then read: matching pods per topology domain (PodTopologySpread), pods per domain that the
pod's required (anti-)affinity or other pods' anti-affinity involve (InterPodAffinity), node
affinity per node. :class:`Cycle` is that state, with the filters that need it and every score
plugin, each normalised to 0-100 as upstream does and summed with kube-scheduler's default weights.
:mod:`nestlab.controller.placement` runs the filters in upstream order and picks the best total.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

from nestlab.api.matching import (
    as_dict,
    as_list,
    label_selector_matches,
    node_selector_matches,
    node_selector_term_matches,
)
from nestlab.controller.podindex import PodIndex
from nestlab.controller.podinfo import HOSTNAME, NodeInfo, Obj, PodInfo, Spread, int_or, spreads_of, tolerates

SPREAD = "node(s) didn't match pod topology spread constraints"
SPREAD_LABEL = SPREAD + " (missing required label)"
AFFINITY = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
MAX_SCORE = 100  # upstream framework.MaxNodeScore: every score plugin ends in 0..100
# kube-scheduler's default profile (apis/config/v1/default_plugins.go); ImageLocality is left out:
# nodes here do not report images, so it would add the same to every node.
WEIGHTS = {
    "TaintToleration": 3,
    "NodeAffinity": 2,
    "NodeResourcesFit": 1,
    "PodTopologySpread": 2,
    "InterPodAffinity": 2,
    "NodeResourcesBalancedAllocation": 1,
}


def _normalize(raw: dict[str, int], reverse: bool) -> dict[str, int]:
    """upstream DefaultNormalizeScore: scale to 0..100 by the highest score (reversed: 100 - that)."""
    top = max(raw.values(), default=0)
    if top == 0:
        return dict.fromkeys(raw, MAX_SCORE if reverse else 0)
    return {
        name: MAX_SCORE - MAX_SCORE * v // top if reverse else MAX_SCORE * v // top for name, v in raw.items()
    }


def _least_allocated(pod: PodInfo, node: NodeInfo) -> int:
    """NodeResourcesFit LeastAllocated over cpu and memory, weight 1 each, non-zero requests."""
    total = counted = 0
    for index in (0, 1):
        have = node.allocatable[index]
        if have:
            want = node.nonzero[index] + pod.nonzero[index]
            total += 0 if want > have else (have - want) * MAX_SCORE // have
            counted += 1
    return total // counted if counted else 0


def _balanced(pod: PodInfo, node: NodeInfo) -> int:
    """NodeResourcesBalancedAllocation: 100 x (1 - std of the cpu and memory fractions)."""
    if not any(pod.requests):
        return 0  # upstream skips the plugin for a pod without requests
    fractions = [
        min(1.0, (node.requested[i] + pod.requests[i]) / node.allocatable[i])
        for i in (0, 1)
        if node.allocatable[i]
    ]
    spread = abs(fractions[0] - fractions[1]) / 2 if len(fractions) == 2 else 0.0
    return int((1 - spread) * MAX_SCORE)


class Cycle:
    """Everything one pod's placement computes once over all nodes (upstream PreFilter/PreScore)."""

    def __init__(self, pod: PodInfo, nodes: list[NodeInfo], index: PodIndex | None = None) -> None:
        self.pod, self.nodes = pod, nodes
        self.index = index or PodIndex({n.name: n for n in nodes})
        """The placed pods with affinity terms and the kept spread counts (over exactly ``nodes``)."""
        self.spec = as_dict(pod.obj.get("spec"))
        self.node_affinity = as_dict(as_dict(self.spec.get("affinity")).get("nodeAffinity"))
        self._node_affinity: dict[str, bool] = {}
        self._tolerated: dict[tuple[object, object, object], bool] = {}
        self.hard, _ = spreads_of(pod, hard=True)
        self.hard_counts = [
            self._domains(c, [n for n in nodes if all(h.key in n.labels for h in self.hard)])
            for c in self.hard
        ]
        self.near: Counter[tuple[str, str]] = Counter()  # pods matching all required affinity terms
        self.far: Counter[tuple[str, str]] = Counter()  # pods our required anti-affinity repels
        self.repelled: Counter[tuple[str, str]] = Counter()  # domains where others' anti-affinity repels us
        if pod.affinity or pod.anti_affinity:
            for node in nodes:
                for other in node.pods.values():
                    self._count(other, node)
        else:  # only others' required anti-affinity can matter (upstream: PodsWithRequiredAntiAffinity)
            for other, node in self.index.required_anti.values():
                self._count(other, node)

    def _count(self, other: PodInfo, node: NodeInfo) -> None:
        pod = self.pod
        if not (pod.affinity or pod.anti_affinity or other.anti_affinity):
            return  # the common case: nobody here has a required rule
        if pod.affinity and all(t.matches(other) for t in pod.affinity):
            self.near.update((t.key, node.labels[t.key]) for t in pod.affinity if t.key in node.labels)
        self.far.update(
            (t.key, node.labels[t.key])
            for t in pod.anti_affinity
            if t.key in node.labels and t.matches(other)
        )
        self.repelled.update(
            (t.key, node.labels[t.key])
            for t in other.anti_affinity
            if t.key in node.labels and t.matches(pod)
        )

    def _domains(self, spread: Spread, nodes: list[NodeInfo]) -> dict[str, int]:
        """Matching pods per topology value, over the nodes the constraint's inclusion policies admit."""
        counts: dict[str, int] = {}
        matching = self._matching(spread)
        for node in nodes:
            if spread.key not in node.labels or not self._included(spread, node):
                continue
            value = node.labels[spread.key]
            counts[value] = counts.get(value, 0) + matching.get(node.name, 0)
        return counts

    def _matching(self, spread: Spread) -> Mapping[str, int]:
        """Per node name, the placed pods that count towards ``spread`` (kept by the index)."""
        return self.index.matching(spread, self.pod)

    def _included(self, spread: Spread, node: NodeInfo) -> bool:
        if spread.honor_affinity and not self.node_affinity_ok(node):
            return False
        blocking = (t for t in node.taints if t.get("effect") in ("NoSchedule", "NoExecute"))
        return not spread.honor_taints or all(self.tolerates(t) for t in blocking)

    def tolerates(self, taint: Obj) -> bool:
        """:func:`podinfo.tolerates` for this pod, worked out once per distinct taint (nodes share them)."""
        key = (taint.get("key"), taint.get("value"), taint.get("effect"))
        if not all(v is None or isinstance(v, str) for v in key):
            return tolerates(self.pod.obj, taint)
        if key not in self._tolerated:
            self._tolerated[key] = tolerates(self.pod.obj, taint)
        return self._tolerated[key]

    def node_affinity_ok(self, node: NodeInfo) -> bool:
        """NodeAffinity filter: the nodeSelector and the required node affinity both hold."""
        if node.name not in self._node_affinity:
            selector = as_dict(self.spec.get("nodeSelector"))
            required = self.node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
            self._node_affinity[node.name] = all(node.labels.get(k) == v for k, v in selector.items()) and (
                required is None or node_selector_matches(required, node.labels, node.name)
            )
        return self._node_affinity[node.name]

    def named_nodes(self) -> set[str] | None:
        """NodeAffinity PreFilter: when every required term names nodes (``matchFields``
        ``metadata.name In``), only those are looked at; None when the terms do not narrow."""
        required = as_dict(self.node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution"))
        terms = [as_dict(t) for t in as_list(required.get("nodeSelectorTerms"))]
        names: set[str] = set()
        for term in terms:
            named: set[str] | None = None
            for field_requirement in map(as_dict, as_list(term.get("matchFields"))):
                if (
                    field_requirement.get("key") == "metadata.name"
                    and field_requirement.get("operator") == "In"
                ):
                    values = {str(v) for v in as_list(field_requirement.get("values"))}
                    named = values if named is None else named & values
            if named is None:
                return None  # this term may match any node (terms are ORed)
            names |= named
        return names if terms else None

    def spread_refusal(self, node: NodeInfo) -> str | None:
        """PodTopologySpread filter: existing matches + self - global minimum <= maxSkew."""
        for spread, domains in zip(self.hard, self.hard_counts, strict=True):
            if spread.key not in node.labels:
                return SPREAD_LABEL
            if not domains:
                continue
            minimum = 0 if len(domains) < spread.min_domains else min(domains.values())
            mine = 1 if label_selector_matches(spread.selector, self.pod.labels) else 0
            if domains.get(node.labels[spread.key], 0) + mine - minimum > spread.max_skew:
                return SPREAD
        return None

    def affinity_refusal(self, node: NodeInfo) -> str | None:
        """InterPodAffinity filter: our required affinity, our anti-affinity, then theirs."""
        pod = self.pod
        if pod.affinity:
            if any(t.key not in node.labels for t in pod.affinity):
                return AFFINITY
            missing = any(self.near[(t.key, node.labels[t.key])] <= 0 for t in pod.affinity)
            # the first of a group that wants to be together may go anywhere its terms allow
            if missing and (self.near or not all(t.matches(pod) for t in pod.affinity)):
                return AFFINITY
        if any(self.far[(t.key, node.labels[t.key])] > 0 for t in pod.anti_affinity if t.key in node.labels):
            return ANTI_AFFINITY
        if any(count > 0 and node.labels.get(key) == value for (key, value), count in self.repelled.items()):
            return EXISTING_ANTI_AFFINITY
        return None

    def scores(self, feasible: list[NodeInfo]) -> dict[str, int]:
        """The weighted sum of every score plugin (each normalised to 0..100) per feasible node."""
        pod = self.pod
        untolerated = {
            n.name: sum(
                1
                for t in n.taints
                if t.get("effect") == "PreferNoSchedule"
                and not tolerates(pod.obj, t, ("", "PreferNoSchedule"))
            )
            for n in feasible
        }
        preferred = [
            as_dict(t)
            for t in as_list(self.node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution"))
        ]
        liked = {
            n.name: sum(
                int_or(t.get("weight"), 0)
                for t in preferred
                if node_selector_term_matches(t.get("preference"), n.labels, n.name)
            )
            for n in feasible
        }
        plugins = {
            "TaintToleration": _normalize(untolerated, reverse=True),
            "NodeAffinity": _normalize(liked, reverse=False),
            "NodeResourcesFit": {n.name: _least_allocated(pod, n) for n in feasible},
            "NodeResourcesBalancedAllocation": {n.name: _balanced(pod, n) for n in feasible},
            "PodTopologySpread": self._spread_scores(feasible),
            "InterPodAffinity": self._affinity_scores(feasible),
        }
        return {n.name: sum(WEIGHTS[p] * scores[n.name] for p, scores in plugins.items()) for n in feasible}

    def _spread_scores(self, feasible: list[NodeInfo]) -> dict[str, int]:
        """PodTopologySpread score: fewer matching pods in a node's domains scores higher."""
        soft, own = spreads_of(self.pod, hard=False)
        if not soft:
            return {n.name: 0 for n in feasible}
        scored = [n for n in feasible if not own or all(c.key in n.labels for c in soft)]
        admitted = [n for n in self.nodes if not own or all(c.key in n.labels for c in soft)]
        raw: dict[str, int] = {}
        domains = [
            {}
            if c.key == HOSTNAME
            else {
                k: v
                for k, v in self._domains(c, admitted).items()
                if k in {n.labels.get(c.key) for n in scored}
            }
            for c in soft
        ]
        sizes = [len(scored) if c.key == HOSTNAME else len(d) for c, d in zip(soft, domains, strict=True)]
        on_host = [self._matching(c) if c.key == HOSTNAME else {} for c in soft]
        for node in scored:
            total = 0.0
            for spread, counts, size, mine in zip(soft, domains, sizes, on_host, strict=True):
                if spread.key not in node.labels:
                    continue
                if spread.key == HOSTNAME:
                    matched = mine.get(node.name, 0)
                else:
                    matched = counts.get(node.labels[spread.key], 0)
                total += matched * math.log(size + 2) + spread.max_skew - 1
            raw[node.name] = math.floor(total + 0.5)  # Go's math.Round on a positive number
        low, high = min(raw.values(), default=0), max(raw.values(), default=0)
        return {
            n.name: 0
            if n.name not in raw
            else MAX_SCORE
            if high == 0
            else MAX_SCORE * (high + low - raw[n.name]) // high
            for n in feasible
        }

    def _affinity_scores(self, feasible: list[NodeInfo]) -> dict[str, int]:
        """InterPodAffinity score: preferred terms both ways, and others' required affinity (weight 1)."""
        pod, topology = self.pod, Counter[tuple[str, str]]()
        own = pod.preferred_affinity or pod.preferred_anti_affinity
        # without preferred terms of its own, only placed pods with terms can score (upstream:
        # PodsWithAffinity); the order of the sum does not matter
        placed: Iterable[tuple[PodInfo, NodeInfo]] = (
            ((p, n) for n in self.nodes for p in n.pods.values())
            if own
            else self.index.with_affinity.values()
        )
        for other, node in placed:
            for terms, subject, sign in (
                (pod.preferred_affinity, other, 1), (pod.preferred_anti_affinity, other, -1),
                (other.affinity, pod, 1), (other.preferred_affinity, pod, 1),
                (other.preferred_anti_affinity, pod, -1),
            ):  # fmt: skip
                for t in terms:
                    if t.key in node.labels and t.matches(subject):
                        topology[(t.key, node.labels[t.key])] += sign * t.weight
        if not topology:
            return {n.name: 0 for n in feasible}
        raw = {
            n.name: sum(v for (k, value), v in topology.items() if n.labels.get(k) == value) for n in feasible
        }
        low, high = min(raw.values()), max(raw.values())
        return {
            name: int(MAX_SCORE * (v - low) / (high - low)) if high > low else 0 for name, v in raw.items()
        }
