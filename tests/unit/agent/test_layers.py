"""Layer application: order, whiteouts, opaque directories, and members that try to escape the root."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from nestlab.agent import layers


def _layer(path: Path, entries: list[tuple[str, str, str]], gz: bool = False) -> Path:
    """entries: (kind, name, data-or-linkname) with kind in file/dir/sym/hard."""
    with tarfile.open(path, "w:gz" if gz else "w") as tar:
        for kind, name, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                raw = data.encode()
                info.size = len(raw)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(raw))
                continue
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, data
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, data
            tar.addfile(info)
    return path


def test_later_layers_replace_files_and_whiteouts_delete_lower_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    layers.apply(
        _layer(
            tmp_path / "1.tar",
            [("dir", "etc", ""), ("file", "etc/a", "one"), ("file", "etc/b", "gone"), ("dir", "etc/d", "")],
            gz=True,
        ),
        root,
    )
    (root / "etc" / "d" / "x").write_text("lower")
    layers.apply(
        _layer(
            tmp_path / "2.tar",
            [
                ("file", "etc/a", "two"),
                ("file", "etc/.wh.b", ""),
                ("file", "etc/d/.wh..wh..opq", ""),
                ("file", "etc/d/y", "upper"),
            ],
        ),
        root,
    )
    assert (root / "etc" / "a").read_text() == "two"
    assert not (root / "etc" / "b").exists()
    assert sorted(p.name for p in (root / "etc" / "d").iterdir()) == ["y"]
    assert not list(root.rglob(".wh.*"))


def test_a_whiteout_does_not_hide_a_file_of_its_own_layer(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    layers.apply(_layer(tmp_path / "1.tar", [("file", "new", "kept"), ("file", ".wh.new", "")]), root)
    assert (root / "new").read_text() == "kept"


def test_absolute_symlinks_resolve_inside_the_root_not_on_the_host(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    layers.apply(
        _layer(tmp_path / "1.tar", [("sym", "escape", str(outside)), ("sym", "up", "../../..")]), root
    )
    layers.apply(
        _layer(
            tmp_path / "2.tar",
            [("file", "escape/pwned", "x"), ("file", "up/pwned2", "y"), ("file", "../dotdot", "z")],
        ),
        root,
    )
    assert not list(outside.iterdir())
    assert not (tmp_path / "pwned2").exists()
    assert not (tmp_path / "dotdot").exists()
    assert (root / str(outside).lstrip("/") / "pwned").read_text() == "x"
    assert (root / "pwned2").read_text() == "y"
    assert (root / "dotdot").read_text() == "z"


def test_hard_links_to_files_outside_the_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("host file")
    with pytest.raises(layers.LayerError, match="no such file"):
        layers.apply(_layer(tmp_path / "1.tar", [("hard", "link", str(secret))]), root)
    layers.apply(_layer(tmp_path / "2.tar", [("file", "a", "in"), ("hard", "b", "/a")]), root)
    assert (root / "b").read_text() == "in"


def test_a_whiteout_through_a_symlink_stays_in_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    victim = tmp_path / "victim"
    root.mkdir()
    victim.mkdir()
    (victim / "keep").write_text("x")
    layers.apply(_layer(tmp_path / "1.tar", [("sym", "v", str(victim))]), root)
    layers.apply(
        _layer(tmp_path / "2.tar", [("file", "v/.wh.keep", ""), ("file", "v/.wh..wh..opq", "")]), root
    )
    assert (victim / "keep").exists()


def test_garbage_is_a_layer_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(layers.LayerError, match="not a tar"):
        layers.apply(bad, tmp_path)
