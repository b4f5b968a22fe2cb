"""RBAC escalation prevention: nobody grants, through a role or a binding, what they do not hold.

Without it, anyone allowed to create Roles and RoleBindings in a namespace (its ``admin``) could
write a Role granting ``*`` on ``*`` and bind it to themselves. Upstream refuses this in the RBAC
storage (pkg/registry/rbac ``ConfirmNoEscalation``, ``RoleEscalationAuthorized``,
``BindingAuthorized``); here it is a validating registry hook on the four RBAC kinds, run on create
and update right before the write:

- a Role or ClusterRole: every rule must be covered by what the caller holds in that namespace
  (cluster-wide for a ClusterRole), unless the caller has verb ``escalate`` on that kind; an
  aggregated ClusterRole can gather anything, so it takes ``*`` on everything;
- a RoleBinding or ClusterRoleBinding: the caller must hold every rule of the referenced role in
  the binding's namespace, unless they have verb ``bind`` on that role (resourceNames honoured);
  the referenced role must exist for that check.

Callers with no user (the server's own bootstrap) and lab administrators pass, as upstream lets
``system:masters`` pass. The refusal is upstream's 403 word for word.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nestlab.api import notices, status
from nestlab.api.auth import CURRENT_USER, User
from nestlab.api.kinds.clusterrole import is_aggregated
from nestlab.api.kinds.common import as_dict
from nestlab.api.rbacrules import (
    GROUP,
    Attributes,
    Rule,
    allows,
    compact,
    describe,
    go_quote,
    go_quote_list,
    rules_of,
    uncovered,
)
from nestlab.api.registry import Hook
from nestlab.api.resources import CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES, Resource

Obj = dict[str, Any]
RulesFor = Callable[[User, str], Awaitable[list[Rule]]]
"""(user, namespace) -> every rule the user holds there ("" = the cluster-wide ones only)."""
GetObject = Callable[[Resource, str, str], Awaitable[Obj]]
"""(resource, namespace, name) -> the stored object, or ApiError 404."""
FULL_AUTHORITY = (Rule.of(["*"], ["*"], ["*"]), Rule.of(["*"], non_resource_urls=["*"]))
AGGREGATION_REFUSAL = "must have cluster-admin privileges to use the aggregationRule"
_SERVER_OWNED = (
    "ownerReferences",
    "finalizers",
    "selfLink",
    "managedFields",
    "resourceVersion",
    "generation",
)


def only_gc_fields(new: Obj, old: Obj) -> bool:
    """Upstream IsOnlyMutatingGCFields: an update touching only owner references and finalizers
    (what the garbage collector writes) is never an escalation."""

    def rest(obj: Obj) -> Obj:
        meta = {k: v for k, v in as_dict(obj.get("metadata")).items() if k not in _SERVER_OWNED}
        return {**{k: v for k, v in obj.items() if k != "metadata"}, "metadata": meta}

    return rest(new) == rest(old)


def refusal(resource: Resource, name: str, user: User, missing: list[Rule]) -> status.ApiError:
    """Upstream's 403 naming the rules the caller lacks (compacted, sorted)."""
    lines = "\n".join(sorted({describe(rule) for rule in compact(missing)}))
    reason = (
        f"user {go_quote(user.name)} (groups={go_quote_list(user.groups)}) is attempting to grant RBAC "
        f"permissions not currently held:\n{lines}"
    )
    refused = status.admission_forbidden(resource.plural, resource.group, name, reason)
    refused.multiline = True  # one rule per line, as upstream; each rule's strings are quoted
    return refused


