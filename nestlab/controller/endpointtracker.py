"""Writes an endpoint controller made that its informer has not shown yet (upstream's
endpointSliceTracker, generalised).

Controllers read their own objects from an informer's cache, which lags the API by one watch
event. A sync in that window would see a slice it just created as missing (and create a second
one) or rewrite an object from the resourceVersion before its own write (409). The controller
records each write here and skips the sync while the cache misses one; the watch event that
brings the write re-enqueues the Service. Pure (the clock is injected for tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]

_GONE = -1


class Tracker:
    """The writes of a controller its informer has not shown yet, per Service key.

    After creating a slice, a sync reading a cache that does not hold it yet would create it
    again; after an update it would rewrite it from the old resourceVersion (409). So each write
    is recorded (name -> resourceVersion, or deleted) and the Service counts as stale until the
    cache holds that version (or no longer holds the deleted one). A record older than ``ttl``
    is dropped: a watch lagging that long is a failure the informer recovers from by listing.
    """

    def __init__(self, ttl: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._pending: dict[str, dict[str, tuple[int, float]]] = {}

    def wrote(self, key: str, obj: Obj) -> None:
        """``obj`` (as the server answered a create or update) was written for Service ``key``."""
        meta = obj.get("metadata") or {}
        self._pending.setdefault(key, {})[str(meta.get("name", ""))] = (_rv(obj), self.clock())

    def deleted(self, key: str, name: str) -> None:
        """Slice ``name`` of Service ``key`` was deleted."""
        self._pending.setdefault(key, {})[name] = (_GONE, self.clock())

    def forget(self, key: str) -> None:
        """The Service is gone: nothing of it to wait for."""
        self._pending.pop(key, None)

    def stale(self, key: str, cached: Callable[[str], Obj | None]) -> bool:
        """Whether the cache (``cached(name)``) still misses a write for ``key``."""
        pending = self._pending.get(key)
        if not pending:
            return False
        now = self.clock()
        for name, (version, since) in list(pending.items()):
            obj = cached(name)
            seen = obj is None if version == _GONE else obj is not None and _rv(obj) >= version
            if seen or now - since > self.ttl:
                del pending[name]
        if not pending:
            del self._pending[key]
            return False
        return True


def _rv(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0
