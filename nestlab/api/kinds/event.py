"""v1 Event: what the scheduler, agents and controllers report about objects (``kubectl get events``)."""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds.base import READ, WRITE, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import check_metadata
from nestlab.api.kinds.printing import age
from nestlab.api.status import Cause

RESOURCE = Resource("events", "event", "Event", "", "v1", True, ("ev",))


def validate(event: Obj) -> list[Cause]:
    """Events must say what they are about."""
    causes = check_metadata(event)
    if not isinstance(event.get("involvedObject"), dict):
        causes.append(Cause("involvedObject", "Required value", "FieldValueRequired"))
    return causes


def row(event: Obj) -> list[Any]:
    involved = event.get("involvedObject") or {}
    last = event.get("lastTimestamp") or event.get("eventTime") or event["metadata"].get("creationTimestamp")
    return [
        age(last),
        event.get("type", ""),
        event.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        event.get("message", ""),
    ]


KIND = Kind(
    RESOURCE,
    model="CoreV1Event",
    validate=validate,
    columns=(
        Column("Last Seen", "string", 0, "Time of the last occurrence."),
        Column("Type", "string", 0, "Type of this event."),
        Column("Reason", "string", 0, "Why the action was taken."),
        Column("Object", "string", 0, "The object this event is about."),
        Column("Message", "string", 0, "A human-readable description of the status of this operation."),
    ),
    row=row,
    selectable=(
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    roles={
        "view": {"events": READ},
        "edit": {"events": READ | WRITE},
        "node": {"events": READ | {"create", "update", "patch"}},
    },
)
