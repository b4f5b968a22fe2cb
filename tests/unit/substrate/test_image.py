"""The image build's steps, cache and atomicity, with debootstrap and nspawn replaced by a fake."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from nestlab.runtime.proc import ProcessError, Result
from nestlab.substrate.local.errors import ImageError
from nestlab.substrate.local.image import ensure_image, image_dir
from nestlab.substrate.local.recipe import default_recipe_dir, load_recipe


class FakeBuilder:
    """Plays debootstrap (makes a tree with host keys) and records commands run in the tree."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, argv: list[str], *, timeout: float, check: bool = True, **_: object) -> Result:
        args = list(argv)
        self.calls.append(args)
        if self.fail_on and self.fail_on in args:
            raise ProcessError(f"{self.fail_on} failed")
        if "debootstrap" in args:
            rootfs = Path(args[-2])
            for directory in ("usr/lib/systemd", "usr/sbin", "etc/ssh", "var/lib/apt/lists"):
                (rootfs / directory).mkdir(parents=True)
            (rootfs / "etc/ssh/ssh_host_rsa_key").write_text("shared secret")
            (rootfs / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
            (rootfs / "var/lib/apt/lists/deb.debian.org_Packages").write_text("big")
        return Result(tuple(args), 0, "", "")

    def in_tree(self) -> list[list[str]]:
        """The commands run inside the tree, without the nspawn prefix."""
        return [call[call.index("--") + 1 :] for call in self.calls if "--" in call]


def _mirror_ok(_mirror: str, _suite: str) -> None:
    return None


@pytest.fixture
def recipe_dir(tmp_path: Path) -> Path:
    target = tmp_path / "recipe"
    shutil.copytree(default_recipe_dir(), target)
    return target


def test_builds_then_reuses(recipe_dir: Path, tmp_path: Path) -> None:
    recipe = load_recipe(recipe_dir)
    cache = tmp_path / "cache"
    fake = FakeBuilder()
    image = ensure_image(recipe, mirror="http://m/debian", cache=cache, run=fake, check=_mirror_ok)
    assert image.root == image_dir(recipe.digest, cache) / "rootfs"
    rootfs = image.root

    debootstrap = next(call for call in fake.calls if "debootstrap" in call)
    assert "--variant=minbase" in debootstrap
    assert debootstrap[-3] == "bookworm"
    assert debootstrap[-1] == "http://m/debian"
    commands = fake.in_tree()
    install = next(c for c in commands if c[:2] == ["apt-get", "install"])
    assert "--no-install-recommends" in install
    assert set(recipe.packages) <= set(install)
    assert ["systemctl", "disable", "etcd.service"] in commands
    assert ["systemctl", "enable", "nestlab-swtpm.service"] in commands

    assert (rootfs / "etc/systemd/system/nestlab-swtpm.service").is_file()
    assert not list((rootfs / "etc/ssh").glob("ssh_host_*"))  # every node gets its own
    assert (rootfs / "etc/machine-id").read_text() == ""
    assert not (rootfs / "usr/sbin/policy-rc.d").exists()
    assert not list((rootfs / "var/lib/apt/lists").iterdir())
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no temp dir left

    again = FakeBuilder()
    assert ensure_image(recipe, cache=cache, run=again, check=_mirror_ok) == image
    assert again.calls == []


def test_a_failed_build_leaves_no_image(recipe_dir: Path, tmp_path: Path) -> None:
    recipe = load_recipe(recipe_dir)
    cache = tmp_path / "cache"
    with pytest.raises(ProcessError, match="install failed"):
        ensure_image(recipe, mirror="http://m", cache=cache, run=FakeBuilder("install"), check=_mirror_ok)
    assert sorted(p.name for p in cache.iterdir() if p.suffix != ".lock") == ["debs"]


def test_unreachable_mirror_stops_before_building(recipe_dir: Path, tmp_path: Path) -> None:
    def unreachable(mirror: str, _suite: str) -> None:
        raise ImageError(f"cannot reach the Debian mirror {mirror}")

    fake = FakeBuilder()
    with pytest.raises(ImageError, match="cannot reach"):
        ensure_image(load_recipe(recipe_dir), mirror="http://m", cache=tmp_path, run=fake, check=unreachable)
    assert fake.calls == []


def test_a_build_already_running_is_waited_for_not_repeated(recipe_dir: Path, tmp_path: Path) -> None:
    recipe = load_recipe(recipe_dir)
    cache = tmp_path / "cache"
    entered = threading.Event()

    class SlowBuilder(FakeBuilder):
        def __call__(self, argv: list[str], *, timeout: float, check: bool = True, **_: object) -> Result:
            if "debootstrap" in argv:
                entered.set()
                time.sleep(0.3)  # the second caller arrives while this build runs
            return super().__call__(argv, timeout=timeout, check=check)

    first, second = SlowBuilder(), FakeBuilder()
    images = []
    thread = threading.Thread(
        target=lambda: images.append(
            ensure_image(recipe, mirror="http://m", cache=cache, run=first, check=_mirror_ok)
        )
    )
    thread.start()
    assert entered.wait(10)
    images.append(ensure_image(recipe, mirror="http://m", cache=cache, run=second, check=_mirror_ok))
    thread.join(10)
    assert images[0] == images[1]
    assert second.calls == []  # it waited for the first build and took its image


def test_a_build_killed_outright_leaves_nothing_behind_for_long(recipe_dir: Path, tmp_path: Path) -> None:
    recipe = load_recipe(recipe_dir)
    cache = tmp_path / "cache"
    stale = cache / f".node-{recipe.digest[:12]}-killed" / "rootfs"
    stale.mkdir(parents=True)  # what a SIGKILLed build leaves
    other = cache / ".node-0123456789ab-another-recipe"
    other.mkdir()
    ensure_image(recipe, mirror="http://m", cache=cache, run=FakeBuilder(), check=_mirror_ok)
    assert not stale.parent.exists()  # the next build of the same recipe removes it
    assert other.is_dir()  # another recipe's build may be running: not touched
