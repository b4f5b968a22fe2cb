"""The feeder: Services and EndpointSlices from shared informers -> records in unbound, kept in step.

Start: wait for both informers' first lists, compute the whole zone, read what unbound holds
(``list_local_data``, keeping only records this package may have written), and apply the
difference: a restarted feeder changes nothing a client can see, and records left behind by a
previous run (a Service deleted meanwhile) go. Then: every change enqueues the key of the Service
it concerns; the loop drains the keys that piled up, recomputes those Services' records, and
applies the name-level change in at most two ``unbound-control`` calls. Every ``resync`` seconds
(and after any failed call) the full comparison runs again: it repairs an unbound that restarted
and lost its local data.

:func:`serve` runs the feeder and the feeder's :class:`~nestlab.dns.presence.Presence` together.
The Lease is renewed only while unbound took the last change: a node whose unbound is down drops
out of the kube-dns Endpoints by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from nestlab.api import status
from nestlab.api.resources import ENDPOINTSLICES, SERVICES
from nestlab.controller.informer import EventHandler, InformerFactory, Obj, key_of, split_key
from nestlab.dns.presence import Presence
from nestlab.dns.records import DEFAULT_TTL, Change, Record, diff, owned, service_records, zone_of
from nestlab.dns.unbound import Unbound, UnboundError
from nestlab.dns.zone import Zone

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
RESYNC_SECONDS = 10.0
"""Seconds between full comparisons with unbound: one ``list_local_data`` (a few ms for thousands
of records), so an unbound restarted under us is refilled within 10 s."""
RETRY_SECONDS = 1.0
"""Wait after a failed ``unbound-control`` call before the full comparison runs again."""


@dataclass(frozen=True)
class FeederConfig:
    """What the zone looks like."""

    domain: str = "cluster.local"
    ttl: int = DEFAULT_TTL
    resync: float = RESYNC_SECONDS


def _slice_service(endpoint_slice: Obj) -> str | None:
    meta = endpoint_slice.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{meta.get('namespace', '')}/{name}" if name else None


class Feeder:
    """Keeps one unbound's cluster zone equal to what the API says."""

    def __init__(self, informers: InformerFactory, unbound: Unbound, config: FeederConfig) -> None:
        self.unbound = unbound
        self.config = config
        self.zone_name = zone_of(config.domain)
        self.zone = Zone()
        self.services = informers.informer(SERVICES)
        self.slices = informers.informer(ENDPOINTSLICES)
        self.healthy = False
        """True while unbound took the last change (the whole zone is loaded)."""
        self.synced = asyncio.Event()
        """Set after the first full load."""
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self.services.add_handler(
            EventHandler(
                on_add=lambda obj: self._enqueue(key_of(obj)),
                on_update=lambda _old, new: self._enqueue(key_of(new)),
                on_delete=lambda obj: self._enqueue(key_of(obj)),
            )
        )
        self.slices.add_handler(
            EventHandler(
                on_add=lambda obj: self._enqueue(_slice_service(obj)),
                on_update=lambda old, new: self._enqueue(_slice_service(old), _slice_service(new)),
                on_delete=lambda obj: self._enqueue(_slice_service(obj)),
            )
        )

    def _enqueue(self, *keys: str | None) -> None:
        for key in keys:
            if key:
                self._pending.add(key)
                self._wake.set()

    def records_of(self, key: str) -> frozenset[Record]:
        """The records the Service at ``key`` should have now (empty when it is gone)."""
        service = self.services.get(key)
        if service is None:
            return frozenset()
        namespace, _ = split_key(key)
        slices = [s for s in self.slices.list(namespace) if _slice_service(s) == key]
        return service_records(service, slices, self.config.domain, self.config.ttl)

    async def _apply(self, change: Change) -> None:
        if change:
            await asyncio.to_thread(self.unbound.apply, change)

    async def resync(self) -> Change:
        """Recompute every Service, compare with what unbound holds, apply the difference."""
        keys = {key_of(s) for s in self.services.list()} | self.zone.keys()  # + deleted while blind
        self.zone.update({key: self.records_of(key) for key in keys})
        self._pending.clear()
        held = await asyncio.to_thread(self.unbound.listing)
        change = diff({r for r in held if owned(r, self.zone_name)}, self.zone.records())
        await self._apply(change)
        return change

    async def step(self) -> Change:
        """Apply the records of the Services changed since the last step."""
        keys, self._pending = self._pending, set()
        change = self.zone.update({key: self.records_of(key) for key in keys})
        await self._apply(change)
        return change

    async def run(self) -> None:
        """Wait for the informers, load everything, then follow changes (until cancelled)."""
        await asyncio.gather(self.services.synced.wait(), self.slices.synced.wait())
        full, last_full, failing = True, 0.0, False
        while True:
            try:
                if full:
                    change = await self.resync()
                    if change and self.synced.is_set():
                        log.warning(
                            "unbound had drifted (restarted?): %d names cleared, %d records added",
                            len(change.remove), len(change.add),
                        )  # fmt: skip
                    last_full, full = time.monotonic(), False
                    self.synced.set()
                elif self._pending:
                    await self.step()
                self.healthy, failing = True, False
            except UnboundError as exc:
                if not failing:  # once per outage, not every second
                    log.error("%s", exc)  # noqa: TRY400 - the message says it all; no traceback
                self.healthy, full, failing = False, True, True
                await asyncio.sleep(RETRY_SECONDS)
                continue
            self._wake.clear()
            if self._pending:
                continue
            wait = self.config.resync - (time.monotonic() - last_full)
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that
            # arrives as the wake-up does, and the feeder would then never stop
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.0)):
                    await self._wake.wait()
            full = not self._pending and time.monotonic() - last_full >= self.config.resync


async def keep_presence(feeder: Feeder, presence: Presence) -> None:
    """Renew the Lease and reconcile kube-dns every interval while unbound is loaded (until cancelled)."""
    await feeder.synced.wait()
    while True:
        started = time.monotonic()
        if feeder.healthy:
            try:
                await presence.tick()
            except status.ApiError as exc:  # an API failover: the Lease outlives a few failed renewals
                log.warning("renewing %s failed: %s", presence.lease_config.name, exc.message)
            except Exception:  # a bug must not stop the renewals for good
                log.exception("renewing %s failed", presence.lease_config.name)
        await asyncio.sleep(max(0.0, presence.config.interval - (time.monotonic() - started)))


async def serve(
    informers: InformerFactory,
    feeder: Feeder,
    presence: Presence,
    stop: asyncio.Event,
    *,
    withdraw: bool = True,
) -> None:
    """Run informers, feeder and presence until ``stop`` is set; then withdraw (unless told not to:
    the tests' "node died" case) and stop everything."""
    informers.start()
    tasks = [
        asyncio.create_task(feeder.run(), name="dns-feeder"),
        asyncio.create_task(keep_presence(feeder, presence), name="dns-presence"),
    ]
    try:
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        for task in done:
            if task is not waiter:
                task.result()  # a task ended: raise its error rather than run half a feeder
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            if withdraw:
                await presence.withdraw()
        except Exception as exc:
            log.warning("could not withdraw from %s (its Lease expires by itself): %s", "kube-dns", exc)
        finally:
            await informers.stop()
