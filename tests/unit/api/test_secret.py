"""Secret unit: Opaque default, stringData merged and dropped, typed keys, immutable, columns, protobuf, roles."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from nestlab.api import protobuf, selectors
from nestlab.api.kinds import secret
from nestlab.api.status import ApiError, Cause
from tests.unit.api.rbac_support import node_may, role_may

Obj = dict[str, Any]

# Recorded from `kubectl.1.33 create secret generic s4 --from-literal=k=v --from-literal=user=bob -v=10`.
KUBECTL_133_BODY = (
    b'k8s\x00\n\x0c\n\x02v1\x12\x06Secret\x12+\n\x12\n\x02s4\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00'
    b'\x12\x06\n\x01k\x12\x01v\x12\x0b\n\x04user\x12\x03bob\x1a\x00\x1a\x00"\x00'
)


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def sec(**fields: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, **fields}


def defaulted(obj: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    secret.default(obj)
    return obj


def causes(obj: Obj) -> list[Cause]:
    return secret.validate(defaulted(obj))


def test_type_defaults_to_opaque() -> None:
    assert defaulted(sec())["type"] == "Opaque"
    assert defaulted(sec(type="kubernetes.io/tls"))["type"] == "kubernetes.io/tls"


def test_string_data_is_merged_into_data_and_dropped() -> None:
    obj = defaulted(sec(data={"a": b64("old"), "b": b64("kept")}, stringData={"a": "new", "c": "é"}))
    assert "stringData" not in obj
    assert obj["data"] == {"a": b64("new"), "b": b64("kept"), "c": b64("é")}


def test_bad_string_data_is_left_for_validation() -> None:
    assert [c.field for c in causes(sec(stringData={"a": 1}))] == ["stringData"]


def test_data_must_be_base64() -> None:
    with pytest.raises(ApiError) as error:
        secret.default(sec(data={"a": "not base64!"}))
    assert error.value.code == 400
    assert 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3' in (
        error.value.message
    )


def test_bad_key_from_string_data_is_named_under_data() -> None:
    found = causes(sec(stringData={"bad/key": "v"}))
    assert found == [
        Cause(
            "data[bad/key]",
            'Invalid value: "bad/key": a valid config key must consist of alphanumeric characters, '
            "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
            "validation is '[-._a-zA-Z0-9]+')",
        )
    ]


def test_size_counts_decoded_bytes() -> None:
    limit = 1024 * 1024
    assert causes(sec(data={"a": b64(b"\0" * limit)})) == []
    over = causes(sec(data={"a": b64(b"\0" * limit), "b": b64(b"\0")}))
    assert over == [Cause("data", "Too long: must have at most 1048576 bytes", "FieldValueTooLong")]


@pytest.mark.parametrize(
    ("kind", "fields", "expected"),
    [
        ("kubernetes.io/tls", {}, ["data[tls.crt]", "data[tls.key]"]),
        ("kubernetes.io/tls", {"data": {"tls.crt": b64("c")}}, ["data[tls.key]"]),
        ("kubernetes.io/tls", {"data": {"tls.crt": "", "tls.key": ""}}, []),
        ("kubernetes.io/dockerconfigjson", {}, ["data[.dockerconfigjson]"]),
        ("kubernetes.io/dockerconfigjson", {"stringData": {".dockerconfigjson": '{"auths":{}}'}}, []),
        ("kubernetes.io/dockercfg", {}, ["data[.dockercfg]"]),
        ("kubernetes.io/basic-auth", {}, ["data[%s][username]", "data[%s][password]"]),
        ("kubernetes.io/basic-auth", {"stringData": {"password": ""}}, []),
        ("kubernetes.io/ssh-auth", {"stringData": {"ssh-privatekey": ""}}, ["data[%s][ssh-privatekey]"]),
        ("kubernetes.io/ssh-auth", {"stringData": {"ssh-privatekey": "k"}}, []),
        (
            "kubernetes.io/service-account-token",
            {},
            ["metadata.annotations[kubernetes.io/service-account.name]"],
        ),
        ("example.com/custom", {}, []),
    ],
)
def test_typed_secrets_need_their_keys(kind: str, fields: Obj, expected: list[str]) -> None:
    found = causes(sec(type=kind, **fields))
    assert [c.field for c in found] == expected
    assert all(c.message == "Required value" and c.reason == "FieldValueRequired" for c in found)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "unexpected end of JSON input"),
        ("nope", "invalid character 'n' looking for beginning of value"),
        ("[]", "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    ],
)
def test_docker_config_must_be_a_json_object(text: str, problem: str) -> None:
    found = causes(sec(type="kubernetes.io/dockerconfigjson", stringData={".dockerconfigjson": text}))
    assert found == [
        Cause("data[.dockerconfigjson]", f'Invalid value: "<secret contents redacted>": {problem}')
    ]


def test_type_never_changes() -> None:
    old = defaulted(sec(type="kubernetes.io/basic-auth", stringData={"username": "u"}))
    new = defaulted(sec(stringData={"username": "u"}))
    assert secret.validate_update(new, old) == [Cause("type", 'Invalid value: "Opaque": field is immutable')]


def test_immutable_freezes_data_including_through_string_data() -> None:
    old = defaulted(sec(data={"a": b64("1")}, immutable=True))
    same = copy.deepcopy(old)
    same["metadata"]["annotations"] = {"note": "metadata may change"}
    assert secret.validate_update(same, old) == []
    changed = defaulted(sec(stringData={"a": "2"}, immutable=True))
    assert [c.field for c in secret.validate_update(changed, old)] == ["data"]
    unset = defaulted(sec(data={"a": b64("1")}))
    found = secret.validate_update(unset, old)
    assert found == [
        Cause("immutable", "Forbidden: field is immutable when `immutable` is set", "FieldValueForbidden")
    ]


def test_kubectl_columns_and_type_field_selector() -> None:
    assert [c.name for c in secret.KIND.columns] == ["Name", "Type", "Data", "Age"]
    obj = defaulted(sec(stringData={"a": "1", "b": "2"}))
    obj["metadata"]["creationTimestamp"] = None
    assert secret.row(obj) == ["creds", "Opaque", 2, "<unknown>"]
    match = selectors.compile_selector("", "type=Opaque", "secrets")
    assert match(obj)
    assert not selectors.compile_selector("", "type!=Opaque", "secrets")(obj)


def test_decodes_kubectl_133_protobuf_body_into_the_same_object() -> None:
    decoded = protobuf.decode(KUBECTL_133_BODY)
    assert decoded == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s4"},
        "data": {"k": b64("v"), "user": b64("bob")},
    }


def test_decodes_bytes_that_are_not_utf8() -> None:
    body = KUBECTL_133_BODY.replace(b"\x12\x01v", b"\x12\x01\xff")
    assert protobuf.decode(body)["data"]["k"] == b64(b"\xff")


def test_roles_view_may_not_read_secrets() -> None:
    assert not any(role_may("view", v, "secrets") for v in ("get", "list", "watch"))
    verbs = ("get", "list", "create", "update", "delete")
    assert all(role_may("edit", v, "secrets") for v in verbs)
    assert all(role_may("admin", v, "secrets") for v in verbs)
    assert node_may("get", "secrets")
    assert not node_may("delete", "secrets")
