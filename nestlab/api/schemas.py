"""The upstream schema of every served kind: OpenAPI components for ``kubectl explain`` and the known
fields behind ``?fieldValidation``.

The schemas are read from the Kubernetes Python client's models (a maintained library generated
from the upstream OpenAPI document), not written by hand: each kind's unit names its model
(``V1Deployment``) and gets the same fields, types and descriptions kube-apiserver publishes. The
library is imported lazily, the first time a schema is needed, and every answer is cached.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

Obj = dict[str, Any]
Shape = dict[str, Any]
"""field -> nested Shape, ("list", Shape) for lists of objects, or None for anything (maps, scalars)."""
_GENERATED_TAIL = "\n\nAttributes:"  # the generator's note on its own Python attributes, not the API's
_ANY: Shape = {}


class SchemaUnavailableError(RuntimeError):
    """The Kubernetes client library (the schemas' source) is not installed where the server runs."""


@functools.cache
def _json_schema(model: str) -> Obj:
    try:
        models = importlib.import_module("kubernetes.client.models")
    except ImportError as exc:  # pragma: no cover - installed with the apiserver extra
        raise SchemaUnavailableError(
            "the kubernetes Python client is not installed: install nestlab with its apiserver extra"
        ) from exc
    cls = getattr(models, model)
    schema: Obj = cls.model_json_schema(by_alias=True, mode="serialization")
    return schema


def _definitions(model: str) -> dict[str, Obj]:
    schema = _json_schema(model)
    found = dict(schema.get("$defs") or {})
    found[model] = {k: v for k, v in schema.items() if k != "$defs"}
    return found


def _unwrap(prop: Obj) -> Obj:
    """``anyOf: [X, null]`` (how the models spell optional) as X, keeping the description."""
    options = [o for o in prop.get("anyOf") or [] if o.get("type") != "null"]
    if len(options) == 1 and "anyOf" in prop:
        merged = {**options[0]}
        if "description" in prop:
            merged["description"] = prop["description"]
        return merged
    return prop


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


# -- known fields ---------------------------------------------------------------------------------
def _shape_of(prop: Obj, defs: dict[str, Obj], seen: tuple[str, ...]) -> Any:
    prop = _unwrap(prop)
    if "$ref" in prop:
        return _object_shape(_ref_name(prop["$ref"]), defs, seen)
    if prop.get("type") == "array":
        items = _unwrap(prop.get("items") or {})
        if "$ref" in items:
            nested = _object_shape(_ref_name(items["$ref"]), defs, seen)
            return None if nested is None else ("list", nested)
    return None


def _object_shape(name: str, defs: dict[str, Obj], seen: tuple[str, ...]) -> Shape | None:
    if name in seen:
        return None  # recursive types (JSONSchemaProps) accept anything below the first level
    definition = defs.get(name) or {}
    properties = definition.get("properties")
    if not properties or definition.get("additionalProperties") is True:
        return None
    return {field: _shape_of(prop, defs, (*seen, name)) for field, prop in properties.items()}


@functools.cache
def known_fields(model: str) -> Shape:
    """The field tree of ``model`` (every JSON name at every level) for unknown-field checks."""
    defs = _definitions(model)
    return _object_shape(model, defs, ()) or _ANY


# -- OpenAPI --------------------------------------------------------------------------------------
def _openapi(value: Any) -> Any:
    """A models' JSON schema fragment as an OpenAPI v3 schema (refs to components, optional unwrapped)."""
    if isinstance(value, list):
        return [_openapi(v) for v in value]
    if not isinstance(value, dict):
        return value
    value = _unwrap(value)
    out: Obj = {}
    for key, item in value.items():
        if key in ("title", "default") and not isinstance(item, dict):
            continue
        if key == "$ref":
            out[key] = f"#/components/schemas/{_ref_name(item)}"
        elif key == "description" and isinstance(item, str):
            out[key] = item.split(_GENERATED_TAIL, 1)[0].strip()
        elif key == "additionalProperties" and item is False:
            continue
        elif key == "properties" and isinstance(item, dict):
            out[key] = {name: _openapi(prop) for name, prop in item.items()}
        else:
            out[key] = _openapi(item)
    return out


@functools.cache
def components(model: str) -> dict[str, Obj]:
    """OpenAPI v3 component schemas for ``model`` and every type it uses, keyed by model name."""
    return {name: _openapi(schema) for name, schema in _definitions(model).items()}
