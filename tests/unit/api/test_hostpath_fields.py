"""hostPath in a pod spec: only /var/log/pods, every mount of it readOnly: true (the vSphere rule)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nestlab.api.kinds import pod as pod_kind
from nestlab.api.kinds import podfields, podvolumes

REFUSED = f"Forbidden: {podvolumes.HOST_PATH_REASON}"


def causes(
    volume: dict[str, Any], mounts: list[dict[str, Any]], init: list[dict[str, Any]] | None = None
) -> list[str]:
    spec: dict[str, Any] = {
        "volumes": [{"name": "logs", "hostPath": volume}],
        "containers": [{"name": "c", "image": "depot:5000/nestlab/web:1", "volumeMounts": mounts}],
    }
    if init is not None:
        spec["initContainers"] = [{"name": "i", "image": "depot:5000/nestlab/web:1", "volumeMounts": init}]
    obj = {"metadata": {"name": "web", "namespace": "demo"}, "spec": copy.deepcopy(spec)}
    pod_kind.default(obj)
    return [f"{c.field}: {c.message}" for c in pod_kind.validate(obj)]


RO = {"name": "logs", "mountPath": "/host/logs", "readOnly": True}


@pytest.mark.parametrize(
    "volume",
    [
        {"path": "/var/log/pods"},
        {"path": "/var/log/pods/"},
        {"path": "/var/log/pods", "type": "Directory"},
        {"path": "/var/log/pods", "type": "DirectoryOrCreate"},
        {"path": "/var/log/pods", "type": ""},
    ],
)
def test_var_log_pods_read_only_is_accepted(volume: dict[str, Any]) -> None:
    assert causes(volume, [RO, {**RO, "mountPath": "/one", "subPath": "demo_web_uid"}]) == []


@pytest.mark.parametrize(
    ("volume", "mounts", "init", "expected"),
    [
        ({"path": "/etc"}, [RO], None, f"spec.volumes[0].hostPath: {REFUSED}"),
        ({"path": "/var/log/pods/demo_web_uid"}, [RO], None, f"spec.volumes[0].hostPath: {REFUSED}"),
        ({"path": "/var/log"}, [RO], None, f"spec.volumes[0].hostPath: {REFUSED}"),
        ({}, [RO], None, f"spec.volumes[0].hostPath: {REFUSED}"),
        (
            {"path": "/var/log/pods"},
            [{"name": "logs", "mountPath": "/l"}],
            None,
            f"spec.containers[0].volumeMounts[0].readOnly: {REFUSED}",
        ),
        (
            {"path": "/var/log/pods"},
            [RO],
            [{"name": "logs", "mountPath": "/l", "readOnly": False}],
            f"spec.initContainers[0].volumeMounts[0].readOnly: {REFUSED}",
        ),
        (
            {"path": "/var/log/pods", "type": "File"},
            [RO],
            None,
            "spec.volumes[0].hostPath.type: Forbidden: /var/log/pods is a directory: type must be unset, "
            '"Directory" or "DirectoryOrCreate"',
        ),
    ],
)
def test_anything_else_is_refused_naming_the_field(
    volume: dict[str, Any], mounts: list[dict[str, Any]], init: list[dict[str, Any]] | None, expected: str
) -> None:
    assert causes(volume, mounts, init) == [expected]


def test_the_table_row_shows_the_one_accepted_path() -> None:
    assert "| `volumes[].hostPath` | refused (vSphere) | {path: /var/log/pods} |" in podfields.markdown()
