"""v1 ConfigMap: configuration a pod reads as environment variables or as files on its ephemeral disk.

In vSphere with Kubernetes the Spherelet writes a pod's ConfigMaps onto the pod's ephemeral VMDK;
here the node agent fetches them and pod-init writes them on the pod's ephemeral disk. The unit
holds what upstream's API server does with the object itself: key names and the 1 MiB total
(``ValidateConfigMap``), the data/binaryData overlap, ``immutable`` (``ValidateConfigMapUpdate``)
and the ``kubectl get configmaps`` columns. The key and size checks are shared with Secrets
(:mod:`~nestlab.api.kinds.secret`), as upstream shares ``IsConfigMapKey`` and ``MaxSecretSize``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from nestlab.api import status
from nestlab.api.kinds.base import AGE, NAME, READ, WRITE, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import as_dict, check_metadata, type_causes
from nestlab.api.kinds.printing import created
from nestlab.api.kinds.wiremeta import OBJECT_META, Schema
from nestlab.api.status import Cause

RESOURCE = Resource("configmaps", "configmap", "ConfigMap", "", "v1", True, ("cm",))
MAX_SIZE = 1024 * 1024
"""Upstream ``MaxSecretSize`` (1 MiB), the limit of a ConfigMap's or Secret's data: etcd's request
limit is 1.5 MiB, and the kubelet keeps every mounted one in memory."""
MAX_KEY_LENGTH = 253  # upstream DNS1123SubdomainMaxLength, reused by IsConfigMapKey
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
IMMUTABLE_MSG = "Forbidden: field is immutable when `immutable` is set"
_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n")


def key_problems(key: str) -> list[str]:
    """Why ``key`` cannot name a ConfigMap or Secret entry (upstream ``IsConfigMapKey``); [] if it can."""
    problems = []
    if len(key) > MAX_KEY_LENGTH:
        problems.append(f"must be no more than {MAX_KEY_LENGTH} characters")
    if not _KEY.match(key):
        problems.append(KEY_MSG)
    if key == ".":
        problems.append("must not be '.'")
    elif key == "..":
        problems.append("must not be '..'")
    elif key.startswith(".."):
        problems.append("must not start with '..'")
    return problems


def key_causes(key: str, path: str) -> list[Cause]:
    """One ``Invalid value`` cause per problem of ``key``, at ``path[key]`` as upstream names it."""
    return [Cause(f"{path}[{key}]", f'Invalid value: "{key}": {problem}') for problem in key_problems(key)]


def too_long(path: str) -> Cause:
    """The cause for data over :data:`MAX_SIZE` (upstream ``field.TooLong``)."""
    return Cause(path, f"Too long: must have at most {MAX_SIZE} bytes", "FieldValueTooLong")


def illegal_base64(text: str) -> int | None:
    """The byte offset Go's strict decoder reports for a value that is not standard base64 (None if it
    is): the first character outside the alphabet, else the first misplaced or missing padding."""
    for index, char in enumerate(text):
        if char not in _BASE64_ALPHABET:
            return index
    cleaned = text.replace("\r", "").replace("\n", "")
    body = cleaned.rstrip("=")
    if "=" in body:
        return text.index("=")
    if len(cleaned) % 4 or len(cleaned) - len(body) > 2:
        return len(text)
    try:
        base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        return len(text)
    return None


def decoded_size(text: str) -> int:
    """The number of bytes a (valid) base64 value stands for."""
    return len(base64.b64decode(text.replace("\r", "").replace("\n", "")))


def check_base64_values(obj: Obj, field: str, kind: str) -> None:
    """A 400 for a ``[]byte`` map value that is not base64, as upstream's JSON decoder refuses it."""
    for value in as_dict(obj.get(field)).values():
        if isinstance(value, str):
            offset = illegal_base64(value)
            if offset is not None:
                raise status.bad_request(
                    f'{kind} in version "v1" cannot be handled as a {kind}: illegal base64 data at input '
                    f"byte {offset}"
                )


def map_causes(obj: Obj, field: str) -> list[Cause]:
    """A map of string keys to string values, or the type cause."""
    value = obj.get(field)
    if value is None:
        return []
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return [
            Cause(
                field, "Invalid value: must be a map of string keys to string values", "FieldValueTypeInvalid"
            )
        ]
    return []


def immutable_causes(new: Obj, old: Obj, fields: tuple[str, ...]) -> list[Cause]:
    """Upstream's rules once ``immutable: true`` is stored: it stays set and ``fields`` stay as they are."""
    if old.get("immutable") is not True:
        return []
    causes = []
    if new.get("immutable") is not True:
        causes.append(Cause("immutable", IMMUTABLE_MSG, "FieldValueForbidden"))
    for field in fields:
        if (new.get(field) or {}) != (old.get(field) or {}):
            causes.append(Cause(field, IMMUTABLE_MSG, "FieldValueForbidden"))
    return causes


def default(configmap: Obj) -> None:
    """No defaults upstream; binaryData values must be base64 (400 otherwise, as the decoder says)."""
    check_base64_values(configmap, "binaryData", "ConfigMap")


def validate(configmap: Obj) -> list[Cause]:
    """Upstream ``ValidateConfigMap``: key names, no key in both maps, 1 MiB in all."""
    causes = check_metadata(configmap)
    causes += type_causes(configmap, {"immutable": bool}) + map_causes(configmap, "data")
    causes += map_causes(configmap, "binaryData")
    if causes:
        return causes
    data, binary = as_dict(configmap.get("data")), as_dict(configmap.get("binaryData"))
    size = 0
    for key, value in data.items():
        causes += key_causes(key, "data")
        if key in binary:
            causes.append(
                Cause(f"data[{key}]", f'Invalid value: "{key}": duplicate of key present in binaryData')
            )
        size += len(value.encode())
    for key, value in binary.items():
        causes += key_causes(key, "binaryData")
        if key in data:
            causes.append(
                Cause(f"binaryData[{key}]", f'Invalid value: "{key}": duplicate of key present in data')
            )
        size += decoded_size(value)
    if size > MAX_SIZE:
        causes.append(too_long("[]"))  # upstream passes the empty path: the whole object
    return causes


def validate_update(new: Obj, old: Obj) -> list[Cause]:
    return immutable_causes(new, old, ("data", "binaryData"))


def row(configmap: Obj) -> list[Any]:
    count = len(as_dict(configmap.get("data"))) + len(as_dict(configmap.get("binaryData")))
    return [configmap["metadata"]["name"], count, created(configmap)]


# -- protobuf (k8s.io/api core/v1 generated.proto, message ConfigMap) ------------------------------
CONFIG_MAP: Schema = {
    1: ("metadata", OBJECT_META),
    2: ("data", "map"),
    3: ("binaryData", "bmap"),
    4: ("immutable", "bool"),
}

KIND = Kind(
    RESOURCE,
    model="V1ConfigMap",
    default=default,
    validate=validate,
    validate_update=validate_update,
    columns=(
        NAME,
        Column(
            "Data",
            "string",
            0,
            "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', "
            "'_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored "
            "in Data must not overlap with the keys in the BinaryData field, this is enforced during "
            "validation process.",
        ),
        AGE,
    ),
    row=row,
    roles={
        "view": {"configmaps": READ},
        "edit": {"configmaps": READ | WRITE},
        "node": {"configmaps": READ},
    },
    protobuf=CONFIG_MAP,
)
