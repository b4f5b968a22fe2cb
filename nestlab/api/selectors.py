"""Label and field selectors (``?labelSelector=app in (web),tier!=db&fieldSelector=spec.nodeName=x``).

Parsed once per request into predicates; a selector the server cannot honour is a 400 with the
upstream wording, never silently ignored (a controller that asked for "my pods" must not get all).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nestlab.api import kinds
from nestlab.api.status import ApiError, bad_request

Obj = dict[str, Any]

_REQUIREMENT = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9][-A-Za-z0-9_./]*)\s*"
    r"(?:(?P<op>==|!=|=|\s+in\s+|\s+notin\s+)\s*(?P<value>\([^)]*\)|[-A-Za-z0-9_.]*))?\s*$"
)

_COMMON_FIELDS = ("metadata.name", "metadata.namespace")  # every kind; each unit adds its own

# Fields upstream's selectable-field sets render from a Go zero value when the object leaves them
# unset (pkg/registry/core/node/strategy.go: "spec.unschedulable": strconv.FormatBool(...)), so
# `kubectl get nodes --field-selector spec.unschedulable=false` lists every schedulable node.
# (Pods' defaulted fields, restartPolicy, schedulerName and status.phase, are stored defaulted.)
_COMPILED_KEPT = 512  # distinct selector texts (a named watch adds metadata.name=<name>)
_UNSET_AS: dict[tuple[str, str], str] = {("nodes", "spec.unschedulable"): "false"}


def _selectable(plural: str) -> tuple[str, ...]:
    unit = next((k for k in kinds.ALL if k.resource.plural == plural), None)
    return _COMMON_FIELDS + (unit.selectable if unit is not None else ())


@dataclass(frozen=True)
class Requirement:
    """One term of a selector: ``key op values``; op is =, !=, in, notin, exists, !exists."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, value: str | None) -> bool:
        """Whether a (possibly absent) label or field value satisfies this term."""
        if self.op == "exists":
            return value is not None
        if self.op == "!exists":
            return value is None
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        return value is None or value not in self.values


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [t for t in terms if t.strip()]


def parse_labels(text: str) -> tuple[Requirement, ...]:
    """Parse a label selector; raises a 400 ApiError naming the bad term."""
    requirements = []
    for term in _split_terms(text):
        match = _REQUIREMENT.match(term)
        if match is None:
            raise bad_request(f"unable to parse requirement: invalid label selector term {term.strip()!r}")
        key, op, neg = match["key"], (match["op"] or "").strip(), bool(match["neg"])
        raw = match["value"]
        if neg and op:
            raise bad_request(f"unable to parse requirement: '!' only negates an existence test: {term!r}")
        if not op:
            requirements.append(Requirement(key, "!exists" if neg else "exists"))
        elif op in ("in", "notin"):
            if raw is None or not raw.startswith("("):
                raise bad_request(f"unable to parse requirement: {op!r} needs a (value, ...) list: {term!r}")
            values = tuple(v.strip() for v in raw[1:-1].split(",") if v.strip())
            requirements.append(Requirement(key, "in" if op == "in" else "!=", values))
        else:
            if raw is not None and raw.startswith("("):
                raise bad_request(f"unable to parse requirement: {op!r} takes one value: {term!r}")
            requirements.append(Requirement(key, "!=" if op == "!=" else "=", (raw or "",)))
    return tuple(requirements)


def parse_fields(text: str, plural: str) -> tuple[Requirement, ...]:
    """Parse a field selector for ``plural``; unknown fields are a 400 like upstream."""
    allowed = _selectable(plural)
    requirements = []
    for term in _split_terms(text):
        match = re.match(r"^\s*([^=!\s]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
        if match is None:
            raise bad_request(f"invalid selector: '{term.strip()}'; can't understand '{term.strip()}'")
        key, op, value = match.groups()
        if key not in allowed:
            raise bad_request(
                f"field label not supported: {key} (selectable fields of {plural}: {', '.join(allowed)})"
            )
        requirements.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
    return tuple(requirements)


def field_value(obj: Obj, path: str) -> str | None:
    """The value at a dotted path as the string a field selector compares against."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            current = None
            break
        current = current[part]
    if path == "source" and isinstance(current, dict):
        current = current.get("component")
    if isinstance(current, bool):
        return "true" if current else "false"
    if current is None:
        # Upstream compares absent fields as empty strings (spec.nodeName= means "unscheduled").
        return ""
    return str(current)


def _field(obj: Obj, path: str, plural: str) -> str:
    """:func:`field_value`, with an unset field read as the value upstream renders for it."""
    value = field_value(obj, path)
    return value or _UNSET_AS.get((plural, path), "")


@functools.lru_cache(maxsize=_COMPILED_KEPT)
def compile_selector(label_text: str, field_text: str, plural: str) -> Callable[[Obj], bool]:
    """One predicate for both selectors; raises ApiError(400) on a bad selector.

    The same texts give the same predicate object (cached; a predicate holds no state): the
    store's watch path works a change out once per distinct predicate, however many watches
    share it (:meth:`nestlab.api.store.Store._translate`)."""
    labels = parse_labels(label_text) if label_text else ()
    fields = parse_fields(field_text, plural) if field_text else ()

    def matches(obj: Obj) -> bool:
        object_labels = obj.get("metadata", {}).get("labels") or {}
        if not all(r.matches(object_labels.get(r.key)) for r in labels):
            return False
        return all(r.matches(_field(obj, r.key, plural)) for r in fields)

    return matches


__all__ = ["ApiError", "Requirement", "compile_selector", "field_value", "parse_fields", "parse_labels"]
