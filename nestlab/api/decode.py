"""Request bodies from bytes to plain JSON values, refusing everything a hostile client could send.

The API server is reached by anyone holding a network path to it, so the decoder must turn every
body into either a value the rest of the server can handle (dicts with string keys, lists, strings,
finite numbers, booleans, null) or a 4xx Status, never an exception the server did not expect.
Python's own decoders are not enough for that on their own: ``json.loads`` recurses (a body nested
100,000 deep is a RecursionError), accepts ``NaN`` and turns ``1e400`` into ``inf`` (which cannot be
stored as JSON again), keeps lone surrogates (which cannot be encoded as UTF-8 again) and lets the
last of two duplicate keys win silently; ``yaml.safe_load`` also makes dates, bytes, sets and
self-referencing lists, and expands "billion laughs" aliases.

Upstream's limits and wording are kept where they exist (Kubernetes' apiserver, its JSON decoder
sigs.k8s.io/json and its YAML decoder): a body of more than 3 MiB is ``413 RequestEntityTooLarge``
("Request entity too large: limit is 3145728"); a duplicate key is ``duplicate field "<path>"``
(JSON) or ``line N: key "k" already set in map`` (YAML), warned about or refused by
``fieldValidation`` like an unknown field. Where this server is stricter than upstream (depth, NUL
is fine but lone surrogates and invalid UTF-8 are refused instead of replaced by U+FFFD), the
reason is given beside the limit and in docs/api.md ("Limits").
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from nestlab.api.status import ApiError, bad_request

MAX_BODY_BYTES = 3 * 1024 * 1024
"""Upstream's limit for a request body (apiserver ``MaxRequestBodyBytes``, 3 MiB)."""
MAX_DEPTH = 100
"""Nesting levels a body may have. Upstream's JSON decoder stops at 10,000; this server's merge,
patch and validation code is recursive Python (a frame or more per level, 1,000 frames in all),
and no Kubernetes object comes near: a Deployment's pod template nests about 12 deep."""
MAX_YAML_NODES = 1_000_000
"""Nodes a YAML body may expand to through aliases (3 MiB of plain YAML stays well below)."""
MAX_DUPLICATES = 10
"""Duplicate keys reported one by one (each a Warning header); more are counted in one line."""
_QUOTED = 200  # characters of a client's field path a message quotes
INT64 = (-(2**63), 2**63 - 1)
"""Kubernetes' integers are int64 at most; a larger one cannot be decoded upstream either."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""How a surrogate gets into JSON text: strict UTF-8 decoding has refused raw ones already."""
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def too_large() -> ApiError:
    """413, worded as upstream's ``NewRequestEntityTooLargeError`` from ``limitedReadBody``."""
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY_BYTES}")


@dataclass(frozen=True)
class Decoded:
    """A decoded body and the duplicate keys it had (upstream's strict-decoding messages)."""

    value: Any
    duplicates: tuple[str, ...] = field(default=())
    """``duplicate field "metadata.name"``...: warnings, or a 400 under ``fieldValidation=Strict``."""


class _RefusedError(Exception):
    """Raised from inside a decoder hook; becomes a 400 with this message."""


def _refuse(what: str) -> ApiError:
    return bad_request(f"the body of the request could not be decoded: {what}")


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = raw[exc.start : exc.start + 1].hex()
        raise _refuse(f"it is not valid UTF-8 (byte 0x{byte} at offset {exc.start})") from None


def _json_depth(text: str) -> int:
    """The deepest bracket nesting outside strings (a guard to run before the recursive decoder)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0  # cannot nest deeper than it has brackets: the common case, at C speed
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _parse_int(text: str) -> int:
    if len(text) > 20:  # int64 has 19 digits, and a sign
        raise _RefusedError(f"the number {text[:24]}... is too large (at most a 64-bit integer)")
    value = int(text)
    if not INT64[0] <= value <= INT64[1]:
        raise _RefusedError(f"the number {text} is too large (at most a 64-bit integer)")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _RefusedError(f"the number {text[:24]} is out of range for a 64-bit float")
    return value


def _parse_constant(text: str) -> Any:
    raise _RefusedError(f"{text} is not a JSON number (JSON has no NaN or Infinity)")


def _short(path: str) -> str:
    """A field path as a message quotes it: a hostile key may be megabytes long."""
    return path if len(path) <= _QUOTED else path[:_QUOTED] + "..."


def _check_string(text: str, where: str) -> None:
    if _SURROGATE.search(text):
        place = _short(where) or "the body"
        raise _refuse(f"{place} holds a lone UTF-16 surrogate (not a Unicode character)")


def _capped(duplicates: list[str]) -> tuple[str, ...]:
    """At most MAX_DUPLICATES findings (each is a Warning header), and how many more there were."""
    duplicates = list(dict.fromkeys(duplicates))  # a key given five times is one finding
    if len(duplicates) <= MAX_DUPLICATES:
        return tuple(duplicates)
    more = len(duplicates) - MAX_DUPLICATES
    return (*duplicates[:MAX_DUPLICATES], f"and {more} more duplicate fields")


def _walk(value: Any, path: str, marked: dict[int, list[str]], duplicates: list[str]) -> None:
    """Check every string and collect the paths of duplicate keys (depth is bounded already)."""
    if isinstance(value, str):
        _check_string(value, path)
    elif isinstance(value, dict):
        for key in marked.get(id(value), ()):
            duplicates.append(f'duplicate field "{_short(f"{path}.{key}" if path else key)}"')
        for key, item in value.items():
            _check_string(key, path)
            _walk(item, f"{path}.{key}" if path else key, marked, duplicates)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, f"{path}[{index}]", marked, duplicates)


def type_name(value: Any) -> str:
    """How a JSON value's type reads in a message ("an array", "a string"...)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    names = {dict: "an object", list: "an array", str: "a string", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def require_object(body: Any, what: str, *, required: bool = True) -> None:
    """400 unless a decoded body is a JSON object (or absent, when not ``required``): upstream
    decodes bodies into Go structs, and "cannot unmarshal array into Go value" is a 400 there."""
    if body is None and not required:
        return
    if not isinstance(body, dict):
        got = "nothing" if body is None else type_name(body)
        raise bad_request(f"the body of the request must be {what} (a JSON object), got {got}")


