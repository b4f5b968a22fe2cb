"""The image recipe: parsed lists, and a digest that moves exactly when the recipe does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nestlab.substrate.local.errors import ImageError
from nestlab.substrate.local.image import cached_image, image_dir
from nestlab.substrate.local.recipe import default_recipe_dir, load_recipe, parse_services, recipe_digest


@pytest.fixture
def recipe_copy(tmp_path: Path) -> Path:
    target = tmp_path / "node"
    shutil.copytree(default_recipe_dir(), target)
    return target


def test_the_shipped_recipe_has_what_nodes_need() -> None:
    recipe = load_recipe()
    for package in ("systemd", "openssh-server", "swtpm", "tpm2-tools", "qemu-system-x86", "etcd-server"):
        assert package in recipe.packages
    assert ("enable", "nestlab-swtpm.service") in recipe.services
    for unit in ("etcd.service", "haproxy.service", "keepalived.service", "docker-registry.service"):
        assert ("disable", unit) in recipe.services
    unit = (recipe.files / "etc/systemd/system/nestlab-swtpm.service").read_text()
    assert "--server type=tcp,port=2321" in unit
    assert "--flags startup-clear" in unit


def test_digest_changes_with_any_file(recipe_copy: Path) -> None:
    before = recipe_digest(recipe_copy)
    assert recipe_digest(recipe_copy) == before
    (recipe_copy / "packages.txt").write_text((recipe_copy / "packages.txt").read_text() + "htop\n")
    after_package = recipe_digest(recipe_copy)
    assert after_package != before
    (recipe_copy / "rootfs" / "etc" / "motd").write_text("hi\n")
    assert recipe_digest(recipe_copy) != after_package


def test_services_lines_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "services.txt"
    path.write_text("enable a.service # why\n\n# comment\ndisable b.timer\n")
    assert parse_services(path) == (("enable", "a.service"), ("disable", "b.timer"))
    path.write_text("start a.service\n")
    with pytest.raises(ImageError, match="expected 'enable UNIT'"):
        parse_services(path)


def test_missing_recipe(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"packages\.txt"):
        load_recipe(tmp_path)


def test_cache_lookup_needs_a_finished_image(recipe_copy: Path, tmp_path: Path) -> None:
    recipe = load_recipe(recipe_copy)
    cache = tmp_path / "cache"
    assert cached_image(recipe, cache) is None
    where = image_dir(recipe.digest, cache)
    (where / "rootfs" / "usr" / "lib" / "systemd").mkdir(parents=True)
    assert cached_image(recipe, cache) is None  # no manifest: a build that did not finish
    (where / "manifest.json").write_text("{}")
    found = cached_image(recipe, cache)
    assert found is not None
    assert found.root == where / "rootfs"
    assert where.name == f"node-{recipe.digest}"
