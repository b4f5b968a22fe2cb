"""A vSphere Namespace as Kubernetes objects: what ``nestlab namespace create|set`` asks for, pure.

In vSphere a Namespace is created in one dialog: its CPU, memory and storage limits, the default
resources of a container, who may view, edit or own it, and (with Harbor) a registry project of
the same name. The lab expresses the same thing with upstream objects, all named here so that
``kubectl get`` shows the learner each piece:

- the Namespace, labelled ``nestlab.dev/vsphere-namespace: "true"`` and
  ``nestlab.dev/registry-project: <name>`` (the depot's project for ``nestlab image push``);
- ResourceQuota ``nestlab-limits``: ``limits.cpu``, ``limits.memory`` (a resource pool's limits
  cap what its VMs may use: a container's limits), ``requests.storage``, ``pods``, and the object
  counts of ``--count RESOURCE=N`` (upstream's ``count/<resource>[.<group>]``, or the plain
  ``services``, ``secrets``, ``configmaps``, ``persistentvolumeclaims``, ``replicationcontrollers``);
- LimitRange ``nestlab-defaults``: the default limit (and, by upstream defaulting, request) of a
  container that names none; without it a quota on limits would refuse every bare pod;
- RoleBindings ``nestlab-view|edit|admin`` to the ClusterRoles view/edit/admin.

:class:`Settings` is the whole desired state; :func:`desired` turns it into objects and
:func:`settings_of` reads it back from objects, so ``set`` can change only what it is given.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nestlab.api import quantity
from nestlab.errors import UsageError

Obj = dict[str, Any]
LABEL = "nestlab.dev/vsphere-namespace"
PROJECT_LABEL = "nestlab.dev/registry-project"
MANAGED = {"app.kubernetes.io/managed-by": "nestlab"}
QUOTA, DEFAULTS = "nestlab-limits", "nestlab-defaults"
ROLES = ("view", "edit", "admin")
RBAC_GROUP = "rbac.authorization.k8s.io"
SA_PREFIX = "system:serviceaccount:"
DEFAULT_CPU, DEFAULT_MEMORY = "500m", "512Mi"
"""A container's limits when the namespace limits CPU or memory and no default is given: four
containers per core, eight per 4Gi; enough for the lab's demo images (their VMs boot in 128Mi)."""
UNSET = "none"
"""What ``set --cpu none`` means: remove that limit."""
RESERVED = ("default", "kube-system", "kube-public", "kube-node-lease")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUOTA_KEYS = {"cpu": "limits.cpu", "memory": "limits.memory", "storage": "requests.storage", "pods": "pods"}
PLAIN_COUNTS = ("services", "secrets", "configmaps", "persistentvolumeclaims", "replicationcontrollers")
"""Core kinds whose count upstream's quota names plainly (``configmaps: 10``), as ``kubectl
describe quota`` shows them; every other kind is ``count/<plural>[.<group>]``."""
COUNT_EXAMPLES = "e.g. --count configmaps=20 or --count deployments.apps=5"


@dataclass(frozen=True)
class Settings:
    """Everything a vSphere Namespace is made of (None: no limit / no default)."""

    cpu: str | None = None
    """The namespace's CPU limit (all containers' limits together): ``2``, ``1500m``."""
    memory: str | None = None
    storage: str | None = None
    """What all its claims may request together."""
    pods: str | None = None
    """How many pods it may hold."""
    default_cpu: str | None = None
    """The CPU limit (and request) of a container that names none."""
    default_memory: str | None = None
    counts: tuple[tuple[str, str], ...] = ()
    """Object counts: (ResourceQuota key, whole number), sorted by key: ``("configmaps", "20")``,
    ``("count/deployments.apps", "5")``."""
    view: tuple[str, ...] = ()
    """Users (or ``system:serviceaccount:NS:NAME``) bound to ClusterRole view."""
    edit: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()
    view_groups: tuple[str, ...] = ()
    edit_groups: tuple[str, ...] = ()
    admin_groups: tuple[str, ...] = ()

    def users(self) -> tuple[str, ...]:
        """Every named user that must exist in the identity store (service accounts excluded)."""
        named = (*self.view, *self.edit, *self.admin)
        return tuple(sorted({u for u in named if not u.startswith(SA_PREFIX)}))

    def service_accounts(self) -> tuple[tuple[str, str, str], ...]:
        """(option, namespace, name) of every ``system:serviceaccount:NS:NAME`` bound, in order."""
        found = []
        for role in ROLES:
            for name in getattr(self, role):
                if name.startswith(SA_PREFIX):
                    namespace, _, account = name.removeprefix(SA_PREFIX).partition(":")
                    found.append((f"--{role}", namespace, account))
        return tuple(found)


