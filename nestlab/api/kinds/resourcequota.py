"""v1 ResourceQuota: the CPU, memory and object-count limits of a vSphere Namespace, enforced at admission.

Its ``status.used`` is owned by quota admission (see :mod:`nestlab.api.quota`), which charges each
object before it is stored; a new quota starts from the objects already there. The keys it can hold
are the ones admission enforces: pod compute (``cpu``, ``requests.memory``, ``limits.cpu``...),
upstream's object counts (``pods``, ``services``, ``secrets``, ``configmaps``,
``replicationcontrollers``, ``persistentvolumeclaims``), ``count/<resource>[.<group>]`` for any
namespaced kind served here, and claim storage: ``requests.storage`` and, per class,
``<class>.storageclass.storage.k8s.io/requests.storage`` and ``.../persistentvolumeclaims`` (how a
vSphere Namespace's storage limit per storage policy appears). Any other key (extended resources,
ephemeral storage) and ``scopes``/``scopeSelector`` are refused by name rather than stored and
never enforced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nestlab.api.kinds import wiremeta
from nestlab.api.kinds.base import AGE, NAME, PROTO_META, READ, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import as_dict, check_metadata, check_status, quantities
from nestlab.api.kinds.printing import created
from nestlab.api.status import Cause

COMPUTE = ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory")
ALIASES = {"cpu": "requests.cpu", "memory": "requests.memory"}
# Upstream's object-count names that predate count/<resource>: (group, plural) they count.
LEGACY_COUNTS = {
    "pods": ("", "pods"),
    "services": ("", "services"),
    "secrets": ("", "secrets"),
    "configmaps": ("", "configmaps"),
    "replicationcontrollers": ("", "replicationcontrollers"),
    "persistentvolumeclaims": ("", "persistentvolumeclaims"),
}
STORAGE = "requests.storage"
"""The storage all of a namespace's claims request together."""
CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
CLASS_RESOURCES = (STORAGE, "persistentvolumeclaims")
"""What a per-class key (``<class>.storageclass.storage.k8s.io/<what>``) may limit."""


def canonical(key: str) -> str:
    """``cpu`` and ``requests.cpu`` are one thing upstream (and memory likewise)."""
    return ALIASES.get(key, key)


def counted(key: str) -> tuple[str, str] | None:
    """(group, plural) of the objects ``key`` counts, or None for a compute or unknown key."""
    if key in LEGACY_COUNTS:
        return LEGACY_COUNTS[key]
    if key.startswith("count/") and len(key) > len("count/"):
        plural, _, group = key.removeprefix("count/").partition(".")
        return group, plural
    return None


def class_key(key: str) -> tuple[str, str] | None:
    """(class, ``requests.storage`` or ``persistentvolumeclaims``) of a per-class key, else None."""
    name, found, what = key.partition(CLASS_SUFFIX)
    if not found or not name or what not in CLASS_RESOURCES:
        return None
    return name, what


def is_storage(key: str) -> bool:
    """Whether ``key`` limits claims' storage (the total, or a class's storage or claim count)."""
    return key == STORAGE or class_key(key) is not None


def count_keys(group: str, plural: str) -> tuple[str, ...]:
    """Every key that counts one object of ``group``/``plural``."""
    names = [f"count/{plural}" + (f".{group}" if group else "")]
    return (*names, *(k for k, v in LEGACY_COUNTS.items() if v == (group, plural)))


def _served_namespaced(group: str, plural: str) -> bool:
    from nestlab.api import kinds  # noqa: PLC0415 - the registry list imports this module

    kind = kinds.by_plural(group, plural)
    return kind is not None and kind.resource.namespaced and kind.resource is not RESOURCE


def _check_keys(hard: dict[str, Any]) -> list[Cause]:
    causes = []
    for key in hard:
        where = counted(key)
        if canonical(key) in COMPUTE or is_storage(key) or (where is not None and _served_namespaced(*where)):
            continue
        causes.append(
            Cause(
                f"spec.hard[{key}]",
                f'Unsupported value: "{key}": nestlab enforces cpu, memory, requests.cpu, '
                "requests.memory, limits.cpu, limits.memory, pods, services, secrets, configmaps, "
                "replicationcontrollers, persistentvolumeclaims, requests.storage, "
                "<class>.storageclass.storage.k8s.io/requests.storage, "
                "<class>.storageclass.storage.k8s.io/persistentvolumeclaims and count/<resource>[.<group>] "
                "of a namespaced kind it serves (other quota resources would be stored and never enforced)",
                "FieldValueNotSupported",
            )
        )
    return causes


RESOURCE = Resource(
    "resourcequotas", "resourcequota", "ResourceQuota", "", "v1", True, ("quota",), ("status",), True
)


def validate(quota: Obj) -> list[Cause]:
    """Every hard limit must be a quantity of a resource admission enforces."""
    causes = check_metadata(quota) + check_status(quota, ("hard", "used"))
    spec = quota.get("spec")
    if spec is not None and not isinstance(spec, dict):
        return [*causes, Cause("spec", "Invalid value: must be an object", "FieldValueTypeInvalid")]
    spec = as_dict(spec)
    causes += [
        Cause(f"spec.{name}", "Forbidden: nestlab does not implement quota scopes yet")
        for name in ("scopes", "scopeSelector")
        if spec.get(name)
    ]
    causes += quantities(spec.get("hard"), "spec.hard")
    return causes + _check_keys(as_dict(spec.get("hard")))


def row(quota: Obj) -> list[Any]:
    hard = (quota.get("status") or {}).get("hard") or (quota.get("spec") or {}).get("hard") or {}
    used = (quota.get("status") or {}).get("used") or {}

    def pairs(keep: Callable[[str], bool]) -> str:
        return ", ".join(f"{k}: {used.get(k, '0')}/{v}" for k, v in sorted(hard.items()) if keep(k))

    return [
        quota["metadata"]["name"],
        created(quota),
        pairs(lambda k: not k.startswith("limits.")),
        pairs(lambda k: k.startswith("limits.")),
    ]


KIND = Kind(
    RESOURCE,
    model="V1ResourceQuota",
    validate=validate,
    columns=(
        NAME,
        AGE,
        Column(
            "Request",
            "string",
            0,
            "Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
        Column(
            "Limit", "string", 0, "Limits control the maximum amount of cpu/memory that a container may use."
        ),
    ),
    row=row,
    roles={"view": {"resourcequotas": READ, "resourcequotas/status": READ}},
    protobuf={
        3: ("status", wiremeta.IGNORE),
        1: ("metadata", PROTO_META),
        2: ("spec", {1: ("hard", "qmap"), 2: ("scopes", "strs")}),
    },
)
