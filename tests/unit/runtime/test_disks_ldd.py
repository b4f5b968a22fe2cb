"""Copying a dynamically linked binary into an image root: ldd's output read into the files to copy,
and the copy itself with a fake ``ldd`` (the real one runs in tests/integration/agent/test_demo_images.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

import pytest

from nestlab.runtime import disks, proc

CURL = """\
\tlinux-vdso.so.1 (0x00007ffd5a7f2000)
\tlibcurl.so.4 => /lib/x86_64-linux-gnu/libcurl.so.4 (0x00007f1f5197d000)
\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f1f5195e000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1f5177c000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f1f51a86000)
\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f1f5195e000)
"""


def test_libraries_and_the_loader_in_order_without_the_vdso_or_repeats() -> None:
    assert disks.parse_ldd(CURL) == (
        PurePosixPath("/lib/x86_64-linux-gnu/libcurl.so.4"),
        PurePosixPath("/lib/x86_64-linux-gnu/libz.so.1"),
        PurePosixPath("/lib/x86_64-linux-gnu/libc.so.6"),
        PurePosixPath("/lib64/ld-linux-x86-64.so.2"),
    )


def test_an_older_ldds_vdso_line_and_a_static_binary_need_nothing() -> None:
    assert disks.parse_ldd("\tlinux-gate.so.1 =>  (0xf7f0e000)\n") == ()
    assert disks.parse_ldd("\tstatically linked\n") == ()
    assert disks.parse_ldd("") == ()


def test_a_missing_library_is_named() -> None:
    with pytest.raises(proc.ProcessError, match=r"ldd cannot find libssl\.so\.3: install"):
        disks.parse_ldd(CURL + "\tlibssl.so.3 => not found\n")


def test_a_line_it_cannot_read_is_refused_not_skipped() -> None:
    with pytest.raises(proc.ProcessError, match="unexpected ldd output line: 'what is this'"):
        disks.parse_ldd("\twhat is this\n")


class FakeLdd:
    """``ldd`` answering with a fixed listing; records the argv."""

    def __init__(self, stdout: str) -> None:
        self.stdout = stdout
        self.calls: list[tuple[str, ...]] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        check: bool = True,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        capture: bool = True,
    ) -> proc.Result:
        self.calls.append(tuple(argv))
        return proc.Result(tuple(argv), 0, self.stdout, "")


def test_the_binary_and_each_library_land_at_their_paths_as_files(tmp_path: Path) -> None:
    host = tmp_path / "host"
    (host / "lib").mkdir(parents=True)
    real = host / "lib" / "libz.so.1.2.13"
    real.write_bytes(b"zlib")
    (host / "lib" / "libz.so.1").symlink_to(real.name)  # Debian's soname link
    binary = host / "tool"
    binary.write_bytes(b"ELF")
    binary.chmod(0o755)
    ldd = FakeLdd(f"\tlinux-vdso.so.1 (0x1)\n\tlibz.so.1 => {host}/lib/libz.so.1 (0x2)\n")
    root = tmp_path / "root"

    copied = disks.copy_dynamic(binary, root, run=ldd)

    assert ldd.calls == [("ldd", str(binary))]
    assert copied == (PurePosixPath(binary), PurePosixPath(f"{host}/lib/libz.so.1"))
    inside = root / str(host / "lib" / "libz.so.1").lstrip("/")
    assert not inside.is_symlink()
    assert inside.read_bytes() == b"zlib"
    assert (root / str(binary).lstrip("/")).stat().st_mode & 0o777 == 0o755


def test_a_missing_binary_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(proc.ProcessError, match="is missing: install the package"):
        disks.copy_dynamic(tmp_path / "nope", tmp_path / "root", run=FakeLdd(""))
