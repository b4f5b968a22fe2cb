"""Where a pod may run and where it runs best: kube-scheduler's decision, as pure code.

DRS initial placement, in the lab, is kube-scheduler's default profile. A :class:`Snapshot` holds
the nodes with the pods on them (upstream's NodeInfo cache); :meth:`Snapshot.choose` runs, per
pod, the filters in upstream order (NodeUnschedulable, TaintToleration, NodeAffinity,
NodeResourcesFit, PodTopologySpread, InterPodAffinity; a node's first failing plugin gives its
reasons) and then, over the feasible nodes, the scores with upstream's normalisation to 0-100 and
default weights. :meth:`Snapshot.assume` adds a pod as soon as it is placed, so the next pod of
the same pass sees it (upstream "assumes" pods before binding them): replicas spread at once; what
the filters and scores count over placed pods is kept up to date as pods are assumed
(:mod:`nestlab.controller.podindex`), so deciding a pod without inter-pod terms of its own costs
O(nodes), not O(pods). When
no node fits, the :class:`Decision` says why in upstream's ``0/3 nodes are available: ...`` shape.

This module is the decision; what it reads from pods and nodes is :mod:`nestlab.controller.podinfo`
and the per-pod filter state and scores are :mod:`nestlab.controller.scoring`. Their public names
stay importable from here, as they were before the split.

Where the lab differs: ties go to the first name instead of a random pick, so decisions are
repeatable; the lab does not preempt, so the ``preemption:`` part of a refusal says what upstream
says when no pod has a lower priority (podinfo and scoring say where they differ).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nestlab.controller.podindex import PodIndex
from nestlab.controller.podinfo import (
    DEFAULT_HOST_SKEW,
    DEFAULT_MEMORY,
    DEFAULT_MILLI_CPU,
    HARD_AFFINITY_WEIGHT,
    HOSTNAME,
    NOT_READY,
    UNREACHABLE,
    NodeInfo,
    PodInfo,
    Spread,
    Term,
    requests,
    tolerates,
)
from nestlab.controller.scoring import (
    AFFINITY,
    ANTI_AFFINITY,
    EXISTING_ANTI_AFFINITY,
    MAX_SCORE,
    SPREAD,
    SPREAD_LABEL,
    WEIGHTS,
    Cycle,
)

# Every public name placement.py had before podinfo.py and scoring.py were split out of it, so that
# importers keep working: its own, and the ones those two modules now define.
__all__ = [
    "AFFINITY",
    "ANTI_AFFINITY",
    "CONFLICT",
    "DEFAULT_HOST_SKEW",
    "DEFAULT_MEMORY",
    "DEFAULT_MILLI_CPU",
    "EXISTING_ANTI_AFFINITY",
    "HARD_AFFINITY_WEIGHT",
    "HOSTNAME",
    "MAX_SCORE",
    "NEVER_PREEMPTS",
    "NODE_AFFINITY",
    "NOT_HELPFUL",
    "NOT_NAMED",
    "NOT_READY",
    "NO_NODES",
    "NO_VICTIMS",
    "SPREAD",
    "SPREAD_LABEL",
    "UNREACHABLE",
    "UNSCHEDULABLE",
    "WEIGHTS",
    "Cycle",
    "Decision",
    "NodeInfo",
    "Obj",
    "PodInfo",
    "Refusal",
    "Snapshot",
    "Spread",
    "Term",
    "choose",
    "histogram",
    "requests",
    "tolerates",
]

Obj = dict[str, Any]
_TERMINAL = ("Succeeded", "Failed")
NO_NODES = "no nodes available to schedule pods"  # upstream ErrNoNodesAvailable
UNSCHEDULABLE = "node(s) were unschedulable"
NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
NOT_NAMED = "node(s) didn't satisfy plugin(s) [NodeAffinity]"  # outside the nodes the pod names
CONFLICT = "pod affinity terms conflict"  # upstream NodeAffinity errReasonConflict
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
NEVER_PREEMPTS = "not eligible due to preemptionPolicy=Never."
_CORDON = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}  # what a cordon means


@dataclass(frozen=True)
class Refusal:
    """Why one node cannot take the pod: one plugin's reasons, and whether evicting could help."""

    reasons: tuple[str, ...]
    unresolvable: bool


def histogram(reasons: Counter[str]) -> str:
    """``1 Insufficient cpu, 2 node(s) ...``: upstream sorts the formatted strings, counts first."""
    return ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))


@dataclass(frozen=True)
class Decision:
    """The chosen node, or why none fits (per-reason node counts, and the preemption verdict)."""

    node: str | None
    reasons: Counter[str] = field(default_factory=Counter)
    nodes_seen: int = 0
    preemption: str = ""
    scores: dict[str, int] = field(default_factory=dict)
    prefilter: str = ""
    """Why the pod was refused before any node was looked at (it replaces the per-node reasons)."""

    @property
    def message(self) -> str:
        """upstream FitError: ``0/3 nodes are available: <reasons>. preemption: <verdict>``."""
        if self.node is not None:
            return ""
        if not self.nodes_seen:
            return NO_NODES
        text = f"0/{self.nodes_seen} nodes are available: {self.prefilter or histogram(self.reasons)}."
        return f"{text} preemption: {self.preemption}" if self.preemption else text


