"""The scheduler loop: while leading, bind every pending pod to a node, or say why it cannot.

Each pass lists pending pods, nodes and placed pods, decides with :mod:`placement`, and binds
through pods/binding (which only ever succeeds once per pod, so a deposed leader racing the new one
cannot double-place). A pod that fits nowhere gets the PodScheduled=False/Unschedulable condition
and an Event with the upstream message, and is retried on the next pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.resources import EVENTS, NODES, PODS
from nestlab.controller import placement

log = logging.getLogger(__name__)
Obj = dict[str, Any]
SCHEDULER_NAME = "default-scheduler"


@dataclass(frozen=True)
class Placed:
    """The outcome for one pod in one pass."""

    namespace: str
    pod: str
    node: str | None
    message: str = ""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Scheduler:
    """Binds pending pods (run it only while holding the Lease: see :mod:`manager`)."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def pass_once(self) -> list[Placed]:
        """One scheduling pass over every pending pod (oldest first)."""
        pending = await self.client.list(PODS, fields="spec.nodeName=,status.phase=Pending")
        candidates = [
            p
            for p in pending["items"]
            if not p["metadata"].get("deletionTimestamp")
            and (p.get("spec") or {}).get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
        ]
        if not candidates:
            return []
        nodes = (await self.client.list(NODES))["items"]
        placed = [p for p in (await self.client.list(PODS))["items"] if (p.get("spec") or {}).get("nodeName")]
        outcomes = []
        for pod in sorted(
            candidates, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"])
        ):
            outcomes.append(await self._place(pod, nodes, placed))
        return outcomes

    async def _place(self, pod: Obj, nodes: list[Obj], placed: list[Obj]) -> Placed:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        decision = placement.choose(pod, nodes, placed)
        if decision.node is None:
            await self._unschedulable(pod, decision.message)
            return Placed(namespace, name, None, decision.message)
        try:
            await self.client.bind(namespace, name, decision.node)
        except status.ApiError as exc:
            if exc.code in (404, 409):  # deleted meanwhile, or bound by someone else: nothing to do
                return Placed(namespace, name, None, exc.message)
            raise
        pod.setdefault("spec", {})["nodeName"] = decision.node
        placed.append(pod)
        await self._event(
            pod, "Normal", "Scheduled", f"Successfully assigned {namespace}/{name} to {decision.node}"
        )
        log.info("bound %s/%s to %s", namespace, name, decision.node)
        return Placed(namespace, name, decision.node)

    async def _unschedulable(self, pod: Obj, message: str) -> None:
        conditions = (pod.get("status") or {}).get("conditions") or []
        current = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if current is not None and current.get("message") == message:
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
            "source": {"component": SCHEDULER_NAME},
            "firstTimestamp": stamp, "lastTimestamp": stamp,
        }  # fmt: skip
        try:
            await self.client.create(EVENTS, meta["namespace"], event)
        except status.ApiError as exc:
            log.warning("could not record event for %s/%s: %s", meta["namespace"], meta["name"], exc.message)
