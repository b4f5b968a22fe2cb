"""Where a pod may run: the scheduler's filters and score, as pure functions (DRS's job, in the lab).

Filters follow kube-scheduler's: the node is Ready and schedulable, its taints are tolerated, the
pod's nodeSelector matches, the requests fit in what is allocatable after the pods already there,
and required pod anti-affinity (in both directions) holds. Among the nodes left, the least
requested wins (spreading, like DRS balancing), ties broken by name so decisions are repeatable.
The refusal message has the upstream shape: ``0/3 nodes are available: 1 Insufficient cpu, ...``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nestlab.api import quantity

Obj = dict[str, Any]
_TERMINAL = ("Succeeded", "Failed")
_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


@dataclass(frozen=True)
class Decision:
    """The chosen node, or why none fits."""

    node: str | None
    reasons: Counter[str] = field(default_factory=Counter)
    nodes_seen: int = 0

    @property
    def message(self) -> str:
        """``0/N nodes are available: <count> <reason>, ...`` (empty when a node was chosen)."""
        if self.node is not None:
            return ""
        parts = [f"{count} {reason}" for reason, count in sorted(self.reasons.items())]
        return f"0/{self.nodes_seen} nodes are available: " + ", ".join(parts) + "."


def requests(pod: Obj) -> dict[str, Decimal]:
    """The pod's cpu and memory requests (sum over its containers)."""
    total = {"cpu": Decimal(0), "memory": Decimal(0)}
    for container in (pod.get("spec") or {}).get("containers") or []:
        for name, value in ((container.get("resources") or {}).get("requests") or {}).items():
            if name in total:
                total[name] += quantity.parse(value)
    return total


def _allocatable(node: Obj, name: str) -> Decimal:
    state = node.get("status") or {}
    value = (state.get("allocatable") or {}).get(name, (state.get("capacity") or {}).get(name))
    return quantity.parse(value) if value is not None else Decimal(0)


def is_ready(node: Obj) -> bool:
    """The node's Ready condition is True."""
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _taints(node: Obj) -> list[Obj]:
    taints = list((node.get("spec") or {}).get("taints") or [])
    if (node.get("spec") or {}).get("unschedulable"):
        taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    return [t for t in taints if t.get("effect") in _BLOCKING_EFFECTS]


def tolerates(pod: Obj, taint: Obj) -> bool:
    """Whether one of the pod's tolerations matches the taint (key, value, effect, operator)."""
    for toleration in (pod.get("spec") or {}).get("tolerations") or []:
        if toleration.get("effect") not in (None, "", taint.get("effect")):
            continue
        key, operator = toleration.get("key"), toleration.get("operator", "Equal")
        if not key and operator == "Exists":
            return True
        if key != taint.get("key"):
            continue
        if operator == "Exists" or toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels + matchExpressions) against labels; None matches nothing."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = (
            expression.get("key"),
            expression.get("operator"),
            expression.get("values") or [],
        )
        present = key in labels
        if (
            (operator == "In" and labels.get(key) not in values)
            or (operator == "NotIn" and present and labels[key] in values)
            or (operator == "Exists" and not present)
            or (operator == "DoesNotExist" and present)
        ):
            return False
    return True


def _anti_affinity_terms(pod: Obj) -> list[Obj]:
    anti = ((pod.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}
    return list(anti.get("requiredDuringSchedulingIgnoredDuringExecution") or [])


def _conflicts(term: Obj, owner: Obj, other: Obj, same_topology: bool) -> bool:
    """Whether ``other`` (sharing ``owner``'s topology domain or not) violates ``owner``'s term."""
    if not same_topology:
        return False
    namespaces = term.get("namespaces") or [owner["metadata"].get("namespace")]
    if other["metadata"].get("namespace") not in namespaces:
        return False
    return selector_matches(term.get("labelSelector"), other["metadata"].get("labels") or {})


def _anti_affinity_ok(pod: Obj, node: Obj, nodes: dict[str, Obj], placed: list[Obj]) -> bool:
    labels = node["metadata"].get("labels") or {}
    for other in placed:
        other_node = nodes.get((other.get("spec") or {}).get("nodeName", ""))
        if other_node is None:
            continue
        other_labels = other_node["metadata"].get("labels") or {}
        for term in _anti_affinity_terms(pod):
            key = term.get("topologyKey", "")
            if _conflicts(term, pod, other, key in labels and labels.get(key) == other_labels.get(key)):
                return False
        for term in _anti_affinity_terms(other):  # symmetry: existing pods' rules bind newcomers too
            key = term.get("topologyKey", "")
            if _conflicts(term, other, pod, key in labels and labels.get(key) == other_labels.get(key)):
                return False
    return True


def _untolerated(pod: Obj, node: Obj) -> str | None:
    for taint in _taints(node):
        if not tolerates(pod, taint):
            return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
    return None


def _misfit(pod: Obj, node: Obj, placed: list[Obj]) -> str | None:
    name = node["metadata"]["name"]
    here = [p for p in placed if (p.get("spec") or {}).get("nodeName") == name]
    if len(here) + 1 > _allocatable(node, "pods"):
        return "Too many pods"
    wanted = requests(pod)
    for resource in ("cpu", "memory"):
        used = sum((requests(p)[resource] for p in here), Decimal(0))
        if wanted[resource] and used + wanted[resource] > _allocatable(node, resource):
            return f"Insufficient {resource}"
    return None


def _refusal(pod: Obj, node: Obj, nodes: dict[str, Obj], placed: list[Obj]) -> str | None:
    """Why ``pod`` cannot go to ``node`` (upstream reason text), or None when it can."""
    labels = node["metadata"].get("labels") or {}
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    if not is_ready(node):
        return "node(s) were not ready"
    reason = _untolerated(pod, node)
    if reason is None and any(labels.get(k) != v for k, v in selector.items()):
        reason = "node(s) didn't match Pod's node affinity/selector"
    if reason is None:
        reason = _misfit(pod, node, placed)
    if reason is None and not _anti_affinity_ok(pod, node, nodes, placed):
        reason = "node(s) didn't match pod anti-affinity rules"
    return reason


def _load(node: Obj, placed: list[Obj]) -> Decimal:
    name = node["metadata"]["name"]
    here = [p for p in placed if (p.get("spec") or {}).get("nodeName") == name]
    shares = []
    for resource in ("cpu", "memory"):
        capacity = _allocatable(node, resource)
        used = sum((requests(p)[resource] for p in here), Decimal(0))
        shares.append(used / capacity if capacity else Decimal(1))
    return sum(shares, Decimal(0)) / len(shares)


def choose(pod: Obj, nodes: list[Obj], pods: list[Obj]) -> Decision:
    """The node for ``pod`` among ``nodes``, given the ``pods`` already placed (any namespace)."""
    placed = [
        p
        for p in pods
        if (p.get("status") or {}).get("phase") not in _TERMINAL and (p.get("spec") or {}).get("nodeName")
    ]
    by_name = {n["metadata"]["name"]: n for n in nodes}
    reasons: Counter[str] = Counter()
    fitting = []
    for node in nodes:
        refusal = _refusal(pod, node, by_name, placed)
        if refusal is None:
            fitting.append(node)
        else:
            reasons[refusal] += 1
    if not fitting:
        return Decision(None, reasons, len(nodes))
    best = min(fitting, key=lambda n: (_load(n, placed), n["metadata"]["name"]))
    return Decision(best["metadata"]["name"], reasons, len(nodes))
