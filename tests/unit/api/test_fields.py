"""fieldValidation: unknown fields are dropped, warned about, or refused, like the upstream decoder."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.api import fields
from nestlab.api import resources as r
from nestlab.api.status import ApiError


def typo_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labelz": {}},
        "spec": {
            "containers": [{"name": "c", "image": "i", "imagee": "x"}],
            "volumes": [{"name": "v", "any": 1}],
        },
        "extra": True,
    }


def test_warn_drops_unknown_fields_and_reports_their_paths() -> None:
    pod = typo_pod()
    warnings = fields.enforce(pod, r.PODS, "")
    assert warnings == [
        'unknown field "metadata.labelz"',
        'unknown field "spec.containers[0].imagee"',
        'unknown field "spec.volumes[0].any"',
        'unknown field "extra"',
    ]
    assert "imagee" not in pod["spec"]["containers"][0]
    assert pod["spec"]["volumes"] == [{"name": "v"}]  # every level is the upstream type's


def test_new_kinds_know_their_fields_at_every_depth() -> None:
    deployment = {
        "spec": {
            "replicas": 1,
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxSurgee": 2}},
            "template": {"spec": {"containers": [{"name": "c", "livenessProbe": {"httpGett": {}}}]}},
        }
    }
    assert fields.enforce(deployment, r.DEPLOYMENTS, "") == [
        'unknown field "spec.strategy.rollingUpdate.maxSurgee"',
        'unknown field "spec.template.spec.containers[0].livenessProbe.httpGett"',
    ]
    labels = {"metadata": {"labels": {"any/key": "v"}, "annotations": {"x": "y"}}}
    assert fields.enforce(labels, r.DEPLOYMENTS, "Strict") == []  # maps take any key


def test_strict_refuses_with_upstream_wording() -> None:
    with pytest.raises(ApiError) as error:
        fields.enforce(typo_pod(), r.PODS, "Strict")
    assert error.value.code == 400
    assert error.value.message.startswith(
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
    )


def test_ignore_and_bad_mode() -> None:
    pod = typo_pod()
    assert fields.enforce(pod, r.PODS, "Ignore") == []
    assert "extra" not in pod
    with pytest.raises(ApiError):
        fields.enforce(typo_pod(), r.PODS, "Loud")


def test_patch_directives_are_not_fields() -> None:
    patch = {
        "spec": {"$setElementOrder/containers": [{"name": "c"}], "containers": [{"name": "c", "image": "j"}]}
    }
    assert fields.enforce(patch, r.PODS, "Strict") == []
