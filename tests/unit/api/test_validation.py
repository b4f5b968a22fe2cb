"""Validation causes name the field and use the upstream wording."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.api import kinds
from nestlab.api import resources as r
from nestlab.api.kinds import common
from nestlab.api.kinds import pod as pod_kind


def pod(**spec: Any) -> dict[str, Any]:
    obj = {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "i"}], **spec}}
    pod_kind.default(obj)
    return obj


def fields(obj: dict[str, Any], resource: r.Resource = r.PODS) -> list[str]:
    return [c.field for c in kinds.of(resource).validate(obj)]


def test_valid_pod_has_no_causes_and_gets_defaults() -> None:
    obj = pod()
    assert pod_kind.validate(obj) == []
    assert obj["spec"]["containers"][0]["imagePullPolicy"] == "Always"  # untagged image
    assert obj["status"]["qosClass"] == "BestEffort"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"containers": []}, "spec.containers"),
        ({"containers": [{"image": "i"}]}, "spec.containers[0].name"),
        ({"containers": [{"name": "c"}]}, "spec.containers[0].image"),
        ({"containers": [{"name": "Bad_Name", "image": "i"}]}, "spec.containers[0].name"),
        (
            {"containers": [{"name": "c", "image": "i"}, {"name": "c", "image": "j"}]},
            "spec.containers[1].name",
        ),
        (
            {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "lots"}}}]},
            "spec.containers[0].resources.requests[cpu]",
        ),
        (
            {
                "containers": [
                    {
                        "name": "c",
                        "image": "i",
                        "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}},
                    }
                ]
            },
            "spec.containers[0].resources.requests[cpu]",
        ),
        ({"restartPolicy": "Sometimes", "containers": [{"name": "c", "image": "i"}]}, "spec.restartPolicy"),
    ],
)
def test_bad_pods(change: dict[str, Any], field: str) -> None:
    obj = {"metadata": {"name": "web"}, "spec": change}
    assert field in fields(obj)


@pytest.mark.parametrize(
    ("name", "ok"), [("web-1", True), ("a.b", True), ("Web", False), ("-a", False), ("", False)]
)
def test_pod_names_are_dns1123_subdomains(name: str, ok: bool) -> None:
    assert (common.check_name(name) == []) is ok


def test_namespace_names_are_labels() -> None:
    assert common.check_name("a.b", label=True)
    assert common.check_name("x" * 64, label=True)[0].message.endswith("must be no more than 63 characters")


def test_rolebinding_refuses_unknown_kinds() -> None:
    binding = {
        "metadata": {"name": "b"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Robot", "name": "cluster-admin"},
        "subjects": [{"kind": "Robot", "name": "r2"}],
    }
    assert fields(binding, r.ROLEBINDINGS) == ["roleRef.kind", "subjects[0].kind"]


def test_pod_update_may_change_image_only() -> None:
    old = pod()
    new = pod()
    new["spec"]["containers"][0]["image"] = "j"
    assert pod_kind.validate_update(new, old) == []
    new["spec"]["nodeName"] = "x"
    assert pod_kind.validate_update(new, old)[0].reason == "FieldValueForbidden"
