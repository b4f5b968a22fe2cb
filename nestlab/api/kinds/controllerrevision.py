"""apps/v1 ControllerRevision: a StatefulSet's template history (``kubectl rollout history sts``)."""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds.base import AGE, NAME, READ, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import check_metadata, check_nonnegative
from nestlab.api.kinds.printing import created
from nestlab.api.status import Cause

RESOURCE = Resource("controllerrevisions", "controllerrevision", "ControllerRevision", "apps", "v1", True)


def validate(revision: Obj) -> list[Cause]:
    causes = check_metadata(revision)
    if revision.get("revision") is None:
        return [*causes, Cause("revision", "Required value", "FieldValueRequired")]
    return causes + check_nonnegative(revision.get("revision"), "revision")


def row(revision: Obj) -> list[Any]:
    owner = next((r for r in revision["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
    controller = f"{str(owner.get('kind', '')).lower()}.apps/{owner.get('name', '')}" if owner else "<none>"
    return [revision["metadata"]["name"], controller, revision.get("revision", 0), created(revision)]


KIND = Kind(
    RESOURCE,
    model="V1ControllerRevision",
    validate=validate,
    columns=(
        NAME,
        Column("Controller", "string", 0, "Controller of the object."),
        Column("Revision", "string", 0, "Revision indicates the revision of the state represented by Data."),
        AGE,
    ),
    row=row,
    roles={"view": {"controllerrevisions": READ}},
)
