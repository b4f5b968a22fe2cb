"""``nestlab namespace create|set|delete|list`` against a lab: the plan of
:mod:`nestlab.tenancy.namespaces` applied through the API with the lab-admin credentials.

Applying is idempotent: each object is read, then created, replaced (only when what nestlab owns
in it differs) or deleted, so a second ``create`` changes nothing and says so. Users named in a
binding must exist in the lab's identity store (the Token Exchange Service's users): upstream
accepts a binding to anyone, but a typo would silently grant nothing, so the CLI refuses it. A
ServiceAccount named in a binding (``system:serviceaccount:NS:NAME``) must be in a namespace that
exists (or is the one being made); one that does not exist yet in it is accepted, as upstream binds
it, with a warning (it is usually created next, ``kubectl create serviceaccount``).

The async functions take a small :class:`Api` (the part of :class:`~nestlab.api.client.ApiClient`
used), so unit tests drive them with a fake and the integration test with the real API server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from nestlab import lifecycle, maintenance
from nestlab.api.client import ApiClient
from nestlab.api.resources import (
    LIMITRANGES,
    NAMESPACES,
    PODS,
    QUOTAS,
    ROLEBINDINGS,
    SERVICEACCOUNTS,
    Resource,
)
from nestlab.api.status import ApiError
from nestlab.errors import NestlabError, UsageError
from nestlab.tenancy import namespaces as plan
from nestlab.tenancy.namespaces import Obj, Settings

Progress = Callable[[str], None]
USERS_PATH = "/nestlab/v1/users"
DELETE_TIMEOUT_S = 300.0  # a namespace of the teaching lab empties in well under a minute
POLL_S = 1.0  # between looks at a terminating namespace
_REPLACE_ATTEMPTS = 5  # a quota's status moves with every pod admitted: re-read and replace again
_NO_ROUTE = "the server could not find the requested resource"  # a 404 for a path, not for a user
DEFAULT_ACCOUNT = "default"  # every namespace's own ServiceAccount, made by the controller
_WHERE: dict[str, tuple[Resource, str]] = {
    "quota": (QUOTAS, plan.QUOTA),
    "limits": (LIMITRANGES, plan.DEFAULTS),
    **{role: (ROLEBINDINGS, f"nestlab-{role}") for role in plan.ROLES},
}


class Api(Protocol):
    """The part of :class:`~nestlab.api.client.ApiClient` this module uses."""

    async def get(self, resource: Resource, namespace: str, name: str) -> Obj: ...

    async def list(
        self, resource: Resource, namespace: str = "", *, labels: str = "", fields: str = ""
    ) -> Obj: ...

    async def create(self, resource: Resource, namespace: str, obj: Obj) -> Obj: ...

    async def replace(self, resource: Resource, namespace: str, obj: Obj, subresource: str = "") -> Obj: ...

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: Obj, subresource: str = ""
    ) -> Obj: ...

    async def delete(self, resource: Resource, namespace: str, name: str) -> Obj: ...

    async def request(self, method: str, path: str, body: Any = None) -> Obj: ...


async def _maybe(api: Api, resource: Resource, namespace: str, name: str) -> Obj | None:
    try:
        return await api.get(resource, namespace, name)
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise


async def read(api: Api, name: str) -> dict[str, Obj | None]:
    """The namespace's objects as they are now (None: absent)."""
    found: dict[str, Obj | None] = {"namespace": await _maybe(api, NAMESPACES, "", name)}
    for key, (resource, object_name) in _WHERE.items():
        found[key] = None if found["namespace"] is None else await _maybe(api, resource, name, object_name)
    return found


async def check_users(api: Api, users: tuple[str, ...]) -> None:
    """UsageError naming the first user the identity store does not know."""
    for user in users:
        try:
            await api.request("GET", f"{USERS_PATH}/{user}")
        except ApiError as exc:
            if exc.code == 404 and exc.message == _NO_ROUTE:
                raise NestlabError(
                    "this lab's API server has no identity store yet (GET /nestlab/v1/users answered 404): "
                    "update the lab (`nestlab up`) before naming users"
                ) from exc
            if exc.code == 404:
                raise UsageError(
                    f"user {user!r} does not exist in this lab: add it first with `nestlab user add {user}`"
                ) from exc
            raise


WARNING = "warning: "
"""How a warning line starts (the CLI prints those on standard error)."""