def check_name(name: str) -> None:
    """A namespace name as upstream allows it, and not one of the cluster's own namespaces."""
    if len(name) > 63 or not _DNS_LABEL.match(name):
        raise UsageError(
            f"{name!r} is not a valid namespace name: lower case letters, digits and '-', starting and "
            "ending with a letter or digit, at most 63 characters (e.g. team-a)"
        )
    if name in RESERVED or name.startswith("kube-"):
        raise UsageError(
            f"{name!r} is one of the cluster's own namespaces: choose another name (e.g. team-a)"
        )


def check_quantity(option: str, value: str | None, *, allow_unset: bool) -> str | None:
    """The option's quantity as given (None stays None); UsageError naming the option otherwise."""
    if value is None or (allow_unset and value == UNSET):
        return value
    try:
        parsed = quantity.parse(value)
    except quantity.QuantityError:
        hint = f", or {UNSET} to remove the limit" if allow_unset else ""
        raise UsageError(f"{option} {value!r} is not a quantity (e.g. 2, 500m, 4Gi{hint})") from None
    if parsed < 0:
        raise UsageError(f"{option} {value!r} must not be negative")
    if option == "--pods" and parsed != parsed.to_integral_value():
        raise UsageError(f"--pods {value!r} must be a whole number")
    return value


def _served_namespaced(group: str, plural: str) -> bool:
    from nestlab.api import kinds  # noqa: PLC0415 - the kinds registry is big: loaded when counts are

    kind = kinds.by_plural(group, plural)
    return kind is not None and kind.resource.namespaced and plural != "resourcequotas"


def _groups_serving(plural: str) -> list[str]:
    from nestlab.api import kinds  # noqa: PLC0415

    return sorted(
        k.resource.group
        for k in kinds.ALL
        if k.resource.plural == plural and k.resource.namespaced and k.resource.group
    )


def count_key(resource: str) -> str:
    """The ResourceQuota key counting ``resource`` (``configmaps``, ``deployments.apps``):
    ``configmaps`` or ``count/deployments.apps``; UsageError naming it when no namespaced kind
    of that name is served (with the group to add when only the group is missing)."""
    name = resource.removeprefix("count/")
    plural, _, group = name.partition(".")
    if name == "pods":
        raise UsageError("--count pods=N: the number of pods is --pods N")
    if not plural or not _served_namespaced(group, plural):
        groups = _groups_serving(plural) if not group else []
        hint = f": did you mean {plural}.{groups[0]}?" if len(groups) == 1 else f" ({COUNT_EXAMPLES})"
        raise UsageError(f"--count {resource!r}: nestlab serves no namespaced kind {name!r}{hint}")
    if not group and plural in PLAIN_COUNTS:
        return plural
    return f"count/{name}"


def count_resource(key: str) -> str:
    """What ``--count`` calls a quota key: ``count/deployments.apps`` -> ``deployments.apps``."""
    return key.removeprefix("count/")


def parse_counts(values: tuple[str, ...], *, allow_unset: bool) -> dict[str, str] | None:
    """``--count RESOURCE=N`` options as quota key -> N (``none`` removes it, with ``set``); None
    when none were given. UsageError naming the malformed or unknown one."""
    if not values:
        return None
    found: dict[str, str] = {}
    for value in values:
        resource, equals, number = (part.strip() for part in value.partition("="))
        if not equals or not resource or not number:
            raise UsageError(f"--count {value!r} is not RESOURCE=N ({COUNT_EXAMPLES})")
        key = count_key(resource)
        if not (allow_unset and number == UNSET):
            check_count(resource, number, allow_unset=allow_unset)
        found[key] = number
    return found


def check_count(resource: str, number: str, *, allow_unset: bool = False) -> None:
    """A count is a whole number, not negative; UsageError naming the resource otherwise."""
    try:
        parsed = quantity.parse(number)
    except quantity.QuantityError:
        parsed = None
    if parsed is None or parsed < 0 or parsed != parsed.to_integral_value():
        hint = f", or {UNSET} to remove the limit" if allow_unset else ""
        raise UsageError(f"--count {resource}={number}: the count must be a whole number (e.g. 10{hint})")


