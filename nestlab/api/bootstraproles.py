"""The built-in ClusterRoles and ClusterRoleBindings, reconciled at every API server start.

Upstream kube-apiserver's RBAC post-start hook (plugin/pkg/auth/authorizer/rbac/bootstrappolicy)
writes ``cluster-admin``, the user-facing ``admin``/``edit``/``view`` and the ``system:`` roles
everyone needs; it adds what is missing to each one that carries the annotation
``rbac.authorization.kubernetes.io/autoupdate: "true"`` and leaves alone one an administrator set to
``"false"``. This module does the same for the lab:

- ``cluster-admin`` (``*`` everywhere), bound to ``system:masters`` and ``nestlab:admins``;
- ``view``, ``edit``, ``admin``: aggregated roles (``admin`` aggregates ``edit`` aggregates
  ``view``, as upstream's labels make them), whose rules come from every kind unit's ``roles``
  through ``system:aggregate-to-view|edit|admin`` plus the registry's virtual ``images`` rules;
  their rules are filled here too, so they grant from the first start, before the aggregation
  controller has run;
- ``system:basic-user``, ``system:discovery``, ``system:public-info-viewer``, bound to every
  authenticated user;
- ``system:nestlab-controller``, bound to the user of nestlab-controller's certificate: what its
  controllers call and nothing more (upstream gives each controller of kube-controller-manager a
  ``system:controller:*`` role; one process here, one role);
- ``system:nestlab-dns``, bound to the user of nestlab-dns's certificate: a ClusterRole to list and
  watch Services and EndpointSlices (upstream's ``system:coredns`` reads the same), and a Role of
  the same name in ``kube-system`` (upstream bootstraps namespaced Roles there too, such as
  ``system::leader-locking-kube-scheduler``) for its Lease and the ``kube-dns`` Endpoints. It may
  write nothing else anywhere.

The desired objects are pure functions of the kind units (:func:`cluster_roles`,
:func:`cluster_role_bindings`, :func:`namespace_roles`, :func:`namespace_role_bindings`);
:func:`reconcile_role` and :func:`reconcile_binding` say what to write (for Roles and RoleBindings
too); :func:`ensure` is the only part doing I/O. Several API servers start at once, so losing a
create or an update race to another server is success.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from nestlab.api import kinds, status
from nestlab.api import resources as r
from nestlab.api.kinds.base import Obj
from nestlab.api.kinds.clusterrole import AGGREGATE_TO
from nestlab.api.kinds.common import as_dict
from nestlab.api.rbacrules import GROUP, Rule, rules_of, uncovered
from nestlab.api.resources import CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES, Resource

log = logging.getLogger(__name__)
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAPPING = {"kubernetes.io/bootstrapping": "rbac-defaults"}
LEVELS = ("view", "edit", "admin")
"""The user-facing aggregated roles, each included in the next."""
REGISTRY_GROUP = "registry.nestlab.dev"
REGISTRY_IMAGES: dict[str, frozenset[str]] = {
    "view": frozenset({"get"}),  # pull
    "edit": frozenset({"get", "create"}),  # pull, push
    "admin": frozenset({"get", "create", "delete"}),
}
"""What each level may do with its namespace's registry project (a virtual resource, never served:
the registry token service asks the authorizer about it)."""
ADMIN_GROUPS = ("system:masters", "nestlab:admins")
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
_DISCOVERY_URLS = ("/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*")
_PUBLIC_URLS = ("/healthz", "/livez", "/readyz", "/version", "/version/")
_ATTEMPTS = 3  # a lost update race is retried on the fresh copy; beyond that another server is on it
CONTROLLER = "system:nestlab-controller"
"""The user of nestlab-controller's client certificate (CN; no group), its ClusterRole and binding,
as kube-controller-manager is ``system:kube-controller-manager``. The attestation CLI shares the
certificate today: its reads and writes are a subset of these."""
DNS = "system:nestlab-dns"
"""The user of nestlab-dns's client certificate (CN; no group), its ClusterRole, Role and bindings."""
DNS_NAMESPACE = "kube-system"
"""Where nestlab-dns keeps its Leases and the ``kube-dns`` Endpoints (the API server creates it)."""
DNS_SERVICE = "kube-dns"
_R = ("get", "list", "watch")
_W = ("create", "update", "patch", "delete")
_STATUS = ("update", "patch")
_CONTROLLER_USES: tuple[tuple[Resource, str, tuple[str, ...]], ...] = (
    # (kind, subresource, verbs): what nestlab-controller's code calls (informers list and watch;
    # the garbage collector patches and deletes the kinds it monitors; ownership adopts by patch)
    (r.PODS, "", (*_R, *_W)),  # replica sets, jobs, stateful sets; pod GC; taint manager
    (r.PODS, "status", _STATUS),  # scheduler (PodScheduled), node lifecycle, pod GC, taint manager
    (r.PODS, "binding", ("create",)),  # scheduler
    (r.NODES, "", (*_R, "update", "patch")),  # node lifecycle taints, attestation
    (r.NODES, "status", _STATUS),  # node lifecycle (Unknown), attestation condition
    (r.NAMESPACES, "", (*_R, "create")),  # leader election makes its namespace
    (r.EVENTS, "", ("create", "update", "patch")),  # every controller's recorder
    (r.SERVICES, "", _R),
    (r.SERVICES, "status", _STATUS),  # LoadBalancer addresses
    (r.ENDPOINTS, "", (*_R, "create", "update", "delete")),  # endpoints controller
    (r.ENDPOINTSLICES, "", (*_R, *_W)),  # EndpointSlice and mirroring controllers
    (r.SERVICEACCOUNTS, "", (*_R, "create")),  # a default ServiceAccount in every namespace
    (r.CONFIGMAPS, "", (*_R, "create", "update")),  # kube-root-ca.crt in every namespace
    (r.PERSISTENTVOLUMECLAIMS, "", (*_R, "create", "update", "patch")),  # stateful sets, binding
    (r.PERSISTENTVOLUMECLAIMS, "status", _STATUS),  # provisioner binds
    (r.PERSISTENTVOLUMES, "", (*_R, *_W)),  # provisioner
    (r.PERSISTENTVOLUMES, "status", _STATUS),
    (r.STORAGECLASSES, "", _R),
    (r.VOLUMEATTACHMENTS, "", (*_R, *_W)),  # attacher
    (r.VOLUMEATTACHMENTS, "status", _STATUS),
    (r.LEASES, "", (*_R, *_W)),  # leader election, node heartbeats read
    (r.DEPLOYMENTS, "", (*_R, "update", "patch", "delete")),
    (r.DEPLOYMENTS, "status", _STATUS),
    (r.REPLICASETS, "", (*_R, *_W)),
    (r.REPLICASETS, "status", _STATUS),
    (r.REPLICATION_CONTROLLERS, "", (*_R, "update", "patch", "delete")),
    (r.REPLICATION_CONTROLLERS, "status", _STATUS),
    (r.STATEFULSETS, "", (*_R, "update", "patch", "delete")),
    (r.STATEFULSETS, "status", _STATUS),
    (r.CONTROLLER_REVISIONS, "", (*_R, *_W)),
    (r.JOBS, "", (*_R, *_W)),  # cron jobs create jobs
    (r.JOBS, "status", _STATUS),
    (r.CRONJOBS, "", (*_R, "update", "patch", "delete")),
    (r.CRONJOBS, "status", _STATUS),
    (r.PDBS, "", (*_R, "update", "patch", "delete")),
    (r.PDBS, "status", _STATUS),
    # the aggregation controller rewrites aggregated roles' rules: upstream's
    # clusterrole-aggregation-controller holds escalate (it grants what it may not hold itself)
    (r.CLUSTERROLES, "", (*_R, "update", "patch", "escalate")),
)


