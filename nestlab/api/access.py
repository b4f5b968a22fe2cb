"""The authorizer and ``SelfSubjectAccessReview`` (what ``kubectl auth can-i`` asks).

One function decides whether a user may do something, from the rules in :mod:`auth` and the
RoleBindings stored in the namespace; the request path and the access review both call it, so
``kubectl auth can-i create pods -n team-a`` answers exactly what a create would meet.
"""

from __future__ import annotations

from typing import Any, Protocol

from nestlab.api import auth, resources, status
from nestlab.api.resources import LEASES, NAMESPACES, NODES, PODS, ROLEBINDINGS, Resource
from nestlab.api.store import Obj, Store


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
# Paths every authenticated user may GET (upstream: system:discovery, system:public-info-viewer).
_PUBLIC_PATHS = ("/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi")


class Authorizer:
    """Decides with the built-in roles and the namespace's RoleBindings."""

    def __init__(self, store: Store) -> None:
        self.store = store

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
        if user.is_admin:
            return True
        plural = resource.plural + (f"/{subresource}" if subresource else "")
        namespace = namespace if resource.namespaced else ""
        scope = namespace or (name if resource is NAMESPACES else "")
        roles: set[str] = set()
        if scope:
            bindings, _ = await self.store.list(ROLEBINDINGS, scope, lambda _obj: True)
            roles = auth.bound_roles(user, bindings)
            if resource is NAMESPACES and not subresource and verb != "get":
                roles = set()  # a namespace binding lets you read your namespace, not change it
        return auth.allowed(user, verb, plural, roles)

    async def check(
        self,
        user: auth.User,
        verb: str,
        resource: Resource,
        *,
        namespace: str,
        name: str,
        subresource: str = "",
    ) -> None:
        """403, worded like RBAC, unless allowed."""
        if not await self.allowed(
            user, verb, resource, namespace=namespace, name=name, subresource=subresource
        ):
            plural = resource.plural + (f"/{subresource}" if subresource else "")
            where = namespace if resource.namespaced else ""
            raise status.forbidden(user.name, verb, plural, resource.group, namespace=where, name=name)

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

    async def review(self, user: auth.User, body: Any) -> Obj:
        """Answer a SelfSubjectAccessReview: ``body`` with ``status.allowed`` filled in."""
        if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
            raise status.bad_request("a SelfSubjectAccessReview needs a spec")
        spec = body["spec"]
        attributes, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if isinstance(attributes, dict):
            allowed, reason = await self._resource_review(user, attributes)
        elif isinstance(non_resource, dict):
            path, verb = str(non_resource.get("path", "")), str(non_resource.get("verb", ""))
            allowed = user.is_admin or (verb == "get" and path.startswith(_PUBLIC_PATHS))
            reason = "discovery and health endpoints are open to authenticated users" if allowed else ""
        else:
            cause = status.Cause(
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                "FieldValueRequired",
            )
            raise status.invalid("SelfSubjectAccessReview", "authorization.k8s.io", "", [cause])
        answer: Obj = {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {},
            "spec": spec,
            "status": {"allowed": allowed},
        }
        if reason:
            answer["status"]["reason"] = reason
        return answer

    async def _resource_review(self, user: auth.User, attributes: dict[str, Any]) -> tuple[bool, str]:
        group, version = str(attributes.get("group", "")), str(attributes.get("version", ""))
        plural = str(attributes.get("resource", ""))
        candidates = [r for r in resources.ALL if (r.group, r.plural) == (group, plural)]
        served = [r for r in candidates if not version or r.version == version]
        if not served:
            return user.is_admin, "lab administrators may do everything" if user.is_admin else ""
        allowed = await self.allowed(
            user,
            str(attributes.get("verb", "")),
            served[0],
            namespace=str(attributes.get("namespace", "")),
            name=str(attributes.get("name", "")),
            subresource=str(attributes.get("subresource", "")),
        )
        if not allowed:
            return False, ""
        if user.is_admin:
            return True, "lab administrators may do everything"
        return True, "allowed by a RoleBinding or the node rules"
