"""One etcd watch per key prefix, shared by every watch of this API server that can join it.

Each Kubernetes watch used to open its own etcd watch: etcd encoded every change (with its previous
value) once per watcher, and this server parsed it once per watcher, so each host agent's pod
watch cost etcd ~0.8 ms and the server ~0.5 ms of CPU per pod change, whether or not its field
selector matched (measured with 5 and 20 watchers). kube-apiserver avoids that with its watch cache;
this is its smallest part: the etcd stream is shared, and every change it brings keeps the store's
newest copy of that object current (``observe``: updates start from it, :meth:`Store.latest`), but no
list or watch is served from memory.

A watch starting at revision S joins the prefix's running feed when the feed has delivered no event
at or after S yet (``S >= feed.next``), and skips the feed's events older than S; a watch resuming
further back (the feed is past S) opens an etcd watch of its own, as before. Every subscriber sees
the feed's batches in etcd's order. When the feed's etcd watch fails (stream broken, compacted),
every subscriber gets that failure, as each would have from its own stream; a subscriber that falls
:data:`BACKLOG` batches behind (its client stopped reading) is ended, as upstream closes an
unresponsive watcher, and its client resumes from the last revision it received. The feed stops
when its last subscriber leaves.

A subscriber may take its batches at most once per ``every`` seconds (:data:`CLIENT_EVERY_S` for
the clients' watches): the first batch after a quiet spell comes at once, and what arrives within
the next ``every`` seconds comes together (:meth:`Feeds.windows`: one list per take). A client's
watch is its request's task taking those lists from its queue, translating them (once per
predicate for all watches, :meth:`nestlab.api.store.Store._translate`) and writing each in one
TLS write: woken once per change, 100 watches of a busy kind cost the API server more than the
writes they watch; woken once per window, each handles a burst in one go. Upstream's watch cache
dispatches to its watchers in batches too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from nestlab.api.etcd import EtcdCompactedError, EtcdError, EtcdUnavailableError, WatchEvent

Batch = tuple[int, list[WatchEvent]]
CLIENT_EVERY_S = 0.05
"""How often a client's watch takes what its feed brought, at most (the latency it adds under load)."""
BACKLOG = 10_000
"""Batches a subscriber may fall behind the feed before it is ended (memory: shared references)."""


class Watcher(Protocol):
    """What a feed needs of the etcd client (:meth:`nestlab.api.etcd.EtcdClient.watch`)."""

    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[Batch]: ...


class _Ended(Exception):  # noqa: N818 - a signal, not an error
    """Internal: this subscriber fell too far behind (ended quietly)."""


Item = Batch | BaseException
_STOPPING: set[asyncio.Task[None]] = set()  # feeds cancelled and not yet finished (kept referenced)


class _Feed:
    """One etcd watch on ``prefix`` from ``start`` on, fanned out to subscriber queues."""

    def __init__(self, feeds: Feeds, prefix: str, start: int) -> None:
        self.feeds = feeds
        self.prefix = prefix
        self.next = start
        """No event below this revision will be delivered any more (joiners must start here or later)."""
        self.queues: set[asyncio.Queue[Item]] = set()
        self.task = asyncio.get_running_loop().create_task(self._run(start))

    async def _run(self, start: int) -> None:
        failure: BaseException
        try:
            async for revision, events in self.feeds.etcd.watch(self.prefix, start):
                if events:
                    self.next = max(self.next, max(e.kv.mod_revision for e in events) + 1)
                    if self.feeds.observe is not None:
                        self.feeds.observe(events)
                for queue in list(self.queues):
                    if queue.qsize() >= BACKLOG - 1:
                        self.queues.discard(queue)
                        queue.put_nowait(_Ended())
                    else:
                        queue.put_nowait((revision, events))
            failure = EtcdUnavailableError(f"the watch of {self.prefix} ended")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = exc
        finally:
            self.feeds.forget(self)
        for queue in list(self.queues):
            queue.put_nowait(failure)


def _again(failure: BaseException) -> BaseException:
    """A subscriber's own copy of the feed's failure (one exception object is raised once)."""
    if isinstance(failure, EtcdCompactedError):
        return EtcdCompactedError(str(failure), failure.compact_revision)
    if isinstance(failure, EtcdError):
        return type(failure)(str(failure))
    return EtcdUnavailableError(f"etcd watch failed: {failure!r}")


def _window(items: list[Item], start: int) -> tuple[list[Batch], BaseException | None]:
    """The batches of one take of a subscriber's queue (events before ``start`` left out), and
    what ends the subscription after them: the feed's failure, or _Ended; None if it goes on."""
    window: list[Batch] = []
    for item in items:
        if isinstance(item, BaseException):
            return window, item
        revision, events = item
        mine = [e for e in events if e.kv.mod_revision >= start]
        if mine or not events:
            window.append((revision, mine))
    return window, None


class Feeds:
    """The shared etcd watches of one store, by prefix."""

    def __init__(self, etcd: Watcher, observe: Callable[[list[WatchEvent]], None] | None = None) -> None:
        self.etcd = etcd
        self.observe = observe
        """Called once with every batch of events a feed receives (the store's latest copies)."""
        self._feeds: dict[str, _Feed] = {}

    def forget(self, feed: _Feed) -> None:
        if self._feeds.get(feed.prefix) is feed:
            del self._feeds[feed.prefix]

    async def watch(self, prefix: str, start_revision: int, every: float = 0.0) -> AsyncIterator[Batch]:
        """(revision, events) for every change under ``prefix`` from ``start_revision`` on, as
        :meth:`nestlab.api.etcd.EtcdClient.watch` yields them (module docstring: when it is shared,
        and what ``every`` does)."""
        async for window in self.windows(prefix, start_revision, every):
            for batch in window:
                yield batch

    async def windows(
        self, prefix: str, start_revision: int, every: float = 0.0
    ) -> AsyncIterator[list[Batch]]:
        """:meth:`watch`'s batches, as the lists that came together: one per take of the shared
        feed (everything that arrived within ``every`` seconds), one batch each from a watch of
        its own. A client's watch handles and writes each list in one go."""
        feed = self._feeds.get(prefix)
        if feed is not None and start_revision < feed.next:
            async for batch in self.etcd.watch(prefix, start_revision):  # further back: its own
                yield [batch]
            return
        if feed is None:
            feed = self._feeds[prefix] = _Feed(self, prefix, start_revision)
        queue: asyncio.Queue[Item] = asyncio.Queue()
        feed.queues.add(queue)
        loop = asyncio.get_running_loop()
        next_take = 0.0
        try:
            while True:
                items = [await queue.get()]
                if every:
                    if (wait := next_take - loop.time()) > 0:
                        await asyncio.sleep(wait)
                    next_take = loop.time() + every
                items += [queue.get_nowait() for _ in range(queue.qsize())]
                window, end = _window(items, start_revision)
                if window:
                    yield window
                if isinstance(end, _Ended):
                    return
                if end is not None:
                    raise _again(end)
        finally:
            feed.queues.discard(queue)
            if not feed.queues and not feed.task.done():
                # Not awaited: this may run while the subscriber's own task is being cancelled.
                self.forget(feed)
                _STOPPING.add(feed.task)
                feed.task.add_done_callback(_STOPPING.discard)
                feed.task.cancel()
