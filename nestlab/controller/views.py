"""What the periodic passes read: the leadership term's informer caches, or the API itself.

The scheduler, PodGC, the taint manager and the node lifecycle run as passes every second. Each
pass used to list pods from the API: PodGC every pod, the scheduler the pending ones (the API
server decodes every pod to apply that field selector), the taint manager those of each tainted
node. In a 500-pod run that was the API servers' largest single cost (docs/control-plane.md).
Upstream's scheduler and controllers read shared informers instead, and so do these passes in
``nestlab-controller``: :class:`Cached` answers from the informers of the current term
(:mod:`nestlab.controller.informer`), which the manager starts before the first pass and waits for.

A cache may lag behind a pass's own writes by one watch event; each pass copes with that (the
scheduler keeps the pods it bound until the cache sees them bound, the taint manager remembers the
pods it evicted). :class:`Listed` reads the API itself, for a pass run alone (a benchmark's own
scheduler, the integration tests that drive one pass at a time).
"""

from __future__ import annotations

from typing import Any, Protocol

from nestlab.api.client import ApiClient
from nestlab.api.resources import NODES, PODS
from nestlab.controller.informer import InformerFactory

Obj = dict[str, Any]


def node_of(pod: Obj) -> str:
    """The node ``pod`` is bound to ("" when it is not bound)."""
    return str((pod.get("spec") or {}).get("nodeName") or "")


def uid_of(pod: Obj) -> str:
    """The pod's uid (``namespace/name`` for an object without one, as in unit tests' fakes)."""
    meta = pod["metadata"]
    return str(meta.get("uid") or f"{meta.get('namespace', '')}/{meta.get('name', '')}")


def is_pending(pod: Obj) -> bool:
    """Unbound and in phase Pending: what the scheduler looks at (the field selector
    ``spec.nodeName=,status.phase=Pending``)."""
    return not node_of(pod) and (pod.get("status") or {}).get("phase") == "Pending"


class View(Protocol):
    """Pods and nodes as a pass reads them (treat every object as read-only)."""

    async def pods(self, node: str | None = None) -> list[Obj]:
        """Every pod, or (``node`` given) those bound to that node."""

    async def pending(self) -> list[Obj]:
        """The pods waiting for a node (:func:`is_pending`)."""

    async def nodes(self) -> list[Obj]:
        """Every node."""


class Listed:
    """Reads the API on every call (fresh, and one list request each)."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def pods(self, node: str | None = None) -> list[Obj]:
        fields = "" if node is None else f"spec.nodeName={node}"
        return list((await self.client.list(PODS, fields=fields))["items"])

    async def pending(self) -> list[Obj]:
        listed = await self.client.list(PODS, fields="spec.nodeName=,status.phase=Pending")
        return list(listed["items"])

    async def nodes(self) -> list[Obj]:
        return list((await self.client.list(NODES))["items"])


class Cached:
    """Reads the shared informers of a leadership term (no request; as fresh as their watches).

    Built before the term starts its informers, so that they list and watch pods and nodes too;
    the manager runs no pass before every informer of the term has its first list.
    """

    def __init__(self, informers: InformerFactory) -> None:
        self._pods = informers.informer(PODS)
        self._nodes = informers.informer(NODES)

    async def pods(self, node: str | None = None) -> list[Obj]:
        every = self._pods.list()
        return every if node is None else [pod for pod in every if node_of(pod) == node]

    async def pending(self) -> list[Obj]:
        return [pod for pod in self._pods.list() if is_pending(pod)]

    async def nodes(self) -> list[Obj]:
        return self._nodes.list()