def require_patch(content_type: str, body: Any) -> None:
    """A JSON patch is a list of operations; every other patch type is an object."""
    if body is None:
        raise bad_request("the PATCH body is empty")
    if content_type.startswith("application/json-patch"):
        if not isinstance(body, list):
            raise bad_request(f"a JSON patch must be a list of operations, got {type_name(body)}")
        return
    require_object(body, "a patch")


def decode_json(raw: bytes) -> Decoded:
    """A JSON body; 400 for anything upstream would not decode (and the few things it would
    decode lossily), with the reason."""
    text = _text(raw)
    depth = _json_depth(text)
    if depth > MAX_DEPTH:
        raise _refuse(f"it nests {depth} levels deep, more than the {MAX_DEPTH} this server accepts")
    marked: dict[int, list[str]] = {}

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, item in items:
            if key in obj:
                marked.setdefault(id(obj), []).append(key)
            obj[key] = item
        return obj

    try:
        value = json.loads(
            text,
            object_pairs_hook=pairs,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except _RefusedError as exc:
        raise _refuse(str(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise _refuse(str(exc)) from None
    duplicates: list[str] = []
    if marked or _SURROGATE_ESCAPE.search(text):  # else there is nothing for the walk to find
        _walk(value, "", marked, duplicates)
    return Decoded(value, _capped(duplicates))


class _Loader(yaml.SafeLoader):
    """YAML as Kubernetes reads it: JSON's types only (dates stay strings), string keys, duplicate
    keys noted rather than silently overwritten."""

    duplicates: list[str]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                raise _RefusedError(f"line {line}: a mapping key must be a string, not a {key_node.id}")
            key = key_node.value
            if key in mapping:
                line = key_node.start_mark.line + 1
                self.duplicates.append(f'line {line}: key "{_short(key)}" already set in map')
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        value = super().construct_yaml_int(node)
        if not INT64[0] <= value <= INT64[1]:
            raise _RefusedError(f"line {node.start_mark.line + 1}: the number {node.value[:24]} is too large")
        return value

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            line = node.start_mark.line + 1
            number = node.value[:24]
            raise _RefusedError(f"line {line}: {number} is not a finite number (JSON has no NaN or Infinity)")
        return value

    def construct_unsupported(self, node: yaml.Node) -> Any:
        raise _RefusedError(
            f"line {node.start_mark.line + 1}: the YAML tag {node.tag} has no JSON equivalent"
        )


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)  # type: ignore[type-var]
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_str)  # type: ignore[type-var]
for _tag in ("binary", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _Loader.construct_unsupported)
_Loader.add_constructor(None, _Loader.construct_unsupported)  # unknown tags: !python/... and friends


def _line(mark: Any) -> int:
    return int(getattr(mark, "line", 0)) + 1


def _yaml_shape(text: str) -> None:
    """Depth, self-reference and alias expansion, from the event stream (which, unlike composing
    the tree, does not recurse)."""
    sizes: dict[str, int] = {}
    open_nodes: list[tuple[str | None, int]] = [(None, 0)]
    # libyaml's parser when present: the pure-Python scanner is quadratic on deep flow collections.
    for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        if isinstance(event, yaml.CollectionStartEvent):
            open_nodes.append((event.anchor, 0))
            if len(open_nodes) - 1 > MAX_DEPTH:
                line = _line(event.start_mark)
                raise _RefusedError(
                    f"line {line}: it nests more than the {MAX_DEPTH} levels this server accepts"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, count = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = count + 1
            open_nodes[-1] = (open_nodes[-1][0], open_nodes[-1][1] + count + 1)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                sizes[event.anchor] = 1
            open_nodes[-1] = (open_nodes[-1][0], open_nodes[-1][1] + 1)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor in (anchor for anchor, _count in open_nodes):
                line = _line(event.start_mark)
                raise _RefusedError(f'line {line}: anchor "{event.anchor}" value contains itself')
            open_nodes[-1] = (open_nodes[-1][0], open_nodes[-1][1] + sizes.get(event.anchor or "", 1))
        if open_nodes[-1][1] > MAX_YAML_NODES:
            raise _RefusedError("document contains excessive aliasing")


def decode_yaml(raw: bytes) -> Decoded:
    """A YAML body (one document), decoded to JSON's types; 400 with the reason otherwise."""
    text = _text(raw)
    try:
        _yaml_shape(text)
        loader = _Loader(text)
        loader.duplicates = []
        try:
            value = loader.get_single_data()
        finally:
            loader.dispose()
    except _RefusedError as exc:
        raise _refuse(str(exc)) from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise _refuse(" ".join(str(exc).split())) from None
    _walk(value, "", {}, [])
    return Decoded(value, _capped(loader.duplicates))


__all__ = [
    "INT64",
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "Decoded",
    "decode_json",
    "decode_yaml",
    "require_object",
    "require_patch",
    "too_large",
    "type_name",
]
