"""Protobuf bodies recorded from kubectl 1.33, the OpenAPI protobuf document, tables, Status shapes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nestlab.api import kinds, openapi, protobuf, status
from nestlab.api.kinds import printing
from nestlab.api.status import ApiError

# Bodies captured from `kubectl.1.33 create namespace foo` / `create quota` / `create rolebinding`.
NAMESPACE = b'k8s\x00\n\x0f\n\x02v1\x12\tNamespace\x12\x1b\n\x13\n\x03foo\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00\x12\x00\x1a\x02\n\x00\x1a\x00"\x00'
QUOTA = (
    b'k8s\x00\n\x13\n\x02v1\x12\rResourceQuota\x124\n\x15\n\x01q\x12\x00\x1a\x04demo"\x00*\x002\x008\x00B\x00'
    b'\x12\x19\n\n\n\x03cpu\x12\x03\n\x011\n\x0b\n\x04pods\x12\x03\n\x012\x1a\x00\x1a\x00"\x00'
)
BINDING = (
    b'k8s\x00\n+\n\x1crbac.authorization.k8s.io/v1\x12\x0bRoleBinding\x12r\n\x16\n\x02rb\x12\x00\x1a\x04demo"\x00'
    b'*\x002\x008\x00B\x00\x12(\n\x04User\x12\x19rbac.authorization.k8s.io\x1a\x03bob"\x00\x1a.\n\x19'
    b'rbac.authorization.k8s.io\x12\x0bClusterRole\x1a\x04edit\x1a\x00"\x00'
)


def test_decode_recorded_kubectl_bodies() -> None:
    assert protobuf.decode(NAMESPACE) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "foo"},
        "spec": {},
    }
    quota = protobuf.decode(QUOTA)
    assert quota["metadata"] == {"name": "q", "namespace": "demo"}
    assert quota["spec"] == {"hard": {"cpu": "1", "pods": "2"}}
    binding = protobuf.decode(BINDING)
    assert binding["subjects"] == [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"}]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "edit",
    }


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"junk", 400), (NAMESPACE[:-9], 400), (NAMESPACE.replace(b"\tNamespace", b"\tNamespacf"), 415)],
)
def test_bad_protobuf_bodies(body: bytes, code: int) -> None:
    with pytest.raises(ApiError) as error:
        protobuf.decode(body)
    assert error.value.code == code


def test_openapi_v2_protobuf_round_trips() -> None:
    document = dict(protobuf.fields(openapi.v2_protobuf()))
    assert document[1] == b"2.0"
    info = dict(protobuf.fields(document[2]))  # type: ignore[arg-type]
    assert info[1].startswith(b"Kubernetes")  # type: ignore[union-attr]
    named = [dict(protobuf.fields(v)) for _n, v in protobuf.fields(document[8])]  # type: ignore[arg-type]
    pods = next(n for n in named if n[1] == b"/api/v1/namespaces/{namespace}/pods/{name}")
    patch = dict(protobuf.fields(pods[2]))[8]  # type: ignore[arg-type]  # PathItem.patch
    operation = protobuf.fields(patch)  # type: ignore[arg-type]
    extension = next(v for n, v in operation if n == 13)
    assert b"x-kubernetes-group-version-kind" in extension  # type: ignore[operator]
    assert b"kind: Pod" in extension  # type: ignore[operator]
    params = [v for n, v in operation if n == 8]
    assert any(b"dryRun" in p for p in params)  # type: ignore[operator]


def test_openapi_v3_advertises_field_validation_on_patch() -> None:
    doc = openapi.v3_document("api/v1")
    assert doc is not None
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert openapi.v3_document("apis/nope/v1") is None


def test_age_formatting() -> None:
    at = datetime(2026, 1, 2, tzinfo=UTC)
    assert printing.age("2026-01-01T23:59:15Z", at) == "45s"
    assert printing.age("2026-01-01T23:55:00Z", at) == "5m"
    assert printing.age("2026-01-01T23:53:30Z", at) == "6m30s"
    assert printing.age("2026-01-01T20:00:00Z", at) == "4h"
    assert printing.age("2025-12-20T00:00:00Z", at) == "13d"


def test_pod_table_row() -> None:
    pod = {
        "metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c"}], "nodeName": "esx-01"},
        "status": {
            "phase": "Running",
            "podIP": "198.18.8.5",
            "containerStatuses": [{"ready": True, "restartCount": 2, "state": {"running": {}}}],
        },
    }
    table = printing.table(_kind("pods"), [pod], "7")
    assert [c["name"] for c in table["columnDefinitions"]][:5] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    cells = table["rows"][0]["cells"]
    assert cells[:4] == ["web", "1/1", "Running", 2]
    assert cells[5:7] == ["198.18.8.5", "esx-01"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_status_shapes() -> None:
    body = status.forbidden("bob", "create", "pods", "", namespace="demo").status()
    assert (
        body["message"]
        == 'pods is forbidden: User "bob" cannot create resource "pods" in API group "" in the namespace "demo"'
    )
    assert (body["code"], body["reason"]) == (403, "Forbidden")
    invalid = status.invalid(
        "Pod", "", "web", [status.Cause("spec.containers[0].image", "Required value", "FieldValueRequired")]
    )
    assert invalid.status()["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers[0].image"}
    ]
    assert invalid.message == 'Pod "web" is invalid: spec.containers[0].image: Required value'


# `kubectl.1.33 auth can-i get pods --subresource=log -n demo`
ACCESS_REVIEW = (
    b'k8s\x00\n2\n\x17authorization.k8s.io/v1\x12\x17SelfSubjectAccessReview\x12<\n\x10\n\x00\x12\x00\x1a\x00"\x00'
    b'*\x002\x008\x00B\x00\x12\x1e\n\x1c\n\x04demo\x12\x03get\x1a\x00"\x00*\x04pods2\x03log:\x00\x1a\x08\x08\x00'
    b'\x12\x00\x1a\x00 \x00\x1a\x00"\x00'
)


def test_decode_recorded_access_review() -> None:
    review = protobuf.decode(ACCESS_REVIEW)
    assert review["spec"] == {
        "resourceAttributes": {"namespace": "demo", "verb": "get", "resource": "pods", "subresource": "log"}
    }


def test_quota_binding_and_lease_rows() -> None:
    quota = {
        "metadata": {"name": "compute", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"hard": {"cpu": "1", "pods": "3", "limits.cpu": "2"}},
        "status": {
            "hard": {"cpu": "1", "pods": "3", "limits.cpu": "2"},
            "used": {"cpu": "500m", "pods": "1"},
        },
    }
    cells = printing.table(_kind("resourcequotas"), [quota], "1")["rows"][0]["cells"]
    assert cells[2:] == ["cpu: 500m/1, pods: 1/3", "limits.cpu: 0/2"]
    binding = {
        "metadata": {"name": "devs"},
        "roleRef": {"kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "User", "name": "bob"}, {"kind": "Group", "name": "devs"}],
    }
    cells = printing.table(_kind("rolebindings"), [binding], "1")["rows"][0]["cells"]
    assert cells[1] == "ClusterRole/edit"
    assert cells[3:5] == ["bob", "devs"]
    lease = {"metadata": {"name": "nestlab-scheduler"}, "spec": {"holderIdentity": "cp-2"}}
    assert printing.table(_kind("leases"), [lease], "1")["rows"][0]["cells"][:2] == [
        "nestlab-scheduler",
        "cp-2",
    ]


def _kind(plural: str) -> kinds.Kind:
    return next(k for k in kinds.ALL if k.resource.plural == plural)