class Writer(Protocol):
    """The registry methods :func:`ensure` uses (the Registry, or a fake in tests)."""

    async def get(self, resource: Resource, namespace: str, name: str) -> Obj: ...
    async def create(self, resource: Resource, namespace: str, body: Any, manager: str = "") -> Obj: ...
    async def update(self, resource: Resource, namespace: str, name: str, body: Any) -> Obj: ...
    async def delete(self, resource: Resource, namespace: str, name: str, options: Obj) -> Obj: ...


def unit_rules(level: str) -> list[Rule]:
    """What the kind units grant ``level`` (view, edit, admin), one rule per group and verb set."""
    grouped: dict[tuple[str, frozenset[str]], set[str]] = {}
    for unit in kinds.ALL:
        for plural, verbs in unit.roles.get(level, {}).items():
            grouped.setdefault((unit.resource.group, frozenset(verbs)), set()).add(plural)
    rules = [
        Rule(verbs, frozenset({group}), frozenset(plurals)) for (group, verbs), plurals in grouped.items()
    ]
    rules.append(Rule(REGISTRY_IMAGES[level], frozenset({REGISTRY_GROUP}), frozenset({"images"})))
    return sorted(rules, key=lambda r: (sorted(r.api_groups), sorted(r.resources), sorted(r.verbs)))


def _meta(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {"name": name, "labels": {**BOOTSTRAPPING, **(labels or {})}, "annotations": {AUTOUPDATE: "true"}}


def _role(name: str, rules: Iterable[Rule], labels: dict[str, str] | None = None) -> Obj:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": _meta(name, labels),
        "rules": [rule.to_json() for rule in rules],
    }


