"""Who is granted what, kept in memory from watches of the four RBAC kinds.

Every request is authorized, so the authorizer cannot list bindings from etcd each time (the cost
would grow with every binding anyone creates). Upstream's RBAC authorizer reads informer caches;
here :class:`RbacIndex` holds Roles, ClusterRoles and the bindings *indexed by subject* (a User, a
Group, a ServiceAccount's user name), so the rules of one caller cost what that caller's own
bindings cost, whatever the number of unrelated bindings. :class:`RbacCache` feeds the index from
:meth:`~nestlab.api.store.Store.open_watch`: it lists, then watches from the list's revision,
resumes from the last resourceVersion it saw when a stream breaks, and lists again on 410 Gone.

The index is pure (no I/O): the authorizer's re-check of a denial builds one from a fresh etcd
read with :func:`read_index`, and unit tests feed it objects directly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nestlab.api import auth, rbacrules, status
from nestlab.api.rbacrules import Rule
from nestlab.api.resources import CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES, Resource
from nestlab.api.store import Obj, Store

log = logging.getLogger(__name__)
_RETRY_S = 1.0  # seconds between attempts while etcd is away (a watch that broke is resumed after it)
KINDS = (ROLES, CLUSTERROLES, ROLEBINDINGS, CLUSTERROLEBINDINGS)

SubjectKey = tuple[str, str]
"""("User", name) or ("Group", name); a ServiceAccount subject is the User it authenticates as."""


def subject_key(subject: Any, binding_namespace: str) -> SubjectKey | None:
    """The index key of one binding subject (None: names nobody, as upstream appliesToUser)."""
    if not isinstance(subject, dict):
        return None
    kind, name = subject.get("kind"), subject.get("name")
    if not isinstance(name, str) or not name:
        return None
    if kind in ("User", "Group"):
        return (str(kind), name)
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return ("User", rbacrules.service_account_user(str(namespace), name)) if namespace else None
    return None


def user_keys(user: auth.User) -> list[SubjectKey]:
    """Every key under which a binding may name ``user``."""
    return [("User", user.name), *(("Group", group) for group in sorted(user.groups))]


def _describe_subject(subject: Obj, binding_namespace: str) -> str:
    """Upstream describeSubject: ``User "alice"``, ``ServiceAccount "ns/name"``."""
    kind, name = str(subject.get("kind", "")), str(subject.get("name", ""))
    if kind == "ServiceAccount":
        return f'{kind} "{subject.get("namespace") or binding_namespace}/{name}"'
    return f'{kind} "{name}"'


@dataclass(frozen=True)
class Binding:
    """A RoleBinding (namespace set) or ClusterRoleBinding (namespace "")."""

    name: str
    namespace: str
    role_kind: str
    """``Role`` (RoleBindings only) or ``ClusterRole``."""
    role_name: str
    subjects: tuple[tuple[SubjectKey, str], ...]
    """(index key, upstream description) of each subject that names someone."""

    @classmethod
    def of(cls, obj: Obj) -> Binding:
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
        subjects = obj.get("subjects") if isinstance(obj.get("subjects"), list) else []
        keyed = []
        for subject in subjects or []:
            key = subject_key(subject, namespace)
            if key is not None:
                keyed.append((key, _describe_subject(subject, namespace)))
        return cls(
            str(meta.get("name", "")),
            namespace,
            str((ref or {}).get("kind", "")),
            str((ref or {}).get("name", "")),
            tuple(keyed),
        )

    def describe(self, subject: str) -> str:
        """Upstream's binding describers (the reason of an allowed request)."""
        role = f'{self.role_kind} "{self.role_name}"'
        if self.namespace:
            return f'RoleBinding "{self.name}/{self.namespace}" of {role} to {subject}'
        return f'ClusterRoleBinding "{self.name}" of {role} to {subject}'


@dataclass(frozen=True)
class Grant:
    """Rules one binding gives one caller, with the words that explain it."""

    source: str
    """``ClusterRoleBinding "x" of ClusterRole "y" to User "z"``."""
    rules: tuple[Rule, ...]


