"""Upstream's volume and volumeMount checks, through the Pod kind (so templates share them)."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.api.kinds import podspec

Obj = dict[str, Any]


def spec(volumes: list[Obj], mounts: list[Obj]) -> Obj:
    s: Obj = {"containers": [{"name": "c", "image": "busybox", "volumeMounts": mounts}], "volumes": volumes}
    podspec.default_spec(s)
    return s


def messages(s: Obj) -> list[str]:
    return [f"{c.field}: {c.message}" for c in podspec.check_spec(s)]


def test_a_well_formed_pod_with_volumes_passes() -> None:
    volumes = [{"name": "cfg", "configMap": {"name": "settings", "items": [{"key": "a", "path": "dir/a"}],
                "defaultMode": 0o440}}, {"name": "scratch", "emptyDir": {}}]  # fmt: skip
    mounts = [
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "scratch", "mountPath": "/tmp/x", "subPath": "a/b"},
    ]
    assert messages(spec(volumes, mounts)) == []


@pytest.mark.parametrize(
    ("volumes", "mounts", "expected"),
    [
        (
            [],
            [{"name": "nope", "mountPath": "/x"}],
            'spec.containers[0].volumeMounts[0].name: Not found: "nope"',
        ),
        (
            [{"name": "v", "emptyDir": {}}],
            [{"name": "v"}],
            "spec.containers[0].volumeMounts[0].mountPath: Required value",
        ),
        (
            [{"name": "v", "emptyDir": {}}],
            [{"name": "v", "mountPath": "/a"}, {"name": "v", "mountPath": "/a"}],
            'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/a": must be unique',
        ),
        (
            [{"name": "v", "emptyDir": {}}],
            [{"name": "v", "mountPath": "/a", "subPath": "../etc"}],
            "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"../etc\": must not contain '..'",
        ),
        (
            [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}],
            [],
            'spec.volumes[1].name: Duplicate value: "v"',
        ),
        ([{"name": "v"}], [], "spec.volumes[0]: Required value: must specify a volume type"),
        (
            [{"name": "v", "emptyDir": {}, "secret": {"secretName": "s"}}],
            [],
            "spec.volumes[0].secret: Forbidden: may not specify more than 1 volume type",
        ),
        ([{"name": "v", "configMap": {}}], [], "spec.volumes[0].configMap.name: Required value"),
        (
            [{"name": "v", "secret": {"secretName": "s", "items": [{"key": "k", "path": "/abs"}]}}],
            [],
            'spec.volumes[0].secret.items[0].path: Invalid value: "/abs": must be a relative path',
        ),
        (
            [{"name": "v", "secret": {"secretName": "s", "defaultMode": 1000}}],
            [],
            "spec.volumes[0].secret.defaultMode: Invalid value: 1000: must be a number between 0 and 0777 (octal), "
            "both inclusive",
        ),
        ([{"name": "Bad_Name", "emptyDir": {}}], [], 'spec.volumes[0].name: Invalid value: "Bad_Name"'),
    ],
)
def test_upstream_causes(volumes: list[Obj], mounts: list[Obj], expected: str) -> None:
    found = messages(spec(volumes, mounts))
    assert any(m.startswith(expected) for m in found), found


def test_init_containers_take_no_probes_and_share_no_name_with_app_containers() -> None:
    s: Obj = {
        "containers": [{"name": "app", "image": "busybox"}],
        "initContainers": [
            {"name": "app", "image": "busybox"},
            {"name": "prep", "image": "busybox", "readinessProbe": {"exec": {"command": ["true"]}}},
        ],
    }
    podspec.default_spec(s)
    found = messages(s)
    assert 'spec.initContainers[0].name: Duplicate value: "app"' in found
    assert "spec.initContainers[1].readinessProbe: Forbidden: may not be set for init containers" in found


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ({"path": "token", "expirationSeconds": 3607, "audience": "vault"}, []),
        (
            {"path": "token", "expirationSeconds": 60},
            [
                "spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds: "
                "Invalid value: 60: may not specify a duration less than 10 minutes"
            ],
        ),
        ({}, ["spec.volumes[0].projected.sources[0].serviceAccountToken.path: Required value"]),
        (
            {"path": "../token"},
            [
                'spec.volumes[0].projected.sources[0].serviceAccountToken.path: Invalid value: "../token": '
                "must not contain '..'"
            ],
        ),
    ],
)
def test_service_account_token_projections(token: Obj, expected: list[str]) -> None:
    volume = {"name": "t", "projected": {"sources": [{"serviceAccountToken": token}]}}
    assert messages(spec([volume], [{"name": "t", "mountPath": "/t"}])) == expected


def test_a_projected_token_defaults_to_one_hour() -> None:
    spec = {
        "containers": [{"name": "c", "image": "i:1"}],
        "volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}],
    }
    podspec.default_spec(spec)
    assert spec["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3600
