"""PATCH bodies: JSON merge patch (RFC 7386), strategic merge patch, JSON patch (RFC 6902).

``kubectl apply``/``edit``/``label`` send strategic merge patches: lists of named things
(containers, env, ports, conditions) merge element by element on a key instead of being replaced.
The merge keys below are the ones the upstream Go types declare for the kinds served here.
"""

from __future__ import annotations

import copy
from typing import Any

from nestlab.api.status import ApiError, bad_request

Obj = dict[str, Any]

# Field name -> merge key for lists that merge element-wise (upstream `patchMergeKey` tags).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "addresses": "type",
}
# Lists of scalars that merge as sets (upstream `patchStrategy:"merge"` on []string).
MERGED_SCALAR_LISTS = ("finalizers",)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch to ``target`` (a decoded JSON value)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith(("$setElementOrder/", "$retainKeys", "$patch")):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = strategic_merge(result.get(key), value)
    return result


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    if field in MERGED_SCALAR_LISTS and isinstance(current, list):
        return current + [v for v in patch if v not in current]
    merge_key = MERGE_KEYS.get(field)
    if merge_key is None or not isinstance(current, list):
        return [v for v in copy.deepcopy(patch) if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [
            copy.deepcopy({k: v for k, v in item.items() if k != "$patch"})
            for item in patch
            if item.get("$patch") != "replace"
        ]
    merged = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise bad_request(f"map: {item!r} does not contain declared merge key: {merge_key}")
        positions = [
            i
            for i, old in enumerate(merged)
            if isinstance(old, dict) and old.get(merge_key) == item[merge_key]
        ]
        if item.get("$patch") == "delete":
            merged = [old for i, old in enumerate(merged) if i not in positions]
        elif positions:
            merged[positions[0]] = strategic_merge(merged[positions[0]], item)
        else:
            merged.append(strategic_merge({}, item))
    return merged


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"JSON pointer {path!r} must start with '/'")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    current = doc
    for part in parts[:-1]:
        try:
            current = current[int(part)] if isinstance(current, list) else current[part]
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(422, "Invalid", f"jsonpatch: path {path!r} does not exist") from exc
    return current


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 add/remove/replace/move/copy/test; failures are 422 like upstream."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid JSON patch operation: {op!r}")
        name, path = op["op"], op["path"]
        if name in ("move", "copy"):
            source = _pointer(str(op.get("from", "")))
            value = _get(doc, source, str(op.get("from")))
            if name == "move":
                doc = _remove(doc, source, str(op.get("from")))
            doc = _add(doc, _pointer(path), copy.deepcopy(value), path)
        elif name == "add":
            doc = _add(doc, _pointer(path), copy.deepcopy(op.get("value")), path)
        elif name == "remove":
            doc = _remove(doc, _pointer(path), path)
        elif name == "replace":
            doc = _remove(doc, _pointer(path), path)
            doc = _add(doc, _pointer(path), copy.deepcopy(op.get("value")), path)
        elif name == "test":
            if _get(doc, _pointer(path), path) != op.get("value"):
                raise ApiError(422, "Invalid", f"jsonpatch: test operation for path {path!r} failed")
        else:
            raise bad_request(f"unsupported JSON patch operation {name!r}")
    return doc


def _get(doc: Any, parts: list[str], path: str) -> Any:
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    try:
        return parent[int(parts[-1])] if isinstance(parent, list) else parent[parts[-1]]
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise ApiError(422, "Invalid", f"jsonpatch: path {path!r} does not exist") from exc


def _add(doc: Any, parts: list[str], value: Any, path: str) -> Any:
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    if isinstance(parent, list):
        index = len(parent) if parts[-1] == "-" else int(parts[-1]) if parts[-1].isdigit() else -1
        if not 0 <= index <= len(parent):
            raise ApiError(422, "Invalid", f"jsonpatch: index out of range in {path!r}")
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[parts[-1]] = value
    else:
        raise ApiError(422, "Invalid", f"jsonpatch: path {path!r} does not exist")
    return doc


def _remove(doc: Any, parts: list[str], path: str) -> Any:
    if not parts:
        return None
    parent = _parent(doc, parts, path)
    try:
        if isinstance(parent, list):
            parent.pop(int(parts[-1]))
        else:
            del parent[parts[-1]]
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise ApiError(422, "Invalid", f"jsonpatch: path {path!r} does not exist") from exc
    return doc


def apply_patch(content_type: str, target: Obj, body: Any) -> Any:
    """Dispatch on the PATCH Content-Type; unsupported types are 415."""
    kind = content_type.split(";", 1)[0].strip()
    if kind == "application/merge-patch+json":
        return merge_patch(target, body)
    if kind == "application/strategic-merge-patch+json":
        return strategic_merge(target, body)
    if kind == "application/json-patch+json":
        return json_patch(target, body)
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        f"application/strategic-merge-patch+json (got {kind!r})",
    )
