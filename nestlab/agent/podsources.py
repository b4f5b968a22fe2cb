"""The API objects a pod's environment and volumes are formed from, fetched, and kept up to date.

The agent reads the ConfigMaps and Secrets a pod names (and, for service links, its namespace's
Services and default/kubernetes) when it forms the pod's description (:func:`fetch`). While the
pod runs, :class:`VolumeRefresher` re-reads them every :data:`REFRESH_S` and sends a file volume
whose content changed to pod-init as a new generation, which pod-init swaps in atomically: the
kubelet's periodic resync of configMap and secret volumes (it takes up to a minute or so; here
:data:`REFRESH_S`). A source that disappears keeps the volume's last files, as upstream does.

Service-account tokens (projected ``serviceAccountToken`` sources) come from the TokenRequest API,
bound to the pod; :class:`TokenCache` keeps each one until the kubelet's token manager would
replace it (80 % of its lifetime, or 24 hours), so the 10-second resync sends a new token file
only then, through the same atomic generation swap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from nestlab.agent import podenv, podvolumes
from nestlab.api import status as api_status
from nestlab.api.client import ApiClient, path_of
from nestlab.api.kinds.base import Resource
from nestlab.api.resources import CONFIGMAPS, SECRETS, SERVICEACCOUNTS, SERVICES
from nestlab.runtime.poddesc import PodDescription, VolumeFile

Obj = podenv.Obj
log = logging.getLogger("nestlab.agent")
REFRESH_S = 10.0  # re-read period of mounted ConfigMaps/Secrets: changes show inside within ~10 s
Send = Callable[[str, tuple[VolumeFile, ...]], Awaitable[None]]
REFRESH_FRACTION = 0.8  # the kubelet's token manager replaces a token at 80 % of its lifetime...
MAX_TOKEN_AGE_S = 24 * 3600  # ...or once it is a day old, whichever comes first


@dataclass(frozen=True)
class Issued:
    """One token the API issued for a pod."""

    token: str
    issued_at: float
    """Epoch seconds: its expiration minus its lifetime (as the kubelet computes it)."""
    expires_at: float

    def stale(self, now: float) -> bool:
        """Whether the kubelet would ask for a new one now."""
        life = self.expires_at - self.issued_at
        return now >= self.issued_at + min(REFRESH_FRACTION * life, MAX_TOKEN_AGE_S)


def _epoch(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def token_request(pod: Obj, key: podvolumes.TokenKey) -> Obj:
    """The TokenRequest the kubelet sends for one projection: bound to the pod (name and uid)."""
    meta = pod.get("metadata") or {}
    audience, seconds = key
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [audience] if audience else [],
            "expirationSeconds": seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta.get("name"),
                "uid": meta.get("uid"),
            },
        },
    }


class TokenCache:
    """The service-account tokens of the node's pods, reused until :meth:`Issued.stale`."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._issued: dict[tuple[str, str, int], Issued] = {}
        """(pod uid, audience, expirationSeconds) -> the token in use."""

    async def tokens(
        self, client: ApiClient, pod: Obj
    ) -> tuple[dict[podvolumes.TokenKey, str], dict[podvolumes.TokenKey, str]]:
        """(tokens, refusals) of every serviceAccountToken projection of ``pod``; a 4xx TokenRequest
        is a refusal (FailedMount, retried), an unreachable API raises ApiError (the caller retries)."""
        now = self.clock()
        self._issued = {k: v for k, v in self._issued.items() if v.expires_at > now}  # forget dead pods'
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        uid, namespace = str(meta.get("uid", "")), str(meta.get("namespace") or "default")
        account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        tokens: dict[podvolumes.TokenKey, str] = {}
        refusals: dict[podvolumes.TokenKey, str] = {}
        for key in sorted(podvolumes.token_keys(pod)):
            held = self._issued.get((uid, *key))
            if held is None or held.stale(now):
                try:
                    answer = await client.request(
                        "POST", path_of(SERVICEACCOUNTS, namespace, account, "token"), token_request(pod, key)
                    )
                except api_status.ApiError as exc:
                    if held is None and exc.code >= 500:
                        raise
                    if held is None:
                        refusals[key] = exc.message
                        continue
                    # as the kubelet: a token that has not expired yet stays in use meanwhile
                    log.warning("pod %s/%s: token refresh failed: %s", namespace, meta.get("name"), exc)
                else:
                    expires = _epoch(str(answer["status"]["expirationTimestamp"]))
                    seconds = int((answer.get("spec") or {}).get("expirationSeconds") or key[1])
                    held = Issued(str(answer["status"]["token"]), expires - seconds, expires)
                    self._issued[(uid, *key)] = held
            tokens[key] = held.token
        return tokens, refusals


TOKENS = TokenCache()
"""The agent process's token cache (one per process, as the kubelet's token manager)."""


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
    tokens: TokenCache = TOKENS,
) -> podenv.Sources:
    """The objects ``pod`` names that exist now (a missing one is simply absent); ApiError when the
    API cannot answer (the caller retries: "not found" must never be said for "not reachable").
    ``services`` False: no Services (volumes do not need them). Service-account tokens come from
    ``tokens`` (requested only when missing or due for refresh)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    namespace = str(meta.get("namespace") or "default")
    cms, secrets = podenv.references(pod)
    links = spec.get("enableServiceLinks")
    issued, refused = await tokens.tokens(client, pod)
    return podvolumes.VolumeSources(
        tokens=issued,
        token_errors=refused,
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