async def check_service_accounts(
    api: Api, accounts: tuple[tuple[str, str, str], ...], namespace: str, say: Progress
) -> None:
    """UsageError naming the first ServiceAccount subject (option, namespace, name) whose namespace
    does not exist (``namespace`` is the one being made: it will); a warning through ``say`` for
    each one that does not exist yet, ``default`` excepted (the controller makes it)."""
    exists = {namespace: await _maybe(api, NAMESPACES, "", namespace) is not None}
    for option, where, name in accounts:
        if where not in exists:
            exists[where] = await _maybe(api, NAMESPACES, "", where) is not None
        if where != namespace and not exists[where]:
            raise UsageError(
                f"{option} {plan.SA_PREFIX}{where}:{name}: namespace {where!r} does not exist: "
                f"create it first (`kubectl create namespace {where}`) or correct the name"
            )
        if name == DEFAULT_ACCOUNT:
            continue
        if not exists[where] or await _maybe(api, SERVICEACCOUNTS, where, name) is None:
            say(
                f"{WARNING}service account {where}/{name} does not exist yet: {option} binds it once "
                f"it is created (`kubectl create serviceaccount {name} -n {where}`)"
            )


async def _converge(api: Api, name: str, key: str, current: Obj | None, wanted: Obj | None) -> str:
    """Make one object match; what was done, for the progress lines."""
    resource, object_name = _WHERE[key]
    shown = f"{resource.singular} {object_name}"
    if wanted is None:
        if current is None:
            return ""
        await api.delete(resource, name, object_name)
        return f"deleted {shown}"
    if current is None:
        await api.create(resource, name, wanted)
        return f"created {shown}"
    for _attempt in range(_REPLACE_ATTEMPTS):
        if not plan.drifted(current, wanted):
            return ""
        labels = {**((current.get("metadata") or {}).get("labels") or {}), **wanted["metadata"]["labels"]}
        meta = {**current["metadata"], "labels": labels}
        try:
            await api.replace(resource, name, {**current, **wanted, "metadata": meta})
        except ApiError as exc:
            if exc.code != 409:
                raise
            current = await api.get(resource, name, object_name)  # e.g. quota admission charged a pod
        else:
            return f"updated {shown}"
    raise NestlabError(f"{shown} in {name} kept changing while it was updated: run the command again")


async def apply(api: Api, name: str, settings: Settings, say: Progress) -> list[str]:
    """Make the namespace's objects express ``settings``; the changes made ([] when none)."""
    wanted = plan.desired(name, settings)
    current = await read(api, name)
    namespace = current["namespace"]
    labelled = plan.namespace_object(name)
    done: list[str] = []
    if namespace is None:
        await api.create(NAMESPACES, "", labelled)
        done.append(f"created namespace {name}")
    elif (namespace.get("metadata") or {}).get("deletionTimestamp"):
        raise UsageError(
            f"namespace {name} is being deleted: wait until it is gone "
            f"(`nestlab namespace delete {name}` waits for it), then create it again"
        )
    elif plan.drifted(namespace, labelled):
        await api.patch(NAMESPACES, "", name, {"metadata": {"labels": labelled["metadata"]["labels"]}})
        done.append(f"labelled namespace {name} as a vSphere Namespace")
    for message in done:
        say(message)
    for key in _WHERE:
        message = await _converge(api, name, key, current[key], wanted[key])
        if message:
            say(message)
            done.append(message)
    return done


async def create(api: Api, name: str, settings: Settings, say: Progress) -> list[str]:
    """``namespace create``: the whole namespace as ``settings`` says (defaults filled in)."""
    plan.check_name(name)
    settings = plan.check(plan.with_defaults(settings))
    await check_users(api, settings.users())
    await check_service_accounts(api, settings.service_accounts(), name, say)
    return await apply(api, name, settings, say)


async def update(api: Api, name: str, changes: Mapping[str, Any], say: Progress) -> list[str]:
    """``namespace set``: only the given settings change; UsageError when there is no such namespace."""
    current = await read(api, name)
    namespace = current["namespace"]
    if namespace is None or ((namespace.get("metadata") or {}).get("labels") or {}).get(plan.LABEL) != "true":
        raise UsageError(
            f"there is no vSphere Namespace {name!r}: create it with `nestlab namespace create {name}`"
        )
    settings = plan.check(plan.with_defaults(plan.merged(plan.settings_of(current), changes)))
    named = Settings(**{k: v for k, v in changes.items() if k in ("view", "edit", "admin") and v is not None})
    await check_users(api, named.users())
    await check_service_accounts(api, named.service_accounts(), name, say)
    return await apply(api, name, settings, say)


