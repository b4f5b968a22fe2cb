"""The kernel cache key changes with the tarball, any fragment and the build code, and only then."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.runtime import kbuild, kernel
from nestlab.runtime.kconfig import KernelConfigError

FRAGS = [("00-a.config", "CONFIG_A=y\n"), ("10-b.config", "CONFIG_B=y\n")]


def test_key_is_stable_for_identical_inputs() -> None:
    assert kernel.build_key("t", FRAGS, [b"code"]) == kernel.build_key("t", list(FRAGS), [b"code"])


@pytest.mark.parametrize(
    ("tarball", "frags", "code"),
    [
        ("t2", FRAGS, [b"code"]),
        ("t", [FRAGS[0], ("10-b.config", "CONFIG_B=n\n")], [b"code"]),
        ("t", [FRAGS[0], ("11-b.config", "CONFIG_B=y\n")], [b"code"]),
        ("t", FRAGS, [b"code2"]),
    ],
)
def test_key_changes_with_each_input(tarball: str, frags: list[tuple[str, str]], code: list[bytes]) -> None:
    assert kernel.build_key(tarball, frags, code) != kernel.build_key("t", FRAGS, [b"code"])


def test_missing_fragments_directory_is_an_actionable_error(tmp_path: Path) -> None:
    with pytest.raises(kernel.KernelBuildError, match=r"no \*\.config fragments"):
        kernel.read_fragments(tmp_path)


def test_build_refuses_a_missing_tarball(tmp_path: Path) -> None:
    with pytest.raises(kernel.KernelBuildError, match=r"install linux-source-6\.1"):
        kernel.build(tarball=tmp_path / "nope.tar.xz", root=tmp_path)


class FakeKbuild:
    """Stands in for tar and make: tinyconfig writes a base, olddefconfig drops ``lose``."""

    def __init__(self, lose: str) -> None:
        self.lose = lose
        self.targets: list[str] = []

    def __call__(self, argv, *, timeout, check=True, stdin=None, env=None, cwd=None):  # type: ignore[no-untyped-def]
        from nestlab.runtime.proc import Result

        args = list(argv)
        if "tar" in args:
            dest = Path(args[args.index("-C") + 1]) / kernel.SOURCE_DIR_NAME
            dest.mkdir(parents=True)
            (dest / "Makefile").write_text("")
        else:
            out = Path(next(a for a in args if a.startswith("O="))[2:])
            target = args[-1]
            self.targets.append(target)
            config = out / ".config"
            if target == "tinyconfig":
                config.write_text("CONFIG_64BIT=y\n")
            elif target == "olddefconfig":
                kept = [ln for ln in config.read_text().splitlines() if not ln.startswith(self.lose + "=")]
                config.write_text("\n".join(kept) + "\n")
            elif target == "vmlinux":
                (out / "vmlinux").write_bytes(b"\x7fELF")
        return Result(tuple(args), 0, "", "")


def test_build_fails_naming_the_option_olddefconfig_dropped(tmp_path: Path) -> None:
    tarball = tmp_path / "src.tar.xz"
    tarball.write_bytes(b"not really")
    frags = tmp_path / "fragments"
    frags.mkdir()
    (frags / "10-fs.config").write_text("CONFIG_EXT4_FS=y\nCONFIG_EROFS_FS=y\n")
    fake = FakeKbuild(lose="CONFIG_EROFS_FS")
    with pytest.raises(KernelConfigError, match=r"CONFIG_EROFS_FS: 10-fs.config:2 asks for 'y'"):
        kernel.build(tarball=tarball, fragments_dir=frags, root=tmp_path / "cache", run=fake)
    assert "vmlinux" not in fake.targets  # the check runs before the long compile


def test_build_caches_by_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def streamed(argv, *, timeout, log, on_line, noise=None):  # type: ignore[no-untyped-def]
        fake(argv, timeout=timeout)  # the compile is streamed (kbuild): the same fake make answers
        on_line("  CC      kernel/fork.o")

    monkeypatch.setattr(kbuild, "run_streamed", streamed)
    tarball = tmp_path / "src.tar.xz"
    tarball.write_bytes(b"not really")
    frags = tmp_path / "fragments"
    frags.mkdir()
    (frags / "10-fs.config").write_text("CONFIG_EXT4_FS=y\n")
    fake = FakeKbuild(lose="CONFIG_NOTHING")
    first = kernel.build(tarball=tarball, fragments_dir=frags, root=tmp_path / "cache", run=fake)
    assert first.vmlinux.read_bytes() == b"\x7fELF"
    assert "CONFIG_EXT4_FS=y" in first.config.read_text()
    again = kernel.build(tarball=tarball, fragments_dir=frags, root=tmp_path / "cache", run=fake)
    assert again == first
    assert fake.targets == ["tinyconfig", "olddefconfig", "vmlinux"]
