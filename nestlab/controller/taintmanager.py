"""The NoExecute taint manager: pods on a node with a NoExecute taint they do not tolerate go.

Upstream's taint eviction controller, on the pass-based base of nestlab-controller. For every pod
bound to a node that carries NoExecute taints (the node lifecycle controller adds
``node.kubernetes.io/unreachable:NoExecute`` to a failed host; an admin may add their own):

- a taint the pod does not tolerate: the pod is deleted at once;
- every taint tolerated, some with ``tolerationSeconds``: deleted once the smallest of those
  seconds has passed since the taint's ``timeAdded`` (the API server gives every pod the
  not-ready/unreachable tolerations, :mod:`nestlab.api.tolerations`, with the lab's
  ``spec.controlPlane.podEvictionSeconds``);
- every taint tolerated forever (no ``tolerationSeconds``): the pod stays.

Counting from ``timeAdded`` rather than from when this process noticed (upstream keeps a timer in
memory) means a controller failover neither restarts nor loses the countdown; a pod created after
the taint counts from its own creation, as upstream would count from its arrival.

Deletion is upstream's: an Event ``TaintManagerEviction`` "Marking for deletion Pod ns/name", the
``DisruptionTarget`` condition (reason ``DeletionByTaintManager``) through pods/status, then an
ordinary graceful DELETE. The pod is Terminating from then on; with its host's agent gone nobody
confirms the deletion, so it stays Terminating until the host returns (its agent finishes the
delete) or the Node is removed, exactly as upstream. Controllers do not count terminating pods and
create replacements at once. A StatefulSet cannot (the name is taken), as upstream: see
:mod:`nestlab.controller.podgc` for the out-of-service taint that releases it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.api import status
from nestlab.api.client import ApiClient, path_of
from nestlab.api.resources import EVENTS, PODS
from nestlab.api.tolerations import NO_EXECUTE, tolerates
from nestlab.controller.leader import parse_time
from nestlab.controller.views import Listed, View, uid_of

log = logging.getLogger(__name__)
Obj = dict[str, Any]
COMPONENT = "taint-eviction-controller"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
DISRUPTION = {
    "type": "DisruptionTarget",
    "status": "True",
    "reason": "DeletionByTaintManager",
    "message": "Taint manager: deleting due to NoExecute taint",
}


def no_execute_taints(node: Obj) -> list[Obj]:
    """The node's NoExecute taints."""
    return [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == NO_EXECUTE]


def _time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None


def eviction_time(
    taints: list[Obj], tolerations: list[Obj], now: datetime, not_before: datetime | None = None
) -> datetime | None:
    """When a pod with ``tolerations`` must leave a node with ``taints``; None: it may stay.

    Only NoExecute taints count. Each taint is matched with the pod's first toleration of it (as
    upstream's GetMatchingTolerations); a taint with none means "now". A matching toleration
    without tolerationSeconds tolerates that taint forever; with seconds (0 or less: at once) the
    pod may stay that long after the taint's ``timeAdded``, or after ``not_before`` (the pod's
    creation) when that is later; a taint without a readable timeAdded counts from ``now``.
    The earliest of these is the answer; a time not after ``now`` means evict now.
    """
    deadlines = []
    for taint in taints:
        if taint.get("effect") != NO_EXECUTE:
            continue
        used = next((t for t in tolerations if isinstance(t, dict) and tolerates(t, taint)), None)
        if used is None:
            return now
        seconds = used.get("tolerationSeconds")
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            continue  # tolerated forever
        start = _time(taint.get("timeAdded")) or now
        if not_before is not None and not_before > start:
            start = not_before
        deadlines.append(start + timedelta(seconds=max(seconds, 0)))
    return min(deadlines, default=None)


@dataclass(frozen=True)
class Eviction:
    """A pod this pass deleted, or will delete at ``at``."""

    namespace: str
    pod: str
    node: str
    at: datetime
    done: bool
    """True: deleted in this pass; False: scheduled for ``at``."""


def assess_pods(
    nodes: Mapping[str, list[Obj]], pods: list[Obj], now: datetime, first_seen: Mapping[str, datetime]
) -> list[Eviction]:
    """The evictions due (done=True) and pending (done=False) for ``pods`` on tainted ``nodes``.

    ``nodes`` maps a node name to its NoExecute taints; ``first_seen`` gives, per taint identity
    ``node/key/effect``, when a taint without timeAdded was first seen (upstream's in-memory start).
    Pods already terminating are left to their deletion.
    """
    result = []
    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        node = spec.get("nodeName") or ""
        taints = nodes.get(node)
        if not taints or meta.get("deletionTimestamp"):
            continue
        stamped = [
            t
            if _time(t.get("timeAdded"))
            else {**t, "timeAdded": _iso(first_seen.get(taint_id(node, t), now))}
            for t in taints
        ]
        at = eviction_time(stamped, spec.get("tolerations") or [], now, _time(meta.get("creationTimestamp")))
        if at is not None:
            result.append(Eviction(meta.get("namespace", ""), meta.get("name", ""), node, at, at <= now))
    return result


