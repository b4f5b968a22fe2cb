"""What a scheduling pass keeps up to date as pods are placed, so one pod's decision is not O(pods).

Upstream's scheduler cache keeps, per NodeInfo, the pods that carry affinity terms
(``PodsWithAffinity``) and those with required anti-affinity (``PodsWithRequiredAntiAffinity``):
a pod without (anti-)affinity of its own only has to look at those, not at every pod in the
cluster. Upstream then counts the pods that match a spread constraint on every node, per pod, in
16 goroutines; in Python that count, for 2000 placed pods and 50 nodes, was most of a pass (the
scheduler's CPU grew with pods x pods). Here the count is kept instead: the first pod that asks
for a constraint's matching pods gets them counted once per node, and every later placement
(:meth:`PodIndex.added`) adds itself to each count it matches. Pods that ask the same question
(same namespace, same controller, or the same selector) share one count: replicas of one
Deployment all read the same numbers.

The answers are the ones the full scans gave (tests/unit/controller/test_podindex.py checks them
against a rescan after every placement and removal).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from nestlab.controller.podinfo import NodeInfo, PodInfo, Spread

PodKey = tuple[str, str]
Placed = tuple[PodInfo, NodeInfo]


def _count_key(spread: Spread, namespace: str) -> tuple[str, str, str]:
    """Which pods a constraint counts depends on the namespace and on the owner or the selector."""
    if spread.owner:
        return namespace, spread.owner, ""
    return namespace, "", json.dumps(spread.selector, sort_keys=True, default=str)


@dataclass
class _Count:
    """Pods matching one constraint, per node name (nodes with none are absent)."""

    spread: Spread
    pod: PodInfo
    """A pod of the namespace that asked: :meth:`Spread.counts` reads only its namespace."""
    per_node: dict[str, int]


class PodIndex:
    """The placed pods that carry affinity terms, and kept counts of pods matching a constraint."""

    def __init__(self, nodes: Mapping[str, NodeInfo]) -> None:
        self._nodes = nodes
        self.with_affinity: dict[PodKey, Placed] = {}
        """Placed pods with any (anti-)affinity term, required or preferred (upstream PodsWithAffinity)."""
        self.required_anti: dict[PodKey, Placed] = {}
        """Placed pods with required anti-affinity (upstream PodsWithRequiredAntiAffinity)."""
        self._counts: dict[tuple[str, str, str], _Count] = {}
        self._by_namespace: dict[str, list[_Count]] = {}

    def added(self, pod: PodInfo, node: NodeInfo) -> None:
        """``pod`` was placed on ``node`` (already in ``node.pods``)."""
        if pod.has_affinity:
            self.with_affinity[pod.key] = (pod, node)
        if pod.anti_affinity:
            self.required_anti[pod.key] = (pod, node)
        for count in self._by_namespace.get(pod.namespace, ()):
            if count.spread.counts(pod, count.pod):
                count.per_node[node.name] = count.per_node.get(node.name, 0) + 1

    def removed(self, pod: PodInfo, node: NodeInfo) -> None:
        """``pod`` left ``node`` (a binding failed and the placement was undone)."""
        self.with_affinity.pop(pod.key, None)
        self.required_anti.pop(pod.key, None)
        for count in self._by_namespace.get(pod.namespace, ()):
            if count.spread.counts(pod, count.pod):
                left = count.per_node.get(node.name, 0) - 1
                if left > 0:
                    count.per_node[node.name] = left
                else:
                    count.per_node.pop(node.name, None)

    def matching(self, spread: Spread, pod: PodInfo) -> Mapping[str, int]:
        """Per node name, the placed pods that count towards ``pod``'s ``spread`` (absent: none)."""
        key = _count_key(spread, pod.namespace)
        count = self._counts.get(key)
        if count is None:
            per_node = {}
            for name, node in self._nodes.items():
                matched = sum(1 for other in node.pods.values() if spread.counts(other, pod))
                if matched:
                    per_node[name] = matched
            count = self._counts[key] = _Count(spread, pod, per_node)
            self._by_namespace.setdefault(pod.namespace, []).append(count)
        return count.per_node
