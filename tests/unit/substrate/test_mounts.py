"""Finding a lab's mounts from mountinfo, deepest first, including escaped paths."""

from __future__ import annotations

from pathlib import Path

from nestlab.substrate.local import mounts

MOUNTINFO = """\
22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
90 22 0:50 / /labs/a/nodes/cp-1/root rw,relatime - overlay overlay rw,lowerdir=/img
91 22 0:51 / /labs/a/nodes/my\\040node/root rw,relatime - overlay overlay rw,lowerdir=/img
92 90 0:52 / /labs/a/nodes/cp-1/root/proc rw - proc proc rw
93 22 0:53 / /labs/ab/nodes/x/root rw - overlay overlay rw
"""


def test_mount_points_unescape() -> None:
    points = mounts.mount_points(MOUNTINFO)
    assert Path("/labs/a/nodes/my node/root") in points
    assert len(points) == 5


def test_mounts_under_a_lab_deepest_first(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    found = mounts.mounts_under(Path("/labs/a"), info)
    assert found[0] == Path("/labs/a/nodes/cp-1/root/proc")
    assert set(found) == {
        Path("/labs/a/nodes/cp-1/root/proc"),
        Path("/labs/a/nodes/cp-1/root"),
        Path("/labs/a/nodes/my node/root"),
    }  # /labs/ab is another lab
    assert mounts.is_mounted(Path("/labs/a/nodes/cp-1/root"), info)
    assert not mounts.is_mounted(Path("/labs/a/nodes/lb-1/root"), info)


def test_overlay_argv() -> None:
    argv = mounts.overlay_argv(Path("/img"), Path("/n/upper"), Path("/n/work"), Path("/n/root"))
    assert argv == [
        "mount", "-t", "overlay", "overlay",
        "-o", "lowerdir=/img,upperdir=/n/upper,workdir=/n/work", "/n/root",
    ]  # fmt: skip
