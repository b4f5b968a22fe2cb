"""Events the workload controllers record, as upstream's EventRecorder writes them.

``kubectl describe statefulset/web`` (or job, cronjob) shows the Events whose involvedObject is the
object; admins learn what a controller did from them ("create Pod web-0 in StatefulSet web
successful", "Created job hello-29520000"). An Event that cannot be written is logged, never an
error of the sync that produced it: the work was done either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.resources import EVENTS

log = logging.getLogger(__name__)
Obj = dict[str, Any]


def event(obj: Obj, kind: str, reason: str, message: str, *, component: str, now: datetime) -> Obj:
    """The core/v1 Event about ``obj`` (``kind`` is Normal or Warning)."""
    meta = obj["metadata"]
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta.get("namespace", "")},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", ""),
            "kind": obj.get("kind", ""),
            "namespace": meta.get("namespace", ""),
            "name": meta["name"],
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "type": kind,
        "reason": reason,
        "message": message,
        "count": 1,
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
    }


class Recorder:
    """Writes Events for one controller (``component`` is upstream's name, e.g. job-controller)."""

    def __init__(
        self, client: ApiClient, component: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.client = client
        self.component = component
        self.clock = clock

    async def record(self, obj: Obj, kind: str, reason: str, message: str) -> None:
        """Write one Event about ``obj``; failures are logged only."""
        body = event(obj, kind, reason, message, component=self.component, now=self.clock())
        try:
            await self.client.create(EVENTS, obj["metadata"].get("namespace", ""), body)
        except status.ApiError as exc:
            log.warning("could not record %s event for %s: %s", reason, obj["metadata"]["name"], exc.message)
