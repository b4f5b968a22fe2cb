"""The resource types this API server serves: names, kinds, scopes and verbs, in one table.

Discovery, routing, storage keys, RBAC and table printing all read this table, so adding a type is
one entry here plus (optionally) validation and printing rules.
"""

from __future__ import annotations

from dataclasses import dataclass

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    """One served resource type."""

    plural: str
    """URL and storage name (``pods``)."""
    singular: str
    kind: str
    group: str
    """API group; "" is the core group served under /api."""
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    """``status``, ``binding``, ``log``: served under /<plural>/<name>/<sub>."""
    has_status: bool = False
    """Whether ``status`` is only writable through the status subresource."""
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    """What the resource supports; create-only kinds (access reviews) are never stored."""

    @property
    def stored(self) -> bool:
        """Whether objects of this kind live in etcd (access reviews are answered, not kept)."""
        return "get" in self.verbs

    @property
    def group_version(self) -> str:
        """``v1`` or ``coordination.k8s.io/v1``: the apiVersion of objects of this type."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def key(self, namespace: str, name: str) -> str:
        """The etcd key of one object."""
        group = f"{self.group}/" if self.group else ""
        if self.namespaced:
            return f"/registry/{group}{self.plural}/{namespace}/{name}"
        return f"/registry/{group}{self.plural}/{name}"

    def prefix(self, namespace: str = "") -> str:
        """The etcd prefix of all objects (of ``namespace``, when given)."""
        group = f"{self.group}/" if self.group else ""
        if self.namespaced and namespace:
            return f"/registry/{group}{self.plural}/{namespace}/"
        return f"/registry/{group}{self.plural}/"


NAMESPACES = Resource("namespaces", "namespace", "Namespace", "", "v1", False, ("ns",), ("status",), True)
NODES = Resource("nodes", "node", "Node", "", "v1", False, ("no",), ("status",), True)
PODS = Resource("pods", "pod", "Pod", "", "v1", True, ("po",), ("status", "binding", "log"), True, ("all",))
EVENTS = Resource("events", "event", "Event", "", "v1", True, ("ev",))
QUOTAS = Resource(
    "resourcequotas", "resourcequota", "ResourceQuota", "", "v1", True, ("quota",), ("status",), True
)
LEASES = Resource("leases", "lease", "Lease", "coordination.k8s.io", "v1", True)
ROLEBINDINGS = Resource("rolebindings", "rolebinding", "RoleBinding", "rbac.authorization.k8s.io", "v1", True)

ACCESS_REVIEWS = Resource(
    "selfsubjectaccessreviews",
    "selfsubjectaccessreview",
    "SelfSubjectAccessReview",
    "authorization.k8s.io",
    "v1",
    False,
    verbs=("create",),
)

ALL: tuple[Resource, ...] = (NAMESPACES, NODES, PODS, EVENTS, QUOTAS, LEASES, ROLEBINDINGS, ACCESS_REVIEWS)


def groups() -> dict[str, list[str]]:
    """Every named API group and its versions (the core group "" excluded)."""
    found: dict[str, list[str]] = {}
    for resource in ALL:
        if resource.group and resource.version not in found.setdefault(resource.group, []):
            found[resource.group].append(resource.version)
    return found


def find(group: str, version: str, plural: str) -> Resource | None:
    """The resource served at /<group>/<version>/<plural>, if any."""
    for resource in ALL:
        if (resource.group, resource.version, resource.plural) == (group, version, plural):
            return resource
    return None


def in_group_version(group: str, version: str) -> list[Resource]:
    """The resources of one group/version (empty when the group/version is not served)."""
    return [r for r in ALL if (r.group, r.version) == (group, version)]