def check_role(
    held: list[Rule], user: User, resource: Resource, *, namespace: str, new: Obj, old: Obj | None
) -> None:
    """A Role or ClusterRole: the caller holds every rule, or may ``escalate`` (pure: 403 or nothing)."""
    name = str(new["metadata"].get("name", ""))
    # upstream asks with the request's name: none on create, so resourceNames only help updates
    asked = Attributes(
        "escalate", GROUP, resource.plural, name=name if old is not None else "", namespace=namespace
    )
    if allows(held, asked):
        return
    missing = uncovered(held, rules_of(new))
    if missing:
        raise refusal(resource, name, user, missing)
    aggregated = is_aggregated(new) or (old is not None and is_aggregated(old))
    if resource is CLUSTERROLES and aggregated and uncovered(held, FULL_AUTHORITY):
        raise status.admission_forbidden(resource.plural, resource.group, name, AGGREGATION_REFUSAL)


def role_of(binding: Obj) -> tuple[Resource, str]:
    """The kind (roles or clusterroles) and name a binding's roleRef names."""
    ref = as_dict(binding.get("roleRef"))
    return (ROLES if ref.get("kind") == "Role" else CLUSTERROLES), str(ref.get("name", ""))


def may_bind(held: list[Rule], binding: Obj, namespace: str) -> bool:
    """Upstream BindingAuthorized: verb ``bind`` on the referenced role (its name honoured)."""
    role_resource, role_name = role_of(binding)
    return allows(held, Attributes("bind", GROUP, role_resource.plural, name=role_name, namespace=namespace))


def check_binding(held: list[Rule], user: User, resource: Resource, *, binding: Obj, role: Obj) -> None:
    """A RoleBinding or ClusterRoleBinding: the caller holds every rule of the role it grants."""
    missing = uncovered(held, rules_of(role))
    if missing:
        raise refusal(resource, str(binding["metadata"].get("name", "")), user, missing)


async def _referenced_role(get: GetObject, resource: Resource, namespace: str, binding: Obj) -> Obj:
    """The role a binding grants; 403 naming it when it does not exist (upstream cannot check
    what a missing role grants, so only a caller who may ``bind`` it may bind it)."""
    role_resource, role_name = role_of(binding)
    try:
        return await get(role_resource, namespace if role_resource is ROLES else "", role_name)
    except status.ApiError as exc:
        if exc.code != 404:
            raise
        name = str(binding["metadata"].get("name", ""))
        raise status.admission_forbidden(resource.plural, resource.group, name, exc.message) from None


async def _warn_if_role_missing(get: GetObject, namespace: str, binding: Obj) -> None:
    """A binding to a missing role is stored (upstream) but grants nothing: say so to the client."""
    role_resource, role_name = role_of(binding)
    try:
        await get(role_resource, namespace if role_resource is ROLES else "", role_name)
    except status.ApiError as exc:
        if exc.code != 404:
            raise
        kind = "Role" if role_resource is ROLES else "ClusterRole"
        notices.warn(f'{kind} "{role_name}" not found: this binding grants nothing until it exists')


def hook(rules_for: RulesFor, get: GetObject) -> Hook:
    """The validating registry hook (server.py passes the authorizer's ``rules_for`` and a getter
    reading the store)."""

    async def prevent_escalation(resource: Resource, namespace: str, new: Obj, old: Obj | None) -> None:
        if resource not in (ROLES, CLUSTERROLES, ROLEBINDINGS, CLUSTERROLEBINDINGS):
            return
        if resource in (ROLEBINDINGS, CLUSTERROLEBINDINGS) and old is None:
            await _warn_if_role_missing(get, namespace if resource.namespaced else "", new)
        user = CURRENT_USER.get()
        if user is None or user.is_admin:
            return
        if old is not None and only_gc_fields(new, old):
            return
        where = namespace if resource.namespaced else ""
        held = await rules_for(user, where)
        if resource in (ROLES, CLUSTERROLES):
            check_role(held, user, resource, namespace=where, new=new, old=old)
        elif not may_bind(held, new, where):
            role = await _referenced_role(get, resource, where, new)
            check_binding(held, user, resource, binding=new, role=role)

    return prevent_escalation
