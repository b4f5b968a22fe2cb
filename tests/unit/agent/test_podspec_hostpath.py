"""A pod with hostPath /var/log/pods becomes a pod description with a read-only 9p volume."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from nestlab.agent import podspec
from nestlab.agent.images import Digest, Image, ImageConfig
from nestlab.runtime import poddesc
from nestlab.runtime.poddesc import ContainerName

IMG = ImageConfig(entrypoint=("/bin/sh",), cmd=(), env=(), user="")


def pod(volume: dict[str, Any], read_only: Any) -> dict[str, Any]:
    mount = {"name": "logs", "mountPath": "/host/logs", "readOnly": read_only}
    container = {"name": "c", "image": "demo/x:1", "volumeMounts": [mount]}
    spec = {"containers": [container], "volumes": [{"name": "logs", "hostPath": volume}]}
    return {"metadata": {"name": "p", "namespace": "n", "uid": "u"}, "spec": spec}


def describe(obj: dict[str, Any]) -> str:
    image = Image("x", Digest("sha256:" + "cd" * 32), Path("/x"), IMG)
    return poddesc.encode(podspec.description(podspec.plan(obj, "depot:5000"), {ContainerName("c"): image}))


def test_var_log_pods_is_a_hostpath_volume_mounted_read_only() -> None:
    lines = describe(pod({"path": "/var/log/pods"}, True)).splitlines()
    assert "volume logs hostpath nestlab.hp0" in lines
    assert "mount logs /host/logs ro -" in lines


@pytest.mark.parametrize(
    ("volume", "read_only", "field"),
    [({"path": "/etc"}, True, "spec.volumes[logs].hostPath"), ({"path": "/var/log/pods"}, False, "readOnly")],
)
def test_anything_else_never_reaches_the_vm(volume: dict[str, Any], read_only: bool, field: str) -> None:
    with pytest.raises(podspec.PodRejected, match=f"{re.escape(field)}.*may mount only /var/log/pods"):
        describe(pod(volume, read_only))
