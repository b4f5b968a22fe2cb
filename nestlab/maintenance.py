"""``nestlab host maintenance enter|exit HOST``: vSphere's Enter/Exit Maintenance Mode, on Kubernetes.

In vSphere with Kubernetes, putting an ESXi host into maintenance mode evacuates its vSphere Pods:
they are not vMotioned, they are evicted and their controllers recreate them on other hosts. The
lab does exactly what that does, through the same API ``kubectl drain`` uses:

1. cordon: ``spec.unschedulable: true`` (``kubectl get nodes`` shows SchedulingDisabled, the
   scheduler places nothing new there);
2. evict every pod on the host through ``pods/eviction``, so PodDisruptionBudgets are honoured:
   a refused eviction (429) is retried every few seconds, saying which budget blocks and why;
3. wait until no pod is left on the host: a pod is gone only once its host's agent confirmed its
   VM stopped (the final delete with grace 0).

``exit`` uncordons. Unlike ``kubectl drain`` (which refuses pods without a controller unless
``--force``), maintenance mode evicts every pod, as vSphere powers off every vSphere Pod of the
host: a pod without a controller is not recreated anywhere, and the progress lines say so.

The loop is written against a small :class:`Api` protocol, so unit tests drive it with a fake
and the integration test with the real API server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from nestlab import lifecycle
from nestlab.api import eviction
from nestlab.api.client import ApiClient, Credentials
from nestlab.api.resources import NODES, PDBS, PODS, Resource
from nestlab.api.status import ApiError
from nestlab.errors import NestlabError, UsageError
from nestlab.paths import LabFiles
from nestlab.provision.kubeconfig import ADMIN, API_PORT
from nestlab.spec.model import Role

Obj = dict[str, Any]
Progress = Callable[[str], None]
RETRY_S = 5.0  # kubectl drain retries a 429 every 5 s; so do we
DEFAULT_TIMEOUT_S = 600.0  # a host of the teaching lab empties in well under a minute


class Api(Protocol):
    """The part of :class:`~nestlab.api.client.ApiClient` maintenance mode uses."""

    async def get(self, resource: Resource, namespace: str, name: str) -> Obj: ...

    async def list(
        self, resource: Resource, namespace: str = "", *, labels: str = "", fields: str = ""
    ) -> Obj: ...

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: Obj, subresource: str = ""
    ) -> Obj: ...

    async def request(self, method: str, path: str, body: Any = None) -> Obj: ...


class MaintenanceTimeoutError(NestlabError):
    """The host did not empty within ``--timeout`` (a budget blocked, or a pod did not stop)."""


@dataclass
class Evacuation:
    """What one ``enter`` did and what is still in the way."""

    host: str
    evicted: list[str] = field(default_factory=list)
    """``namespace/name`` of pods whose eviction the API server accepted."""
    blocked: dict[str, str] = field(default_factory=dict)
    """``namespace/name`` -> why its last eviction was refused (the budget and its numbers)."""
    stopping: set[str] = field(default_factory=set)
    """Pods being deleted, waiting for the host's agent to confirm their VM stopped."""
    seconds: float = 0.0


def pod_key(pod: Obj) -> str:
    """``namespace/name``."""
    return f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"


def blocking_reason(pod: Obj, pdbs: list[Obj], refusal: str) -> str:
    """Why the eviction of ``pod`` was refused, naming its budget as the API server's cause does
    ("The disruption budget web needs 2 healthy pods and has 2 currently")."""
    budgets = eviction.budgets_for(pod, pdbs)
    if len(budgets) != 1:
        return refusal
    pdb = budgets[0]
    name = pdb["metadata"]["name"]
    if int((pdb.get("status") or {}).get("observedGeneration") or 0) < eviction.generation(pdb):
        return f"The disruption budget {name} is still being processed by the server."
    return eviction.shortfall(pdb)


def eviction_body(pod: Obj) -> Obj:
    """The policy/v1 Eviction for ``pod`` (its own grace period)."""
    meta = pod["metadata"]
    return {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": meta["name"], "namespace": meta.get("namespace", "")},
    }


def eviction_path(pod: Obj) -> str:
    """``/api/v1/namespaces/NS/pods/NAME/eviction``."""
    meta = pod["metadata"]
    return f"/api/v1/namespaces/{meta.get('namespace', '')}/pods/{meta['name']}/eviction"


async def _node(api: Api, host: str) -> Obj:
    try:
        return await api.get(NODES, "", host)
    except ApiError as exc:
        if exc.code == 404:
            raise UsageError(
                f"host {host} has no Node in the lab's API: its agent never registered (is the host running?)"
            ) from exc
        raise


async def cordon(api: Api, host: str, unschedulable: bool) -> bool:
    """Set (or clear) ``spec.unschedulable``; True when it changed."""
    node = await _node(api, host)
    if bool((node.get("spec") or {}).get("unschedulable")) == unschedulable:
        return False
    # Clearing sends null, as kubectl uncordon's patch does (the field is omitted when false).
    await api.patch(NODES, "", host, {"spec": {"unschedulable": True if unschedulable else None}})
    return True


