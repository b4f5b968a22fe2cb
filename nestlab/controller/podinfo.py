"""What the scheduler reads from a pod and from a node, worked out once: upstream's PodInfo/NodeInfo.

Every filter and score asks the same questions of the same objects: what the pod requests (with
upstream's rules for init containers, sidecars and overhead), which affinity terms and spread
constraints it carries, which taints a node has and what is already placed on it. Answering them
here, once per pod and per node, keeps the plugins of :mod:`nestlab.controller.scoring` about
scheduling and the reading of raw fields in one place. Malformed fields never raise here: the API
server validates them (:mod:`nestlab.api.affinity`), and anything else reads as absent, so one bad
pod cannot stop the scheduler.

Where the lab differs: a node whose Ready condition is not True counts as carrying the
``not-ready``/``unreachable`` NoSchedule taint that upstream's node lifecycle controller would
add; the system default spreading groups pods by controller owner (or, without one, pods that
carry all of the pod's labels) instead of by the Services and ReplicaSets selecting them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from nestlab.api import quantity
from nestlab.api.matching import as_dict, as_list, label_selector_matches

Obj = dict[str, Any]
HOSTNAME = "kubernetes.io/hostname"
NOT_READY, UNREACHABLE = "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"
DEFAULT_MILLI_CPU = 100  # upstream DefaultMilliCPURequest: what a missing cpu request counts as
DEFAULT_MEMORY = 200 * 1024 * 1024  # upstream DefaultMemoryRequest (200Mi)
DEFAULT_HOST_SKEW = 3  # upstream systemDefaultConstraints: hostname, maxSkew 3, ScheduleAnyway
HARD_AFFINITY_WEIGHT = 1  # upstream InterPodAffinityArgs.hardPodAffinityWeight default


# --- what a pod requests and what it tolerates -------------------------------------------------


def _milli(value: Any) -> int:
    try:
        return math.ceil(quantity.parse(value) * 1000)
    except (quantity.QuantityError, TypeError):
        return 0


def _units(value: Any) -> int:
    try:
        return math.ceil(quantity.parse(value))
    except (quantity.QuantityError, TypeError):
        return 0


def int_or(value: Any, default: int) -> int:
    """An integer field the API validated; ``default`` for anything else (never crash a pass)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _container(container: Any, nonzero: bool) -> tuple[int, int]:
    wanted = as_dict(as_dict(as_dict(container).get("resources")).get("requests"))
    cpu = _milli(wanted["cpu"]) if "cpu" in wanted else (DEFAULT_MILLI_CPU if nonzero else 0)
    memory = _units(wanted["memory"]) if "memory" in wanted else (DEFAULT_MEMORY if nonzero else 0)
    return cpu, memory


def requests(pod: Obj, *, nonzero: bool = False) -> tuple[int, int]:
    """(milli-cpu, memory bytes) the pod requests, as upstream adds them up: containers summed,
    sidecars (restartable init containers) added, the largest init container as a floor, overhead
    on top. ``nonzero`` counts a missing request as 100m / 200Mi (upstream NonZeroRequested)."""
    spec = as_dict(pod.get("spec"))
    cpu = sum(_container(c, nonzero)[0] for c in as_list(spec.get("containers")))
    memory = sum(_container(c, nonzero)[1] for c in as_list(spec.get("containers")))
    side_cpu = side_memory = floor_cpu = floor_memory = 0
    for init in as_list(spec.get("initContainers")):
        one_cpu, one_memory = _container(init, nonzero)
        if as_dict(init).get("restartPolicy") == "Always":
            side_cpu, side_memory = side_cpu + one_cpu, side_memory + one_memory
            floor_cpu, floor_memory = max(floor_cpu, side_cpu), max(floor_memory, side_memory)
        else:
            floor_cpu = max(floor_cpu, side_cpu + one_cpu)
            floor_memory = max(floor_memory, side_memory + one_memory)
    overhead = as_dict(spec.get("overhead"))
    cpu = max(cpu + side_cpu, floor_cpu) + (_milli(overhead["cpu"]) if "cpu" in overhead else 0)
    memory = max(memory + side_memory, floor_memory) + (
        _units(overhead["memory"]) if "memory" in overhead else 0
    )
    return cpu, memory


