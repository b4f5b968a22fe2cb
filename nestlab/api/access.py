"""The authorizer: who may do what, decided as kube-apiserver's authorizer chain decides it.

One object answers every question about permissions (the request path, non-resource paths,
impersonation, access reviews, escalation checks, the registry's token service), so
``kubectl auth can-i`` answers exactly what a request would meet. The chain, as upstream:

1. members of ``system:masters`` (and ``nestlab:admins``, the lab's own administrators) are
   allowed everything, hard-wired, so a broken RBAC object cannot lock the lab out (the controller
   is not one of them: it is ``system:nestlab-controller``, with its built-in ClusterRole);
2. node agents (``system:nodes``) hold the node rules (upstream's Node authorizer is not RBAC
   either): their reads of Secrets, ConfigMaps, claims, volumes, ServiceAccounts and
   VolumeAttachments (those attached to them) only for the
   objects their own pods name (:mod:`nestlab.api.nodeauthorizer`), their writes narrowed per object
   by :meth:`Authorizer.restrict_node` (NodeRestriction);
3. everything else comes from Roles, ClusterRoles and their bindings, read from the in-memory
   index :mod:`nestlab.api.rbaccache` keeps from watches. A denial is re-checked against etcd before
   it becomes a 403, so a binding created a moment ago on another API server is never missed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from nestlab.api import auth, kinds, nodeauthorizer, rbacrules, status
from nestlab.api.rbaccache import KINDS, Grant, RbacCache, read_index
from nestlab.api.rbacrules import Attributes, Rule
from nestlab.api.resources import LEASES, NAMESPACES, NODES, PODS, Resource
from nestlab.api.store import Store


class Target(Protocol):
    """What a request is about (see handlers.Target)."""

    @property
    def resource(self) -> Resource: ...
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def subresource(self) -> str: ...


NODE_USER_PREFIX = "system:node:"
NODE_LEASE_NAMESPACE = "kube-node-lease"
UnchangedSince = Callable[[Mapping[str, int]], Awaitable[bool]]
"""Whether no etcd key under each prefix was created or modified after the revision given for it
(one read-only etcd transaction comparing mod revisions over the ranges; values never travel)."""
SUPERUSER_RULES = (Rule.of(["*"], ["*"], ["*"]), Rule.of(["*"], non_resource_urls=["*"]))
"""What a hard-wired administrator holds (upstream's privileged-group authorizer's RulesFor)."""


def _node_rules() -> tuple[Rule, ...]:
    """A kubelet's rights over every kind this server serves (each unit's ``roles["node"]``)."""
    return tuple(
        Rule.of(verbs, [unit.resource.group], [plural])
        for unit in kinds.ALL
        for plural, verbs in unit.roles.get("node", {}).items()
    )


NODE_RULES = _node_rules()


def node_of(user: auth.User) -> str:
    """The node a node agent's user names (``system:node:<node>``); "" for any other user."""
    return user.name.removeprefix(NODE_USER_PREFIX) if user.name.startswith(NODE_USER_PREFIX) else ""


def attributes(
    verb: str, resource: Resource, *, namespace: str, name: str, subresource: str = ""
) -> Attributes:
    """The authorizer attributes of a request on ``resource`` (upstream RequestInfo: a cluster-scoped
    kind has no namespace; ``/namespaces/<name>`` is in the namespace ``<name>``)."""
    if resource is NAMESPACES:
        namespace = name
    elif not resource.namespaced:
        namespace = ""
    return Attributes(verb, resource.group, resource.plural, subresource, name, namespace)


def path_forbidden(user: str, verb: str, path: str) -> status.ApiError:
    """403 for a non-resource path, worded as upstream: ``forbidden: User "bob" cannot get path "/apis"``."""
    return status.ApiError(403, "Forbidden", f'forbidden: User "{user}" cannot {verb} path "{path}"')


def _decide(grants: list[Grant], attrs: Attributes) -> str:
    """The reason the first grant allowing ``attrs`` gives (upstream wording); "" when none does."""
    for grant in grants:
        if rbacrules.allows(grant.rules, attrs):
            return f"RBAC: allowed by {grant.source}"
    return ""


