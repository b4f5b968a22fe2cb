"""What one reader of the API currently sees: the objects of each kind, kept current by watch events.

Each dashboard session reads the API with its own credentials (so RBAC decides what it sees), and
its watches write here. A store holds no I/O: the feed applies list results and watch events, the
views read snapshots, and :class:`Signal` tells the page's live stream that something changed.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

KINDS = ("nodes", "pods", "namespaces", "resourcequotas", "events", "leases")
"""What the views need, by plural name (the order the feed starts its watches)."""

MAX_EVENTS = 2000  # Events are many and short-lived (1 h TTL upstream); enough for a teaching lab


class Signal:
    """A version number that waiters can wait on: bumped on every change."""

    def __init__(self) -> None:
        self.version = 0
        self._event = asyncio.Event()

    def bump(self) -> None:
        """Something changed: wake every waiter."""
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, after: int, timeout: float) -> int:
        """The version once it is past ``after`` (or the current one after ``timeout`` seconds)."""
        if self.version > after:
            return self.version
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        return self.version


def key_of(obj: Obj) -> str:
    """``namespace/name`` (``/name`` for cluster-scoped objects)."""
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


@dataclass
class Store:
    """The objects of each kind, and the kinds the API refused to show this reader."""

    objects: dict[str, dict[str, Obj]] = field(default_factory=lambda: {kind: {} for kind in KINDS})
    refused: dict[str, str] = field(default_factory=dict)
    """Scope (a kind, or ``kind@namespace``) -> the API's refusal message (a 403)."""
    synced: set[str] = field(default_factory=set)
    """Scopes listed at least once: until then a view says "loading", not "none"."""
    signal: Signal = field(default_factory=Signal)

    def replace(self, kind: str, items: list[Obj], namespace: str = "") -> None:
        """A fresh list of ``kind`` (in ``namespace``, or everywhere): replaces what was there."""
        bucket = self.objects.setdefault(kind, {})
        prefix = f"{namespace}/" if namespace else ""
        for stale in [k for k in bucket if k.startswith(prefix)]:
            del bucket[stale]
        for item in items:
            bucket[key_of(item)] = item
        self.synced.add(f"{kind}@{namespace}" if namespace else kind)
        self.refused.pop(f"{kind}@{namespace}" if namespace else kind, None)
        self._trim(kind)
        self.signal.bump()

    def apply(self, kind: str, event_type: str, obj: Obj) -> None:
        """One watch event (ADDED, MODIFIED, DELETED; BOOKMARK changes nothing)."""
        if event_type == "BOOKMARK":
            return
        bucket = self.objects.setdefault(kind, {})
        if event_type == "DELETED":
            bucket.pop(key_of(obj), None)
        else:
            bucket[key_of(obj)] = obj
            self._trim(kind)
        self.signal.bump()

    def refuse(self, scope: str, message: str) -> None:
        """The API said 403 for ``scope``: the views say so instead of showing nothing."""
        if self.refused.get(scope) != message:
            self.refused[scope] = message
            self.signal.bump()

    def items(self, kind: str) -> list[Obj]:
        """Every object of ``kind``, sorted by namespace and name."""
        bucket = self.objects.get(kind, {})
        return [bucket[k] for k in sorted(bucket)]

    def snapshot(self) -> dict[str, list[Obj]]:
        """Every kind's objects (what the model's functions take)."""
        return {kind: self.items(kind) for kind in self.objects}

    def _trim(self, kind: str) -> None:
        bucket = self.objects[kind]
        if kind != "events" or len(bucket) <= MAX_EVENTS:
            return
        oldest = sorted(bucket, key=lambda k: str((bucket[k].get("metadata") or {}).get("creationTimestamp")))
        for stale in oldest[: len(bucket) - MAX_EVENTS]:
            del bucket[stale]
