"""Leader election on a coordination.k8s.io Lease, as kube-scheduler and the Supervisor do it.

Every control-plane node runs a controller; only the holder of the Lease acts. The holder renews
``renewTime``; a candidate takes the Lease over once ``renewTime + leaseDurationSeconds`` has
passed. Every write is a compare-and-swap on the Lease's resourceVersion, so two candidates can
never both win the same term. ``claim`` is the pure decision; :class:`LeaderElector` does the I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.resources import LEASES, NAMESPACES

Obj = dict[str, Any]


def micro_time(moment: datetime) -> str:
    """A Lease MicroTime (RFC 3339 with microseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """MicroTime or Time back to an aware datetime."""
    layout = "%Y-%m-%dT%H:%M:%S.%fZ" if "." in text else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.strptime(text, layout).replace(tzinfo=UTC)


@dataclass(frozen=True)
class LeaseConfig:
    """Which Lease, who we are, and how long a term lasts."""

    identity: str
    name: str = "nestlab-scheduler"
    namespace: str = "kube-system"
    duration: int = 15
    """Seconds a holder stays leader without renewing (upstream default 15)."""


def claim(lease: Obj | None, config: LeaseConfig, now: datetime) -> Obj | None:
    """The Lease to write for ``config.identity`` to lead, or None while another holder is valid."""
    stamp = micro_time(now)
    if lease is None:
        spec: Obj = {}
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": config.name}}
    else:
        lease = copy.deepcopy(lease)
        spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    if holder and holder != config.identity:
        renewed = spec.get("renewTime") or spec.get("acquireTime")
        duration = int(spec.get("leaseDurationSeconds") or config.duration)
        if renewed and parse_time(renewed) + timedelta(seconds=duration) > now:
            return None
    if holder != config.identity:
        spec["acquireTime"] = stamp
        spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
    spec.update(holderIdentity=config.identity, leaseDurationSeconds=config.duration, renewTime=stamp)
    lease["spec"] = spec
    return lease


class LeaderElector:
    """Acquire or renew the Lease; ``ensure()`` answers "am I the leader right now?"."""

    def __init__(
        self,
        client: ApiClient,
        config: LeaseConfig,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.config = config
        self.clock = clock
        self.leading = False
        self.renewed: datetime | None = None
        """When this process last wrote the Lease as its holder."""

    @property
    def renew_deadline(self) -> timedelta:
        """How long a leader keeps acting while renewals fail for reasons other than losing the Lease
        (an API failover): two thirds of the term, as upstream's 10 s of 15 s, so it stops before a
        standby may take over."""
        return timedelta(seconds=self.config.duration * 2 / 3)

    async def _current(self) -> Obj | None:
        try:
            return await self.client.get(LEASES, self.config.namespace, self.config.name)
        except status.ApiError as exc:
            if exc.code != 404:
                raise
        try:
            await self.client.create(NAMESPACES, "", {"metadata": {"name": self.config.namespace}})
        except status.ApiError as exc:
            if exc.code != 409:
                raise
        return None

    async def ensure(self) -> bool:
        """Try once to acquire or renew. False on losing the Lease (someone else holds or won it);
        an API failure keeps a leader leading until its renew deadline, so one failed renewal during
        a failover does not tear the controllers down."""
        now = self.clock()
        try:
            current = await self._current()
            wanted = claim(current, self.config, now)
            if wanted is None:
                self.leading = False
            elif current is None:
                await self.client.create(LEASES, self.config.namespace, wanted)
                self.leading, self.renewed = True, now
            else:
                await self.client.replace(LEASES, self.config.namespace, wanted)
                self.leading, self.renewed = True, now
        except status.ApiError as exc:
            lost = exc.code == 409 or self.renewed is None or now - self.renewed >= self.renew_deadline
            self.leading = self.leading and not lost
        return self.leading

    async def release(self) -> None:
        """Give the Lease up (on shutdown) so a standby takes over without waiting for expiry."""
        if not self.leading:
            return
        self.leading = False
        try:
            lease = await self.client.get(LEASES, self.config.namespace, self.config.name)
            if (lease.get("spec") or {}).get("holderIdentity") == self.config.identity:
                lease["spec"]["holderIdentity"] = ""
                await self.client.replace(LEASES, self.config.namespace, lease)
        except status.ApiError:
            return  # it expires on its own
