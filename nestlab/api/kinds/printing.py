"""Server-side printing: ``meta.k8s.io/v1 Table`` answers for ``kubectl get``.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the columns
the server defines (that is how ``-o wide`` knows a pod's IP and node). Each kind declares its
columns and row function in its unit; this module holds what they share.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nestlab.api.kinds.base import Column, Kind, Obj


def age(timestamp: str | None, at: datetime | None = None) -> str:
    """Kubernetes' short human duration (``45s``, ``3m12s``, ``5h``, ``12d``)."""
    if not timestamp:
        return "<unknown>"
    created = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(0, int(((at or datetime.now(UTC)) - created).total_seconds()))
    minutes, hours = seconds // 60, seconds // 3600
    if seconds < 120:
        text = f"{seconds}s"
    elif minutes < 10:
        text = f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    elif minutes < 180:
        text = f"{minutes}m"
    elif hours < 8:
        text = f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    else:
        text = f"{hours}h" if hours < 48 else f"{hours // 24}d"
    return text


def created(obj: Obj) -> str:
    """The age of ``obj`` (the Age column)."""
    return age(obj["metadata"].get("creationTimestamp"))


def label_selector_text(selector: Any) -> str:
    """A LabelSelector as kubectl prints it (``app=web,tier in (a,b)``); "<none>" when empty."""
    if not isinstance(selector, dict):
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        if not isinstance(expression, dict):
            continue
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = ",".join(sorted(str(v) for v in expression.get("values") or []))
        parts.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key}.get(
                operator, f"!{key}"
            )
        )
    return ",".join(parts) or "<none>"


def images(template: Any) -> tuple[str, str]:
    """The Containers and Images columns of a pod template (comma-separated)."""
    spec = (template or {}).get("spec") or {} if isinstance(template, dict) else {}
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    return ",".join(str(c.get("name", "")) for c in containers), ",".join(
        str(c.get("image", "")) for c in containers
    )


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def column_definitions(columns: tuple[Column, ...]) -> list[Obj]:
    return [
        {
            "name": c.name,
            "type": c.type,
            "format": "name" if c.name == "Name" else "",
            "description": c.description,
            "priority": c.priority,
        }
        for c in columns
    ]


def table(kind: Kind, items: list[Obj], resource_version: str, include: str = "Metadata") -> Obj:
    """A Table of ``items`` with the columns ``kind`` declares."""
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": column_definitions(kind.columns),
        "rows": [{"cells": kind.row(item), "object": _row_object(item, include)} for item in items],
    }