def _left(pods: Obj) -> str:
    count = len(pods.get("items") or [])
    return f"{count} pod(s) left" if count else "removing its objects"


async def delete(
    api: Api, name: str, say: Progress, *, timeout: float = DELETE_TIMEOUT_S, poll: float = POLL_S
) -> bool:
    """Delete the namespace and wait until it is gone; False when it did not exist."""
    current = await _maybe(api, NAMESPACES, "", name)
    if current is None:
        return False
    if ((current.get("metadata") or {}).get("labels") or {}).get(plan.LABEL) != "true":
        raise UsageError(
            f"namespace {name} is not a vSphere Namespace made by `nestlab namespace create`; "
            f"delete it with `kubectl delete namespace {name}` if you mean it"
        )
    if not (current.get("metadata") or {}).get("deletionTimestamp"):
        await api.delete(NAMESPACES, "", name)
    say(f"deleting namespace {name}")
    deadline, last = time.monotonic() + timeout, ""
    while await _maybe(api, NAMESPACES, "", name) is not None:
        progress = _left(await api.list(PODS, name))
        if progress != last:
            say(f"namespace {name} is terminating: {progress}")
            last = progress
        if time.monotonic() > deadline:
            raise NestlabError(
                f"namespace {name} is still terminating after {timeout:g}s ({progress}): "
                f"see `kubectl get all -n {name}` and the conditions in "
                f"`kubectl get namespace {name} -o yaml`"
            )
        await asyncio.sleep(poll)
    say(f"namespace {name} deleted")
    return True


async def rows(api: Api) -> list[dict[str, str]]:
    """One row per vSphere Namespace: quota used/limit and who may view, edit, administer it."""
    listed = await api.list(NAMESPACES, labels=f"{plan.LABEL}=true")
    found = []
    for namespace in sorted(listed.get("items") or [], key=lambda n: str(n["metadata"]["name"])):
        name = str(namespace["metadata"]["name"])
        found.append(plan.row(name, await read(api, name)))
    return found


async def _with_client(lab: str, work: Callable[[ApiClient], Awaitable[Any]]) -> Any:
    credentials = maintenance.credentials(lab)
    client = ApiClient(credentials)
    try:
        return await work(client)
    except ApiError as exc:
        if exc.code == 503:
            raise UsageError(
                f"the API of lab {lab} at {credentials.server} does not answer ({exc.message}): "
                f"is the lab up? (`nestlab status --name {lab}`)"
            ) from exc
        raise NestlabError(f"the API server refused: {exc.message}") from exc
    finally:
        await client.close()


def create_in(lab: str, name: str, settings: Settings, say: Progress) -> list[str]:
    """``nestlab namespace create`` on lab ``lab``."""
    done: list[str] = asyncio.run(_with_client(lab, lambda api: create(api, name, settings, say)))
    return done


def update_in(lab: str, name: str, changes: Mapping[str, Any], say: Progress) -> list[str]:
    """``nestlab namespace set`` on lab ``lab``."""
    done: list[str] = asyncio.run(_with_client(lab, lambda api: update(api, name, changes, say)))
    return done


def delete_in(lab: str, name: str, say: Progress, timeout: float = DELETE_TIMEOUT_S) -> bool:
    """``nestlab namespace delete`` on lab ``lab``."""
    gone: bool = asyncio.run(_with_client(lab, lambda api: delete(api, name, say, timeout=timeout)))
    return gone


def list_in(lab: str) -> list[dict[str, str]]:
    """``nestlab namespace list`` on lab ``lab``."""
    found: list[dict[str, str]] = asyncio.run(_with_client(lab, rows))
    return found


def summary(lab: str) -> list[dict[str, str]]:
    """The vSphere Namespaces' rows for ``nestlab status``; [] when the API cannot be reached."""

    async def fetch(api: ApiClient) -> list[dict[str, str]]:
        return await asyncio.wait_for(rows(api), lifecycle.STATUS_API_TIMEOUT_S)

    try:
        found: list[dict[str, str]] = asyncio.run(_with_client(lab, fetch))
    except (NestlabError, OSError, TimeoutError):
        return []
    return found
