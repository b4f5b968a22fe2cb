"""The etcd side of Service ClusterIP allocation, and the Services every cluster has from the start.

:class:`ClusterIPs` is the registry's allocation hook: before a Service is written it checks a
requested address against the range or picks a free one from the addresses held in etcd
(:mod:`nestlab.api.serviceips` decides; this module reads). Holding the address is not done here:
the store creates the address's claim key in the same transaction as the Service, so two API
servers that pick the same address cannot both write it; the loser picks again.

:func:`ensure_system_services` is what kube-apiserver's bootstrap controller does: Service
``default/kubernetes`` (range + 1, port ``https`` 443 -> 6443) with Endpoints at the advertised
address, and Service ``kube-system/kube-dns`` (range + 10; its Endpoints belong to nestlab-dns).
Several servers start at once, so AlreadyExists is success.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from nestlab.api import serviceips, status
from nestlab.api.etcd import EtcdClient, EtcdError
from nestlab.api.kinds.base import Obj
from nestlab.api.kinds.service import needs_cluster_ip
from nestlab.api.resources import ENDPOINTS, SERVICES, Resource
from nestlab.api.serviceips import ServiceRange

log = logging.getLogger(__name__)
API_PORT = 6443  # the port every nestlab-apiserver (and the VIP) serves on
Create = Callable[[Resource, str, Any], Awaitable[Obj]]
Get = Callable[[Resource, str, str], Awaitable[Obj]]
Update = Callable[[Resource, str, str, Any], Awaitable[Obj]]


class ClusterIPs:
    """Checks requested ClusterIPs and picks free ones, for the registry (see module docstring)."""

    def __init__(
        self, etcd: EtcdClient, service_range: ServiceRange, rng: random.Random | None = None
    ) -> None:
        self.etcd = etcd
        self.range = service_range
        self.rng = rng or random.Random()  # noqa: S311 - spreading picks, not secrecy

    async def __call__(self, resource: Resource, obj: Obj, old: Obj | None) -> bool:
        """Fill or check ``obj``'s ClusterIP; True when the server picked it (a clash is retried)."""
        spec = obj.get("spec")
        if resource is not SERVICES or not isinstance(spec, dict):
            return False
        name = str(obj.get("metadata", {}).get("name", ""))
        if not needs_cluster_ip(spec):
            ip = spec.get("clusterIP")
            before = (old or {}).get("spec", {}).get("clusterIP")
            if spec.get("type") == "ExternalName" or ip in ("None", before):
                return False
            causes = serviceips.check_requested(self.range, str(ip))
            if causes:
                raise status.invalid(SERVICES.kind, SERVICES.group, name, causes)
            return False
        try:
            held = await self.etcd.range(serviceips.KEY_PREFIX)
        except EtcdError as exc:
            raise status.unavailable(f"storage is unavailable: {exc}") from exc
        picked = serviceips.pick(self.range, serviceips.held([kv.key for kv in held.kvs]), self.rng)
        if picked is None:
            raise status.ApiError(
                500,
                "InternalError",
                f"Internal error occurred: failed to allocate a serviceIP: range is full ({self.range} has "
                "no free address; delete unused Services or widen the lab's networks.services)",
            )
        spec["clusterIP"], spec["clusterIPs"] = picked, [picked]
        return True


def kubernetes_service(service_range: ServiceRange) -> Obj:
    """``default/kubernetes``, as kube-apiserver writes it."""
    return {
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": service_range.kubernetes_ip,
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": API_PORT}],
            "sessionAffinity": "None",
        },
    }


def kubernetes_endpoints(address: str) -> Obj:
    """The Endpoints of ``default/kubernetes``: the advertised API address (the VIP), port 6443."""
    return {
        # Unlike upstream (whose API server writes the slice itself and labels these Endpoints
        # skip-mirror), the lab's mirroring controller turns them into the slice proxies read.
        "metadata": {"name": "kubernetes"},
        "subsets": [
            {
                "addresses": [{"ip": address}],
                "ports": [{"name": "https", "port": API_PORT, "protocol": "TCP"}],
            }
        ],
    }


def dns_service(service_range: ServiceRange) -> Obj:
    """``kube-system/kube-dns``: the cluster DNS address pods' resolv.conf names."""
    return {
        "metadata": {
            "name": "kube-dns",
            "labels": {
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS",
            },
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": service_range.dns_ip,
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            ],
        },
    }


async def _create(create: Create, resource: Resource, namespace: str, obj: Obj) -> bool:
    """Create ``obj``; True when it exists afterwards (made now, or earlier by any server).

    A refusal (422: the address is held by another Service after a range change) is logged with
    what to do and skipped, so the server still starts and serves.
    """
    try:
        await create(resource, namespace, obj)
    except status.ApiError as exc:
        if exc.code == 409:
            return True
        if exc.code != 422:
            raise
        name = f"{namespace}/{obj['metadata']['name']}"
        log.warning(
            "cannot create %s %s: %s; free that address and restart", resource.kind, name, exc.message
        )
        return False
    return True


async def ensure_system_services(
    create: Create, get: Get, update: Update, service_range: ServiceRange, advertise: str = ""
) -> None:
    """Idempotently create ``kubernetes`` (and its Endpoints when ``advertise`` is known) and ``kube-dns``.

    A ``kubernetes`` Service left at another address (the range changed) is reported, not deleted:
    its address is what running pods use, and deleting Services is an administrator's decision.
    """
    if await _create(create, SERVICES, "default", kubernetes_service(service_range)):
        current = (await get(SERVICES, "default", "kubernetes")).get("spec", {}).get("clusterIP")
        if current != service_range.kubernetes_ip:
            log.warning(
                "Service default/kubernetes has ClusterIP %s, not %s as --service-cluster-ip-range=%s "
                "gives it; delete it to have it recreated",
                current,
                service_range.kubernetes_ip,
                service_range,
            )
    await _create(create, SERVICES, "kube-system", dns_service(service_range))
    if not advertise:
        return
    wanted = kubernetes_endpoints(advertise)
    try:
        await create(ENDPOINTS, "default", wanted)
    except status.ApiError as exc:
        if exc.code != 409:
            raise
        current = await get(ENDPOINTS, "default", "kubernetes")
        if current.get("subsets") != wanted["subsets"]:
            current["subsets"] = wanted["subsets"]
            current["metadata"].pop("resourceVersion", None)  # unpinned: a racing server's write is retried
            await update(ENDPOINTS, "default", "kubernetes", current)
