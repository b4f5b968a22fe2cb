"""Decode the Kubernetes protobuf request bodies that recent kubectl sends for typed commands.

kubectl 1.31+ sends ``kubectl create namespace|quota|rolebinding`` bodies as
``application/vnd.kubernetes.protobuf`` (and gives no JSON fallback), so the server reads them: the
``k8s\\0`` magic, a ``runtime.Unknown`` envelope (apiVersion, kind, raw) and the object message in
``raw``. Field numbers come from the upstream ``generated.proto`` files; each kind's unit holds its
table, and kinds without one are refused with 415 and a message saying to use JSON/YAML.
"""

from __future__ import annotations

from typing import Any

from nestlab.api import kinds
from nestlab.api.status import ApiError, bad_request

Obj = dict[str, Any]
MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

# A message schema: field number -> (json name, kind); kind is "str", "int", "strs" (repeated
# string), "map" (map<string,string>), "qmap" (map<string,Quantity>), or a nested schema; a
# ("list", schema) tuple is a repeated message. Each kind's unit declares its own (Kind.protobuf).
Schema = dict[int, tuple[str, Any]]


def _schema(kind: str) -> Schema | None:
    for unit in kinds.ALL:
        if unit.resource.kind == kind:
            return unit.protobuf
    return None


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


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """The (field number, value) pairs of one message; varints as int, the rest as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise bad_request("protobuf body is truncated")
            out.append((number, data[pos : pos + size]))
            pos += size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            out.append((number, data[pos : pos + width]))
            pos += width
        else:
            raise bad_request(f"protobuf wire type {wire} is not supported")
    return out


def _text(value: int | bytes) -> str:
    if isinstance(value, int):
        raise bad_request("protobuf body: expected a string field, got a number")
    try:
        return value.decode()
    except UnicodeDecodeError as exc:
        raise bad_request(f"protobuf body: a string field is not UTF-8 ({exc.reason})") from exc


def _bytes(value: int | bytes) -> bytes:
    if isinstance(value, int):
        raise bad_request("protobuf body: expected a message field, got a number")
    return value


def _pair(value: int | bytes, quantity: bool) -> tuple[str, str]:
    entry = dict(fields(value if isinstance(value, bytes) else b""))
    key = _text(entry.get(1, b""))
    raw = entry.get(2, b"")
    if quantity:
        return key, _text(dict(fields(raw if isinstance(raw, bytes) else b"")).get(1, b""))
    return key, _text(raw)


def decode_message(data: bytes, schema: Schema) -> Obj:
    """A protobuf message as the JSON object the same schema describes (empty values dropped)."""
    obj: Obj = {}
    for number, value in fields(data):
        if number not in schema:
            continue
        name, kind = schema[number]
        if kind == "str":
            if _text(value):
                obj[name] = _text(value)
        elif kind == "int":
            obj[name] = value
        elif kind == "strs":
            obj.setdefault(name, []).append(_text(value))
        elif kind in ("map", "qmap"):
            key, item = _pair(value, kind == "qmap")
            obj.setdefault(name, {})[key] = item
        elif isinstance(kind, tuple):
            obj.setdefault(name, []).append(
                decode_message(value if isinstance(value, bytes) else b"", kind[1])
            )
        else:
            obj[name] = decode_message(value if isinstance(value, bytes) else b"", kind)
    return obj


def decode(body: bytes) -> Obj:
    """A protobuf-encoded object as JSON; 400 when malformed, 415 for kinds not served as protobuf."""
    if not body.startswith(MAGIC):
        raise bad_request("protobuf body does not start with the Kubernetes magic bytes")
    envelope = dict(fields(body[len(MAGIC) :]))
    type_meta = dict(fields(_bytes(envelope.get(1, b""))))
    api_version, kind = _text(type_meta.get(1, b"")), _text(type_meta.get(2, b""))
    schema = _schema(kind)
    if schema is None:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"{kind or 'this kind'} cannot be sent as {MEDIA_TYPE} to this server; "
            "send it as application/json or application/yaml",
        )
    raw = envelope.get(2, b"")
    obj = decode_message(raw if isinstance(raw, bytes) else b"", schema)
    return {"apiVersion": api_version, "kind": kind, **obj}
