"""Unknown-field handling (``?fieldValidation=Strict|Warn|Ignore``), as the upstream decoder does it.

Kubernetes decodes bodies into typed structs, so a misspelt field (``spec.contianers``) is dropped,
warned about, or refused. kubectl 1.27+ relies on the server for this (it sends
``fieldValidation=Strict`` because our OpenAPI v3 document says PATCH accepts it), so the server
must really do it, at every depth: the known fields are the upstream type's, from the kind's model
(:mod:`nestlab.api.schemas`). Maps (labels, resource lists) and free-form fields accept any key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nestlab.api import kinds, status
from nestlab.api.kinds.base import Resource
from nestlab.api.schemas import Shape, known_fields

MODES = ("Strict", "Warn", "Ignore")


def _prune(value: Any, shape: Shape, path: str, unknown: list[str]) -> None:
    if not isinstance(value, dict):
        return
    for key in list(value):
        if key.startswith("$"):
            continue  # strategic merge patch directives
        where = f"{path}.{key}" if path else key
        if key not in shape:
            unknown.append(where)
            del value[key]
            continue
        nested = shape[key]
        if isinstance(nested, tuple) and isinstance(value[key], list):
            for index, item in enumerate(value[key]):
                _prune(item, nested[1], f"{where}[{index}]", unknown)
        elif isinstance(nested, dict):
            _prune(value[key], nested, where, unknown)


def prune_unknown(obj: Any, resource: Resource, model: str = "") -> list[str]:
    """Remove fields the kind (or ``model``) does not have from ``obj`` (in place); their paths."""
    unknown: list[str] = []
    model = model or kinds.of(resource).model
    if model:
        _prune(obj, known_fields(model), "", unknown)
    return unknown


def enforce(
    obj: Any, resource: Resource, mode: str, model: str = "", duplicates: Sequence[str] = ()
) -> list[str]:
    """Apply ``fieldValidation``: the warnings to send (Warn), or a 400 (Strict); unknown fields dropped.

    ``duplicates`` are the decoder's duplicate-key findings (``duplicate field "metadata.name"``),
    treated as upstream's strict decoding treats them: warned about, refused, or ignored (the last
    value wins) alike with unknown fields.
    """
    mode = mode or "Warn"
    if mode not in MODES:
        raise status.bad_request(f'fieldValidation must be one of "Ignore", "Warn" or "Strict", got "{mode}"')
    unknown = prune_unknown(obj, resource, model)
    problems = [*duplicates, *(f'unknown field "{field}"' for field in unknown)]
    if not problems or mode == "Ignore":
        return []
    kind = (model or kinds.of(resource).model).removeprefix("V1").removeprefix("CoreV1") or resource.kind
    if mode == "Strict":
        listed = ", ".join(problems)
        where = f'{kind} in version "{resource.version}" cannot be handled as a {kind}'
        raise status.bad_request(f"{where}: strict decoding error: {listed}")
    return problems
