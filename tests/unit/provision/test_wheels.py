"""The wheelhouse: base dependencies only, content-keyed caches, one pip run per cache miss, and a
lab copy that holds exactly the current wheels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nestlab.provision import wheels
from nestlab.runtime import proc

PYPROJECT = """
[project]
name = "nestlab"
dependencies = ["click>=8.1", "aiohttp>=3.9,<4"]
[project.optional-dependencies]
outer = ["pulumi>=3"]
"""


class FakePip:
    """Writes a wheel per requested package into the --dest/--wheel-dir directory."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.fail = False

    def __call__(self, argv: list[str], *, timeout: float, **_: object) -> proc.Result:
        self.calls.append(argv)
        if self.fail:
            raise proc.ProcessError("pip: no network")
        out = Path(argv[-1])
        if "download" in argv:
            for req in [a for a in argv if a[0].isalpha() and a not in ("download",)][1:]:
                name = req.split(">")[0].split("=")[0].split("<")[0]
                (out / f"{name}-1.0-py3-none-any.whl").write_text(name)
        else:
            (out / "nestlab-0.1.0-py3-none-any.whl").write_text(str(len(self.calls)))
        return proc.Result(argv, 0, "", "")


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path / "home"))
    root = tmp_path / "src"
    (root / "nestlab").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "nestlab" / "__init__.py").write_text("x = 1\n")
    return root


def test_base_dependencies_leave_the_outer_extra_out(tree: Path) -> None:
    assert wheels.base_dependencies(tree / "pyproject.toml") == ["click>=8.1", "aiohttp>=3.9,<4"]


def test_source_digest_follows_package_files_only(tree: Path) -> None:
    before = wheels.source_digest(tree)
    (tree / "notes.md").write_text("not packaged")
    (tree / "nestlab" / "__pycache__").mkdir()
    (tree / "nestlab" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert wheels.source_digest(tree) == before
    (tree / "nestlab" / "__init__.py").write_text("x = 2\n")
    assert wheels.source_digest(tree) != before


def test_cache_hits_run_no_pip_and_source_edits_rebuild_only_nestlab(tree: Path, tmp_path: Path) -> None:
    pip = FakePip()
    first = wheels.ensure_wheelhouse(tmp_path / "lab" / "wheelhouse", root=tree, runner=pip)
    assert [("download" in c) for c in pip.calls] == [True, False]
    download = pip.calls[0]
    assert "click>=8.1" in download
    assert "aiohttp>=3.9,<4" in download
    assert "pulumi>=3" not in download
    names = sorted(p.name for p in first.path.glob("*.whl"))
    assert names == ["aiohttp-1.0-py3-none-any.whl", "click-1.0-py3-none-any.whl",
                     "nestlab-0.1.0-py3-none-any.whl", "pip-1.0-py3-none-any.whl"]  # fmt: skip
    manifest = json.loads((first.path / wheels.MANIFEST).read_text())
    assert manifest == {"nestlabWheel": "nestlab-0.1.0-py3-none-any.whl", "digest": first.digest}

    again = wheels.ensure_wheelhouse(first.path, root=tree, runner=pip)
    assert len(pip.calls) == 2
    assert again.digest == first.digest

    (tree / "nestlab" / "__init__.py").write_text("x = 3\n")
    edited = wheels.ensure_wheelhouse(first.path, root=tree, runner=pip)
    assert len(pip.calls) == 3
    assert "wheel" in pip.calls[2]
    assert edited.digest != first.digest


def test_stale_wheels_leave_the_lab_copy(tree: Path, tmp_path: Path) -> None:
    dest = tmp_path / "wheelhouse"
    dest.mkdir()
    (dest / "old-0.1-py3-none-any.whl").write_text("old")
    wheels.ensure_wheelhouse(dest, root=tree, runner=FakePip())
    assert not (dest / "old-0.1-py3-none-any.whl").exists()


def test_failed_pip_leaves_no_cache_entry(tree: Path, tmp_path: Path) -> None:
    pip = FakePip()
    pip.fail = True
    with pytest.raises(wheels.WheelhouseError, match="PyPI"):
        wheels.ensure_wheelhouse(tmp_path / "wh", root=tree, runner=pip)
    assert not list((tmp_path / "home" / "cache" / "wheels").iterdir())


def test_old_nestlab_builds_are_pruned(tree: Path, tmp_path: Path) -> None:
    pip = FakePip()
    for i in range(wheels.KEEP_NESTLAB_BUILDS + 2):
        (tree / "nestlab" / "__init__.py").write_text(f"x = {i}\n")
        wheels.ensure_wheelhouse(tmp_path / "wh", root=tree, runner=pip)
    cache = tmp_path / "home" / "cache" / "wheels"
    assert len(list(cache.glob("nestlab-*"))) == wheels.KEEP_NESTLAB_BUILDS
    assert (cache / f"nestlab-{wheels.source_digest(tree)}").is_dir()
    assert len(list(cache.glob("deps-*"))) == 1
