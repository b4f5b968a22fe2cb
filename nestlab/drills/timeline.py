"""The phases of a host failure, read from the API's view of one Node and one Deployment's pods.

Pure: :func:`reached` says which milestones one view shows, :class:`Timeline` keeps the first time
each was seen, :func:`split` turns those times into seconds per phase. The host-failure drill polls
the API and bench/host_failure.py watches it; both feed the same logic, so the drill's figures and
the bench's (docs/workloads.md) speak about the same thing:

- detection: the Node is NotReady or carries the unreachable taint (its Lease expired);
- eviction: every pod of the failed host is being deleted (its tolerationSeconds ran out);
- scheduling: the replacements exist and are bound to other hosts (ReplicaSet + scheduler);
- boot: the replacements are Ready (image, microVM boot, container start).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
PHASES = ("detection", "eviction", "scheduling", "boot")
UNREACHABLE = "node.kubernetes.io/unreachable"


def condition(obj: Obj, kind: str) -> str | None:
    """The status of condition ``kind`` of a pod or node, None when it has none."""
    for entry in (obj.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return str(entry.get("status"))
    return None


def pod_ready(pod: Obj) -> bool:
    """Ready=True and not being deleted: a replica that serves and stays."""
    return condition(pod, "Ready") == "True" and not pod["metadata"].get("deletionTimestamp")


def ready_count(pods: list[Obj]) -> int:
    """How many of ``pods`` serve."""
    return sum(1 for p in pods if pod_ready(p))


def reached(node: Obj | None, pods: list[Obj], host: str, old: set[str], replicas: int) -> set[str]:
    """The milestones true of one view of the API (``old``: uids of the pods on the failed host)."""
    done: set[str] = set()
    if node is not None:
        taints = {t.get("key") for t in (node.get("spec") or {}).get("taints") or []}
        if condition(node, "Ready") != "True" or UNREACHABLE in taints:
            done.add("detection")
    remaining = [
        p for p in pods if p["metadata"]["uid"] in old and not p["metadata"].get("deletionTimestamp")
    ]
    if not remaining:
        done.add("eviction")
    elsewhere = [
        p
        for p in pods
        if p["metadata"]["uid"] not in old
        and not p["metadata"].get("deletionTimestamp")
        and (p.get("spec") or {}).get("nodeName") not in (None, "", host)
    ]
    if len(elsewhere) >= replicas:
        done.add("scheduling")
    if sum(1 for p in elsewhere if pod_ready(p)) >= replicas:
        done.add("boot")
    return done


def split(start: float, first: dict[str, float]) -> dict[str, float]:
    """Seconds per phase, each from the previous milestone (a milestone seen early counts as 0)."""
    seconds, previous = {}, start
    for phase in PHASES:
        at = max(first[phase], previous)
        seconds[phase] = at - previous
        previous = at
    seconds["total"] = previous - start
    return seconds


@dataclass
class Timeline:
    """First time each milestone was seen; fed views of the Node and of the Deployment's pods."""

    host: str
    replicas: int
    old: set[str] = field(default_factory=set)
    """Uids of the pods on the failed host; empty until armed (the host has not failed yet)."""
    first: dict[str, float] = field(default_factory=dict)
    node: Obj | None = None
    pods: list[Obj] = field(default_factory=list)
    pods_known: bool = False
    """Pods were seen once: before that an empty list would read as "every old pod is gone"."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def nodes_seen(self, when: float, objects: dict[str, Obj]) -> None:
        with self.lock:
            self.node = next((n for n in objects.values() if n["metadata"]["name"] == self.host), None)
            self._mark(when)

    def pods_seen(self, when: float, objects: dict[str, Obj]) -> None:
        with self.lock:
            self.pods = list(objects.values())
            self.pods_known = True
            self._mark(when)

    def _mark(self, when: float) -> None:
        if not self.old or not self.pods_known:
            return
        for milestone in reached(self.node, self.pods, self.host, self.old, self.replicas):
            self.first.setdefault(milestone, when)

    def complete(self) -> bool:
        with self.lock:
            return all(phase in self.first for phase in PHASES)


def restarts(pod: Obj) -> int:
    """Container restarts of ``pod`` (sum over its containers)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount") or 0) for s in statuses)


def back_after_restart(pods: list[Obj], before: dict[str, int], replicas: int) -> bool:
    """Whether ``replicas`` pods serve again after a host restart: a pod that was on the host counts
    only once it restarted (its restart count grew: its VM was booted again), any other pod once
    Ready. ``before``: uid -> restart count of the pods that were on the host."""
    serving = 0
    for pod in pods:
        if not pod_ready(pod):
            continue
        uid = pod["metadata"]["uid"]
        if uid not in before or restarts(pod) > before[uid]:
            serving += 1
    return serving >= replicas
