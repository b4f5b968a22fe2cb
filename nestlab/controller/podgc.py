"""Pod garbage collection for pods whose host will never finish deleting them (upstream PodGC).

A pod evicted from a failed host is Terminating, and stays so: only the host's agent confirms that
its VM is gone. Upstream lets two things release such pods, and so does nestlab:

- **the host is removed** (``kubectl delete node esx-02``): pods bound to a node that no longer
  exists are orphans. After a quarantine (upstream 40 s, so a node that is being re-registered is
  not mistaken for a deleted one) they are marked Failed with the ``DisruptionTarget`` condition
  (``DeletionByPodGC``, "PodGC: node no longer exists") and force-deleted;
- **the host is declared out of service** (``kubectl taint node esx-02
  node.kubernetes.io/out-of-service=nodeshutdown:NoExecute``, upstream's non-graceful node
  shutdown): terminating pods on a node that is not Ready and carries that taint are marked Failed
  and force-deleted at once.

Either is an administrator's statement that the host's VMs are really gone (vSphere: the host is
powered off, not merely partitioned). Only then may a StatefulSet create ``web-0`` again on another
host: two ``web-0`` running at once is what the rule protects against. Without it they wait for the
host to return, as upstream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.api import status
from nestlab.api.client import ApiClient, path_of
from nestlab.api.resources import PODS
from nestlab.controller.views import Listed, View, node_of

log = logging.getLogger(__name__)
Obj = dict[str, Any]
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
QUARANTINE_S = 40  # upstream's quarantineTime: a node missing this long is deleted, not re-registering
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
ORPHANED = {
    "type": "DisruptionTarget",
    "status": "True",
    "reason": "DeletionByPodGC",
    "message": "PodGC: node no longer exists",
}


@dataclass(frozen=True)
class Collect:
    """One pod to mark Failed and force-delete."""

    namespace: str
    pod: str
    node: str
    why: str
    """``orphaned`` (its node is gone) or ``out-of-service`` (its node was declared dead)."""
    phase: str
    """The pod's phase now; Succeeded and Failed pods are deleted without a status write."""


def _ready(node: Obj) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _out_of_service(node: Obj) -> bool:
    return any(t.get("key") == OUT_OF_SERVICE for t in (node.get("spec") or {}).get("taints") or [])


def collectable(pods: list[Obj], nodes: Mapping[str, Obj], gone: set[str]) -> list[Collect]:
    """The pods to collect: bound to a node in ``gone`` (missing past quarantine), or terminating
    on a node that is not Ready and has the out-of-service taint (upstream gcOrphaned/gcTerminating)."""
    result = []
    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        node_name = spec.get("nodeName") or ""
        if not node_name:
            continue
        phase = str((pod.get("status") or {}).get("phase") or "")
        node = nodes.get(node_name)
        if node is None:
            why = "orphaned" if node_name in gone else ""
        else:
            terminating = bool(meta.get("deletionTimestamp"))
            why = "out-of-service" if terminating and not _ready(node) and _out_of_service(node) else ""
        if why:
            result.append(Collect(meta.get("namespace", ""), meta.get("name", ""), node_name, why, phase))
    return result


class PodGC:
    """Collects orphaned pods and terminating pods of out-of-service nodes (run while leading)."""

    def __init__(
        self,
        client: ApiClient,
        quarantine: float = QUARANTINE_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        view: View | None = None,
    ) -> None:
        self.client = client
        self.quarantine = quarantine
        self.clock = clock
        self.view: View = view or Listed(client)
        """Where pods and nodes are read (default: listed from the API on every pass)."""
        self._missing: dict[str, datetime] = {}
        """Node names pods are bound to but no Node has, and since when."""

    async def pass_once(self) -> list[Collect]:
        """One pass; the pods collected."""
        # Pods first, then nodes: a pod is bound only to an existing node, so a node missing from
        # the later read was deleted, not created after the pods were read. (From informer caches
        # the two may lag each other by a watch event: the quarantine covers that too.)
        pods = [p for p in await self.view.pods() if node_of(p)]
        nodes = {n["metadata"]["name"]: n for n in await self.view.nodes()}
        now = self.clock()
        missing = {p["spec"]["nodeName"] for p in pods} - set(nodes)
        self._missing = {name: self._missing.get(name, now) for name in missing}
        gone = {
            name for name, since in self._missing.items() if since + timedelta(seconds=self.quarantine) <= now
        }
        done = []
        for item in collectable(pods, nodes, gone):
            if await self._collect(item):
                done.append(item)
        return done

    async def _collect(self, item: Collect) -> bool:
        log.info("force-deleting pod %s/%s: node %s is %s", item.namespace, item.pod, item.node, item.why)
        try:
            if item.phase not in ("Succeeded", "Failed"):
                body: Obj = {"status": {"phase": "Failed"}}
                if item.why == "orphaned":
                    stamp = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
                    body["status"]["conditions"] = [{**ORPHANED, "lastTransitionTime": stamp}]
                await self.client.request(
                    "PATCH",
                    path_of(PODS, item.namespace, item.pod, "status"),
                    body,
                    content_type=STRATEGIC_MERGE,
                )
            await self.client.delete(PODS, item.namespace, item.pod, grace=0)
        except status.ApiError as exc:
            if exc.code != 404:  # gone already: nothing left to collect
                raise
            return False
        return True
