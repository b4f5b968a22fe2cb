"""hostPath /var/log/pods in the runtime: the description line pod-init reads, and QEMU's 9p export."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.runtime import poddesc, qemu
from nestlab.runtime.accel import Accel
from nestlab.runtime.poddesc import (
    Container,
    ContainerName,
    DiskSerial,
    Mount,
    PodDescription,
    PodDescriptionError,
    Volume,
)

LOGS = Volume("logs", "hostpath", source="/var/log/pods")


def desc(volumes: tuple[Volume, ...], mounts: tuple[Mount, ...] = ()) -> PodDescription:
    app = Container(ContainerName("app"), DiskSerial("img-0"), ("sh",), mounts=mounts)
    return PodDescription("demo", (app,), volumes=volumes)


def config(shares: tuple[qemu.Share, ...]) -> qemu.VmConfig:
    return qemu.VmConfig(
        name="demo",
        kernel=Path("/k/vmlinux"),
        initrd=Path("/k/initramfs.cpio"),
        vcpus=1,
        memory_mib=160,
        disks=(),
        console_log=Path("/p/console.log"),
        control_socket=None,
        qmp_socket=Path("/p/qmp.sock"),
        accel=Accel("tcg", "test"),
        shares=shares,
    )


def test_a_hostpath_volume_is_a_line_with_its_mount_tag_and_no_host_path() -> None:
    other = Volume("more", "hostpath", source="/var/log/pods")
    mounts = (
        Mount("logs", "/host/logs", read_only=True),
        Mount("more", "/m", read_only=True, sub_path="ns_p_u"),
    )
    text = poddesc.encode(desc((Volume("scratch", "dir"), LOGS, other), mounts))
    lines = text.splitlines()
    assert "volume logs hostpath nestlab.hp0" in lines
    assert "volume more hostpath nestlab.hp1" in lines
    assert "mount logs /host/logs ro -" in lines
    assert "mount more /m ro ns_p_u" in lines
    assert "/var/log/pods" not in text  # the node's directory stays on the host
    assert desc((LOGS, other)).share_sources() == {
        "nestlab.hp0": "/var/log/pods",
        "nestlab.hp1": "/var/log/pods",
    }


@pytest.mark.parametrize(
    ("volume", "mount", "message"),
    [
        (
            Volume("logs", "hostpath", source="/etc"),
            Mount("logs", "/l", read_only=True),
            "may mount only /var/log/pods",
        ),
        (Volume("logs", "hostpath", source="/var/log/pods/x"), Mount("logs", "/l", read_only=True), "only"),
        (LOGS, Mount("logs", "/l"), "mounted read-only"),
        (Volume("logs", "dir", source="/var/log/pods"), Mount("logs", "/l"), "only a block volume"),
    ],
)
def test_only_var_log_pods_read_only_is_described(volume: Volume, mount: Mount, message: str) -> None:
    with pytest.raises(PodDescriptionError, match=message):
        poddesc.encode(desc((volume,), (mount,)))


def test_qemu_exports_the_nodes_directory_read_only_over_virtio_9p_mmio() -> None:
    exported = qemu.shares(desc((LOGS,)), {"/var/log/pods": Path("/srv/node logs")})
    assert exported == (qemu.Share("nestlab.hp0", Path("/srv/node logs")),)
    args = qemu.argv(config(exported))
    fsdev = args.index("-fsdev")
    assert args[fsdev + 1] == "local,id=fs0,path=/srv/node logs,security_model=none,readonly=on"
    assert args[fsdev + 2 : fsdev + 4] == ["-device", "virtio-9p-device,fsdev=fs0,mount_tag=nestlab.hp0"]
    assert all("pci" not in a for a in args)  # microvm: the virtio-mmio form


def test_pods_without_hostpath_get_no_9p_device() -> None:
    assert qemu.shares(desc((Volume("scratch", "dir"),)), {"/var/log/pods": Path("/var/log/pods")}) == ()
    args = qemu.argv(config(()))
    assert "-fsdev" not in args
    assert not any("9p" in a for a in args)


def test_a_path_the_node_does_not_export_or_a_comma_is_refused() -> None:
    with pytest.raises(qemu.VmError, match="not a directory this node exports"):
        qemu.shares(desc((LOGS,)), {})
    with pytest.raises(qemu.VmError, match="without commas"):
        qemu.argv(config((qemu.Share("nestlab.hp0", Path("/a,b")),)))
