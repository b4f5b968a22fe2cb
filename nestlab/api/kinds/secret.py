"""v1 Secret: credentials a pod reads as environment variables or files, kept encrypted at rest.

The object is upstream's: ``type`` defaults to ``Opaque``, ``stringData`` is merged into the
base64 ``data`` on every write and never stored (as the v1 conversion does), the typed secrets
need their keys (``ValidateSecret``: tls, dockercfg, dockerconfigjson, basic-auth, ssh-auth,
service-account-token), ``immutable`` freezes ``data`` and ``type`` never changes
(``ValidateSecretUpdate``). Encryption is not this unit's business: the store encrypts every
``/registry/secrets/`` value on its way to etcd (:mod:`nestlab.api.encryption`). The built-in
``view`` role may not read Secrets, as upstream: reading one is as good as holding the credential.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from nestlab.api.kinds.base import AGE, NAME, READ, WRITE, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import as_dict, check_metadata, immutable, type_causes
from nestlab.api.kinds.configmap import (
    MAX_SIZE,
    check_base64_values,
    decoded_size,
    immutable_causes,
    key_causes,
    map_causes,
    too_long,
)
from nestlab.api.kinds.printing import created
from nestlab.api.kinds.wiremeta import OBJECT_META, Schema
from nestlab.api.status import Cause

RESOURCE = Resource("secrets", "secret", "Secret", "", "v1", True)
OPAQUE = "Opaque"
TLS = "kubernetes.io/tls"
DOCKERCFG = "kubernetes.io/dockercfg"
DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
BASIC_AUTH = "kubernetes.io/basic-auth"
SSH_AUTH = "kubernetes.io/ssh-auth"
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"  # noqa: S105 - a type name, not a token
SERVICE_ACCOUNT_NAME = "kubernetes.io/service-account.name"
_REDACTED = "<secret contents redacted>"


def default(secret: Obj) -> None:
    """``type: Opaque``; ``stringData`` merged into ``data`` (it wins on a shared key) and dropped."""
    check_base64_values(secret, "data", "Secret")
    if not secret.get("type"):
        secret["type"] = OPAQUE
    strings = secret.get("stringData")
    if strings is None:
        return
    if not isinstance(strings, dict) or not all(isinstance(v, str) for v in strings.values()):
        return  # left in place: validate reports its type
    data = secret.get("data")
    if data is None:
        data = secret["data"] = {}
    if isinstance(data, dict):
        for key, value in strings.items():
            data[key] = base64.b64encode(value.encode()).decode()
        del secret["stringData"]


def _decoded(data: dict[str, Any], key: str) -> bytes:
    return base64.b64decode(str(data[key]).replace("\r", "").replace("\n", ""))


def _json_problem(raw: bytes) -> str:
    """Why ``raw`` is not a JSON object, in the words of Go's encoding/json ("" when it is one)."""
    if not raw.strip():
        return "unexpected end of JSON input"
    try:
        parsed = json.loads(raw)
    except UnicodeDecodeError:
        return "invalid character looking for beginning of value"
    except json.JSONDecodeError as exc:
        if exc.pos >= len(exc.doc):
            return "unexpected end of JSON input"
        return f"invalid character '{exc.doc[exc.pos]}' looking for beginning of value"
    if not isinstance(parsed, dict):
        name = {list: "array", str: "string", bool: "bool"}.get(type(parsed), "number")
        return f"json: cannot unmarshal {name} into Go value of type map[string]interface {{}}"
    return ""


def _docker_causes(key: str, data: dict[str, Any]) -> list[Cause]:
    """A docker config Secret holds ``key``, and it is a JSON object."""
    if key not in data:
        return [Cause(f"data[{key}]", "Required value", "FieldValueRequired")]
    problem = _json_problem(_decoded(data, key))
    return [Cause(f"data[{key}]", f'Invalid value: "{_REDACTED}": {problem}')] if problem else []


def _type_causes(secret: Obj, data: dict[str, Any]) -> list[Cause]:
    """The keys a typed Secret must hold (upstream ``ValidateSecret``'s switch, paths as upstream)."""
    kind = secret.get("type")
    causes: list[Cause] = []
    if kind == SERVICE_ACCOUNT_TOKEN:
        if not as_dict(secret["metadata"].get("annotations")).get(SERVICE_ACCOUNT_NAME):
            path = f"metadata.annotations[{SERVICE_ACCOUNT_NAME}]"
            causes.append(Cause(path, "Required value", "FieldValueRequired"))
    elif kind in (DOCKERCFG, DOCKER_CONFIG_JSON):
        causes += _docker_causes(".dockercfg" if kind == DOCKERCFG else ".dockerconfigjson", data)
    elif kind == BASIC_AUTH:
        if "username" not in data and "password" not in data:
            # upstream builds these paths with field.NewPath("data[%s]"): the odd spelling is theirs
            causes += [
                Cause("data[%s][username]", "Required value", "FieldValueRequired"),
                Cause("data[%s][password]", "Required value", "FieldValueRequired"),
            ]
    elif kind == SSH_AUTH:
        if "ssh-privatekey" not in data or not _decoded(data, "ssh-privatekey"):
            causes.append(Cause("data[%s][ssh-privatekey]", "Required value", "FieldValueRequired"))
    elif kind == TLS:
        causes += [
            Cause(f"data[{key}]", "Required value", "FieldValueRequired")
            for key in ("tls.crt", "tls.key")
            if key not in data
        ]
    return causes


def validate(secret: Obj) -> list[Cause]:
    """Upstream ``ValidateSecret``: key names, 1 MiB of decoded data, the typed Secrets' keys."""
    causes = check_metadata(secret)
    causes += type_causes(secret, {"immutable": bool, "type": str})
    causes += map_causes(secret, "data") + map_causes(secret, "stringData")
    if causes:
        return causes
    data = as_dict(secret.get("data"))
    size = 0
    for key, value in data.items():
        causes += key_causes(key, "data")
        size += decoded_size(value)
    if size > MAX_SIZE:
        causes.append(too_long("data"))
    return causes + _type_causes(secret, data)


def validate_update(new: Obj, old: Obj) -> list[Cause]:
    """``type`` never changes; ``immutable: true`` freezes ``data`` and itself."""
    return immutable(new.get("type"), old.get("type"), "type") + immutable_causes(new, old, ("data",))


def row(secret: Obj) -> list[Any]:
    data = as_dict(secret.get("data"))
    return [secret["metadata"]["name"], secret.get("type", ""), len(data), created(secret)]


# -- protobuf (k8s.io/api core/v1 generated.proto, message Secret) ---------------------------------
SECRET: Schema = {
    1: ("metadata", OBJECT_META),
    2: ("data", "bmap"),
    3: ("type", "str"),
    4: ("stringData", "map"),
    5: ("immutable", "bool"),
}

KIND = Kind(
    RESOURCE,
    model="V1Secret",
    default=default,
    validate=validate,
    validate_update=validate_update,
    columns=(
        NAME,
        Column(
            "Type",
            "string",
            0,
            "Used to facilitate programmatic handling of secret data. More info: "
            "https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
        ),
        Column(
            "Data",
            "string",
            0,
            "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or "
            "'.'. The serialized form of the secret data is a base64 encoded string, representing the "
            "arbitrary (possibly non-string) data value here. Described in "
            "https://tools.ietf.org/html/rfc4648#section-4",
        ),
        AGE,
    ),
    row=row,
    selectable=("type",),
    # view may not read Secrets (upstream: it would let a viewer act as any service account).
    roles={"edit": {"secrets": READ | WRITE}, "node": {"secrets": READ}},
    protobuf=SECRET,
)