def _label(level: str) -> dict[str, str]:
    return {f"{AGGREGATE_TO}{level}": "true"}


def controller_rules() -> list[Rule]:
    """nestlab-controller's rights: exactly what its code calls, one rule per group and verb set."""
    grouped: dict[tuple[str, frozenset[str]], set[str]] = {}
    for resource, subresource, verbs in _CONTROLLER_USES:
        plural = f"{resource.plural}/{subresource}" if subresource else resource.plural
        grouped.setdefault((resource.group, frozenset(verbs)), set()).add(plural)
    for resource in r.ALL:  # the garbage collector reads an object's owner of any kind...
        if resource is not r.SECRETS and resource.group != "authorization.k8s.io":  # ...but a Secret
            grouped.setdefault((resource.group, frozenset({"get"})), set()).add(resource.plural)
    rules = [Rule(verbs, frozenset({group}), frozenset(names)) for (group, verbs), names in grouped.items()]
    return sorted(
        rules, key=lambda rule: (sorted(rule.api_groups), sorted(rule.resources), sorted(rule.verbs))
    )


def dns_rules() -> list[Rule]:
    """nestlab-dns's cluster-wide rights: its informers list and watch Services and EndpointSlices."""
    return [
        Rule.of(["list", "watch"], [r.SERVICES.group], [r.SERVICES.plural]),
        Rule.of(["list", "watch"], [r.ENDPOINTSLICES.group], [r.ENDPOINTSLICES.plural]),
    ]


def dns_namespace_rules() -> list[Rule]:
    """nestlab-dns's rights in ``kube-system``: its Lease (renew, list the others' to see who is
    alive, delete at a clean stop) and the ``kube-dns`` Endpoints (create names no object, as
    upstream: resourceNames cannot narrow a create)."""
    return [
        Rule.of(["get", "list", "create", "update", "delete"], [r.LEASES.group], [r.LEASES.plural]),
        Rule.of(["create"], [r.ENDPOINTS.group], [r.ENDPOINTS.plural]),
        Rule.of(["get", "update"], [r.ENDPOINTS.group], [r.ENDPOINTS.plural], resource_names=[DNS_SERVICE]),
    ]


def cluster_roles() -> list[Obj]:
    """Every built-in ClusterRole, as it should be."""
    roles = [
        _role(CONTROLLER, controller_rules()),
        _role(DNS, dns_rules()),
        _role("cluster-admin", [Rule.of(["*"], ["*"], ["*"]), Rule.of(["*"], non_resource_urls=["*"])]),
        _role(
            "system:basic-user",
            [
                Rule.of(
                    ["create"],
                    ["authorization.k8s.io"],
                    ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                Rule.of(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
            ],
        ),
        _role("system:discovery", [Rule.of(["get"], non_resource_urls=_DISCOVERY_URLS)]),
        _role("system:public-info-viewer", [Rule.of(["get"], non_resource_urls=_PUBLIC_URLS)]),
    ]
    held: list[Rule] = []
    for index, level in enumerate(LEVELS):
        own = unit_rules(level)
        held = _union(held, own)  # admin includes edit includes view
        roles.append(_role(f"system:aggregate-to-{level}", own, _label(level)))
        includes = _label(LEVELS[index + 1]) if index + 1 < len(LEVELS) else {}
        role = _role(level, held, includes)
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": _label(level)}]}
        roles.append(role)
    return roles


def _binding(name: str, groups: Iterable[str], users: Iterable[str] = ()) -> Obj:
    subjects = [{"apiGroup": GROUP, "kind": "Group", "name": group} for group in groups]
    subjects += [{"apiGroup": GROUP, "kind": "User", "name": user} for user in users]
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(name),
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name},
        "subjects": subjects,
    }


def cluster_role_bindings() -> list[Obj]:
    """Every built-in ClusterRoleBinding, as it should be."""
    return [
        _binding("cluster-admin", ADMIN_GROUPS),
        _binding(CONTROLLER, (), [CONTROLLER]),
        _binding(DNS, (), [DNS]),
        _binding("system:basic-user", [AUTHENTICATED]),
        _binding("system:discovery", [AUTHENTICATED]),
        _binding("system:public-info-viewer", [AUTHENTICATED, UNAUTHENTICATED]),
    ]


def _namespaced(obj: Obj, kind: str, namespace: str) -> Obj:
    """``obj`` (a ClusterRole or ClusterRoleBinding as built above) as a ``kind`` in ``namespace``."""
    obj.update(kind=kind)
    obj["metadata"]["namespace"] = namespace
    if "roleRef" in obj:
        obj["roleRef"]["kind"] = "Role"
    return obj