class Authorizer:
    """Decides with the hard-wired groups, the node rules and the RBAC objects."""

    def __init__(self, store: Store, unchanged_since: UnchangedSince | None = None) -> None:
        self.store = store
        self.cache = RbacCache(store)
        self.unchanged_since = unchanged_since
        """With it, a denial is confirmed by asking etcd whether any RBAC object the decision could
        read changed since the cache saw it (cost independent of their number); without it, the
        objects are read again."""

    def start(self) -> None:
        """Start feeding the RBAC cache (until then every decision reads etcd)."""
        self.cache.start()

    async def stop(self) -> None:
        await self.cache.stop()

    # -- deciding -----------------------------------------------------------------------------------
    async def allowed_attrs(self, user: auth.User, attrs: Attributes) -> tuple[bool, str]:
        """(decision, reason) for ``attrs``; the reason is upstream's (empty for a denial)."""
        if user.is_admin:
            return True, ""
        denial = ""
        if auth.NODE_GROUP in user.groups and rbacrules.allows(NODE_RULES, attrs):
            if not nodeauthorizer.governs(attrs):
                return True, ""
            node = node_of(user)
            allowed, denial = await nodeauthorizer.decide(self.store, node, attrs) if node else (False, "")
            if allowed:
                return True, ""
        if self.cache.synced:
            reason = _decide(self.cache.index.grants(user, attrs.namespace), attrs)
            if reason:
                return True, reason
            if await self._cache_current(attrs.namespace):
                return False, denial
        fresh = await read_index(self.store, attrs.namespace)
        reason = _decide(fresh.grants(user, attrs.namespace), attrs)
        return (True, reason) if reason else (False, denial)

    async def _cache_current(self, namespace: str) -> bool:
        """Whether etcd holds no RBAC object a decision in ``namespace`` reads that was created or
        changed after the cache saw its kind (deletions only take permissions away: never missed)."""
        applied = dict(self.cache.applied)
        if self.unchanged_since is None or len(applied) != len(KINDS):
            return False
        ranges = {kind.prefix(namespace): applied[kind] for kind in KINDS if namespace or not kind.namespaced}
        return await self.unchanged_since(ranges)

    async def rules_for(self, user: auth.User, namespace: str) -> list[Rule]:
        """Every rule ``user`` holds in ``namespace`` ("" = the cluster-wide ones only): what
        escalation checks and SelfSubjectRulesReview need.

        Read from etcd, not the cache: both are rare (a write of an RBAC object, ``can-i --list``)
        and both refuse on what is missing, so a binding made a moment ago must count, as it does
        for a denied request."""
        if user.is_admin:
            return list(SUPERUSER_RULES)
        rules = list(NODE_RULES) if auth.NODE_GROUP in user.groups else []
        return rules + (await read_index(self.store, namespace)).rules_for(user, namespace)

    async def allowed(
        self,
        user: auth.User,
        verb: str,
        resource: Resource,
        *,
        namespace: str,
        name: str,
        subresource: str = "",
    ) -> bool:
        """Whether ``user`` may ``verb`` the resource (``namespace`` ignored for cluster-scoped kinds)."""
        asked = attributes(verb, resource, namespace=namespace, name=name, subresource=subresource)
        return (await self.allowed_attrs(user, asked))[0]

    async def check(
        self,
        user: auth.User,
        verb: str,
        resource: Resource,
        *,
        namespace: str,
        name: str,
        subresource: str = "",
    ) -> str:
        """The reason it is allowed; 403, worded like RBAC, unless allowed."""
        asked = attributes(verb, resource, namespace=namespace, name=name, subresource=subresource)
        return await self.check_attrs(user, asked)

    async def check_attrs(self, user: auth.User, attrs: Attributes) -> str:
        """The reason ``attrs`` is allowed; else the upstream 403 (resource or path wording)."""
        allowed, reason = await self.allowed_attrs(user, attrs)
        if allowed:
            return reason
        if not attrs.is_resource_request:
            raise path_forbidden(user.name, attrs.verb, attrs.path)
        plural = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
        error = status.forbidden(
            user.name, attrs.verb, plural, attrs.group, namespace=attrs.namespace, name=attrs.name
        )
        if reason:  # the Node authorizer's reason follows, as upstream's union authorizer joins it
            raise status.ApiError(error.code, error.reason, f"{error.message}: {reason}", error.details)
        raise error

    async def restrict_node(self, user: auth.User, verb: str, target: Target, body: Any) -> None:
        """NodeRestriction: a node agent writes only its own Node, its own Lease in kube-node-lease
        and the pods bound to it (403 otherwise, worded like upstream)."""
        if user.is_admin or auth.NODE_GROUP not in user.groups or verb in ("get", "list", "watch"):
            return
        node = user.name.removeprefix(NODE_USER_PREFIX) if user.name.startswith(NODE_USER_PREFIX) else ""
        resource, name = target.resource, target.name
        if not name and isinstance(body, dict) and isinstance(body.get("metadata"), dict):
            name = str(body["metadata"].get("name", ""))
        reason = ""
        if not node:
            reason = f'node users must be named "{NODE_USER_PREFIX}<node name>", not "{user.name}"'
        elif resource is NODES and name != node:
            reason = f'node "{node}" is not allowed to modify node "{name}"'
        elif resource is LEASES and (target.namespace != NODE_LEASE_NAMESPACE or name != node):
            reason = f'node "{node}" may only modify its own lease in namespace {NODE_LEASE_NAMESPACE}'
        elif resource is PODS:
            pod = await self.store.get(PODS, target.namespace, target.name)
            if (pod.get("spec") or {}).get("nodeName") != node:
                action = "update pod status for" if target.subresource == "status" else "delete"
                reason = f'node "{node}" can only {action} pods with spec.nodeName set to itself'
        if reason:
            raise status.admission_forbidden(resource.plural, resource.group, name, reason)