def check_subject(option: str, name: str) -> None:
    """A user or group name a RoleBinding can hold."""
    if not name or name != name.strip() or any(c in name for c in "\n\t,"):
        raise UsageError(f"{option} {name!r} is not a user or group name")
    parts = name.removeprefix(SA_PREFIX).split(":")
    if name.startswith(SA_PREFIX) and (len(parts) != 2 or not all(parts)):
        raise UsageError(
            f"{option} {name!r}: a service account is written system:serviceaccount:NAMESPACE:NAME"
        )


def check(settings: Settings) -> Settings:
    """Every value well-formed and the defaults within the limits (else no container could start)."""
    for field in ("cpu", "memory", "storage", "pods", "default_cpu", "default_memory"):
        check_quantity(f"--{field.replace('_', '-')}", getattr(settings, field), allow_unset=False)
    for key, number in settings.counts:
        if count_key(count_resource(key)) != key:
            raise UsageError(f"{key!r} is not how nestlab writes the count of {count_resource(key)!r}")
        check_count(count_resource(key), number)
    for role in ROLES:
        for user in getattr(settings, role):
            check_subject(f"--{role}", user)
        for group in getattr(settings, f"{role}_groups"):
            check_subject(f"--{role}-group", group)
    for what in ("cpu", "memory"):
        limit, default = getattr(settings, what), getattr(settings, f"default_{what}")
        if limit is not None and default is not None and quantity.parse(default) > quantity.parse(limit):
            raise UsageError(
                f"--default-{what} {default} is more than the namespace's --{what} {limit}: "
                "no container could start; lower the default or raise the limit"
            )
    return settings


def merged(current: Settings, changes: Mapping[str, Any]) -> Settings:
    """``current`` with only the given changes (``none`` removes a limit or default)."""
    values: dict[str, Any] = {}
    for key, value in changes.items():
        if value is None:
            continue
        if key == "counts":
            counts = {**dict(current.counts), **dict(value)}
            values[key] = tuple(sorted((k, v) for k, v in counts.items() if v != UNSET))
            continue
        values[key] = None if value == UNSET else value
    return dataclasses.replace(current, **values)


def with_defaults(settings: Settings) -> Settings:
    """The default container limits a namespace with a CPU or memory limit needs."""
    return dataclasses.replace(
        settings,
        default_cpu=settings.default_cpu or (DEFAULT_CPU if settings.cpu is not None else None),
        default_memory=settings.default_memory or (DEFAULT_MEMORY if settings.memory is not None else None),
    )


def _meta(name: str, namespace: str = "", labels: Mapping[str, str] | None = None) -> Obj:
    meta: Obj = {"name": name, "labels": {**MANAGED, **(labels or {})}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def namespace_object(name: str) -> Obj:
    labels = {LABEL: "true", PROJECT_LABEL: name}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(name, labels=labels)}


def quota_object(name: str, settings: Settings) -> Obj | None:
    hard = {key: getattr(settings, field) for field, key in _QUOTA_KEYS.items() if getattr(settings, field)}
    hard.update(settings.counts)
    if not hard:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _meta(QUOTA, name),
        "spec": {"hard": hard},
    }


def limits_object(name: str, settings: Settings) -> Obj | None:
    defaults = {k: v for k, v in (("cpu", settings.default_cpu), ("memory", settings.default_memory)) if v}
    if not defaults:
        return None
    # defaultRequest spelled out (upstream defaults it to the default limit anyway), so that the
    # stored object equals the wanted one and a second create finds nothing to change
    item = {"type": "Container", "default": defaults, "defaultRequest": dict(defaults)}
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _meta(DEFAULTS, name),
        "spec": {"limits": [item]},
    }


def subject(name: str, kind: str = "User") -> Obj:
    """A RoleBinding subject; ``system:serviceaccount:NS:NAME`` becomes a ServiceAccount subject."""
    if kind == "User" and name.startswith(SA_PREFIX):
        namespace, account = name.removeprefix(SA_PREFIX).split(":")
        return {"kind": "ServiceAccount", "name": account, "namespace": namespace}
    return {"kind": kind, "apiGroup": RBAC_GROUP, "name": name}


def binding_object(name: str, role: str, settings: Settings) -> Obj | None:
    users = getattr(settings, role)
    groups = getattr(settings, f"{role}_groups")
    if not users and not groups:
        return None
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "RoleBinding",
        "metadata": _meta(f"nestlab-{role}", name),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [subject(u) for u in users] + [subject(g, "Group") for g in groups],
    }


