"""The newc writer: headers, padding and the pod initramfs members, read back field by field."""

from __future__ import annotations

import stat
from pathlib import Path

from nestlab.runtime import initramfs
from nestlab.runtime.initramfs import Entry


def read_newc(data: bytes) -> list[tuple[str, int, bytes, tuple[int, int]]]:
    """A minimal reader, independent of the writer, that checks magic and 4-byte alignment."""
    members = []
    offset = 0
    while True:
        assert offset % 4 == 0
        header = data[offset : offset + 110].decode()
        assert header[:6] == "070701"
        fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = fields[1], fields[6], fields[9], fields[10], fields[11]
        name_start = offset + 110
        name = data[name_start : name_start + namesize - 1].decode()
        assert data[name_start + namesize - 1] == 0
        body = name_start + namesize + (-(110 + namesize) % 4)
        if name == "TRAILER!!!":
            assert len(data) == body
            return members
        members.append((name, mode, data[body : body + size], (rmaj, rmin)))
        offset = body + size + (-size % 4)


def test_round_trip_of_files_dirs_and_devices() -> None:
    entries = [
        Entry("dev", stat.S_IFDIR | 0o755),
        Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
        Entry("init", stat.S_IFREG | 0o755, b"\x7fELF odd length"),
    ]
    assert read_newc(initramfs.newc(entries)) == [
        ("dev", stat.S_IFDIR | 0o755, b"", (0, 0)),
        ("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
        ("init", stat.S_IFREG | 0o755, b"\x7fELF odd length", (0, 0)),
    ]


def test_archive_is_deterministic() -> None:
    entries = initramfs.pod_entries(b"binary")
    assert initramfs.newc(entries) == initramfs.newc(list(entries))


def test_pod_initramfs_has_init_console_and_mount_points() -> None:
    members = {
        name: (mode, data) for name, mode, data, _ in read_newc(initramfs.newc(initramfs.pod_entries(b"pi")))
    }
    assert members["init"] == (stat.S_IFREG | 0o755, b"pi")
    assert stat.S_ISCHR(members["dev/console"][0])
    assert {"proc", "sys", "run", "eph", "dev"} <= set(members)


def test_key_depends_on_the_source() -> None:
    assert initramfs.build_key(b"int main(){}") != initramfs.build_key(b"int main(){return 1;}")


def test_every_source_file_is_in_the_key(tmp_path: Path) -> None:
    (tmp_path / "podinit.c").write_text('#include "extra.c"\n')
    (tmp_path / "extra.c").write_text("int x;\n")
    (tmp_path / "notes.txt").write_text("not a source")
    before = initramfs.build_key(initramfs.sources(tmp_path))
    (tmp_path / "notes.txt").write_text("still not a source")
    assert initramfs.build_key(initramfs.sources(tmp_path)) == before
    (tmp_path / "extra.c").write_text("int y;\n")
    assert initramfs.build_key(initramfs.sources(tmp_path)) != before
