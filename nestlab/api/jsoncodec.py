"""JSON for what nestlab itself encodes and decodes on every request: orjson, stdlib as the fallback.

A profile of an API server under a 500-pod load (docs/control-plane.md) spent about a sixth of its
time in the standard library's json: decoding every value etcd sends (reads and watch events),
encoding every value it stores, every answer and every watch line, and copying an object before
an update changes it. orjson does the same work in a third (decoding) to a sixth (encoding) of the
time. It encodes compact UTF-8 (no ``\\uXXXX`` escapes for non-ASCII text): equivalent JSON, which
every client decodes to the same value.

What a *client* sends is still decoded by :mod:`nestlab.api.decode`, whose stdlib hooks refuse
NaN, integers beyond 64 bits, duplicate keys and lone surrogates with a 400 naming the field: that
is also why anything this module is asked to encode fits orjson. Should a value ever not (an
integer beyond 64 bits, a key that is not a string), :func:`dumps` falls back to the stdlib rather
than fail the request.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """The value of a JSON document (ValueError when it is not one)."""
    return orjson.loads(data)


def dumps(value: Any, *, sort_keys: bool = False, default: Any = None) -> bytes:
    """Compact JSON as UTF-8 bytes; keys sorted when asked (what etcd stores, so equal objects
    store equal bytes); ``default`` turns what JSON has no type for into something it has."""
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:  # orjson.JSONEncodeError: beyond what orjson encodes, not beyond JSON
        text = json.dumps(value, separators=(",", ":"), sort_keys=sort_keys, default=default)
        return text.encode()


def copy(value: Any) -> Any:
    """A deep copy of a JSON value (several times faster than copy.deepcopy for API objects)."""
    return orjson.loads(dumps(value))
