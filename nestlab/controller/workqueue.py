"""Work queues of object keys, as client-go's rate-limited workqueue gives every controller.

A controller never acts on an event: handlers only put the *key* (``namespace/name``) of what
changed in its queue, and workers call ``sync(key)`` which reads the current state from the
informers' caches and makes the world match. That is why the queue can:

- dedupe: a key added ten times before a worker takes it is synced once;
- serialise per key: a key being synced is never handed to a second worker; added meanwhile it
  is marked dirty and handed out again once the first worker calls ``done``;
- retry with backoff: a failed sync is re-queued after ``base * 2**failures`` seconds (capped),
  and an overall token bucket bounds the retry rate, as upstream's default controller rate
  limiter (5 ms .. 1000 s per item, 10 qps with a burst of 100 overall).

:func:`run_workers` is the loop every controller uses; see :mod:`nestlab.controller.informer`
for a complete controller example.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nestlab.api import status

log = logging.getLogger(__name__)

Sync = Callable[[str], Awaitable[None]]


@dataclass
class RateLimiter:
    """Per-item exponential backoff combined with an overall token bucket (upstream defaults)."""

    base: float = 0.005
    """Seconds of the first retry delay (upstream 5 ms)."""
    cap: float = 1000.0
    """Longest delay between retries of one key (upstream 1000 s)."""
    qps: float = 10.0
    """Overall retries per second once the burst is spent (upstream 10)."""
    burst: int = 100
    """Retries allowed back to back (upstream 100)."""
    clock: Callable[[], float] = time.monotonic
    failures: dict[str, int] = field(default_factory=dict)
    _tokens: float | None = None
    _last: float = 0.0

    def when(self, key: str) -> float:
        """Seconds to wait before retrying ``key`` (and count one more failure of it)."""
        count = self.failures.get(key, 0)
        self.failures[key] = count + 1
        item = min(self.cap, self.base * 2.0**count)
        now = self.clock()
        if self._tokens is None:
            self._tokens, self._last = float(self.burst), now
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        bucket = 0.0 if self._tokens >= 0 else -self._tokens / self.qps
        return max(item, bucket)

    def forget(self, key: str) -> None:
        """``key`` synced fine: its next failure starts from ``base`` again."""
        self.failures.pop(key, None)

    def retries(self, key: str) -> int:
        """How many times in a row ``key`` has failed."""
        return self.failures.get(key, 0)


class WorkQueue:
    """A deduplicating, per-key serialised, rate-limited queue of keys.

    Protocol for a worker: ``key = await queue.get()``; sync it; then ``queue.forget(key)`` on
    success or ``queue.add_rate_limited(key)`` on failure; and always ``queue.done(key)``.
    :func:`run_workers` does exactly this.
    """

    def __init__(self, name: str, limiter: RateLimiter | None = None) -> None:
        self.name = name
        self.limiter = limiter or RateLimiter()
        self._order: list[str] = []
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._wake = asyncio.Event()
        self._shut = False

    def __len__(self) -> int:
        return len(self._order)

    def add(self, key: str) -> None:
        """Queue ``key`` (no-op when already queued; deferred while a worker holds it)."""
        if self._shut or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # handed out again by done()
        self._order.append(key)
        self._notify()

    def add_after(self, key: str, delay: float) -> None:
        """Queue ``key`` in ``delay`` seconds (an earlier pending timer for it wins)."""
        if self._shut:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        pending = self._timers.get(key)
        if pending is not None and pending.when() <= loop.time() + delay:
            return
        if pending is not None:
            pending.cancel()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def add_rate_limited(self, key: str) -> None:
        """Queue ``key`` again after its backoff (a failed sync)."""
        self.add_after(key, self.limiter.when(key))

    def forget(self, key: str) -> None:
        """Reset ``key``'s backoff (a sync that succeeded)."""
        self.limiter.forget(key)

    async def get(self) -> str | None:
        """The next key to sync, waiting for one; None once the queue is shut down."""
        while not self._shut:
            if self._order:
                key = self._order.pop(0)
                self._dirty.discard(key)
                self._processing.add(key)
                return key
            self._wake.clear()  # no await between the check and the clear: no lost wake-up
            await self._wake.wait()
        return None

    def done(self, key: str) -> None:
        """The worker finished ``key``; if it was added meanwhile it is queued again."""
        self._processing.discard(key)
        if key in self._dirty and not self._shut:
            self._order.append(key)
            self._notify()

    def shutdown(self) -> None:
        """Stop handing out keys; waiting workers get None."""
        self._shut = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._notify()

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def _notify(self) -> None:
        self._wake.set()


async def run_workers(queue: WorkQueue, sync: Sync, workers: int = 1) -> None:
    """Run ``workers`` loops taking keys from ``queue`` and syncing them, until shutdown/cancel.

    An ``ApiError`` or any other exception from ``sync`` is logged and the key retried with
    backoff; the loop itself never dies of a bad object.
    """

    async def work() -> None:
        while (key := await queue.get()) is not None:
            try:
                await sync(key)
            except asyncio.CancelledError:
                raise
            except status.ApiError as exc:
                log.info("%s: sync of %s failed (%s), retrying", queue.name, key, exc.message)
                queue.add_rate_limited(key)
            except Exception:
                log.exception("%s: sync of %s failed, retrying", queue.name, key)
                queue.add_rate_limited(key)
            else:
                queue.forget(key)
            finally:
                queue.done(key)

    await asyncio.gather(*(work() for _ in range(workers)))