def desired(name: str, settings: Settings) -> dict[str, Obj | None]:
    """Object key (``quota``, ``limits``, ``view``...) -> the object, or None when it must not exist."""
    found: dict[str, Obj | None] = {
        "namespace": namespace_object(name),
        "quota": quota_object(name, settings),
        "limits": limits_object(name, settings),
    }
    for role in ROLES:
        found[role] = binding_object(name, role, settings)
    return found


def _subject_name(item: Obj) -> str:
    if item.get("kind") == "ServiceAccount":
        return f"{SA_PREFIX}{item.get('namespace', '')}:{item.get('name', '')}"
    return str(item.get("name", ""))


def settings_of(objects: Mapping[str, Obj | None]) -> Settings:
    """The settings the existing objects express (the inverse of :func:`desired`)."""
    values: dict[str, Any] = {}
    hard = ((objects.get("quota") or {}).get("spec") or {}).get("hard") or {}
    for field, key in _QUOTA_KEYS.items():
        values[field] = hard.get(key)
    values["counts"] = tuple(
        sorted(
            (str(key), str(number))
            for key, number in hard.items()
            if key in PLAIN_COUNTS or str(key).startswith("count/")
        )
    )
    items = ((objects.get("limits") or {}).get("spec") or {}).get("limits") or []
    defaults = next((i.get("default") or {} for i in items if i.get("type") == "Container"), {})
    values["default_cpu"], values["default_memory"] = defaults.get("cpu"), defaults.get("memory")
    for role in ROLES:
        subjects = (objects.get(role) or {}).get("subjects") or []
        values[role] = tuple(
            _subject_name(s) for s in subjects if s.get("kind") in ("User", "ServiceAccount")
        )
        values[f"{role}_groups"] = tuple(str(s.get("name", "")) for s in subjects if s.get("kind") == "Group")
    return Settings(**values)


def drifted(current: Obj, wanted: Obj) -> bool:
    """Whether ``current`` differs from ``wanted`` in what nestlab owns (labels, spec, role, subjects)."""
    labels = (current.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in wanted["metadata"]["labels"].items()):
        return True
    return any(current.get(k) != wanted[k] for k in ("spec", "roleRef", "subjects") if k in wanted)


def usage(quota: Obj | None, key: str) -> str:
    """``used/limit`` of one quota key, or ``-`` when the namespace has no such limit."""
    if quota is None:
        return "-"
    hard = (quota.get("status") or {}).get("hard") or (quota.get("spec") or {}).get("hard") or {}
    if key not in hard:
        return "-"
    used = ((quota.get("status") or {}).get("used") or {}).get(key, "0")
    return f"{used}/{hard[key]}"


def who(settings: Settings, role: str) -> str:
    """Users and groups (``group:NAME``) holding ``role``, comma-separated, or ``-``."""
    names = [*getattr(settings, role), *(f"group:{g}" for g in getattr(settings, f"{role}_groups"))]
    return ",".join(names) or "-"


def counts_cell(quota: Obj | None, settings: Settings) -> str:
    """``configmaps=used/limit,deployments.apps=used/limit`` of the ``--count`` limits, or ``-``."""
    cells = [f"{count_resource(key)}={usage(quota, key)}" for key, _number in settings.counts]
    return ",".join(cells) or "-"


COLUMNS = ("NAME", "CPU", "MEMORY", "STORAGE", "PODS", "VIEW", "EDIT", "ADMIN", "COUNTS")
"""COUNTS is last: scripts that split a row keep the earlier columns where they were."""


def row(name: str, objects: Mapping[str, Obj | None]) -> dict[str, str]:
    """One line of ``nestlab namespace list`` (and of ``nestlab status``), by column."""
    quota, settings = objects.get("quota"), settings_of(objects)
    cells = [name, *(usage(quota, _QUOTA_KEYS[k]) for k in ("cpu", "memory", "storage", "pods"))]
    cells += [who(settings, role) for role in ROLES]
    cells.append(counts_cell(quota, settings))
    return dict(zip(COLUMNS, cells, strict=True))


def table(rows: list[dict[str, str]]) -> str:
    """Rows as kubectl prints a table: upper-case headers, columns three spaces apart."""
    grid = [list(COLUMNS), *([r[c] for c in COLUMNS] for r in rows)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(COLUMNS))]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in grid
    )
