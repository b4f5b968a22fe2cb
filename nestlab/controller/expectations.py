"""Controller expectations: do not act twice on a change the caches have not shown yet.

A ReplicaSet that just asked for 3 pods sees 0 pods in its cache until the watch delivers them;
a second sync in that window would create 3 more. Like upstream's ``ControllerExpectations``
(UID-tracking flavour for deletions), a controller records what it expects to observe before
acting, the pod handlers count observations down, and ``satisfied`` gates the next create/delete
round. Records expire after 5 minutes (upstream ``ExpectationsTimeout``) so a lost event cannot
wedge a controller for ever.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

TTL = 300.0  # seconds: upstream ExpectationsTimeout


@dataclass
class _Record:
    adds: int
    deletes: set[str]
    stamp: float


@dataclass
class Expectations:
    """Per controller-key expected creations (a count) and deletions (pod keys)."""

    clock: Callable[[], float] = time.monotonic
    _records: dict[str, _Record] = field(default_factory=dict)

    def expect(self, key: str, adds: int = 0, deletes: Iterable[str] = ()) -> None:
        """Record that ``adds`` creations and the deletion of ``deletes`` are about to happen."""
        self._records[key] = _Record(adds, set(deletes), self.clock())

    def creation_observed(self, key: str) -> None:
        """A pod of ``key`` appeared in the cache (or its creation failed: it never will)."""
        record = self._records.get(key)
        if record is not None:
            record.adds -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        """Pod ``pod_key`` of ``key`` is gone or terminating (or its deletion failed)."""
        record = self._records.get(key)
        if record is not None:
            record.deletes.discard(pod_key)

    def satisfied(self, key: str) -> bool:
        """Whether the controller may act: nothing pending, or the record expired."""
        record = self._records.get(key)
        if record is None:
            return True
        return (record.adds <= 0 and not record.deletes) or self.clock() - record.stamp > TTL

    def forget(self, key: str) -> None:
        """Drop ``key``'s record (its controller object was deleted)."""
        self._records.pop(key, None)
