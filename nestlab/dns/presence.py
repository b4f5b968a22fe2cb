"""Which DNS servers are alive: a Lease per ``nestlab-dns``, and ``kube-system/kube-dns`` Endpoints from them.

The ``kube-dns`` Service has no selector: no pod backs it, unbound on each control-plane node does.
So, like kube-apiserver's lease endpoint reconciler for ``default/kubernetes``, every feeder keeps
its own Lease ``kube-system/nestlab-dns-<identity>`` (holderIdentity = the address it serves DNS
on, renewed every 2 s, valid 6 s) and, after every renewal, sets the Endpoints to the addresses of
the Leases still valid, writing only when that set differs from what the object holds. A node
that dies stops renewing; the next surviving feeder to renew drops it within ``duration`` +
``interval`` seconds, and the per-host proxies (reading the mirrored EndpointSlice) stop sending
queries there. A clean shutdown deletes the Lease and withdraws the address at once.

Pure helpers first; :class:`Presence` does the API calls: per tick one Lease PUT (compare-and-swap
on the resourceVersion it last wrote), one Lease list and one Endpoints GET, and an Endpoints
write only when the live set differs (compare-and-swap too: of feeders racing, the loser compares
again on its next tick).
"""

from __future__ import annotations

import copy
import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.resources import ENDPOINTS, LEASES
from nestlab.controller.leader import LeaseConfig, claim, parse_time

log = logging.getLogger(__name__)
Obj = dict[str, Any]

LEASE_PREFIX = "nestlab-dns-"
NAMESPACE = "kube-system"
SERVICE = "kube-dns"
DURATION = 6
"""Seconds a feeder's Lease stays valid without renewal: three renewals may fail (an API failover
takes ~2 s) before its node leaves the Service."""
INTERVAL = 2.0
"""Seconds between renewals (and reconciliations of the Endpoints)."""
PORTS = (
    {"name": "dns", "port": 53, "protocol": "UDP"},
    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
)
"""The kube-dns Service's ports, as the API server creates it."""


def lease_name(identity: str) -> str:
    """``nestlab-dns-<identity>``."""
    return LEASE_PREFIX + identity


def live_addresses(leases: Iterable[Obj], now: datetime) -> frozenset[str]:
    """The holder addresses of the feeders' Leases whose renewTime + duration is after ``now``."""
    found = set()
    for lease in leases:
        if not str((lease.get("metadata") or {}).get("name", "")).startswith(LEASE_PREFIX):
            continue
        spec = lease.get("spec") or {}
        holder, renewed = str(spec.get("holderIdentity") or ""), spec.get("renewTime")
        try:
            address = str(ipaddress.ip_address(holder))
            expires = parse_time(str(renewed)) + timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0))
        except ValueError:
            continue  # not a feeder's Lease (or a malformed one): never an endpoint
        if expires > now:
            found.add(address)
    return frozenset(found)


def endpoint_addresses(endpoints: Obj | None) -> frozenset[str]:
    """The ready addresses an Endpoints object lists (empty for None)."""
    found = set()
    for subset in (endpoints or {}).get("subsets") or []:
        for address in subset.get("addresses") or []:
            found.add(str(address.get("ip", "")))
    return frozenset(found)


def kube_dns_endpoints(addresses: Iterable[str], current: Obj | None) -> Obj:
    """The Endpoints to write: ``current`` (keeping its resourceVersion, labels...) with one subset
    of ``addresses`` on the DNS ports, or no subset when no server is alive."""
    body: Obj = copy.deepcopy(current) if current else {}
    body.update(apiVersion="v1", kind="Endpoints")
    meta = body.setdefault("metadata", {})
    meta.update(name=SERVICE, namespace=NAMESPACE)
    meta.setdefault("labels", {})["k8s-app"] = SERVICE
    ordered = sorted(set(addresses), key=ipaddress.ip_address)
    body["subsets"] = (
        [{"addresses": [{"ip": ip} for ip in ordered], "ports": [dict(p) for p in PORTS]}] if ordered else []
    )
    return body