def tolerates(pod: Obj, taint: Obj, effects: tuple[str, ...] = ()) -> bool:
    """upstream ToleratesTaint for any of the pod's tolerations (restricted to ``effects`` if given)."""
    for item in as_list(as_dict(pod.get("spec")).get("tolerations")):
        toleration = as_dict(item)
        effect = toleration.get("effect") or ""
        if effects and effect not in effects:
            continue
        if effect and effect != taint.get("effect"):
            continue
        if toleration.get("key") and toleration.get("key") != taint.get("key"):
            continue
        operator = toleration.get("operator") or "Equal"
        if operator == "Exists" or (
            operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")
        ):
            return True
    return False


# --- what the scheduler knows about pods and nodes (upstream PodInfo / NodeInfo) ----------------


@dataclass(frozen=True)
class Term:
    """A pod (anti-)affinity term resolved against the pod that carries it."""

    namespaces: frozenset[str]
    namespace_selector: Obj | None
    selector: Obj | None
    key: str
    weight: int = 1

    def matches(self, pod: PodInfo) -> bool:
        """``pod`` is in one of the term's namespaces and has the labels it selects."""
        if pod.namespace not in self.namespaces and not label_selector_matches(
            self.namespace_selector, pod.namespace_labels
        ):
            return False
        return label_selector_matches(self.selector, pod.labels)


def _merged(selector: Any, labels: dict[str, str], match: list[Any], mismatch: list[Any]) -> Obj | None:
    """A selector with ``matchLabelKeys``/``mismatchLabelKeys`` folded in (keys the pod lacks skipped)."""
    if not isinstance(selector, dict):
        return None
    extra = [{"key": k, "operator": "In", "values": [labels[k]]} for k in match if k in labels]
    extra += [{"key": k, "operator": "NotIn", "values": [labels[k]]} for k in mismatch if k in labels]
    return {**selector, "matchExpressions": [*as_list(selector.get("matchExpressions")), *extra]}


def _terms(raw: Any, namespace: str, labels: dict[str, str], weighted: bool) -> list[Term]:
    terms = []
    for item in map(as_dict, as_list(raw)):
        term = as_dict(item.get("podAffinityTerm")) if weighted else item
        names = frozenset(n for n in as_list(term.get("namespaces")) if isinstance(n, str))
        if not names and term.get("namespaceSelector") is None:
            names = frozenset({namespace})
        selector = _merged(
            term.get("labelSelector"),
            labels,
            as_list(term.get("matchLabelKeys")),
            as_list(term.get("mismatchLabelKeys")),
        )
        weight = int_or(item.get("weight"), 1) if weighted else HARD_AFFINITY_WEIGHT
        terms.append(
            Term(names, term.get("namespaceSelector"), selector, str(term.get("topologyKey", "")), weight)
        )
    return terms


@dataclass
class PodInfo:
    """A pod with what the filters and scores read from it, computed once."""

    obj: Obj
    key: tuple[str, str]
    labels: dict[str, str]
    namespace_labels: dict[str, str]
    requests: tuple[int, int]
    """(milli-cpu, memory bytes) requested."""
    nonzero: tuple[int, int]
    """The same with upstream's defaults for missing requests (how BestEffort pods still count)."""
    owner: str
    """The uid of the controller in ``metadata.ownerReferences`` ("" when none)."""
    terminating: bool
    affinity: list[Term]
    anti_affinity: list[Term]
    preferred_affinity: list[Term]
    preferred_anti_affinity: list[Term]

    @property
    def namespace(self) -> str:
        return self.key[0]

    @property
    def has_affinity(self) -> bool:
        return bool(
            self.affinity or self.anti_affinity or self.preferred_affinity or self.preferred_anti_affinity
        )

    @classmethod
    def of(cls, pod: Obj, namespaces: dict[str, dict[str, str]]) -> PodInfo:
        meta = pod["metadata"]
        namespace, labels = meta.get("namespace", ""), dict(meta.get("labels") or {})
        references = map(as_dict, as_list(meta.get("ownerReferences")))
        owner = next((str(o.get("uid", "")) for o in references if o.get("controller")), "")
        affinity = as_dict(as_dict(pod.get("spec")).get("affinity"))
        near, far = as_dict(affinity.get("podAffinity")), as_dict(affinity.get("podAntiAffinity"))
        required, preferred = (
            "requiredDuringSchedulingIgnoredDuringExecution",
            "preferredDuringSchedulingIgnoredDuringExecution",
        )
        return cls(
            pod, (namespace, meta["name"]), labels, namespaces.get(namespace, {}),
            requests(pod), requests(pod, nonzero=True), owner, bool(meta.get("deletionTimestamp")),
            _terms(near.get(required), namespace, labels, False),
            _terms(far.get(required), namespace, labels, False),
            _terms(near.get(preferred), namespace, labels, True),
            _terms(far.get(preferred), namespace, labels, True),
        )  # fmt: skip


