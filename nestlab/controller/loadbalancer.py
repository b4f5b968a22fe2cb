"""The LoadBalancer service controller: an address from the lab's ingress pool for every LoadBalancer Service.

vSphere with Kubernetes gives a LoadBalancer Service a virtual server on the NSX Edge, addressed from
the Supervisor's "Ingress CIDR". Here the lab spec's ``networks.ingress`` range is routed by the outer
machine to the API VIP, so whichever load balancer (``lb-1``/``lb-2``) holds the VIP receives the
traffic for every ingress address and forwards it to the Service's endpoints
(:mod:`nestlab.proxy.edge`). What is left to a controller is what upstream's cloud service controller
does: pick the address and write ``status.loadBalancer.ingress[{ip}]`` through the status subresource,
with upstream's Events (``EnsuringLoadBalancer``, ``EnsuredLoadBalancer``, ``SyncLoadBalancerFailed``,
``DeletedLoadBalancer``).

The allocation lives in the Services themselves: the addresses in use are the statuses of the
LoadBalancer Services in the informer's cache (plus the writes this term made that the cache has not
shown yet), so a restarted or newly elected controller keeps every address where it is, and a deleted
Service (or one that stops being a LoadBalancer) frees its address by disappearing from that set; no
finalizer is needed because nothing outside the Service must be torn down. One worker: two Services
are never given the same address by concurrent syncs. A Service whose ``spec.loadBalancerClass`` is
set belongs to another implementation and is left alone, as upstream's controller does.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from nestlab.api import status as api_status
from nestlab.api.client import ApiClient
from nestlab.api.resources import SERVICES
from nestlab.controller.informer import Controller, EventHandler, InformerFactory, key_of, split_key
from nestlab.controller.recorder import Recorder
from nestlab.controller.workqueue import WorkQueue

log = logging.getLogger(__name__)
Obj = dict[str, Any]


# -- pure: which address a Service gets ----------------------------------------------------------
def wants_load_balancer(service: Obj) -> bool:
    """A ``type: LoadBalancer`` Service this controller implements (no ``loadBalancerClass``)."""
    spec = service.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def ingress_ips(service: Obj) -> list[str]:
    """The addresses in ``status.loadBalancer.ingress`` (hostnames ignored)."""
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(entry["ip"]) for entry in ingress if isinstance(entry, dict) and entry.get("ip")]


def pool_address(text: str, pool: IPv4Network) -> IPv4Address | None:
    """``text`` as a usable address of ``pool`` (not its network or broadcast address), else None."""
    try:
        address = IPv4Address(text)
    except ValueError:
        return None
    usable = pool.prefixlen >= 31 or address not in (pool.network_address, pool.broadcast_address)
    return address if address in pool and usable else None


def holders(services: Iterable[Obj], pool: IPv4Network) -> dict[IPv4Address, str]:
    """Which Service (key) holds each pool address, from the Services' statuses.

    Should two Services show the same address (a status written by hand), the older Service keeps
    it and the other is given a new one on its next sync.
    """
    out: dict[IPv4Address, str] = {}

    def age(service: Obj) -> tuple[str, str]:
        return str((service.get("metadata") or {}).get("creationTimestamp") or ""), key_of(service)

    for service in sorted((s for s in services if wants_load_balancer(s)), key=age):
        for text in ingress_ips(service):
            if (address := pool_address(text, pool)) is not None:
                out.setdefault(address, key_of(service))
    return out


@dataclass(frozen=True)
class Allocation:
    """The outcome for one Service: an address, or why there is none."""

    address: IPv4Address | None
    failure: str = ""
    """Why no address (the Warning Event's message after upstream's "Error syncing load balancer: ")."""


def allocate(service: Obj, pool: IPv4Network | None, held: Mapping[IPv4Address, str]) -> Allocation:
    """The address ``service`` should have given who ``held`` which address.

    ``spec.loadBalancerIP`` (deprecated upstream, still honoured) is given when it is a free address
    of the pool and refused otherwise; without it the Service keeps the address it has, or gets the
    lowest free one (MetalLB's order: predictable for learners).
    """
    if pool is None:
        return Allocation(
            None,
            "no ingress address pool: start nestlab-controller with --ingress-cidr "
            "(the lab spec's networks.ingress)",
        )
    key = key_of(service)
    requested = str((service.get("spec") or {}).get("loadBalancerIP") or "")
    if requested:
        return _requested(requested, key, pool, held)
    for text in ingress_ips(service):
        address = pool_address(text, pool)
        if address is not None and held.get(address, key) == key:
            return Allocation(address)
    for address in pool.hosts() if pool.prefixlen < 31 else pool:
        if address not in held:
            return Allocation(address)
    return Allocation(None, f"no free address in the ingress pool {pool} ({len(held)} in use)")


def _requested(requested: str, key: str, pool: IPv4Network, held: Mapping[IPv4Address, str]) -> Allocation:
    address = pool_address(requested, pool)
    if address is None:
        return Allocation(None, f"requested loadBalancerIP {requested} is not in the ingress pool {pool}")
    owner = held.get(address, key)
    if owner != key:
        return Allocation(
            None, f"requested loadBalancerIP {requested} is already assigned to service {owner}"
        )
    return Allocation(address)


def ingress_status(address: IPv4Address | None) -> Obj:
    """The merge patch of ``status`` giving ``address`` (None: the empty status of a pending Service)."""
    return {"loadBalancer": {"ingress": [{"ip": str(address)}] if address is not None else None}}


# -- the controller ---------------------------------------------------------------------------
class LoadBalancerController:
    """Gives LoadBalancer Services an ingress address and releases it (one worker: see the module)."""

    name = "service-lb"
    workers = 1
    component = "service-controller"
    """The Events' source, as upstream names it."""

    def __init__(self, client: ApiClient, informers: InformerFactory, pool: IPv4Network | None) -> None:
        self.client = client
        self.pool = pool
        self.queue = WorkQueue(self.name)
        self.recorder = Recorder(client, self.component)
        self.services = informers.informer(SERVICES)
        self.services.add_handler(EventHandler.enqueue(self.queue))
        self._written: dict[str, IPv4Address] = {}
        """Addresses this term wrote (the cache may not show them yet): never given twice."""
        self._waiting: dict[str, str] = {}
        """Services without an address, and the failure last reported for each (one Event per failure)."""

    def _held(self) -> dict[IPv4Address, str]:
        if self.pool is None:
            return {}
        held = holders(self.services.list(), self.pool)
        for key, address in self._written.items():
            held.setdefault(address, key)
        return held

    def _release(self, key: str) -> None:
        """``key`` holds nothing any more: forget it, and wake the Services waiting for an address."""
        self._waiting.pop(key, None)
        self._written.pop(key, None)
        self._wake_waiting()

    def _wake_waiting(self) -> None:
        for waiting in list(self._waiting):
            self.queue.add(waiting)

    async def sync(self, key: str) -> None:
        """Give, keep, move or release the address of the Service at ``key``."""
        service = self.services.get(key)
        if service is None:
            self._release(key)
            return
        if not wants_load_balancer(service):
            # the API server clears status.loadBalancer itself when the type changes (upstream's
            # dropTypeDependentFields), so an address this controller gave counts as held too
            held = key in self._written or bool(ingress_ips(service))
            self._release(key)
            if (service.get("spec") or {}).get("loadBalancerClass") or not held:
                return
            if ingress_ips(service):
                await self._write(service, None)
            await self.recorder.record(service, "Normal", "DeletedLoadBalancer", "Deleted load balancer")
            return
        outcome = allocate(service, self.pool, self._held())
        if outcome.address is None:
            if self._waiting.get(key) != outcome.failure:
                self._waiting[key] = outcome.failure
                log.info("service %s: %s", key, outcome.failure)
                message = f"Error syncing load balancer: {outcome.failure}"
                await self.recorder.record(service, "Warning", "SyncLoadBalancerFailed", message)
            return
        self._waiting.pop(key, None)
        self._written[key] = outcome.address
        if ingress_ips(service) == [str(outcome.address)]:
            return
        await self.recorder.record(service, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer")
        await self._write(service, outcome.address)
        log.info("service %s: ingress address %s", key, outcome.address)
        await self.recorder.record(service, "Normal", "EnsuredLoadBalancer", "Ensured load balancer")
        self._wake_waiting()  # it may have moved off an address another Service asked for

    async def _write(self, service: Obj, address: IPv4Address | None) -> None:
        namespace, name = split_key(key_of(service))
        try:
            await self.client.patch(SERVICES, namespace, name, {"status": ingress_status(address)}, "status")
        except api_status.ApiError as exc:
            if exc.code != 404:  # deleted meanwhile: its delete event releases the address
                raise


def factory(pool: IPv4Network | None) -> Callable[[ApiClient, InformerFactory], Controller]:
    """The CONTROLLERS entry for ``pool`` (``--ingress-cidr``; None: every LoadBalancer stays pending
    with a Warning Event saying so)."""

    def build(client: ApiClient, informers: InformerFactory) -> Controller:
        return LoadBalancerController(client, informers, pool)

    return build


def parse_pool(text: str) -> IPv4Network:
    """``--ingress-cidr``'s value; ValueError with the reason when it is not an IPv4 network."""
    return ipaddress.IPv4Network(text, strict=True)
