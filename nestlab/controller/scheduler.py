"""The scheduler loop: while leading, bind every pending pod to a node, or say why it cannot.

Each pass reads the pending pods, then the nodes and every pod (see below), builds one
:class:`placement.Snapshot`, and decides for each pending pod in turn (oldest first), assuming
each placement in the snapshot before deciding the next one, so replicas created together spread
at once (upstream's scheduler cache "assumes" a pod before binding it). Each binding goes out as
soon as its pod is decided, while the next pod is being decided (upstream's binding cycle runs
apart from the scheduling cycle too), at most ``max_in_flight`` requests at a time; the loop is
given back after every decision, so a pass over thousands of pods never holds up the process's
other tasks. Each binding is a pods/binding POST, which succeeds only once per pod, so a deposed
leader racing the new one cannot double-place: its late binding gets 409 and is dropped (and
un-assumed). A binding the API answers 5xx or 429 (a control-plane node failing over) un-assumes
only that pod, which the next pass retries: the pass and its other bindings stand. A pod that fits
nowhere gets the PodScheduled=False/Unschedulable condition and a FailedScheduling Event with the
upstream message, and is retried on the next pass.

Before looking at nodes, a pod's PersistentVolumeClaims are checked as upstream's volume
PreFilters do (:mod:`nestlab.controller.claims`): a missing claim or an unbound Immediate one keeps
the pod Pending with upstream's reason; an unbound WaitForFirstConsumer claim is annotated
``volume.kubernetes.io/selected-node`` with the chosen node just before the pod is bound, which is
what the provisioner waits for. Claims and classes are listed only when a pending pod uses a claim.

The pass reads pods and nodes through a :mod:`~nestlab.controller.views` view: in
``nestlab-controller`` the leadership term's informer caches, as upstream's scheduler does (no list
request per pass). A cache may not have seen a binding of the last pass yet, so the scheduler keeps
the pods it bound ("assumed", as upstream's cache does) until the view shows them bound or gone:
they are neither placed twice nor left out of the next pass's counts. Likewise it remembers what it
last said of an unschedulable pod, so a stale copy does not make it say it twice.

The ``Scheduled`` Events are written after the pass's bindings, in the background (upstream's
event broadcaster is asynchronous too): they are half the requests of a pass, and a pod should
not wait for another pod's Event to be bound. The next pass waits for them first (:meth:`flush`),
so they never pile up.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nestlab.api import status
from nestlab.api.affinity import as_dict, as_list
from nestlab.api.client import ApiClient
from nestlab.api.kinds.persistentvolumeclaim import SELECTED_NODE
from nestlab.api.resources import EVENTS, NAMESPACES, PERSISTENTVOLUMECLAIMS, PODS, STORAGECLASSES
from nestlab.controller import claims, placement
from nestlab.controller.views import Listed, View, uid_of

log = logging.getLogger(__name__)
Obj = dict[str, Any]
SCHEDULER_NAME = "default-scheduler"
# Requests in flight at once (a binding and its Event each count): enough to hide the API round
# trip, few enough not to swamp a small API server. upstream's default parallelism is 16.
MAX_IN_FLIGHT = 16


@dataclass(frozen=True)
class Placed:
    """The outcome for one pod in one pass."""

    namespace: str
    pod: str
    node: str | None
    message: str = ""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _oldest_first(pod: Obj) -> tuple[str, str, str]:
    meta = pod["metadata"]
    return meta.get("creationTimestamp", ""), meta.get("namespace", ""), meta["name"]


def _uses_namespace_selector(pods: list[Obj]) -> bool:
    """Whether any pod's affinity terms select namespaces by label (then namespaces are listed)."""
    for pod in pods:
        affinity = as_dict(as_dict(pod.get("spec")).get("affinity"))
        for kind in ("podAffinity", "podAntiAffinity"):
            for terms in as_dict(affinity.get(kind)).values():
                for item in map(as_dict, as_list(terms)):
                    if as_dict(item.get("podAffinityTerm", item)).get("namespaceSelector") is not None:
                        return True
    return False