@dataclass
class NodeInfo:
    """A node with the pods on it and what they request (kept current as pods are assumed)."""

    name: str
    labels: dict[str, str]
    taints: list[Obj]
    unschedulable: bool
    allocatable: tuple[int, int]
    max_pods: int
    pods: dict[tuple[str, str], PodInfo] = field(default_factory=dict)
    requested: list[int] = field(default_factory=lambda: [0, 0])
    nonzero: list[int] = field(default_factory=lambda: [0, 0])

    @classmethod
    def of(cls, node: Obj) -> NodeInfo:
        state, spec = node.get("status") or {}, node.get("spec") or {}
        have = {**(state.get("capacity") or {}), **(state.get("allocatable") or {})}
        taints = [as_dict(t) for t in as_list(spec.get("taints"))]
        ready: Obj = next((c for c in state.get("conditions") or [] if c.get("type") == "Ready"), {})
        if ready.get("status") != "True":  # what upstream's node lifecycle controller would add
            key = UNREACHABLE if ready.get("status") == "Unknown" else NOT_READY
            if not any(t.get("key") == key and t.get("effect") == "NoSchedule" for t in taints):
                taints.append({"key": key, "effect": "NoSchedule"})
        return cls(
            node["metadata"]["name"], dict(node["metadata"].get("labels") or {}), taints,
            bool(spec.get("unschedulable")), (_milli(have.get("cpu", 0)), _units(have.get("memory", 0))),
            _units(have.get("pods", 0)),
        )  # fmt: skip

    def add(self, pod: PodInfo) -> None:
        self.pods[pod.key] = pod
        for index in (0, 1):
            self.requested[index] += pod.requests[index]
            self.nonzero[index] += pod.nonzero[index]

    def remove(self, key: tuple[str, str]) -> None:
        pod = self.pods.pop(key, None)
        if pod is not None:
            for index in (0, 1):
                self.requested[index] -= pod.requests[index]
                self.nonzero[index] -= pod.nonzero[index]


@dataclass(frozen=True)
class Spread:
    """One topology spread constraint of the incoming pod (or the system default one)."""

    key: str
    max_skew: int
    min_domains: int = 1
    selector: Obj | None = None
    owner: str = ""
    """Count the pods of this controller instead of the selector (system default spreading)."""
    honor_affinity: bool = True
    honor_taints: bool = False

    def counts(self, other: PodInfo, pod: PodInfo) -> bool:
        """Whether ``other`` counts towards ``pod``'s skew: same namespace, not terminating, selected."""
        if other.namespace != pod.namespace or other.terminating:
            return False
        return (
            other.owner == self.owner if self.owner else label_selector_matches(self.selector, other.labels)
        )


def spreads_of(pod: PodInfo, hard: bool) -> tuple[list[Spread], bool]:
    """The pod's DoNotSchedule (``hard``) or ScheduleAnyway constraints, and whether it has any
    of its own; without any, the soft ones are the system default: spread over hostnames."""
    own = [as_dict(c) for c in as_list(as_dict(pod.obj.get("spec")).get("topologySpreadConstraints"))]
    if not own:
        if hard:
            return [], False
        if pod.owner:
            return [Spread(HOSTNAME, DEFAULT_HOST_SKEW, owner=pod.owner)], False
        if pod.labels:
            return [Spread(HOSTNAME, DEFAULT_HOST_SKEW, selector={"matchLabels": pod.labels})], False
        return [], False
    wanted = "DoNotSchedule" if hard else "ScheduleAnyway"
    spreads = []
    for c in own:
        if c.get("whenUnsatisfiable") != wanted:
            continue
        selector = _merged(c.get("labelSelector"), pod.labels, as_list(c.get("matchLabelKeys")), [])
        honor_affinity = c.get("nodeAffinityPolicy", "Honor") == "Honor"
        honor_taints = c.get("nodeTaintsPolicy", "Ignore") == "Honor"
        skew, domains = int_or(c.get("maxSkew"), 1), int_or(c.get("minDomains"), 1)
        key = str(c.get("topologyKey", ""))
        spreads.append(Spread(key, skew, domains, selector, "", honor_affinity, honor_taints))
    return spreads, True