class RbacIndex:
    """Roles, ClusterRoles and bindings indexed by subject. Pure: fed objects, answers grants."""

    def __init__(self) -> None:
        self.roles: dict[tuple[str, str], tuple[Rule, ...]] = {}
        self.cluster_roles: dict[str, tuple[Rule, ...]] = {}
        self.bindings: dict[tuple[str, str], Binding] = {}
        """(namespace, name) -> binding; namespace "" for ClusterRoleBindings."""
        self._by_subject: dict[tuple[str, SubjectKey], set[str]] = {}
        """(namespace, subject key) -> names of the bindings there naming that subject."""

    # -- feeding ------------------------------------------------------------------------------------
    def replace(self, resource: Resource, objs: Iterable[Obj]) -> None:
        """Forget every object of ``resource`` and hold ``objs`` instead (a fresh list)."""
        if resource is ROLES:
            self.roles.clear()
        elif resource is CLUSTERROLES:
            self.cluster_roles.clear()
        else:
            cluster = resource is CLUSTERROLEBINDINGS
            for key in [k for k in self.bindings if (k[0] == "") == cluster]:
                self._unbind(key)
        for obj in objs:
            self.apply(resource, "ADDED", obj)

    def apply(self, resource: Resource, event: str, obj: Obj) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) of ``resource``."""
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "") if resource.namespaced else ""
        name = str(meta.get("name", ""))
        if resource in (ROLES, CLUSTERROLES):
            table: dict[Any, tuple[Rule, ...]] = self.roles if resource is ROLES else self.cluster_roles
            key: Any = (namespace, name) if resource is ROLES else name
            if event == "DELETED":
                table.pop(key, None)
            else:
                table[key] = rbacrules.rules_of(obj)
            return
        self._unbind((namespace, name))
        if event != "DELETED":
            binding = Binding.of({**obj, "metadata": {**meta, "namespace": namespace}})
            self.bindings[(namespace, name)] = binding
            for subject, _ in binding.subjects:
                self._by_subject.setdefault((namespace, subject), set()).add(name)

    def _unbind(self, key: tuple[str, str]) -> None:
        old = self.bindings.pop(key, None)
        if old is None:
            return
        for subject, _ in old.subjects:
            names = self._by_subject.get((key[0], subject))
            if names is not None:
                names.discard(key[1])
                if not names:
                    del self._by_subject[(key[0], subject)]

    # -- answering ----------------------------------------------------------------------------------
    def grants(self, user: auth.User, namespace: str) -> list[Grant]:
        """What the ClusterRoleBindings, and the RoleBindings of ``namespace`` (when given), grant
        ``user``; the cost follows the caller's own bindings only."""
        found: list[Grant] = []
        keys = user_keys(user)
        for scope in ("", namespace) if namespace else ("",):
            seen: set[str] = set()
            for key in keys:
                for name in sorted(self._by_subject.get((scope, key), ())):
                    if name in seen:
                        continue
                    seen.add(name)
                    binding = self.bindings[(scope, name)]
                    subject = next(text for k, text in binding.subjects if k == key)
                    found.append(Grant(binding.describe(subject), self._role_rules(binding)))
        return found

    def rules_for(self, user: auth.User, namespace: str) -> list[Rule]:
        """Every rule the bindings give ``user`` in ``namespace`` ("" = cluster-wide only)."""
        return [rule for grant in self.grants(user, namespace) for rule in grant.rules]

    def _role_rules(self, binding: Binding) -> tuple[Rule, ...]:
        """The rules of the binding's role (none when it is missing: upstream grants nothing)."""
        if binding.role_kind == "ClusterRole":
            return self.cluster_roles.get(binding.role_name, ())
        if binding.role_kind == "Role" and binding.namespace:
            return self.roles.get((binding.namespace, binding.role_name), ())
        return ()


async def read_index(store: Store, namespace: str) -> RbacIndex:
    """An index read straight from etcd, holding what ``namespace``'s requests need (the cluster
    objects and that namespace's Roles and RoleBindings): the re-check of a denial."""
    index = RbacIndex()
    for resource in KINDS:
        if resource.namespaced and not namespace:
            continue
        items, _ = await store.list(resource, namespace if resource.namespaced else "", _everything)
        index.replace(resource, items)
    return index


def _everything(_obj: Obj) -> bool:
    return True


class RbacCache:
    """An :class:`RbacIndex` kept current by one watch per RBAC kind, while started."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.index = RbacIndex()
        self._tasks: list[asyncio.Task[None]] = []
        self._synced: set[Resource] = set()
        self.applied: dict[Resource, int] = {}
        """The etcd revision up to which each kind's writes are in the index (its list's revision,
        then each event's): a key under the kind modified later is not in the index yet."""

    @property
    def synced(self) -> bool:
        """Whether every kind has been listed at least once (before that, ask etcd)."""
        return len(self._synced) == len(KINDS)

    def start(self) -> None:
        """Start the watches (in the running event loop); idempotent."""
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._follow(resource)) for resource in KINDS]

    async def stop(self) -> None:
        """Stop the watches and wait for them to end."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._synced.clear()
        self.applied.clear()

    async def wait_synced(self, timeout: float) -> bool:
        """Wait (polling the event loop) until :attr:`synced`, at most ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.synced and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return self.synced

    async def _follow(self, resource: Resource) -> None:
        """List, then watch from the list's revision; resume after a break, list again on 410."""
        since = ""
        while True:
            try:
                if not since:
                    items, revision = await self.store.list(resource, "", _everything)
                    self.index.replace(resource, items)
                    self.applied[resource] = revision
                    self._synced.add(resource)
                    since = str(revision)
                events = await self.store.open_watch(resource, "", since, _everything)
                async for event in events:
                    self.index.apply(resource, event.type, event.object)
                    since = str(event.object["metadata"]["resourceVersion"])
                    self.applied[resource] = int(since)
            except status.ApiError as exc:
                if exc.code == 410:
                    log.info("RBAC cache: %s watch too old (%s); listing again", resource.plural, exc.message)
                    since = ""
                    continue
                log.warning("RBAC cache: %s watch failed (%s); retrying", resource.plural, exc.message)
            except Exception:  # never let the cache die quietly: start over from a fresh list
                log.exception("RBAC cache: %s watch failed; listing again", resource.plural)
                self._synced.discard(resource)
                self.applied.pop(resource, None)
                since = ""
            await asyncio.sleep(_RETRY_S)
