"""The proxy loop: informers in, one nftables transaction per changed Service out.

Start-up: once the Service and EndpointSlice informers hold their first lists, the whole table is
rebuilt in one transaction (rules left by a previous proxy keep working until that commit). After
that, every event only enqueues the key of the Service concerned (an EndpointSlice names its
Service in the ``kubernetes.io/service-name`` label); a single worker takes keys from a
deduplicating work queue, so a burst of slice updates for one Service becomes one transaction.
The worker compares what it last committed for that Service with what the caches say now and
commits the difference (:func:`nestlab.proxy.rules.update`), or nothing when they are equal.

Failures: the API going away changes nothing here (the rules stay, the informers retry and relist
on reconnect, replaying what changed meanwhile as events). A refused transaction means this
process's picture of the kernel is wrong, so the next attempt (with the queue's backoff) rebuilds
the whole table instead; so does a table that vanished (``nft flush ruleset``), noticed by a
periodic check. A rebuild empties the ClientIP affinity sets (clients pick an endpoint afresh;
established connections keep theirs, conntrack holds them).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from nestlab.controller.informer import EventHandler, Informer, Obj, key_of, split_key
from nestlab.controller.workqueue import WorkQueue, run_workers
from nestlab.proxy import rules
from nestlab.proxy.desired import ServicePort, service_key_of_slice, service_ports
from nestlab.proxy.nft import Nft, NftError

log = logging.getLogger(__name__)

CHECK_EVERY_S = 30.0
"""How often the table's presence is checked (a flushed ruleset is rebuilt within this)."""
RETRY_MAX_S = 30.0
"""Longest wait between two failed start-up rebuilds (doubling from 0.5 s)."""


class Proxy:
    """Keeps table ``ip nestlab`` in step with the Services and EndpointSlices in the caches."""

    def __init__(
        self,
        services: Informer,
        slices: Informer,
        nft: Nft,
        network: rules.HostNetwork,
        node_name: str,
        *,
        check_every: float = CHECK_EVERY_S,
    ) -> None:
        self.services = services
        self.slices = slices
        self.nft = nft
        self.network = network
        self.node_name = node_name
        self.check_every = check_every
        self.queue = WorkQueue("proxy")
        self.applied: dict[str, tuple[ServicePort, ...]] = {}
        """What the kernel holds per Service key, as last committed."""
        self.stale = True
        """The table must be rebuilt before any incremental change (start, refused transaction)."""
        self.transactions = 0
        """Transactions committed (full and incremental): for tests and the bench."""
        self._lock = asyncio.Lock()
        services.add_handler(EventHandler.enqueue(self.queue))
        slices.add_handler(
            EventHandler(
                on_add=self._slice_changed,
                on_update=self._slice_moved,
                on_delete=self._slice_changed,
            )
        )

    def _slice_moved(self, old: Obj, new: Obj) -> None:
        self._slice_changed(old)  # a slice relabelled to another Service leaves the first one
        self._slice_changed(new)

    def _slice_changed(self, endpoint_slice: Obj) -> None:
        if (key := service_key_of_slice(endpoint_slice)) is not None:
            self.queue.add(key)

    # -- desired state from the caches --------------------------------------------------------
    def desired(self, key: str) -> tuple[ServicePort, ...]:
        """The ports of the Service at ``key`` as they should be programmed now."""
        service = self.services.get(key)
        if service is None:
            return ()
        namespace = split_key(key)[0]
        slices = [s for s in self.slices.list(namespace) if service_key_of_slice(s) == key]
        return service_ports(service, slices, self.node_name)

    def everything(self) -> dict[str, tuple[ServicePort, ...]]:
        """Every proxied Service's ports, by key."""
        found = {}
        for service in self.services.list():
            key = key_of(service)
            if ports := self.desired(key):
                found[key] = ports
        return found

    # -- committing ------------------------------------------------------------------------------
    async def _commit(self, commands: list[str]) -> None:
        await asyncio.to_thread(self.nft.apply, commands)
        self.transactions += 1

    async def full_sync(self) -> None:
        """Rebuild the whole table from the caches in one transaction."""
        async with self._lock:
            wanted = self.everything()
            commands = rules.full(self.network, [p for ports in wanted.values() for p in ports])
            started = time.monotonic()
            await self._commit(commands)
            self.applied, self.stale = wanted, False
            log.info(
                "table %s rebuilt: %d services, %d commands in %.3fs",
                rules.FAMILY_TABLE, len(wanted), len(commands), time.monotonic() - started,
            )  # fmt: skip

    async def sync(self, key: str) -> None:
        """Commit what changed for the Service at ``key`` (everything, when the table is stale)."""
        if self.stale:
            await self.full_sync()
            return
        async with self._lock:
            previous, wanted = self.applied.get(key, ()), self.desired(key)
            if previous == wanted:
                return
            commands = rules.update(previous, wanted)
            started = time.monotonic()
            try:
                await self._commit(commands)
            except NftError:
                self.stale = True  # our picture of the kernel is wrong: rebuild on the retry
                raise
            if wanted:
                self.applied[key] = wanted
            else:
                self.applied.pop(key, None)
            log.debug(
                "service %s: %d commands (%d ports, %d endpoints) in %.3fs",
                key, len(commands), len(wanted), sum(len(p.endpoints) for p in wanted),
                time.monotonic() - started,
            )  # fmt: skip

    # -- the loop ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Wait for the informers' first lists, then rebuild the table (retrying until it works).

        A host that boots with no table (and maybe no API yet) gets the isolation part at once,
        with no Services: pods are never unguarded while the proxy waits for the API. A table
        already there (a proxy restart) is left alone until the rebuild replaces it.
        """
        try:
            if not await asyncio.to_thread(self.nft.exists):
                await self._commit(rules.full(self.network, []))
                log.info("no table %s yet: isolation rules installed, Services follow", rules.FAMILY_TABLE)
        except NftError as exc:
            log.error("%s", exc)  # noqa: TRY400 - the rebuild below retries and says so again
        await asyncio.gather(self.services.synced.wait(), self.slices.synced.wait())
        failures = 0
        while True:
            try:
                await self.full_sync()
            except NftError as exc:
                failures += 1
                delay = min(RETRY_MAX_S, 0.5 * 2 ** min(failures - 1, 10)) * random.uniform(0.8, 1.2)  # noqa: S311
                log.error("%s (retrying in %.1fs)", exc, delay)  # noqa: TRY400 - the admin reads the message
                await asyncio.sleep(delay)
            else:
                return

    async def watch_table(self) -> None:
        """Rebuild the table whenever it has vanished (checked every ``check_every`` seconds)."""
        while True:
            await asyncio.sleep(self.check_every)
            try:
                present = await asyncio.to_thread(self.nft.exists)
                if not present:
                    log.warning("table %s vanished (ruleset flushed?); rebuilding it", rules.FAMILY_TABLE)
                    await self.full_sync()
            except NftError as exc:
                log.error("%s", exc)  # noqa: TRY400

    async def run(self) -> None:
        """Start, then sync changed Services and watch the table until cancelled."""
        await self.start()
        await asyncio.gather(run_workers(self.queue, self.sync, 1), self.watch_table())
