"""The OpenAPI documents kubectl fetches before ``apply``, ``create`` and ``edit``.

What each kubectl generation needs (read from client-go/kubectl sources):

- 1.20 validates client-side with ``/openapi/v2`` as *protobuf* (gnostic ``openapi.v2.Document``);
  kinds absent from the document are not validated client-side ("resource is not present, skip").
- 1.27+ first asks ``/openapi/v3`` whether the PATCH operation of the kind accepts the
  ``fieldValidation`` query parameter; if it does, validation is left to the server (which does
  it: see :mod:`nestlab.api.fields`).
- ``apply`` computes strategic merge patches from kubectl's compiled-in types when the documents
  carry no patch metadata for a kind, which is exactly right for the built-in kinds served here.

So the documents list every served path and operation, with group-version-kind extensions, and
the JSON documents (v3, and v2 as JSON) carry each kind's upstream schema (from its unit's model,
see :mod:`nestlab.api.schemas`), which is what ``kubectl explain deployment.spec`` reads. The v2
*protobuf* document that kubectl 1.20 reads keeps no definitions: with them kubectl 1.20 would
validate client-side against them; validation happens once, on the server, for every client.
"""

from __future__ import annotations

import functools
from typing import Any

from nestlab.api import kinds, resources, schemas
from nestlab.api.resources import Resource

Obj = dict[str, Any]
_INFO = {"title": "Kubernetes (nestlab)", "version": "v1.30.0"}


def _gvk(resource: Resource) -> Obj:
    return {"group": resource.group, "version": resource.version, "kind": resource.kind}


def _base(resource: Resource) -> str:
    return f"/apis/{resource.group}/{resource.version}" if resource.group else "/api/v1"


def _item_path(resource: Resource) -> str:
    if resource.namespaced:
        return f"{_base(resource)}/namespaces/{{namespace}}/{resource.plural}/{{name}}"
    return f"{_base(resource)}/{resource.plural}/{{name}}"


def _operation(resource: Resource, verb: str, extra: list[Obj]) -> Obj:
    action = {"get": "read", "put": "replace", "delete": "delete", "patch": "patch"}[verb]
    return {
        "operationId": f"{action}{resource.kind}",
        "x-kubernetes-action": verb if verb != "put" else "put",
        "x-kubernetes-group-version-kind": _gvk(resource),
        "parameters": extra,
        "responses": {"200": {"description": "OK"}},
    }


def _query(name: str, kind: str = "string") -> Obj:
    return {"name": name, "in": "query", "schema": {"type": kind}, "uniqueItems": True}


def _paths(resource: Resource, version3: bool) -> Obj:
    query = _query if version3 else (lambda name, kind="string": {"name": name, "in": "query", "type": kind})
    validation = [query("dryRun"), query("fieldManager"), query("fieldValidation")]
    item = {
        "get": _operation(resource, "get", []),
        "put": _operation(resource, "put", validation),
        "patch": _operation(resource, "patch", [*validation, query("force", "boolean")]),
        "delete": _operation(resource, "delete", [query("gracePeriodSeconds", "integer")]),
    }
    return {_item_path(resource): item}


def v3_index() -> Obj:
    """/openapi/v3: where each group-version's document lives."""
    paths = {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1"}}
    for group, versions in resources.groups().items():
        for version in versions:
            paths[f"apis/{group}/{version}"] = {"serverRelativeURL": f"/openapi/v3/apis/{group}/{version}"}
    return {"paths": paths}


@functools.cache
def v3_document(path: str) -> Obj | None:
    """/openapi/v3/<api/v1|apis/g/v>: the OpenAPI 3 document of one group-version, or None."""
    parts = path.strip("/").split("/")
    if parts == ["api", "v1"]:
        group, version = "", "v1"
    elif len(parts) == 3 and parts[0] == "apis":
        group, version = parts[1], parts[2]
    else:
        return None
    served = resources.in_group_version(group, version)
    if not served:
        return None
    paths: Obj = {}
    for resource in served:
        if resource.stored:
            paths.update(_paths(resource, version3=True))
    return {
        "openapi": "3.0.0",
        "info": _INFO,
        "paths": paths,
        "components": {"schemas": _schemas(served, "")},
    }


def _schemas(served: list[Resource], refs: str) -> Obj:
    """Component schemas of ``served`` kinds and the types they use; ``refs`` rewrites $ref prefixes
    (v2 documents keep them under #/definitions/)."""
    found: Obj = {}
    for resource in served:
        model = kinds.of(resource).model
        if not model:
            continue
        found.update(schemas.components(model))
        found[model] = {**found[model], "x-kubernetes-group-version-kind": [_gvk(resource)]}
    if refs:
        rewritten: Obj = _rewrite(found, "#/components/schemas/", refs)
        return rewritten
    return found


def _rewrite(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {k: (v.replace(old, new) if k == "$ref" else _rewrite(v, old, new)) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, old, new) for v in value]
    return value


@functools.cache
def v2_document() -> Obj:
    """/openapi/v2 as JSON (for people and tools that ask for JSON)."""
    paths: Obj = {}
    for resource in resources.ALL:
        if resource.stored:
            paths.update(_paths(resource, version3=False))
    definitions = _schemas([r for r in resources.ALL if r.stored], "#/definitions/")
    return {"swagger": "2.0", "info": _INFO, "paths": paths, "definitions": definitions}


# -- protobuf encoding of the v2 document (gnostic openapi.v2.Document), which kubectl 1.20 reads --
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2: strings and sub-messages)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _text(number: int, value: str) -> bytes:
    return _field(number, value.encode()) if value else b""


def _query_parameter(name: str, kind: str) -> bytes:
    """ParametersItem{parameter: Parameter{non_body_parameter: {query_parameter_sub_schema}}}."""
    sub_schema = _text(2, "query") + _text(4, name) + _text(6, kind)
    return _field(1, _field(2, _field(3, sub_schema)))


def _gvk_extension(gvk: Obj) -> bytes:
    """NamedAny{name: x-kubernetes-group-version-kind, value: Any{yaml}} (field 2 of Any is yaml)."""
    text = f'group: "{gvk["group"]}"\nkind: {gvk["kind"]}\nversion: {gvk["version"]}\n'
    return _text(1, "x-kubernetes-group-version-kind") + _field(2, _text(2, text))


def _operation_pb(operation: Obj) -> bytes:
    """Operation: operation_id (5), parameters (8), vendor_extension (13)."""
    params = b"".join(
        _field(8, _query_parameter(p["name"], p.get("type", "string"))) for p in operation["parameters"]
    )
    return (
        _text(5, operation["operationId"])
        + params
        + _field(13, _gvk_extension(operation["x-kubernetes-group-version-kind"]))
    )


def v2_protobuf() -> bytes:
    """The v2 document as protobuf (gnostic openapi.v2.Document): swagger (1), info (2),
    paths (8) with each item path's PATCH operation (PathItem field 8) carrying its
    group-version-kind and query parameters: kubectl 1.20 reads ``dryRun`` there to decide
    whether ``--dry-run=server`` is supported. Definitions (9) are empty, as explained above.
    """
    info = _text(1, _INFO["title"]) + _text(2, _INFO["version"])
    named_paths = b""
    paths: Obj = {}
    for resource in resources.ALL:
        if resource.stored:
            paths.update(_paths(resource, version3=False))
    for path, item in paths.items():
        path_item = _field(8, _operation_pb(item["patch"]))
        named_paths += _field(2, _text(1, path) + _field(2, path_item))
    return _text(1, "2.0") + _field(2, info) + _field(8, named_paths) + _field(9, b"")
