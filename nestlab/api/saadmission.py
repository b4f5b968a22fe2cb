"""The ServiceAccount admission plugin: every new pod runs as a ServiceAccount that exists, and gets
its token projected unless it (or its ServiceAccount) opts out.

Upstream's plugin (plugin/pkg/admission/serviceaccount) does, on pod create: default
``serviceAccountName`` to ``default``; refuse the pod (403) when that ServiceAccount does not exist
yet (the controller makes ``default`` in each namespace; a ReplicaSet retries); and, unless
``automountServiceAccountToken`` is false on the pod or else on the ServiceAccount, add a projected
volume ``kube-api-access-<5 random>`` (token, the cluster CA from ConfigMap ``kube-root-ca.crt``,
the namespace) mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount in every
container that has nothing mounted there yet. :func:`mount` is that mutation (pure);
:func:`hook` is the registry's mutating hook around it.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from nestlab.api import admitreads, status
from nestlab.api.kinds.serviceaccount import DEFAULT_NAME
from nestlab.api.registry import Hook
from nestlab.api.resources import PODS, SERVICEACCOUNTS, Resource
from nestlab.api.satokens import Get
from nestlab.api.store import Wanted

Obj = dict[str, Any]
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
TOKEN_SECONDS = 3607
"""Upstream ``WarnOnlyBoundTokenExpirationSeconds``: one hour and seven seconds, so an audit of
token ages can tell the automounted tokens apart."""
PROJECTED_MODE = 0o644  # upstream sets ProjectedVolumeSourceDefaultMode explicitly (#104464)
DEFAULT_LOOKUPS = 25
"""Lookups of a missing ``default`` ServiceAccount before refusing the pod, 100-200 ms apart: the
controller creates it right after the namespace, and a pod created in the same breath should not
fail. Upstream makes 10 (1-2 s); a lab whose nodes share two cores gets 25 (about 4 s)."""
Sleep = Callable[[float], Awaitable[None]]
_NAMESPACE_FIELD = {"apiVersion": "v1", "fieldPath": "metadata.namespace"}
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # upstream SimpleNameGenerator: no vowels, no 0/1/3


def random_suffix() -> str:
    """Five characters as upstream's ``names.SimpleNameGenerator`` picks them."""
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def token_volume(name: str) -> Obj:
    """Upstream ``TokenVolumeSource()``: token, ca.crt and namespace in one projected volume."""
    return {
        "name": name,
        "projected": {
            "defaultMode": PROJECTED_MODE,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": _NAMESPACE_FIELD}]}},
            ],
        },
    }


def should_automount(pod_spec: Obj, account: Obj) -> bool:
    """The pod's ``automountServiceAccountToken`` wins, then the ServiceAccount's; default true."""
    if pod_spec.get("automountServiceAccountToken") is not None:
        return bool(pod_spec["automountServiceAccountToken"])
    if account.get("automountServiceAccountToken") is not None:
        return bool(account["automountServiceAccountToken"])
    return True


def mount(spec: Obj, suffix: Callable[[], str] = random_suffix) -> None:
    """Add the token volume (unless one ``kube-api-access-*`` exists) and its mount to each
    init and app container without a mount at :data:`MOUNT_PATH` (upstream mountServiceAccountToken)."""
    volumes = spec.get("volumes") or []
    existing = next(
        (str(v.get("name")) for v in volumes if str(v.get("name", "")).startswith(VOLUME_PREFIX)), ""
    )
    taken = {str(v.get("name", "")) for v in volumes}
    name = existing
    while not name or (not existing and name in taken):
        name = VOLUME_PREFIX + suffix()
    needed = False
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            mounts = container.get("volumeMounts") or []
            if any(m.get("mountPath") == MOUNT_PATH for m in mounts):
                continue
            container["volumeMounts"] = [*mounts, {"name": name, "readOnly": True, "mountPath": MOUNT_PATH}]
            needed = True
    if needed and not existing:
        spec["volumes"] = [*volumes, token_volume(name)]


async def look_up(
    get: Get, namespace: str, name: str, sleep: Sleep = asyncio.sleep, pod: Obj | None = None
) -> Obj | None:
    """The ServiceAccount, or None when it does not exist (``default``: after a few more looks, as
    upstream's getServiceAccount). The first look is the create's admission read when ``pod``'s
    create made it (:mod:`nestlab.api.admitreads`)."""
    attempts = DEFAULT_LOOKUPS if name == DEFAULT_NAME else 1
    read, account = (
        admitreads.known_object(pod, Wanted(SERVICEACCOUNTS, namespace, name))
        if pod is not None
        else (False, None)
    )
    if account is not None:
        return account
    for attempt in range(1 if read else 0, attempts):
        if attempt:
            await sleep(0.1 + random.random() / 10)  # noqa: S311 - jitter, not a secret
        try:
            return await get(SERVICEACCOUNTS, namespace, name)
        except status.ApiError as exc:
            if exc.code != 404:
                raise
    return None


async def admit(get: Get, namespace: str, pod: Obj, sleep: Sleep = asyncio.sleep) -> None:
    """Default the ServiceAccount, refuse a missing one, mount its token (the pod is changed)."""
    spec = pod.setdefault("spec", {})
    name = account_name(pod)
    spec["serviceAccountName"] = spec["serviceAccount"] = name  # upstream keeps the alias equal
    account = await look_up(get, namespace, name, sleep, pod)
    if account is None:
        raise status.admission_forbidden(
            PODS.plural,
            "",
            str(pod["metadata"].get("name", "")),
            f'error looking up service account {namespace}/{name}: serviceaccount "{name}" not found',
        )
    if should_automount(spec, account):
        mount(spec)


def account_name(pod: Obj) -> str:
    """The ServiceAccount a new pod runs as (``default`` when it names none)."""
    spec = pod.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    return str(spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_NAME)


def _wants(resource: Resource, namespace: str, new: Obj) -> list[Wanted]:
    """The read of a pod create (:mod:`nestlab.api.admitreads`): its ServiceAccount."""
    return [Wanted(SERVICEACCOUNTS, namespace, account_name(new))] if resource is PODS else []


def hook(get: Get, sleep: Sleep = asyncio.sleep) -> Hook:
    """The registry's mutating hook (pods only, on create)."""

    async def admit_pod(resource: Resource, namespace: str, new: Obj, old: Obj | None) -> None:
        if resource is PODS and old is None:
            await admit(get, namespace, new, sleep)

    return admitreads.ReadingHook(admit_pod, _wants)
