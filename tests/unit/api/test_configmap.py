"""ConfigMap unit: upstream key rules and messages, the 1 MiB limit, immutable, columns, protobuf, roles."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from nestlab.api import protobuf, selectors
from nestlab.api.kinds import configmap
from nestlab.api.status import ApiError, Cause
from tests.unit.api.rbac_support import node_may, role_may

Obj = dict[str, Any]

# Recorded from `kubectl.1.33 create configmap c4 --from-literal=k=v --from-literal=x=y -v=10`.
KUBECTL_133_BODY = (
    b'k8s\x00\n\x0f\n\x02v1\x12\tConfigMap\x12$\n\x12\n\x02c4\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00'
    b'\x12\x06\n\x01k\x12\x01v\x12\x06\n\x01x\x12\x01y\x1a\x00"\x00'
)


def cm(**fields: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, **fields}


def causes(obj: Obj) -> list[Cause]:
    obj = copy.deepcopy(obj)
    configmap.default(obj)
    return configmap.validate(obj)


def test_a_good_configmap_has_no_causes() -> None:
    body = cm(data={"a.b": "1", "KEY_NAME": "x", "key-name": ""}, binaryData={"blob": "AAEC"})
    assert causes(body) == []


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("a/b", configmap.KEY_MSG),
        ("", configmap.KEY_MSG),
        ("sp ace", configmap.KEY_MSG),
        (".", "must not be '.'"),
        ("..", "must not be '..'"),
        ("..x", "must not start with '..'"),
        ("k" * 254, "must be no more than 253 characters"),
    ],
)
def test_bad_keys_get_upstreams_message(key: str, problem: str) -> None:
    found = causes(cm(data={key: "v"}))
    assert Cause(f"data[{key}]", f'Invalid value: "{key}": {problem}') in found


def test_key_message_is_upstreams_text() -> None:
    assert configmap.KEY_MSG == (
        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  "
        "or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
    )


def test_a_key_in_both_maps_is_refused_in_both() -> None:
    found = causes(cm(data={"k": "v"}, binaryData={"k": "AA=="}))
    assert [c.field for c in found] == ["data[k]", "binaryData[k]"]
    assert found[0].message == 'Invalid value: "k": duplicate of key present in binaryData'
    assert found[1].message == 'Invalid value: "k": duplicate of key present in data'


def test_one_mebibyte_in_all_is_the_limit() -> None:
    half = configmap.MAX_SIZE // 2
    exact = cm(data={"a": "x" * half}, binaryData={"b": base64.b64encode(b"\0" * half).decode()})
    assert causes(exact) == []
    over = cm(data={"a": "x" * (half + 1)}, binaryData={"b": base64.b64encode(b"\0" * half).decode()})
    assert causes(over) == [Cause("[]", "Too long: must have at most 1048576 bytes", "FieldValueTooLong")]


def test_size_counts_utf8_bytes_not_characters() -> None:
    assert causes(cm(data={"a": "é" * (configmap.MAX_SIZE // 2 + 1)}))[0].field == "[]"


@pytest.mark.parametrize(("value", "offset"), [("AA=A", 2), ("A$==", 1), ("AAA", 3), ("AAAA", None)])
def test_binary_data_must_be_base64(value: str, offset: int | None) -> None:
    assert configmap.illegal_base64(value) == offset
    if offset is not None:
        with pytest.raises(ApiError) as error:
            configmap.default(cm(binaryData={"b": value}))
        assert error.value.code == 400
        assert error.value.message.endswith(f"illegal base64 data at input byte {offset}")


def test_wrong_types_are_causes() -> None:
    found = causes(cm(data={"a": 1}, immutable="yes"))
    assert {c.field for c in found} == {"data", "immutable"}


def test_immutable_freezes_data_and_itself() -> None:
    old = cm(data={"a": "1"}, immutable=True)
    assert configmap.validate_update(copy.deepcopy(old), old) == []
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["labels"] = {"x": "y"}
    assert configmap.validate_update(relabelled, old) == []
    changed = cm(data={"a": "2"}, binaryData={"b": "AA=="})
    found = configmap.validate_update(changed, old)
    assert [c.field for c in found] == ["immutable", "data", "binaryData"]
    assert found[0].message == "Forbidden: field is immutable when `immutable` is set"
    assert found[0].reason == "FieldValueForbidden"
    assert configmap.validate_update(cm(data={"a": "2"}, immutable=True), cm(data={"a": "1"})) == []


def test_kubectl_columns() -> None:
    assert [c.name for c in configmap.KIND.columns] == ["Name", "Data", "Age"]
    obj = cm(data={"a": "1", "b": "2"}, binaryData={"c": "AA=="})
    obj["metadata"]["creationTimestamp"] = None
    assert configmap.row(obj) == ["settings", 3, "<unknown>"]


def test_decodes_kubectl_133_protobuf_body() -> None:
    assert protobuf.decode(KUBECTL_133_BODY) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c4"},
        "data": {"k": "v", "x": "y"},
    }


def _field(number: int, raw: bytes) -> bytes:
    assert len(raw) < 128  # one-byte lengths are enough here
    return bytes([number << 3 | 2, len(raw)]) + raw


def test_binary_data_over_protobuf_is_base64_as_json_writes_it() -> None:
    blob = _field(3, _field(1, b"b") + _field(2, b"\xff\x00"))
    obj = _field(1, _field(1, b"c5")) + blob
    body = b"k8s\x00" + _field(1, _field(1, b"v1") + _field(2, b"ConfigMap")) + _field(2, obj)
    assert protobuf.decode(body)["binaryData"] == {"b": "/wA="}


def test_roles_are_upstreams() -> None:
    assert role_may("view", "get", "configmaps")
    assert not role_may("view", "create", "configmaps")
    assert all(role_may("edit", v, "configmaps") for v in ("create", "update", "patch", "delete"))
    assert node_may("watch", "configmaps")
    assert not node_may("create", "configmaps")


def test_only_common_field_selectors() -> None:
    with pytest.raises(ApiError):
        selectors.parse_fields("data=x", "configmaps")
