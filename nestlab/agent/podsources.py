"""The API objects a pod's environment and volumes are formed from, fetched, and kept up to date.

The agent reads the ConfigMaps and Secrets a pod names (and, for service links, its namespace's
Services and default/kubernetes) when it forms the pod's description (:func:`fetch`). While the
pod runs, :class:`VolumeRefresher` re-reads them every :data:`REFRESH_S` and sends a file volume
whose content changed to pod-init as a new generation, which pod-init swaps in atomically: the
kubelet's periodic resync of configMap and secret volumes (it takes up to a minute or so; here
:data:`REFRESH_S`). A source that disappears keeps the volume's last files, as upstream does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from nestlab.agent import podenv, podvolumes
from nestlab.api import status as api_status
from nestlab.api.client import ApiClient
from nestlab.api.kinds.base import Resource
from nestlab.api.resources import CONFIGMAPS, SECRETS, SERVICES
from nestlab.runtime.poddesc import PodDescription, VolumeFile

Obj = podenv.Obj
log = logging.getLogger("nestlab.agent")
REFRESH_S = 10.0  # re-read period of mounted ConfigMaps/Secrets: changes show inside within ~10 s
Send = Callable[[str, tuple[VolumeFile, ...]], Awaitable[None]]


async def _existing(client: ApiClient, resource: Resource, namespace: str, names: set[str]) -> dict[str, Obj]:
    found: dict[str, Obj] = {}
    for name in sorted(n for n in names if n):
        try:
            found[name] = await client.get(resource, namespace, name)
        except api_status.ApiError as exc:
            if exc.code != 404:
                raise
    return found


async def _services(client: ApiClient, namespace: str, links: bool) -> list[Obj]:
    out: list[Obj] = []
    if links:
        out += (await client.list(SERVICES, namespace)).get("items") or []
    if namespace != "default" or not links:
        try:
            out.append(await client.get(SERVICES, "default", "kubernetes"))
        except api_status.ApiError as exc:
            if exc.code != 404:
                raise
    return out


async def fetch(
    client: ApiClient,
    pod: Obj,
    *,
    pod_ip: str,
    host_ip: str,
    node_cpu_m: int,
    node_memory_mib: int,
    services: bool = True,
) -> podenv.Sources:
    """The objects ``pod`` names that exist now (a missing one is simply absent); ApiError when the
    API cannot answer (the caller retries: "not found" must never be said for "not reachable").
    ``services`` False: no Services (volumes do not need them)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    namespace = str(meta.get("namespace") or "default")
    cms, secrets = podenv.references(pod)
    links = spec.get("enableServiceLinks")
    return podenv.Sources(
        configmaps=await _existing(client, CONFIGMAPS, namespace, cms),
        secrets=await _existing(client, SECRETS, namespace, secrets),
        services=await _services(client, namespace, links is None or bool(links)) if services else (),
        pod_ip=pod_ip,
        host_ip=host_ip,
        node_cpu_m=node_cpu_m,
        node_memory_mib=node_memory_mib,
    )


class VolumeRefresher:
    """One running pod's file volumes: what was sent last, and a new generation when it changed."""

    def __init__(self, pod: Obj, sent: PodDescription | None = None) -> None:
        self.pod = pod
        self.sent: dict[str, tuple[VolumeFile, ...]] = {}
        """Volume name -> the generation pod-init has (empty after an agent restart: sent again)."""
        if sent is not None:
            self.sent = {v.name: v.files for v in sent.volumes if v.kind == "files"}

    def changed(self, sources: podenv.Sources) -> dict[str, tuple[VolumeFile, ...]]:
        """The file volumes whose generation differs from the one sent (pure)."""
        out = {}
        for volume in podvolumes.file_volumes(self.pod):
            name = str(volume.get("name", ""))
            try:
                files = podvolumes.generation(self.pod, volume, sources)
            except podenv.EnvError as exc:  # gone or broken now: the pod keeps the files it has
                log.info("volume %s keeps its files: %s", name, exc)
                continue
            if self.sent.get(name) != files:
                out[name] = files
        return out

    async def refresh(self, sources: podenv.Sources, send: Send) -> list[str]:
        """Send every changed volume; the names sent."""
        sent = []
        for name, files in self.changed(sources).items():
            await send(name, files)
            self.sent[name] = files
            sent.append(name)
        return sent