def namespace_roles() -> list[Obj]:
    """Every built-in Role (namespaced), as it should be."""
    return [_namespaced(_role(DNS, dns_namespace_rules()), "Role", DNS_NAMESPACE)]


def namespace_role_bindings() -> list[Obj]:
    """Every built-in RoleBinding, as it should be."""
    return [_namespaced(_binding(DNS, (), [DNS]), "RoleBinding", DNS_NAMESPACE)]


def _union(held: list[Rule], more: Iterable[Rule]) -> list[Rule]:
    """``held`` plus each rule of ``more`` it does not already cover."""
    out = list(held)
    for rule in more:
        if uncovered(out, [rule]):
            out.append(rule)
    return out


def _autoupdate(existing: Obj) -> bool:
    annotations = as_dict(as_dict(existing.get("metadata")).get("annotations"))
    return bool(annotations.get(AUTOUPDATE, "true") != "false")


def _merged_meta(existing: Obj, desired: Obj) -> Obj:
    meta = copy.deepcopy(as_dict(existing.get("metadata")))
    for key in ("labels", "annotations"):
        meta[key] = {**(meta.get(key) or {}), **desired["metadata"][key]}
    return meta


def reconcile_role(existing: Obj, desired: Obj) -> Obj | None:
    """The ClusterRole to write, or None when ``existing`` already holds everything (or opted out).

    As upstream's reconciler without ``--remove-extra-permissions``: missing rules, labels,
    annotations and aggregation selectors are added; nothing an administrator added is removed.
    """
    if not _autoupdate(existing):
        return None
    updated = copy.deepcopy(existing)
    updated["metadata"] = _merged_meta(existing, desired)
    rules = list(rules_of(existing))
    missing = [rule for rule in rules_of(desired) if uncovered(rules, [rule])]
    updated["rules"] = [*(existing.get("rules") or []), *(rule.to_json() for rule in missing)]
    if "aggregationRule" in desired:
        selectors = list(((existing.get("aggregationRule") or {}).get("clusterRoleSelectors")) or [])
        selectors += [s for s in desired["aggregationRule"]["clusterRoleSelectors"] if s not in selectors]
        updated["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return None if updated == existing else updated


def reconcile_binding(existing: Obj, desired: Obj) -> Obj | None:
    """The ClusterRoleBinding to write (subjects added, never removed), or None when nothing is missing.

    A different roleRef cannot be changed in place: the caller deletes and recreates the binding
    when the answer's roleRef differs from ``existing``'s.
    """
    if not _autoupdate(existing):
        return None
    updated = copy.deepcopy(existing)
    updated["metadata"] = _merged_meta(existing, desired)
    updated["roleRef"] = desired["roleRef"]
    subjects = list(existing.get("subjects") or [])
    subjects += [s for s in desired["subjects"] if s not in subjects]
    updated["subjects"] = subjects
    return None if updated == existing else updated


async def _ensure_one(registry: Writer, resource: Resource, desired: Obj) -> str:
    """Create or reconcile one object: ``created``, ``updated``, ``recreated`` or ``kept``."""
    name, namespace = desired["metadata"]["name"], str(desired["metadata"].get("namespace", ""))
    reconcile = reconcile_role if resource in (CLUSTERROLES, ROLES) else reconcile_binding
    for _attempt in range(_ATTEMPTS):
        try:
            existing = await registry.get(resource, namespace, name)
        except status.ApiError as exc:
            if exc.code != 404:
                raise
            try:
                await registry.create(resource, namespace, copy.deepcopy(desired), "nestlab-apiserver")
            except status.ApiError as race:
                if race.code != 409:
                    raise
                continue
            return "created"
        updated = reconcile(existing, desired)
        if updated is None:
            return "kept"
        try:
            if updated.get("roleRef", existing.get("roleRef")) != existing.get("roleRef"):
                await registry.delete(
                    resource, namespace, name, {"preconditions": {"uid": existing["metadata"]["uid"]}}
                )
                continue  # created on the next attempt
            await registry.update(resource, namespace, name, updated)
        except status.ApiError as race:
            if race.code not in (404, 409):
                raise
            continue
        return "updated"
    return "kept"


async def ensure(registry: Writer) -> None:
    """Reconcile every built-in ClusterRole, ClusterRoleBinding, Role and RoleBinding (part of the
    server's bootstrap, after the system namespaces exist)."""
    for resource, objects in (
        (CLUSTERROLES, cluster_roles()),
        (CLUSTERROLEBINDINGS, cluster_role_bindings()),
        (ROLES, namespace_roles()),
        (ROLEBINDINGS, namespace_role_bindings()),
    ):
        for desired in objects:
            outcome = await _ensure_one(registry, resource, desired)
            if outcome != "kept":
                log.info("%s the built-in %s %s", outcome, resource.kind, desired["metadata"]["name"])
