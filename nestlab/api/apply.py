"""Server-side apply and field managers: ``metadata.managedFields``, as kube-apiserver keeps them.

Every write through the main resource records which manager (``?fieldManager=``, or the client's
user agent) set which fields (``fieldsV1``: ``f:<field>`` for object fields, ``k:{"name":"c"}``
for list items with a merge key). An apply (``PATCH`` with ``application/apply-patch+yaml``,
what ``kubectl apply --server-side`` sends) carries the manager's whole intent: the fields it
names are merged in, fields it applied before and no longer names are removed (unless another
manager also owns them), and a field another manager set to a different value is a conflict
(409) unless ``force=true``, which takes the field over. Pure functions over decoded objects.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from nestlab.api import status
from nestlab.api.patch import MERGE_KEYS, strategic_merge

Obj = dict[str, Any]
Path = tuple[str, ...]
MEDIA_TYPE = "application/apply-patch+yaml"
_SKIPPED_META = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _item_key(field: str, item: Any) -> str | None:
    key = MERGE_KEYS.get(field)
    if key is None or not isinstance(item, dict) or key not in item:
        return None
    return "k:" + json.dumps({key: item[key]}, separators=(",", ":"))


def field_set(obj: Any, prefix: Path = ()) -> set[Path]:
    """The leaf paths ``obj`` sets (lists without a merge key are atomic leaves)."""
    found: set[Path] = set()
    if not isinstance(obj, dict):
        return found
    for name, value in obj.items():
        if not prefix and name in ("apiVersion", "kind", "status"):
            continue
        if prefix == ("f:metadata",) and name in _SKIPPED_META:
            continue
        path = (*prefix, f"f:{name}")
        if isinstance(value, dict) and value:
            found |= field_set(value, path)
        elif isinstance(value, list) and value and all(_item_key(name, item) for item in value):
            for item in value:
                item_path = (*path, str(_item_key(name, item)))
                found.add((*item_path, "."))
                found |= field_set(item, item_path)
        else:
            found.add(path)
    return found


def to_fields_v1(paths: set[Path]) -> Obj:
    """A set of paths as the nested FieldsV1 document."""
    root: Obj = {}
    for path in sorted(paths):
        node = root
        for part in path:
            node = node.setdefault(part, {})
    return root


def from_fields_v1(tree: Any, prefix: Path = ()) -> set[Path]:
    """A FieldsV1 document back into its leaf paths."""
    found: set[Path] = set()
    if not isinstance(tree, dict):
        return found
    for part, child in tree.items():
        path = (*prefix, part)
        if isinstance(child, dict) and child:
            found |= from_fields_v1(child, path)
        else:
            found.add(path)
    return found


def _step(node: Any, part: str) -> Any:
    if part.startswith("f:") and isinstance(node, dict):
        return node.get(part[2:], _MISSING)
    if part.startswith("k:") and isinstance(node, list):
        wanted = json.loads(part[2:])
        matches = (i for i in node if isinstance(i, dict) and all(i.get(k) == v for k, v in wanted.items()))
        return next(matches, _MISSING)
    return _MISSING


_MISSING = object()


def value_at(obj: Any, path: Path) -> Any:
    node = obj
    for part in path:
        if part == ".":
            return node
        node = _step(node, part)
        if node is _MISSING:
            return _MISSING
    return node


def remove(obj: Any, path: Path) -> None:
    """Delete the field or list item at ``path`` (nothing when it is not there)."""
    path = path[:-1] if path and path[-1] == "." else path
    if not path:
        return
    parent = value_at(obj, path[:-1])
    last = path[-1]
    if last.startswith("f:") and isinstance(parent, dict):
        parent.pop(last[2:], None)
    elif last.startswith("k:") and isinstance(parent, list):
        item = _step(parent, last)
        if item is not _MISSING:
            parent.remove(item)


def _entries(obj: Obj) -> list[Obj]:
    entries = obj.get("metadata", {}).get("managedFields")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _entry(manager: str, operation: str, api_version: str, paths: set[Path], subresource: str = "") -> Obj:
    entry: Obj = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": _stamp(),
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(paths),
    }
    if subresource:
        entry["subresource"] = subresource
    return entry


def _owned(entry: Obj) -> set[Path]:
    return from_fields_v1(entry.get("fieldsV1"))


def _covers(paths: set[Path], path: Path) -> bool:
    return any(p[: len(path)] == path or path[: len(p)] == p for p in paths)


def _set_entries(obj: Obj, entries: list[Obj]) -> None:
    kept = [e for e in entries if e.get("fieldsV1")]
    if kept:
        obj["metadata"]["managedFields"] = kept
    else:
        obj["metadata"].pop("managedFields", None)


def record_update(old: Obj | None, new: Obj, manager: str, api_version: str) -> None:
    """After a create/update/patch by ``manager``: it owns the fields it changed (taken from others)."""
    entries = copy.deepcopy(_entries(old) if old is not None else [])
    before = field_set(old) if old is not None else set()
    after = field_set(new)
    changed = {p for p in after if p not in before or value_at(old, p) != value_at(new, p)}
    gone = before - after
    if not changed and not gone:
        _set_entries(new, entries)
        return
    others = []
    mine: set[Path] = set()
    for entry in entries:
        owned = _owned(entry) - gone
        if (
            entry.get("manager") == manager
            and entry.get("operation") == "Update"
            and not entry.get("subresource")
        ):
            mine |= owned
            continue
        others.append(
            {**entry, "fieldsV1": to_fields_v1(owned - changed)} if owned & changed or gone else entry
        )
    _set_entries(new, [*others, _entry(manager, "Update", api_version, mine | changed)])


def apply(live: Obj | None, config: Obj, manager: str, *, force: bool, api_version: str) -> Obj:
    """The object after ``manager`` applies ``config`` to ``live`` (None: it does not exist yet)."""
    if not manager:
        raise status.bad_request("fieldManager is required for apply requests (?fieldManager=NAME)")
    applied = field_set(config)
    base = copy.deepcopy(live) if live is not None else {"metadata": {}}
    entries = _entries(base)
    conflicts: list[tuple[str, Path]] = []
    previous: set[Path] = set()
    others: list[tuple[Obj, set[Path]]] = []
    for entry in entries:
        owned = _owned(entry)
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            previous = owned
            continue
        clash = {p for p in owned & applied if value_at(base, p) != value_at(config, p)}
        conflicts += [(str(entry.get("manager")), p) for p in sorted(clash)]
        others.append((entry, owned - clash if force else owned))
    if conflicts and not force:
        raise _conflict(conflicts, entries)
    merged = strategic_merge(base, {k: v for k, v in config.items() if k not in ("status",)})
    still_owned = set().union(*(owned for _e, owned in others)) if others else set()
    for path in sorted(previous - applied, key=len, reverse=True):
        if not _covers(applied, path) and not _covers(still_owned, path):
            remove(merged, path)
    merged.setdefault("metadata", {})
    kept = [{**e, "fieldsV1": to_fields_v1(owned)} for e, owned in others]
    _set_entries(merged, [*kept, _entry(manager, "Apply", api_version, applied)])
    return dict(merged)


def _dotted(path: Path) -> str:
    return "".join(f".{p[2:]}" if p.startswith("f:") else f"[{p[2:]}]" for p in path if p != ".")


def _conflict(conflicts: list[tuple[str, Path]], entries: list[Obj]) -> status.ApiError:
    versions = {str(e.get("manager")): str(e.get("apiVersion", "")) for e in entries}
    lines = [f'conflict with "{m}" using {versions.get(m, "")}: {_dotted(p)}' for m, p in conflicts]
    count = len(lines)
    noun = "conflict" if count == 1 else "conflicts"
    body = lines[0] if count == 1 else "\n- " + "\n- ".join(lines)
    message = f"Apply failed with {count} {noun}: {body}"
    causes = tuple(
        status.Cause(_dotted(p), f'conflict with "{m}"', "FieldManagerConflict") for m, p in conflicts
    )
    return status.ApiError(409, "Conflict", message, status.Details(causes=causes))
