"""The demo images' cache keys (each changes with what goes into its image, and only then) and
publishing them twice: the second time nothing is built and nothing is sent; a registry that lost
them gets them back. Fake busybox, curl, ldd and registry; the real ones are in
tests/integration/agent/test_demo_publish.py."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from nestlab.images import demo, oci
from nestlab.runtime import proc
from tests.fakes import FakeRunner, answering
from tests.unit.images.registry_fake import FakeRegistry

NAMES = ("nestlab/web:1", "nestlab/web:2", "nestlab/job:ok", "nestlab/job:fail", "nestlab/client:1")
WEB = {"nestlab/web:1", "nestlab/web:2", "nestlab/job:ok", "nestlab/job:fail"}  # the jobs carry web:2's files


@pytest.fixture
def sources(tmp_path: Path) -> demo.Sources:
    host = tmp_path / "host"
    (host / "lib").mkdir(parents=True)
    busybox = host / "busybox"
    busybox.write_bytes(b"busybox 1.35")
    curl = host / "curl"
    curl.write_bytes(b"curl 7.88")
    curl.chmod(0o755)
    (host / "lib" / "libcurl.so.4").write_bytes(b"libcurl")
    template = host / "index.html"
    template.write_text('<p>Version <b id="version">@VERSION@</b></p>\n<p>Served by pod @POD@.</p>\n')
    return demo.Sources(busybox, curl, template, _ldd(host / "lib" / "libcurl.so.4"))


def _ldd(*libraries: Path) -> FakeRunner:
    return answering(0, "".join(f"\t{lib.name} => {lib} (0x1)\n" for lib in libraries))


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    assert before.keys() == after.keys()
    return {name for name in before if before[name] != after[name]}


def test_every_image_has_its_own_key_and_the_same_inputs_give_the_same_keys(sources: demo.Sources) -> None:
    keys = demo.image_keys(sources)
    assert tuple(keys) == NAMES
    assert len(set(keys.values())) == len(NAMES)
    assert demo.image_keys(sources) == keys


def test_the_template_changes_the_web_images_keys_only(sources: demo.Sources) -> None:
    before = demo.image_keys(sources)
    sources.template.write_text(sources.template.read_text() + "<p>new</p>\n")
    assert _changed(before, demo.image_keys(sources)) == WEB


def test_busybox_changes_every_key(sources: demo.Sources) -> None:
    before = demo.image_keys(sources)
    sources.busybox.write_bytes(b"busybox 1.36")
    assert _changed(before, demo.image_keys(sources)) == set(NAMES)


@pytest.mark.parametrize("change", ["curl", "library content", "library mode", "one more library"])
def test_curl_and_its_libraries_change_the_clients_key_only(
    sources: demo.Sources, tmp_path: Path, change: str
) -> None:
    before = demo.image_keys(sources)
    library = tmp_path / "host" / "lib" / "libcurl.so.4"
    if change == "curl":
        sources.curl.write_bytes(b"curl 8.0")
    elif change == "library content":
        library.write_bytes(b"libcurl, security update")
    elif change == "library mode":
        library.chmod(0o600)
    else:
        extra = tmp_path / "host" / "lib" / "libz.so.1"
        extra.write_bytes(b"zlib")
        sources = dataclasses.replace(sources, run=_ldd(library, extra))
    assert _changed(before, demo.image_keys(sources)) == {"nestlab/client:1"}


def test_a_recipe_changes_its_own_images_key_only(
    sources: demo.Sources, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = demo.image_keys(sources)
    images = list(demo.IMAGES)
    images[3] = dataclasses.replace(images[3], recipe=oci.Recipe(cmd=("sh", "-c", "exit 4")))  # job:fail
    monkeypatch.setattr(demo, "IMAGES", tuple(images))
    assert _changed(before, demo.image_keys(sources)) == {"nestlab/job:fail"}


@pytest.mark.parametrize("what", ["_umask", "builder"])
def test_the_umask_and_the_builders_code_change_every_key(
    sources: demo.Sources, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    before = demo.image_keys(sources)
    if what == "_umask":
        monkeypatch.setattr(demo, "_umask", lambda: "0077")
    else:
        monkeypatch.setattr(oci, "builder_fingerprint", lambda: "0" * 64)
    assert _changed(before, demo.image_keys(sources)) == set(NAMES)


def test_the_same_template_and_busybox_elsewhere_give_the_same_keys(
    sources: demo.Sources, tmp_path: Path
) -> None:
    """Another checkout (or busybox found elsewhere) shares the cache: only curl's files keep their path."""
    (tmp_path / "clone").mkdir()
    moved = dataclasses.replace(
        sources,
        template=Path(shutil.copy(sources.template, tmp_path / "clone" / "index.html")),
        busybox=Path(shutil.copy(sources.busybox, tmp_path / "clone" / "busybox")),
    )
    assert demo.image_keys(moved) == demo.image_keys(sources)


