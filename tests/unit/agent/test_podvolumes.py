"""Pod volumes as pod-init makes them: file generations, modes, items, mounts, missing sources."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from nestlab.agent import podsources, podspec, podvolumes
from nestlab.agent.podenv import Sources
from nestlab.agent.podvolumes import MissingVolumeSource, VolumeError
from nestlab.runtime import qemu
from nestlab.runtime.poddesc import Mount, Volume, VolumeFile

Obj = dict[str, Any]


def pod(volumes: list[Obj], mounts: list[Obj] | None = None) -> Obj:
    container = {"name": "app", "volumeMounts": mounts or [], "resources": {"limits": {"memory": "64Mi"}}}
    return {
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"b": "2", "a": "1"}},
        "spec": {"containers": [container], "volumes": volumes},
    }


CONF = {
    "data": {"app.conf": "color=blue\n", "mode": "fast"},
    "binaryData": {"logo": base64.b64encode(b"\0\1").decode()},
}
CREDS = {"data": {"password": base64.b64encode(b"s3cret").decode()}}
SOURCES = Sources(configmaps={"conf": CONF}, secrets={"creds": CREDS})


def test_configmap_gives_every_key_at_the_default_mode() -> None:
    (volume,) = podvolumes.volumes(pod([{"name": "cfg", "configMap": {"name": "conf"}}]), SOURCES)
    assert volume == Volume(
        "cfg",
        "files",
        files=(
            VolumeFile("app.conf", 0o644, b"color=blue\n"),
            VolumeFile("logo", 0o644, b"\0\1"),
            VolumeFile("mode", 0o644, b"fast"),
        ),
    )


def test_items_modes_and_default_mode() -> None:
    spec = {"secretName": "creds", "defaultMode": 0o400, "items": [{"key": "password", "path": "db/pass"}]}
    (volume,) = podvolumes.volumes(pod([{"name": "s", "secret": spec}]), SOURCES)
    assert volume.files == (VolumeFile("db/pass", 0o400, b"s3cret"),)
    items = {"name": "conf", "items": [{"key": "mode", "path": "m", "mode": 0o600}]}
    (volume,) = podvolumes.volumes(pod([{"name": "c", "configMap": items}]), SOURCES)
    assert volume.files == (VolumeFile("m", 0o600, b"fast"),)


def test_missing_sources_are_failed_mounts_unless_optional() -> None:
    with pytest.raises(MissingVolumeSource) as caught:
        podvolumes.volumes(pod([{"name": "cfg", "configMap": {"name": "absent"}}]), SOURCES)
    assert str(caught.value) == 'MountVolume.SetUp failed for volume "cfg" : configmap "absent" not found'
    with pytest.raises(MissingVolumeSource, match=r'secret "nope" not found'):
        podvolumes.volumes(pod([{"name": "s", "secret": {"secretName": "nope"}}]), SOURCES)
    with pytest.raises(MissingVolumeSource, match=r"configmap references non-existent config key: zz"):
        podvolumes.volumes(
            pod([{"name": "c", "configMap": {"name": "conf", "items": [{"key": "zz", "path": "z"}]}}]),
            SOURCES,
        )
    (volume,) = podvolumes.volumes(
        pod([{"name": "c", "configMap": {"name": "absent", "optional": True}}]), SOURCES
    )
    assert volume.files == ()


def test_downward_api_and_projected() -> None:
    downward = {
        "items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {
                "path": "mem",
                "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"},
            },
        ]
    }
    projected = {
        "defaultMode": 0o440,
        "sources": [
            {"configMap": {"name": "conf", "items": [{"key": "mode", "path": "mode"}]}},
            {"secret": {"name": "creds"}},
            {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
        ],
    }
    dw, pj = podvolumes.volumes(
        pod([{"name": "dw", "downwardAPI": downward}, {"name": "pj", "projected": projected}]), SOURCES
    )
    assert {f.path: f.content for f in dw.files} == {
        "labels": b'a="1"\nb="2"',
        "name": b"web-1",
        "mem": b"64",
    }
    assert [(f.path, f.mode) for f in pj.files] == [("mode", 0o440), ("ns", 0o440), ("password", 0o440)]
    with pytest.raises(VolumeError, match="clusterTrustBundle is not implemented"):
        podvolumes.volumes(
            pod([{"name": "t", "projected": {"sources": [{"clusterTrustBundle": {"path": "t"}}]}}]), SOURCES
        )


def test_empty_dirs_on_disk_and_in_memory() -> None:
    volumes = [
        {"name": "scratch", "emptyDir": {}},
        {"name": "fast", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
    ]
    assert podvolumes.volumes(pod(volumes), SOURCES) == (
        Volume("scratch", "dir"),
        Volume("fast", "tmpfs", 64),
    )
    assert podvolumes.tmpfs_mib(pod(volumes)) == 64
    with pytest.raises(VolumeError, match="may mount only /var/log/pods from the host, read-only"):
        podvolumes.volumes(pod([{"name": "h", "hostPath": {"path": "/etc"}}]), SOURCES)


def test_host_path_var_log_pods_only_and_mounted_read_only() -> None:
    p = pod([{"name": "logs", "hostPath": {"path": "/var/log/pods/", "type": "Directory"}}])
    assert podvolumes.volumes(p, SOURCES) == (Volume("logs", "hostpath", source="/var/log/pods"),)
    ro = {"name": "logs", "mountPath": "/host/logs", "readOnly": True}
    assert podvolumes.mounts(p, {"volumeMounts": [ro]}, "c", {}) == (
        Mount("logs", "/host/logs", read_only=True),
    )
    with pytest.raises(VolumeError, match=r"c\.volumeMounts\[0\]\.readOnly: vSphere Pods may mount only"):
        podvolumes.mounts(p, {"volumeMounts": [{"name": "logs", "mountPath": "/l"}]}, "c", {})
    with pytest.raises(VolumeError, match="may mount only"):
        podvolumes.volumes(pod([{"name": "h", "hostPath": {"path": "/var/log/pods/x"}}]), SOURCES)


def test_mounts_check_names_and_paths_and_expand_sub_path_expr() -> None:
    p = pod([{"name": "scratch", "emptyDir": {}}])
    mounts = [
        {"name": "scratch", "mountPath": "/data/"},
        {"name": "scratch", "mountPath": "/logs", "subPathExpr": "$(POD)/logs", "readOnly": True},
    ]
    assert podvolumes.mounts(p, {"volumeMounts": mounts}, "c", {"POD": "web-1"}) == (
        Mount("scratch", "/data"),
        Mount("scratch", "/logs", read_only=True, sub_path="web-1/logs"),
    )
    with pytest.raises(VolumeError, match=r"volume \"nope\" is not one of the pod's volumes"):
        podvolumes.mounts(p, {"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, "c", {})
    with pytest.raises(VolumeError, match=r"without '\.\.'"):
        podvolumes.mounts(
            p, {"volumeMounts": [{"name": "scratch", "mountPath": "/x", "subPath": "../etc"}]}, "c", {}
        )


def test_refresher_sends_only_changed_volumes() -> None:
    p = pod([{"name": "cfg", "configMap": {"name": "conf"}}, {"name": "scratch", "emptyDir": {}}])
    first = Sources(configmaps={"conf": {"data": {"k": "1"}}})
    refresher = podsources.VolumeRefresher(p)
    sent: list[tuple[str, tuple[VolumeFile, ...]]] = []

    async def send(name: str, files: tuple[VolumeFile, ...]) -> None:
        sent.append((name, files))

    assert asyncio.run(refresher.refresh(first, send)) == ["cfg"]  # after an agent restart: sent once
    assert asyncio.run(refresher.refresh(first, send)) == []
    changed = Sources(configmaps={"conf": {"data": {"k": "2"}}})
    assert asyncio.run(refresher.refresh(changed, send)) == ["cfg"]
    assert sent[-1] == ("cfg", (VolumeFile("k", 0o644, b"2"),))
    assert asyncio.run(refresher.refresh(Sources(), send)) == []  # deleted: the pod keeps its files


def test_memory_empty_dirs_grow_the_pod_vm() -> None:
    p = pod([{"name": "fast", "emptyDir": {"medium": "Memory", "sizeLimit": "32Mi"}}])
    p["spec"]["containers"][0]["image"] = "demo/busybox:1"
    planned = podspec.plan(p, "depot:5000")
    without = qemu.size([c.resources for c in planned.containers])[1]
    assert planned.tmpfs_mib == 32
    assert podspec.vm_memory_mib(planned) == without + 32
    assert qemu.size(podspec.vm_resources(planned))[1] == without + 32