@dataclass(frozen=True)
class PresenceConfig:
    """Who this feeder is and how it announces itself."""

    identity: str
    """Names the Lease (``nestlab-dns-<identity>``): the node name."""
    address: str
    """The address unbound answers on, published in the kube-dns Endpoints."""
    duration: int = DURATION
    interval: float = INTERVAL


class Presence:
    """Renew this feeder's Lease and reconcile the kube-dns Endpoints; ``withdraw()`` on shutdown."""

    def __init__(
        self,
        client: ApiClient,
        config: PresenceConfig,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.config = config
        self.clock = clock
        self.lease_config = LeaseConfig(
            config.address, lease_name(config.identity), NAMESPACE, config.duration
        )
        self._lease: Obj | None = None  # our Lease as last written (its resourceVersion: the next CAS)

    async def renew(self) -> bool:
        """Write our Lease with a fresh renewTime; False when another holder has it (not expired)."""
        now = self.clock()
        if self._lease is not None:
            wanted = claim(self._lease, self.lease_config, now)
            if wanted is not None:
                try:
                    self._lease = await self.client.replace(LEASES, NAMESPACE, wanted)
                except status.ApiError as exc:
                    if exc.code not in (404, 409):
                        raise
                else:
                    return True
        current = await self._read_lease()
        wanted = claim(current, self.lease_config, now)
        if wanted is None:
            log.warning("Lease %s/%s is held by another address", NAMESPACE, self.lease_config.name)
            self._lease = None
            return False
        wanted["metadata"]["namespace"] = NAMESPACE
        if current is None:
            self._lease = await self.client.create(LEASES, NAMESPACE, wanted)
        else:
            self._lease = await self.client.replace(LEASES, NAMESPACE, wanted)
        return True

    async def _read_lease(self) -> Obj | None:
        """Our Lease, None when absent. ``kube-system`` is never created here: the API server makes
        it at start and refuses its deletion, and nestlab-dns may write no Namespace (its roles in
        nestlab.api.bootstraproles)."""
        try:
            return await self.client.get(LEASES, NAMESPACE, self.lease_config.name)
        except status.ApiError as exc:
            if exc.code != 404:
                raise
        return None

    async def live(self) -> frozenset[str]:
        """Addresses of every feeder whose Lease is valid now."""
        leases = await self.client.list(LEASES, NAMESPACE)
        return live_addresses(leases.get("items") or [], self.clock())

    async def reconcile(self, addresses: frozenset[str]) -> bool:
        """Make the kube-dns Endpoints list exactly ``addresses``; True when it wrote.

        Always read first (one small GET): other feeders write it too, so a copy cached here could
        be stale and hide a difference; the write is what happens only on a change."""
        try:
            current: Obj | None = await self.client.get(ENDPOINTS, NAMESPACE, SERVICE)
        except status.ApiError as exc:
            if exc.code != 404:
                raise
            current = None
        if current is not None and endpoint_addresses(current) == addresses:
            return False
        wanted = kube_dns_endpoints(addresses, current)
        try:
            if current is None:
                await self.client.create(ENDPOINTS, NAMESPACE, wanted)
            else:
                await self.client.replace(ENDPOINTS, NAMESPACE, wanted)
        except status.ApiError as exc:
            if exc.code != 409:
                raise
            return False  # another feeder wrote first: compare again next tick
        log.info("%s/%s endpoints: %s", NAMESPACE, SERVICE, ", ".join(sorted(addresses)) or "none")
        return True

    async def tick(self) -> None:
        """One renewal and reconciliation (what ``run`` does every interval)."""
        if await self.renew():
            await self.reconcile(await self.live())

    async def withdraw(self) -> None:
        """Clean shutdown: delete our Lease, then take our address out of the Endpoints now."""
        try:
            await self.client.delete(LEASES, NAMESPACE, self.lease_config.name)
        except status.ApiError as exc:
            if exc.code != 404:
                raise
        self._lease = None
        await self.reconcile((await self.live()) - {self.config.address})
