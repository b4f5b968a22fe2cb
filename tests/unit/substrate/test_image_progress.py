"""The node image build is one progress step through its stages, done or failed; a cached image
shows no step at all."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nestlab.progress import PlainProgress
from nestlab.runtime.proc import ProcessError, Runner
from nestlab.substrate.local.image import STAGES, ensure_image
from nestlab.substrate.local.recipe import default_recipe_dir, load_recipe
from tests.unit.substrate.test_image import FakeBuilder


def builder(fail_on: str | None = None) -> Runner:
    return FakeBuilder(fail_on)  # type: ignore[return-value]  # its argv is typed list[str]


def _mirror_ok(_mirror: str, _suite: str) -> None:
    return None


@pytest.fixture
def recipe_dir(tmp_path: Path) -> Path:
    target = tmp_path / "recipe"
    shutil.copytree(default_recipe_dir(), target)
    return target


def test_the_build_is_one_step_through_its_stages(recipe_dir: Path, tmp_path: Path) -> None:
    recipe = load_recipe(recipe_dir)
    lines: list[str] = []
    shown = PlainProgress(lines.append, stamp=None)
    ensure_image(
        recipe,
        mirror="http://m/debian",
        cache=tmp_path / "c",
        run=builder(),
        progress=shown,
        check=_mirror_ok,
    )
    title = f"node image {recipe.digest[:12]} (built once per recipe)"
    assert lines[0] == f"{title} ..."
    stages = [line for line in lines if "% of" in line]
    assert len(stages) == STAGES - 1  # each stage that starts after another one finished
    assert stages[0] == f"{title}: 25% of {STAGES} stages (apt-get update in the tree)"
    assert lines[-2].startswith(f"{title}: done, {len(recipe.packages)} packages (")
    assert lines[-1] == f"node image {recipe.digest[:12]} ready"
    again: list[str] = []
    ensure_image(recipe, cache=tmp_path / "c", run=builder(), progress=again.append, check=_mirror_ok)
    assert again == []


def test_a_failed_stage_fails_the_step(recipe_dir: Path, tmp_path: Path) -> None:
    recipe = load_recipe(recipe_dir)
    lines: list[str] = []
    with pytest.raises(ProcessError):
        ensure_image(
            recipe, mirror="http://m/debian", cache=tmp_path / "c", run=builder(fail_on="install"),
            progress=PlainProgress(lines.append, stamp=None), check=_mirror_ok,
        )  # fmt: skip
    assert "FAILED: install failed (" in lines[-1]