def _refused(pod: Obj, refusal: str, nodes: int) -> placement.Decision | None:
    """The Decision for a pod its claims refuse before any node is looked at (None: not refused)."""
    if not refusal or not nodes:
        return None
    return placement.Decision(None, Counter(), nodes, claims.preemption(pod, nodes), prefilter=refusal)


class Scheduler:
    """Binds pending pods (run it only while holding the Lease: see :mod:`manager`)."""

    def __init__(
        self,
        client: ApiClient,
        max_in_flight: int = MAX_IN_FLIGHT,
        name: str = SCHEDULER_NAME,
        view: View | None = None,
    ) -> None:
        self.client = client
        self.max_in_flight = max_in_flight
        self.name = name
        """The ``spec.schedulerName`` this scheduler serves (a bench runs its own beside the lab's)."""
        self.view: View = view or Listed(client)
        """Where pods and nodes are read (default: listed from the API on every pass)."""
        self._recording: asyncio.Task[None] | None = None
        self._assumed: dict[str, tuple[Obj, str]] = {}
        """Pods bound by this scheduler (uid -> (pod, node)) that the view still shows pending."""
        self._said: dict[str, str] = {}
        """The Unschedulable message last written per pending pod (uid)."""

    async def flush(self) -> None:
        """Wait until the ``Scheduled`` Events of the last pass are written."""
        task, self._recording = self._recording, None
        if task is not None:
            await task

    async def pass_once(self) -> list[Placed]:
        """One scheduling pass over every pending pod (oldest first)."""
        await self.flush()
        pending = await self.view.pending()
        self._forget_settled(pending)
        candidates = sorted(
            (
                p
                for p in pending
                if not p["metadata"].get("deletionTimestamp")
                and (p.get("spec") or {}).get("schedulerName", SCHEDULER_NAME) == self.name
                and uid_of(p) not in self._assumed
            ),
            key=_oldest_first,
        )
        if not candidates:
            return []
        nodes, pods = await asyncio.gather(self.view.nodes(), self.view.pods())
        snapshot = placement.Snapshot(nodes, pods, await self._namespaces(pods))
        for earlier, node in self._assumed.values():
            snapshot.assume(earlier, node)
        volumes = await self._claims(candidates, pods)
        limit = asyncio.Semaphore(self.max_in_flight)
        work: list[asyncio.Task[Placed]] = []
        try:
            for pod in candidates:
                verdict = volumes.check(pod)
                decision = _refused(pod, verdict.refusal, len(snapshot.nodes)) or snapshot.choose(pod)
                select: list[str] = []
                if decision.node is not None:
                    snapshot.assume(pod, decision.node)
                    volumes.assume(pod)
                    select = volumes.to_select(pod, verdict.select, decision.node)
                work.append(asyncio.ensure_future(self._settle(pod, decision, snapshot, limit, select)))
                await asyncio.sleep(0)  # the binding starts now, while the next pod is decided
        except BaseException:
            for task in work:
                task.cancel()
            await asyncio.gather(*work, return_exceptions=True)
            raise
        results = await asyncio.gather(*work, return_exceptions=True)
        outcomes = [r for r in results if isinstance(r, Placed)]
        bound = [
            (p, o.node) for p, o in zip(candidates, results, strict=True) if isinstance(o, Placed) and o.node
        ]
        if bound:
            self._recording = asyncio.get_running_loop().create_task(self._record(bound))
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]  # the others were settled; the manager logs this and retries next tick
        return outcomes

    def _forget_settled(self, pending: list[Obj]) -> None:
        """Keep the assumed pods and the messages said only for pods the view still shows pending
        (a pod seen bound or gone needs neither any more)."""
        still = {uid_of(p) for p in pending}
        self._assumed = {uid: placed for uid, placed in self._assumed.items() if uid in still}
        self._said = {uid: message for uid, message in self._said.items() if uid in still}

    async def _record(self, bound: list[tuple[Obj, str]]) -> None:
        limit = asyncio.Semaphore(self.max_in_flight)

        async def one(pod: Obj, node: str) -> None:
            namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            async with limit:
                await self._event(
                    pod, "Normal", "Scheduled", f"Successfully assigned {namespace}/{name} to {node}"
                )

        await asyncio.gather(*(one(pod, node) for pod, node in bound))

    async def _claims(self, candidates: list[Obj], pods: list[Obj]) -> claims.Claims:
        """This pass's claims and classes (listed only when a pending pod uses a claim)."""
        if not any(claims.claim_names(pod) for pod in candidates):
            return claims.Claims([], [], [])
        listed, classes = await asyncio.gather(
            self.client.list(PERSISTENTVOLUMECLAIMS), self.client.list(STORAGECLASSES)
        )
        return claims.Claims(listed["items"], classes["items"], pods)

    async def _namespaces(self, pods: list[Obj]) -> dict[str, dict[str, str]]:
        if not _uses_namespace_selector(pods):
            return {}
        try:
            items = (await self.client.list(NAMESPACES))["items"]
        except status.ApiError as exc:
            if exc.code != 403:
                raise
            log.warning(
                "cannot list namespaces (%s): namespaceSelector terms see them all unlabelled", exc.message
            )
            return {}
        return {n["metadata"]["name"]: dict(n["metadata"].get("labels") or {}) for n in items}

    async def _settle(
        self,
        pod: Obj,
        decision: placement.Decision,
        snapshot: placement.Snapshot,
        limit: asyncio.Semaphore,
        select: list[str],
    ) -> Placed:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        if decision.node is None:
            async with limit:
                await self._unschedulable(pod, decision.message)
            return Placed(namespace, name, None, decision.message)
        try:
            async with limit:
                for claim in select:  # upstream PreBind: the provisioner creates the volume for this node
                    annotations = {"metadata": {"annotations": {SELECTED_NODE: decision.node}}}
                    await self.client.patch(PERSISTENTVOLUMECLAIMS, namespace, claim, annotations)
                await self.client.bind(namespace, name, decision.node)
        except status.ApiError as exc:
            snapshot.forget(pod)
            if exc.code in (404, 409):  # deleted meanwhile, or bound by someone else: nothing to do
                return Placed(namespace, name, None, exc.message)
            if exc.code < 500 and exc.code != 429:
                raise
            # upstream's binding-cycle failure: un-assume this pod and retry it next pass; the
            # other pods of the pass keep their bindings, and the pass does not fail for one pod
            log.warning(
                "binding %s/%s to %s failed (%d): %s", namespace, name, decision.node, exc.code, exc.message
            )
            return Placed(namespace, name, None, f"Binding rejected: {exc.message}")
        log.info("bound %s/%s to %s", namespace, name, decision.node)
        self._assumed[uid_of(pod)] = (pod, decision.node)
        return Placed(namespace, name, decision.node)

    async def _unschedulable(self, pod: Obj, message: str) -> None:
        conditions = (pod.get("status") or {}).get("conditions") or []
        current = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if self._said.get(uid_of(pod)) == message or (
            current is not None and current.get("message") == message
        ):
            return  # already said so; no write, no new event
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": _now(),
        }
        others = [c for c in conditions if c.get("type") != "PodScheduled"]
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        try:
            await self.client.patch(
                PODS, namespace, name, {"status": {"conditions": [*others, condition]}}, "status"
            )
        except status.ApiError as exc:
            if exc.code != 404:
                raise
            return
        self._said[uid_of(pod)] = message
        await self._event(pod, "Warning", "FailedScheduling", message)

    async def _event(self, pod: Obj, kind: str, reason: str, message: str) -> None:
        meta = pod["metadata"]
        stamp = _now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}."},
            "involvedObject": {
                "apiVersion": "v1", "kind": "Pod", "namespace": meta["namespace"], "name": meta["name"],
                "uid": meta.get("uid", ""),
            },
            "type": kind, "reason": reason, "message": message, "count": 1,
            "source": {"component": self.name},
            "firstTimestamp": stamp, "lastTimestamp": stamp,
        }  # fmt: skip
        try:
            await self.client.create(EVENTS, meta["namespace"], event)
        except status.ApiError as exc:
            log.warning("could not record event for %s/%s: %s", meta["namespace"], meta["name"], exc.message)
