"""v1 Namespace: the lab's vSphere Namespace (where quota and permissions attach).

A new namespace gets the ``kubernetes`` finalizer, phase Active and the label
``kubernetes.io/metadata.name=<name>`` (kept on every update, as upstream); its spec cannot be changed by
updates (only the namespace lifecycle empties and removes it). Names are DNS-1123 labels.
"""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds import wiremeta
from nestlab.api.kinds.base import AGE, NAME, PROTO_META, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import check_metadata, check_status
from nestlab.api.kinds.printing import created
from nestlab.api.status import Cause

RESOURCE = Resource("namespaces", "namespace", "Namespace", "", "v1", False, ("ns",), ("status",), True)


NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by the server to the namespace's name, as upstream does, so namespaceSelectors (NetworkPolicy)
can pick a namespace by name."""


def _label_name(ns: Obj) -> None:
    meta = ns.setdefault("metadata", {})
    labels = meta.get("labels") or {}
    labels[NAME_LABEL] = meta.get("name", "")
    meta["labels"] = labels


def on_create(ns: Obj) -> None:
    ns["spec"] = {"finalizers": ["kubernetes"]}
    ns["status"] = {"phase": "Active"}
    _label_name(ns)


def on_update(new: Obj, old: Obj) -> None:
    new["spec"] = old.get("spec", {})
    _label_name(new)


def validate(ns: Obj) -> list[Cause]:
    return check_metadata(ns, label_named=True) + check_status(ns)


def row(ns: Obj) -> list[Any]:
    return [ns["metadata"]["name"], (ns.get("status") or {}).get("phase", ""), created(ns)]


KIND = Kind(
    RESOURCE,
    model="V1Namespace",
    on_create=on_create,
    on_update=on_update,
    validate=validate,
    columns=(NAME, Column("Status", "string", 0, "The status of the namespace"), AGE),
    row=row,
    selectable=("status.phase",),
    roles={
        "view": {"namespaces": frozenset({"get"})},
        "node": {"namespaces": frozenset({"get", "list", "watch"})},
    },
    protobuf={
        3: ("status", wiremeta.IGNORE),
        1: ("metadata", PROTO_META),
        2: ("spec", {1: ("finalizers", "strs")}),
    },
)
