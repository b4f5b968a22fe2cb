"""The edge load balancer daemon's loop: Services and EndpointSlices in, nftables transactions out.

Runs on both load balancers (no leader: whichever holds the VIP gets the traffic, and the other must
be ready to take over at once). At start the whole ``ip nestlab-edge`` table is rebuilt from the API
in one transaction, so rules stay in force while the daemon restarts and anything left over from
a previous run is replaced; then each change of a Service, or of one of its EndpointSlices, becomes
one transaction for that Service (:func:`nestlab.proxy.edge.render_update`). Should a transaction
be refused (the table was flushed under us, say by ``systemctl restart nftables``), the next change
rebuilds the whole table instead: what is in the kernel is never guessed at.

Routes: the load balancer reaches each host's pod subnet through that host's management address
(``--pod-route SUBNET=VIA``), the same routes the hosts install between themselves.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Mapping
from ipaddress import IPv4Network
from typing import Any

from nestlab.api.client import ApiClient
from nestlab.api.resources import ENDPOINTSLICES, SERVICES
from nestlab.controller.informer import EventHandler, InformerFactory, key_of, split_key
from nestlab.controller.workqueue import WorkQueue, run_workers
from nestlab.proxy.desired import service_key_of_slice
from nestlab.proxy.edge import EdgePort, edge_ports, render_full, render_update
from nestlab.proxy.nft import Nft, NftError
from nestlab.runtime import proc

log = logging.getLogger(__name__)
Obj = dict[str, Any]
IP_TIMEOUT_S = 10.0
"""``ip route`` answers in milliseconds; the margin is for a loaded 2-core machine."""


def parse_routes(values: list[str]) -> dict[IPv4Network, str]:
    """``--pod-route SUBNET=VIA`` values; ValueError naming the bad one."""
    routes: dict[IPv4Network, str] = {}
    for value in values:
        subnet, sep, via = value.partition("=")
        try:
            network = ipaddress.IPv4Network(subnet.strip(), strict=True)
            gateway = ipaddress.IPv4Address(via.strip())
        except ValueError as exc:
            raise ValueError(
                f"--pod-route {value!r}: {exc}; expected SUBNET=VIA, e.g. 198.19.1.0/24=198.18.0.21"
            ) from exc
        if not sep:
            raise ValueError(f"--pod-route {value!r}: expected SUBNET=VIA")
        routes[network] = str(gateway)
    return routes


def install_routes(routes: Mapping[IPv4Network, str], run: proc.Runner = proc.run) -> None:
    """``ip route replace SUBNET via VIA`` for each route (idempotent)."""
    for subnet, via in sorted(routes.items()):
        run(["ip", "route", "replace", str(subnet), "via", via], timeout=IP_TIMEOUT_S)


class EdgeProxy:
    """Keeps table ``ip nestlab-edge`` equal to the API's LoadBalancer Services."""

    def __init__(self, client: ApiClient, pool: IPv4Network, nft: Nft | None = None) -> None:
        self.pool = pool
        self.nft = nft or Nft()
        self.informers = InformerFactory(client)
        self.services = self.informers.informer(SERVICES)
        self.slices = self.informers.informer(ENDPOINTSLICES)
        self.queue = WorkQueue("edge")
        self.services.add_handler(EventHandler.enqueue(self.queue))
        self.slices.add_handler(EventHandler(self._slice_changed, self._slice_updated, self._slice_changed))
        self.applied: dict[str, tuple[EdgePort, ...]] = {}
        """What the kernel holds, per Service key (only Services with forwarded ports)."""
        self.stale = True
        """The kernel's table is not known to match ``applied``: rebuild it whole."""

    def _slice_changed(self, endpoint_slice: Obj) -> None:
        if (key := service_key_of_slice(endpoint_slice)) is not None:
            self.queue.add(key)

    def _slice_updated(self, old: Obj, new: Obj) -> None:
        self._slice_changed(old)
        self._slice_changed(new)

    def desired(self, key: str) -> tuple[EdgePort, ...]:
        """The forwarded ports of the Service at ``key`` as the caches show it now."""
        service = self.services.get(key)
        if service is None:
            return ()
        namespace, _ = split_key(key)
        slices = [s for s in self.slices.list(namespace) if service_key_of_slice(s) == key]
        return edge_ports(service, slices, self.pool)

    async def rebuild(self) -> None:
        """Replace the whole table with what the caches show (one transaction)."""
        wanted = {}
        for service in self.services.list():
            key = key_of(service)
            if ports := self.desired(key):
                wanted[key] = ports
        commands = render_full(self.pool, [p for ports in wanted.values() for p in ports])
        await asyncio.to_thread(self.nft.apply, commands)
        self.applied, self.stale = wanted, False
        count = sum(len(p) for p in wanted.values())
        log.info("table ip nestlab-edge rebuilt: %d services, %d ports", len(wanted), count)

    async def sync(self, key: str) -> None:
        """Bring one Service's rules up to date (the whole table when it is stale); raises to retry."""
        if self.stale:
            await self.rebuild()
            return
        new = self.desired(key)
        commands = render_update(self.applied.get(key, ()), new)
        if not commands:
            return
        try:
            await asyncio.to_thread(self.nft.apply, commands)
        except NftError as exc:
            log.warning("service %s: %s; rebuilding the whole table", key, exc)
            self.stale = True
            await self.rebuild()
            return
        if new:
            self.applied[key] = new
        else:
            self.applied.pop(key, None)
        log.info("service %s: %d ports, %s", key, len(new), ", ".join(_describe(p) for p in new) or "removed")

    async def run(self, stop: asyncio.Event) -> None:
        """List, rebuild, then follow changes until ``stop`` is set (the rules stay in place)."""
        self.informers.start()
        try:
            await self.informers.wait_synced()
            while self.stale and not stop.is_set():
                try:
                    await self.rebuild()
                except NftError as exc:
                    log.warning("%s (retrying in 2 s)", exc)
                    await asyncio.sleep(2.0)  # nft missing or refused: nothing works without it
            workers = asyncio.create_task(run_workers(self.queue, self.sync, 1))
            await stop.wait()
            self.queue.shutdown()
            await asyncio.gather(workers, return_exceptions=True)
        finally:
            await self.informers.stop()


def _describe(port: EdgePort) -> str:
    return f"{'/'.join(port.ips)}:{port.port}/{port.protocol} -> {len(port.endpoints)} endpoints"