def _resource_refusal(pod: PodInfo, node: NodeInfo) -> Refusal | None:
    """NodeResourcesFit: pod count, then cpu and memory (requests as they are: 0 means none)."""
    reasons, unresolvable = [], False
    if len(node.pods) + 1 > node.max_pods:
        reasons.append("Too many pods")
    if any(pod.requests):
        for index, name in enumerate(("cpu", "memory")):
            want = pod.requests[index]
            if want and want > node.allocatable[index] - node.requested[index]:
                reasons.append(f"Insufficient {name}")
                unresolvable = unresolvable or want > node.allocatable[index]
    return Refusal(tuple(reasons), unresolvable) if reasons else None


class Snapshot:
    """The cluster for one scheduling pass: every node with the pods on it, kept up to date as the
    pass places pods (upstream's scheduler cache, without the informers)."""

    def __init__(
        self, nodes: list[Obj], pods: list[Obj], namespaces: dict[str, dict[str, str]] | None = None
    ) -> None:
        self.namespaces = namespaces or {}
        self.nodes = {
            n["metadata"]["name"]: NodeInfo.of(n) for n in sorted(nodes, key=lambda n: n["metadata"]["name"])
        }
        self.index = PodIndex(self.nodes)
        """Kept as pods are assumed and forgotten, so that one decision does not rescan every pod."""
        self._where: dict[tuple[str, str], str] = {}
        self._chosen: tuple[Obj, PodInfo] | None = None
        """The last pod :meth:`choose` read, so that assuming it right after does not read it again."""
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node and (pod.get("status") or {}).get("phase") not in _TERMINAL:
                self.assume(pod, node)

    def _pod(self, pod: Obj) -> PodInfo:
        if self._chosen is not None and self._chosen[0] is pod:
            return self._chosen[1]
        return PodInfo.of(pod, self.namespaces)

    def assume(self, pod: Obj, node: str) -> None:
        """Count ``pod`` on ``node`` from now on (placed in this pass, or found placed)."""
        info = self.nodes.get(node)
        key = (pod["metadata"].get("namespace", ""), pod["metadata"]["name"])
        if info is None or key in self._where:
            return
        placed = self._pod(pod)
        info.add(placed)
        self.index.added(placed, info)
        self._where[key] = node

    def forget(self, pod: Obj) -> None:
        """Undo :meth:`assume` (the binding failed)."""
        key = (pod["metadata"].get("namespace", ""), pod["metadata"]["name"])
        node = self._where.pop(key, None)
        if node is not None:
            info = self.nodes[node]
            placed = info.pods.get(key)
            info.remove(key)
            if placed is not None:
                self.index.removed(placed, info)

    def choose(self, pod: Obj) -> Decision:
        """The node for ``pod``, or a Decision whose message says, per node, why none fits."""
        if not self.nodes:
            return Decision(None)
        info = self._pod(pod)
        self._chosen = (pod, info)
        cycle = Cycle(info, list(self.nodes.values()), self.index)
        named = cycle.named_nodes()
        if named is not None and not named:
            verdicts = dict.fromkeys(self.nodes, Refusal((CONFLICT,), True))
            preemption = _preemption(pod, verdicts, len(self.nodes))
            return Decision(None, Counter(), len(self.nodes), preemption, prefilter=CONFLICT)
        reasons: Counter[str] = Counter()
        refused: dict[str, Refusal] = {}
        feasible = []
        for node in self.nodes.values():
            if named is not None and node.name not in named:
                refusal: Refusal | None = Refusal((NOT_NAMED,), True)
            else:
                refusal = self._refusal(pod, info, node, cycle)
            if refusal is None:
                feasible.append(node)
                continue
            refused[node.name] = refusal
            reasons.update(refusal.reasons)
        if not feasible:
            return Decision(None, reasons, len(self.nodes), _preemption(pod, refused, len(self.nodes)))
        if len(feasible) == 1:  # upstream skips scoring when only one node is left
            return Decision(feasible[0].name, reasons, len(self.nodes))
        totals = cycle.scores(feasible)
        best = min(feasible, key=lambda n: (-totals[n.name], n.name))
        return Decision(best.name, reasons, len(self.nodes), scores=totals)

    def _refusal(self, pod: Obj, info: PodInfo, node: NodeInfo, cycle: Cycle) -> Refusal | None:
        """The first failing filter plugin's verdict, in upstream's order; None when the node fits."""
        if node.unschedulable and not cycle.tolerates(_CORDON):
            return Refusal((UNSCHEDULABLE,), True)
        for taint in node.taints:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not cycle.tolerates(taint):
                text = f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
                return Refusal((text,), True)
        if not cycle.node_affinity_ok(node):
            return Refusal((NODE_AFFINITY,), True)
        refusal = _resource_refusal(info, node)
        if refusal is None:
            reason = cycle.spread_refusal(node) or cycle.affinity_refusal(node)
            refusal = None if reason is None else Refusal((reason,), reason in (SPREAD_LABEL, AFFINITY))
        return refusal


def _preemption(pod: Obj, refused: dict[str, Refusal], nodes: int) -> str:
    """DefaultPreemption's PostFilter verdict, as upstream words it when nobody has a lower priority."""
    if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
        return NEVER_PREEMPTS
    verdicts = Counter(NOT_HELPFUL if r.unresolvable else NO_VICTIMS for r in refused.values())
    return f"0/{nodes} nodes are available: {histogram(verdicts)}."


def choose(
    pod: Obj, nodes: list[Obj], pods: list[Obj], namespaces: dict[str, dict[str, str]] | None = None
) -> Decision:
    """The node for ``pod`` among ``nodes``, given the ``pods`` already placed (any namespace)."""
    return Snapshot(nodes, pods, namespaces).choose(pod)
