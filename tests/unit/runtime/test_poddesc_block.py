"""PersistentVolumes in the pod description (``volume NAME block SERIAL FSTYPE ro|rw``) and as QEMU
NBD drives: what the pod reads, what stays on the host, and what is refused."""

from __future__ import annotations

import re
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

URL = "nbd://198.18.0.9:10809/Zq3kT0ken"
SERIAL = DiskSerial("pv-0123456789abcdef")


def desc(*volumes: Volume, mounts: tuple[Mount, ...] = ()) -> PodDescription:
    app = Container(ContainerName("app"), DiskSerial("img-0"), ("sh",), mounts=mounts)
    return PodDescription("demo", (app,), volumes=volumes)


def block(name: str = "data", **fields: object) -> Volume:
    values: dict[str, object] = {"serial": SERIAL, "fs_type": "ext4", "source": URL, **fields}
    return Volume(name, "block", **values)  # type: ignore[arg-type]


def test_a_block_volume_is_one_line_and_its_url_is_never_written() -> None:
    text = poddesc.encode(
        desc(
            block(), block("logs", read_only=True), mounts=(Mount("data", "/data"), Mount("logs", "/l", True))
        )
    )
    lines = text.splitlines()
    assert f"volume data block {SERIAL} ext4 rw" in lines
    assert f"volume logs block {SERIAL} ext4 ro" in lines
    assert "mount data /data rw -" in lines
    assert "mount logs /l ro -" in lines
    assert "nbd" not in text
    assert "Zq3kT0ken" not in text


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        (block(serial=DiskSerial("pv with space")), "disk serial 'pv with space' must be 1-20"),
        (block(serial=DiskSerial("nestlab-eph")), "disk serial 'nestlab-eph' must be 1-20"),
        (block(serial=DiskSerial("img-0")), "disk serial img-0 is already another disk's"),
        (block(fs_type="xfs"), "fsType 'xfs' is not one the pod kernel mounts (ext4)"),
        (block(source=""), "needs the source QEMU reads its disk from"),
        (Volume("data", "dir", serial=SERIAL), "only a block volume has a disk serial"),
    ],
)
def test_a_block_volume_pod_init_could_not_mount_is_refused(volume: Volume, message: str) -> None:
    with pytest.raises(PodDescriptionError, match=re.escape(message)):
        poddesc.validate(desc(volume))


def test_one_serial_is_one_disk_and_cannot_have_two_sources() -> None:
    shared = desc(block(), block("again"))
    assert shared.block_sources() == {SERIAL: URL}
    poddesc.validate(shared)
    with pytest.raises(PodDescriptionError, match="already another disk's"):
        poddesc.validate(desc(block(), block("again", source="nbd://198.18.0.9:10810/other")))


def vm(*disks: qemu.Disk) -> qemu.VmConfig:
    return qemu.VmConfig(
        name="demo",
        kernel=Path("/k/vmlinux"),
        initrd=Path("/k/initramfs.cpio"),
        vcpus=1,
        memory_mib=160,
        disks=disks,
        console_log=Path("/p/console.log"),
        control_socket=None,
        qmp_socket=Path("/p/qmp.sock"),
        accel=Accel("tcg", "test"),
    )


def test_a_volume_disk_is_an_uncached_writable_nbd_drive_with_its_serial() -> None:
    (disk,) = qemu.volume_disks(desc(block(), block("again", read_only=True)))
    assert disk == qemu.Disk(URL, SERIAL, read_only=False)  # pod-init mounts it read-only when asked
    args = qemu.argv(vm(qemu.Disk(Path("/p/pod.desc"), DiskSerial("nestlab-pod")), disk))
    drives = [args[i + 1] for i, a in enumerate(args) if a == "-drive"]
    devices = [args[i + 1] for i, a in enumerate(args) if a == "-device"]
    assert drives == [
        "file=/p/pod.desc,if=none,id=disk0,format=raw,readonly=on",
        f"file={URL},format=raw,if=none,id=disk1,cache=none",
    ]
    assert devices[-1] == f"virtio-blk-device,drive=disk1,serial={SERIAL}"


@pytest.mark.parametrize("url", ["http://x/y", "nbd://h:1/a,b", "nbd://h:1/a b", "/dev/nbd0"])
def test_a_url_qemu_would_misread_is_refused(url: str) -> None:
    with pytest.raises(qemu.VmError, match="is not an nbd://host:port/export URL"):
        qemu.argv(vm(qemu.Disk(url, SERIAL, read_only=False)))
