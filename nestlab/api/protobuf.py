"""Decode the Kubernetes protobuf request bodies that recent kubectl sends for typed commands.

kubectl 1.31+ sends the objects of its typed commands (``create namespace|quota|rolebinding|
deployment|job|cronjob|poddisruptionbudget``, ``auth can-i``, ``drain``'s evictions) as
``application/vnd.kubernetes.protobuf`` and gives no JSON fallback, so the server reads them: the
``k8s\\0`` magic, a ``runtime.Unknown`` envelope (apiVersion, kind, raw) and the object message in
``raw``. Field numbers come from the upstream ``generated.proto`` files; each kind's unit holds its
table (shared message tables live in :mod:`nestlab.api.kinds.wire`), and the bodies of
subresources that are not kinds (Eviction, DeleteOptions) are listed here.

Nothing is skipped silently: a field number a table does not know is refused with 415 naming the
kind and the field's path, so a client learns to send JSON/YAML instead of losing a field.

A schema maps field number -> (JSON name, kind). Kinds: ``str`` (dropped when empty), ``int`` and
``bool`` (varints, always kept: Go pointer fields), ``int0`` and ``bool0`` (dropped when zero, as
JSON's ``omitempty`` drops Go's non-pointer zeros), ``strs``/``ints`` (repeated), ``map``
(map<string,string>), ``qmap`` (map<string,Quantity>), ``bmap`` (map<string,bytes>, values in
base64 as JSON writes Go's ``[]byte``), ``quantity``, ``intstr`` (IntOrString),
``time`` (metav1.Time; the zero time is dropped), ``ignore`` (known, server-owned: dropped), a
nested schema (a message; an empty one decodes to ``{}`` as Go's JSON writes it), ``("list",
schema)`` (repeated message) and ``("inline", schema)`` (an embedded struct whose fields JSON
writes into the enclosing object).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from nestlab.api import kinds
from nestlab.api.kinds import wire
from nestlab.api.status import ApiError, bad_request

Obj = dict[str, Any]
MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
Schema = dict[int, tuple[str, Any]]
Value = int | bytes

BODIES: dict[str, Schema] = {
    "Eviction": wire.EVICTION,
    "DeleteOptions": wire.DELETE_OPTIONS,
    "TokenRequest": kinds.serviceaccount.TOKEN_REQUEST,  # serviceaccounts/<name>/token
}
"""Bodies that are not served kinds: what ``pods/NAME/eviction`` (policy/v1 and v1beta1) takes."""
_SIGN = 1 << 63  # varints of negative int32/int64 are 10-byte two's complement


class UnknownFieldError(Exception):
    """A field number the schema does not know, with the JSON path of the message holding it."""

    def __init__(self, path: str, number: int) -> None:
        super().__init__(path, number)
        self.path = path
        self.number = number


def _schema(kind: str) -> Schema | None:
    for unit in kinds.ALL:
        if unit.resource.kind == kind:
            return unit.protobuf
    return BODIES.get(kind)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise bad_request("protobuf body is truncated")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def fields(data: bytes) -> list[tuple[int, Value]]:
    """The (field number, value) pairs of one message; varints as int, the rest as bytes."""
    out: list[tuple[int, Value]] = []
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire_type == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise bad_request("protobuf body is truncated")
            out.append((number, data[pos : pos + size]))
            pos += size
        elif wire_type in (1, 5):
            width = 8 if wire_type == 1 else 4
            out.append((number, data[pos : pos + width]))
            pos += width
        else:
            raise bad_request(f"protobuf wire type {wire_type} is not supported")
    return out


def _text(value: Value) -> str:
    if isinstance(value, int):
        raise bad_request("protobuf body: expected a string field, got a number")
    try:
        return value.decode()
    except UnicodeDecodeError as exc:
        raise bad_request(f"protobuf body: a string field is not UTF-8 ({exc.reason})") from exc


def _bytes(value: Value) -> bytes:
    if isinstance(value, int):
        raise bad_request("protobuf body: expected a message field, got a number")
    return value


def _number(value: Value) -> int:
    if not isinstance(value, int):
        raise bad_request("protobuf body: expected a number field, got bytes")
    return value - (1 << 64) if value & _SIGN else value


def _numbers(value: Value) -> list[int]:
    """A repeated integer: one varint, or (packed) a run of them."""
    if isinstance(value, int):
        return [_number(value)]
    out, pos = [], 0
    while pos < len(value):
        item, pos = _varint(value, pos)
        out.append(_number(item))
    return out


def _quantity(value: Value) -> str:
    return _text(dict(fields(_bytes(value))).get(1, b""))


def _int_or_string(value: Value) -> int | str:
    parts = dict(fields(_bytes(value)))
    if _number(parts.get(1, 0)) == 1:
        return _text(parts.get(3, b""))
    return _number(parts.get(2, 0))


def _time(value: Value) -> str | None:
    parts = dict(fields(_bytes(value)))
    seconds, nanos = _number(parts.get(1, 0)), _number(parts.get(2, 0))
    if not seconds and not nanos:
        return None  # the zero time: JSON writes null, upstream omits it
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pair(value: Value, kind: str) -> tuple[str, str]:
    entry = dict(fields(_bytes(value)))
    key, raw = _text(entry.get(1, b"")), entry.get(2, b"")
    if kind == "qmap":
        return key, _quantity(raw)
    if kind == "bmap":
        return key, base64.b64encode(_bytes(raw)).decode()  # JSON writes Go's []byte as base64
    return key, _text(raw)


def _scalar(kind: str, value: Value) -> tuple[bool, Any]:
    """(keep, decoded) for a non-repeated, non-message kind."""
    if kind == "str":
        text = _text(value)
        return bool(text), text
    if kind in ("int", "int0"):
        number = _number(value)
        return kind == "int" or number != 0, number
    if kind in ("bool", "bool0"):
        flag = _number(value) != 0
        return kind == "bool" or flag, flag
    if kind == "quantity":
        return True, _quantity(value)
    if kind == "intstr":
        return True, _int_or_string(value)
    if kind == "time":
        moment = _time(value)
        return moment is not None, moment
    raise AssertionError(f"unknown schema kind {kind!r}")  # a bug in a table, not bad input


def decode_message(data: bytes, schema: Schema, path: str = "") -> Obj:
    """A protobuf message as the JSON object the same schema describes.

    Raises :class:`UnknownFieldError` for a field number the schema does not list.
    """
    obj: Obj = {}
    counts: dict[int, int] = {}
    for number, value in fields(data):
        if number not in schema:
            raise UnknownFieldError(path, number)
        name, kind = schema[number]
        here = f"{path}.{name}" if path and name else (name or path)
        if kind == wire.IGNORE:
            continue
        if kind == "strs":
            obj.setdefault(name, []).append(_text(value))
        elif kind == "ints":
            obj.setdefault(name, []).extend(_numbers(value))
        elif kind in ("map", "qmap", "bmap"):
            key, item = _pair(value, kind)
            obj.setdefault(name, {})[key] = item
        elif isinstance(kind, tuple) and kind[0] == "list":
            index = counts[number] = counts.get(number, -1) + 1
            obj.setdefault(name, []).append(decode_message(_bytes(value), kind[1], f"{here}[{index}]"))
        elif isinstance(kind, tuple):
            obj.update(decode_message(_bytes(value), kind[1], here))
        elif isinstance(kind, dict):
            obj[name] = decode_message(_bytes(value), kind, here)
        else:
            keep, decoded = _scalar(kind, value)
            if keep:
                obj[name] = decoded
    return obj


def decode(body: bytes) -> Obj:
    """A protobuf-encoded object as JSON; 400 when malformed, 415 for kinds or fields not known."""
    if not body.startswith(MAGIC):
        raise bad_request("protobuf body does not start with the Kubernetes magic bytes")
    envelope = dict(fields(body[len(MAGIC) :]))
    type_meta = dict(fields(_bytes(envelope.get(1, b""))))
    api_version, kind = _text(type_meta.get(1, b"")), _text(type_meta.get(2, b""))
    schema = _schema(kind)
    shown = kind if kind.isprintable() else repr(kind)  # the kind is the client's: one line, escaped
    refusal = f"{shown or 'this kind'} cannot be sent as {MEDIA_TYPE} to this server"
    advice = "send it as application/json or application/yaml"
    if schema is None:
        raise ApiError(415, "UnsupportedMediaType", f"{refusal}; {advice}")
    try:
        obj = decode_message(_bytes(envelope.get(2, b"")), schema)
    except UnknownFieldError as unknown:
        where = f"{unknown.path} has" if unknown.path else "the object has"
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"{refusal}: {where} protobuf field number {unknown.number}, which this server "
            f"does not know; {advice}",
        ) from None
    return {"apiVersion": api_version, "kind": kind, **obj}