def _key(pod: Obj) -> tuple[str, str]:
    return pod["metadata"].get("namespace", ""), pod["metadata"].get("name", "")


def taint_id(node: str, taint: Obj) -> str:
    """A taint's identity on a node, for remembering when one without timeAdded appeared."""
    return f"{node}/{taint.get('key', '')}/{taint.get('effect', '')}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TaintManager:
    """Evicts pods from NoExecute-tainted nodes (run it only while holding the Lease)."""

    def __init__(
        self,
        client: ApiClient,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        view: View | None = None,
    ) -> None:
        self.client = client
        self.clock = clock
        self.view: View = view or Listed(client)
        """Where pods and nodes are read (default: listed from the API on every pass)."""
        self._evicted: set[str] = set()
        """Pods (uid) this manager deleted, while the view still shows them not terminating."""
        self._first_seen: dict[str, datetime] = {}
        self._scheduled: dict[tuple[str, str], datetime] = {}
        """Pods with an eviction pending, to say so when it is cancelled (upstream's event)."""

    async def pass_once(self) -> list[Eviction]:
        """One pass over every pod on a NoExecute-tainted node; the evictions done or pending."""
        now = self.clock()
        tainted = {}
        for node in await self.view.nodes():
            taints = no_execute_taints(node)
            if taints:
                tainted[node["metadata"]["name"]] = taints
        self._remember(tainted, now)
        pods: list[Obj] = []
        for name in sorted(tainted):
            pods += await self.view.pods(name)
        # a pod deleted by an earlier pass but not yet seen terminating (a cache one event behind)
        # is not evicted twice
        live = {_key(p): uid_of(p) for p in pods if not p["metadata"].get("deletionTimestamp")}
        self._evicted &= set(live.values())
        evicted = {key for key, uid in live.items() if uid in self._evicted}
        evictions = [
            e
            for e in assess_pods(tainted, pods, now, self._first_seen)
            if (e.namespace, e.pod) not in evicted
        ]
        pending = {(e.namespace, e.pod): e.at for e in evictions if not e.done}
        for namespace, pod in sorted(set(self._scheduled) - set(pending)):
            if not any((e.namespace, e.pod) == (namespace, pod) for e in evictions):
                await self._event(namespace, pod, f"Cancelling deletion of Pod {namespace}/{pod}")
        for key, at in pending.items():
            if key not in self._scheduled:
                log.info("pod %s/%s tolerates its node's NoExecute taints until %s", *key, _iso(at))
        self._scheduled = pending
        for eviction in evictions:
            if eviction.done:
                await self._evict(eviction)
                self._evicted.add(live[(eviction.namespace, eviction.pod)])  # assessed pods are live ones
        return evictions

    def _remember(self, tainted: Mapping[str, list[Obj]], now: datetime) -> None:
        current = {taint_id(node, t) for node, taints in tainted.items() for t in taints}
        self._first_seen = {k: v for k, v in self._first_seen.items() if k in current}
        for key in current:
            self._first_seen.setdefault(key, now)

    async def _evict(self, eviction: Eviction) -> None:
        namespace, name = eviction.namespace, eviction.pod
        log.info("evicting pod %s/%s from %s: NoExecute taint not tolerated", namespace, name, eviction.node)
        await self._event(namespace, name, f"Marking for deletion Pod {namespace}/{name}")
        condition = {**DISRUPTION, "lastTransitionTime": self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")}
        try:
            await self.client.request(
                "PATCH",
                path_of(PODS, namespace, name, "status"),
                {"status": {"conditions": [condition]}},
                content_type=STRATEGIC_MERGE,
            )
            await self.client.delete(PODS, namespace, name)
        except status.ApiError as exc:
            if exc.code != 404:  # already gone: the eviction is done
                raise

    async def _event(self, namespace: str, pod: str, message: str) -> None:
        now = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{pod}."},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": pod},
            "type": "Normal", "reason": "TaintManagerEviction", "message": message, "count": 1,
            "source": {"component": COMPONENT},
            "firstTimestamp": now, "lastTimestamp": now,
        }  # fmt: skip
        try:
            await self.client.create(EVENTS, namespace, event)
        except status.ApiError as exc:
            log.warning("could not record event for %s/%s: %s", namespace, pod, exc.message)
