"""Run the controllers only while this process holds the Lease.

Like kube-controller-manager: every control-plane node runs the same controllers, the Lease picks
the one that acts. Two styles live side by side:

- *passes* (scheduler, node lifecycle, taint manager, PodGC, attestation): called one after the
  other every tick; a pass that fails (API unreachable for a moment) is logged and retried on the
  next tick. Each term builds its passes afresh from their factories, on the term's informers
  (they read pods and nodes from its caches, :mod:`nestlab.controller.views`), and runs none
  before those informers have their first lists;
- *controllers* on shared informers and work queues (:mod:`nestlab.controller.informer`): on
  gaining the Lease a :class:`Term` builds them on fresh informers, waits for the informers' first
  lists, then runs their workers; on losing the Lease (or stopping) the term is cancelled whole,
  so a deposed leader stops acting at once and the next term starts from a fresh list.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.controller.informer import ControllerFactory, InformerFactory
from nestlab.controller.leader import LeaderElector
from nestlab.controller.workqueue import run_workers

log = logging.getLogger(__name__)
Pass = Callable[[], Awaitable[object]]
PassFactory = Callable[[ApiClient, InformerFactory], Pass]
"""Builds a term's pass from the client and the term's shared informers."""


class Term:
    """The informer-based controllers and the passes of one leadership term."""

    def __init__(
        self,
        client: ApiClient,
        factories: Sequence[ControllerFactory],
        informers: InformerFactory | None = None,
        passes: Sequence[PassFactory] = (),
    ) -> None:
        self.informers = informers or InformerFactory(client)
        self.controllers = [factory(client, self.informers) for factory in factories]
        self.passes = [factory(client, self.informers) for factory in passes]
        self._task: asyncio.Task[None] | None = None

    @property
    def synced(self) -> bool:
        """Whether every informer of the term has its first list (passes may trust the caches)."""
        return all(informer.synced.is_set() for informer in self.informers.informers())

    def start(self) -> None:
        """Start informers, then (once they listed) every controller's workers."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="controllers")

    async def _run(self) -> None:
        self.informers.start()
        await self.informers.wait_synced()
        log.info("caches synced; starting %s", ", ".join(c.name for c in self.controllers) or "no controller")
        await asyncio.gather(*(run_workers(c.queue, c.sync, c.workers) for c in self.controllers))

    async def stop(self) -> None:
        """Stop the workers and the informers, and wait for them to end."""
        for controller in self.controllers:
            controller.queue.shutdown()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.informers.stop()


async def run_while_leading(
    elector: LeaderElector,
    passes: Sequence[PassFactory],
    interval: float,
    stop: asyncio.Event,
    controllers: Sequence[ControllerFactory] = (),
) -> None:
    """Every ``interval`` seconds: renew or acquire the Lease; while leading keep a term running
    (its informer-based ``controllers`` and ``passes`` built on gaining the Lease, stopped on
    losing it) and, once its informers have listed, run each pass."""
    term: Term | None = None
    try:
        while not stop.is_set():
            leading = await elector.ensure()
            if leading and term is None:
                log.info("leading: starting controllers")
                term = Term(elector.client, controllers, passes=passes)
                term.start()
            elif not leading and term is not None:
                log.warning("lost the Lease: stopping controllers")
                await term.stop()
                term = None
            if term is not None and term.synced:
                for one_pass in term.passes:
                    try:
                        await one_pass()
                    except status.ApiError as exc:
                        log.warning("%s failed: %s", getattr(one_pass, "__qualname__", one_pass), exc.message)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                continue
    finally:
        if term is not None:
            await term.stop()
        await elector.release()
