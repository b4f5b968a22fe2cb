"""Volumes in the pod description and volume generations on the control channel: encoding, checks."""

from __future__ import annotations

import pytest

from nestlab.runtime import control, poddesc
from nestlab.runtime.poddesc import (
    Container,
    ContainerName,
    DiskSerial,
    Mount,
    PodDescription,
    PodDescriptionError,
    Volume,
    VolumeFile,
)


def desc(volumes: tuple[Volume, ...], mounts: tuple[Mount, ...] = ()) -> PodDescription:
    app = Container(ContainerName("app"), DiskSerial("img-0"), ("sh",), mounts=mounts)
    return PodDescription("demo", (app,), volumes=volumes)


def test_volumes_files_and_mounts_are_encoded_in_place() -> None:
    volumes = (
        Volume("scratch", "dir"),
        Volume("fast", "tmpfs", 16),
        Volume(
            "cfg", "files", files=(VolumeFile("a b/c", 0o400, b"x\0y\n%"), VolumeFile("empty", 0o644, b""))
        ),
    )
    mounts = (Mount("scratch", "/data"), Mount("cfg", "/etc/app conf", read_only=True, sub_path="a b/c"))
    lines = poddesc.encode(desc(volumes, mounts)).splitlines()
    assert lines[5:10] == [
        "volume scratch dir",
        "volume fast tmpfs 16",
        "volume cfg files",
        "file cfg a%20b/c 0400 x%00y%0A%25",
        "file cfg empty 0644 ",
    ]
    assert "mount scratch /data rw -" in lines
    assert "mount cfg /etc/app%20conf ro a%20b/c" in lines
    assert lines.index("mount scratch /data rw -") < lines.index("end")


@pytest.mark.parametrize(
    ("volumes", "mounts", "message"),
    [
        ((Volume("a", "dir"), Volume("a", "dir")), (), "unique DNS label"),
        ((Volume("cfg", "files", files=(VolumeFile("../x", 0o644, b""),)),), (), "relative path"),
        ((Volume("cfg", "files", files=(VolumeFile("/x", 0o644, b""),)),), (), "relative path"),
        ((Volume("cfg", "files", files=(VolumeFile("x", 0o1777, b""),)),), (), "mode"),
        ((), (Mount("nope", "/x"),), "names no volume"),
        ((Volume("a", "dir"),), (Mount("a", "relative"),), "absolute path"),
        ((Volume("a", "dir"),), (Mount("a", "/x", sub_path="../up"),), "subPath"),
    ],
)
def test_bad_volumes_and_mounts_are_refused(
    volumes: tuple[Volume, ...], mounts: tuple[Mount, ...], message: str
) -> None:
    with pytest.raises(PodDescriptionError, match=message):
        poddesc.encode(desc(volumes, mounts))


def test_a_megabyte_configmap_fits_the_description() -> None:
    big = Volume("cfg", "files", files=(VolumeFile("big", 0o644, b"a" * (1024 * 1024)),))
    assert len(poddesc.disk_bytes(desc((big,)))) > 1024 * 1024


def test_update_message_and_its_acknowledgement() -> None:
    files = (VolumeFile("k", 0o644, b"v 2"), VolumeFile("dir/x", 0o400, b""))
    assert (
        control.encode_update("cfg", files)
        == b"update cfg\nfile k 0644 v%202\nfile dir/x 0400 \ncommit cfg\n"
    )
    assert control.parse_event('{"event":"volume","volume":"cfg","ok":1}') == control.VolumeUpdated(
        "cfg", True
    )
    assert control.parse_event('{"event":"volume","volume":"cfg","ok":0}') == control.VolumeUpdated(
        "cfg", False
    )