async def _evict(api: Api, pod: Obj, state: Evacuation, say: Progress, retry: float) -> None:
    """One eviction attempt; records the outcome in ``state``."""
    key = pod_key(pod)
    try:
        await api.request("POST", eviction_path(pod), eviction_body(pod))
    except ApiError as exc:
        if exc.code == 404:
            return  # already gone
        if exc.code not in (429, 500):
            raise
        namespace = pod["metadata"].get("namespace", "")
        pdbs = (await api.list(PDBS, namespace)).get("items") or []
        reason = blocking_reason(pod, pdbs, exc.message)
        if state.blocked.get(key) != reason:
            say(f"[yellow]{key} cannot be evicted yet:[/] {reason} (retrying every {retry:g}s)")
        state.blocked[key] = reason
        return
    state.blocked.pop(key, None)
    state.evicted.append(key)
    owner = any(ref.get("controller") for ref in pod["metadata"].get("ownerReferences") or [])
    note = "" if owner else " (it has no controller: nothing recreates it on another host)"
    say(f"evicting {key}{note}")


async def evacuate(
    api: Api,
    host: str,
    timeout: float,
    say: Progress,
    *,
    retry: float = RETRY_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Evacuation:
    """Cordon ``host``, evict its pods (retrying refusals) and wait until none is left."""
    started = clock()
    state = Evacuation(host)
    if await cordon(api, host, True):
        say(f"cordoned {host}: SchedulingDisabled, no new pod is placed there")
    else:
        say(f"{host} was already cordoned")
    while True:
        pods = (await api.list(PODS, fields=f"spec.nodeName={host}")).get("items") or []
        if not pods:
            state.seconds = clock() - started
            return state
        for pod in pods:
            key = pod_key(pod)
            if pod["metadata"].get("deletionTimestamp"):
                state.blocked.pop(key, None)
                if key not in state.stopping:
                    say(f"waiting for {key} to stop on {host}")
                    state.stopping.add(key)
                continue
            await _evict(api, pod, state, say, retry)
        if clock() - started >= timeout:
            raise MaintenanceTimeoutError(_timeout_message(state, pods, timeout))
        await sleep(retry)


def _timeout_message(state: Evacuation, pods: list[Obj], timeout: float) -> str:
    left = {pod_key(p) for p in pods}
    lines = [f"{state.host} still holds {len(left)} pod(s) after {timeout:g}s; it stays cordoned"]
    lines += [f"{key} is blocked: {why}" for key, why in sorted(state.blocked.items()) if key in left]
    lines += [f"{key} was evicted but has not stopped yet" for key in sorted(left - set(state.blocked))]
    lines.append(
        "scale the application out (or relax its budget) and run enter again, "
        f"or undo with `nestlab host maintenance exit {state.host}`"
    )
    return "\n".join(lines)


def credentials(name: str) -> Credentials:
    """The lab-admin credentials of lab ``name`` (the API through its VIP)."""
    plan = lifecycle.saved_plan(name)
    pki = LabFiles.named(name).pki
    cert, key = pki / f"{ADMIN}.crt", pki / f"{ADMIN}.key"
    if not cert.exists() or not key.exists():
        raise UsageError(f"lab {name!r} has no admin credentials yet ({cert}): run `nestlab up` first")
    return Credentials(f"https://{plan.vip}:{API_PORT}", pki / "ca.crt", None, cert, key)


def check_host(name: str, host: str) -> None:
    """UsageError unless ``host`` is a host of lab ``name``."""
    hosts = [n.name for n in lifecycle.saved_plan(name).nodes if n.role is Role.HOST]
    if host not in hosts:
        raise UsageError(f"{host!r} is not a host of lab {name} (hosts: {', '.join(hosts)})")


async def _with_client(name: str, work: Callable[[ApiClient], Awaitable[Any]]) -> Any:
    creds = credentials(name)
    client = ApiClient(creds)
    try:
        return await work(client)
    except ApiError as exc:
        if exc.code == 503:
            raise UsageError(
                f"the API of lab {name} at {creds.server} does not answer ({exc.message}): "
                f"is the lab up? (`nestlab status --name {name}`)"
            ) from exc
        raise NestlabError(f"the API server refused: {exc.message}") from exc
    finally:
        await client.close()


def enter(name: str, host: str, timeout: float, progress: Progress) -> Evacuation:
    """Put ``host`` of lab ``name`` into maintenance mode; MaintenanceTimeoutError after ``timeout`` s."""
    check_host(name, host)
    result: Evacuation = asyncio.run(_with_client(name, lambda api: evacuate(api, host, timeout, progress)))
    return result


def leave(name: str, host: str) -> bool:
    """Take ``host`` out of maintenance mode (uncordon); True when it was cordoned."""
    check_host(name, host)
    changed: bool = asyncio.run(_with_client(name, lambda api: cordon(api, host, False)))
    return changed
