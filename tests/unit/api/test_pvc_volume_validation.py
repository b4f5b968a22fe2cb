"""Upstream's check of a pod's persistentVolumeClaim volume source (validatePersistentClaimVolumeSource)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.api.test_podvolumes_validation import messages, spec

Obj = dict[str, Any]


def test_a_claim_volume_with_its_name_passes() -> None:
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0", "readOnly": True}}]
    assert messages(spec(volumes, [{"name": "data", "mountPath": "/data"}])) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({}, "spec.volumes[0].persistentVolumeClaim.claimName: Required value"),
        ({"claimName": ""}, "spec.volumes[0].persistentVolumeClaim.claimName: Required value"),
        (
            {"claimName": "c", "readOnly": "yes"},
            "spec.volumes[0].persistentVolumeClaim.readOnly: Invalid value: must be",
        ),
    ],
)
def test_a_claim_volume_needs_a_claim_name(source: Obj, expected: str) -> None:
    found = messages(spec([{"name": "data", "persistentVolumeClaim": source}], []))
    assert any(m.startswith(expected) for m in found), found