def test_a_missing_curl_is_named_with_what_to_install(sources: demo.Sources) -> None:
    sources.curl.unlink()
    with pytest.raises(proc.ProcessError, match=r"curl is missing: install the package"):
        demo.image_keys(sources)


def _sync(registry: FakeRegistry, cache: oci.BuildCache, sources: demo.Sources) -> demo.Published:
    return demo.sync(registry.registry, lambda _address: registry, cache=cache, sources=sources)


def test_a_second_publish_builds_nothing_and_sends_nothing(sources: demo.Sources, tmp_path: Path) -> None:
    registry, cache = FakeRegistry(), oci.BuildCache(tmp_path / "cache")
    first = _sync(registry, cache, sources)
    assert (first.pushed, first.skipped, first.built) == (NAMES, (), NAMES)
    # 4 layers (the two jobs share one in nestlab/job, web:2's), 5 configs
    assert len([u for u in registry.uploads() if "@" in u]) == 9
    registry.calls.clear()

    second = _sync(registry, cache, sources)

    assert (second.pushed, second.skipped, second.built) == ((), NAMES, ())
    assert registry.uploads() == []
    assert second.digests == first.digests
    assert list(second.digests) == [f"depot:5000/{name}" for name in NAMES]
    assert second.summary() == "5 images: 0 pushed, 5 already in the registry; 0 built, 5 from the cache"


def test_the_cached_images_are_the_ones_a_build_gives(sources: demo.Sources, tmp_path: Path) -> None:
    registry = FakeRegistry()
    cached = _sync(registry, oci.BuildCache(tmp_path / "cache"), sources)
    cached = _sync(registry, oci.BuildCache(tmp_path / "cache"), sources)
    fresh = _sync(FakeRegistry(), oci.BuildCache(tmp_path / "other"), sources)
    assert cached.built == ()
    assert fresh.built == NAMES
    assert cached.digests == fresh.digests


def test_a_registry_that_lost_everything_gets_everything_from_the_cache(
    sources: demo.Sources, tmp_path: Path
) -> None:
    registry, cache = FakeRegistry(), oci.BuildCache(tmp_path / "cache")
    first = _sync(registry, cache, sources)
    emptied = FakeRegistry()  # the depot rebuilt: same address, no storage

    again = _sync(emptied, cache, sources)

    assert (again.pushed, again.built) == (NAMES, ())
    assert emptied.blobs == registry.blobs
    assert emptied.tags == registry.tags
    assert again.digests == first.digests


def test_only_what_the_registry_lacks_is_pushed(sources: demo.Sources, tmp_path: Path) -> None:
    registry, cache = FakeRegistry(), oci.BuildCache(tmp_path / "cache")
    first = _sync(registry, cache, sources)
    registry.tags["nestlab/web", "1"] = registry.tags["nestlab/web", "2"]  # the tag names another image
    layer = json.loads(registry.tags["nestlab/client", "1"])["layers"][0]["digest"]
    client_layer = ("nestlab/client", layer)
    del registry.blobs[client_layer]  # storage lost one blob; the tag still names the manifest

    again = _sync(registry, cache, sources)

    assert again.pushed == ("nestlab/web:1", "nestlab/client:1")
    assert again.summary().startswith("5 images: 2 pushed (nestlab/web:1, nestlab/client:1), 3 already")
    assert client_layer in registry.blobs
    assert again.digests == first.digests


def test_a_changed_template_rebuilds_and_pushes_the_web_images_only(
    sources: demo.Sources, tmp_path: Path
) -> None:
    registry, cache = FakeRegistry(), oci.BuildCache(tmp_path / "cache")
    first = _sync(registry, cache, sources)
    sources.template.write_text(sources.template.read_text() + "<p>new</p>\n")

    again = _sync(registry, cache, sources)

    assert set(again.built) == set(again.pushed) == WEB
    assert again.skipped == ("nestlab/client:1",)
    assert {n for n in first.digests if first.digests[n] != again.digests[n]} == {
        f"depot:5000/{n}" for n in WEB
    }
