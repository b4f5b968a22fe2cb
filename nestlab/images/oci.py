"""Build small OCI images from a directory and push them to a registry (demo images, tests).

An image here is one gzip'd tar layer made from a root directory, an OCI image config and an OCI
manifest. The tar is written with fixed owners (root) and mtimes, sorted, so the same directory
gives the same layer digest on every build: pushing again changes nothing in the registry.

Two things make publishing an unchanged image cheap (a second ``nestlab up``): :class:`BuildCache`
keeps built images on the outer machine under a key the caller derives from everything that goes
into them (compressing the demo client's layer alone takes seconds), and :func:`ensure_pushed` asks
the registry whether the tag already names the image's manifest and skips the push when it does.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import platform
import re
import shutil
import tarfile
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nestlab.agent.registry import MANIFEST_TYPES, RegistryClient

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
_MTIME = 0  # pinned so a rebuild gives the same bytes
KEEP_BUILDS = 20  # cached images kept (the five demo images of the last few source states), newest used
STALE_STAGING_S = 3600.0  # a half-written cache entry this old was left by a process that died
_KEY = re.compile(r"^[0-9a-f]{64}$")
_FILES = ("layer.tar.gz", "config.json", "manifest.json")  # one cache entry: the image's three blobs


@dataclass(frozen=True)
class Recipe:
    """What goes into the image's config besides its one layer."""

    cmd: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    working_dir: str = "/"
    user: str = ""

    def canonical(self) -> str:
        """The recipe as text for a cache key (env in its order: the config lists it so)."""
        fields = {
            "cmd": list(self.cmd),
            "entrypoint": list(self.entrypoint),
            "env": [list(item) for item in (self.env or {}).items()],
            "working_dir": self.working_dir,
            "user": self.user,
        }
        return json.dumps(fields, sort_keys=True)


@dataclass(frozen=True)
class Image:
    """A built one-layer image: the three blobs a registry stores."""

    layer: bytes
    """The gzip'd tar layer."""
    config: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        """The manifest digest: what a tag names."""
        return _sha256(self.manifest)

    def consistent(self) -> bool:
        """Whether the manifest names exactly this layer and config (a cache entry read back whole)."""
        try:
            doc = json.loads(self.manifest)
            named = [doc["config"], *doc["layers"]]
        except (ValueError, KeyError, TypeError):
            return False
        have = [_descriptor(CONFIG_TYPE, self.config), _descriptor(LAYER_TYPE, self.layer)]
        return named == have


def layer_tar(root: Path) -> bytes:
    """A reproducible uncompressed tar of ``root`` (paths relative, owners 0:0, mtime 0)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            base = Path(dirpath)
            entries += [base / d for d in dirnames] + [base / f for f in sorted(filenames)]
        for path in sorted(entries, key=lambda p: p.relative_to(root).as_posix()):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(root).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = _MTIME
            if info.isreg():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def build(root: Path, recipe: Recipe) -> tuple[bytes, bytes, bytes]:
    """(layer.tar.gz, config, manifest) of a one-layer image of ``root``."""
    raw = layer_tar(root)
    # Level 1: the demo client layer (21 MB) compresses in 2.6 s instead of 48 s at the default 9,
    # 8% larger; the registry is on the lab network, so time matters more than bytes. Still
    # reproducible: the same root gives the same digest.
    layer = gzip.compress(raw, compresslevel=1, mtime=_MTIME)
    config: dict[str, object] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Cmd": list(recipe.cmd) or None,
            "Entrypoint": list(recipe.entrypoint) or None,
            "Env": [f"{k}={v}" for k, v in (recipe.env or {}).items()] or None,
            "WorkingDir": recipe.working_dir,
            "User": recipe.user,
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPES[0],
        "config": _descriptor(CONFIG_TYPE, config_bytes),
        "layers": [_descriptor(LAYER_TYPE, layer)],
    }
    return layer, config_bytes, json.dumps(manifest, sort_keys=True).encode()


def build_image(root: Path, recipe: Recipe) -> Image:
    """:func:`build` as an :class:`Image`."""
    return Image(*build(root, recipe))


def builder_fingerprint() -> str:
    """What decides :func:`build`'s bytes besides the root and the recipe: this module's code (the
    tar rules, the compression level, the config's fields), zlib's version (gzip output may change
    with it) and Python's (tarfile's). Part of every cache key, so an upgrade rebuilds once."""
    parts = (
        Path(__file__).read_bytes(),
        zlib.ZLIB_RUNTIME_VERSION.encode(),
        platform.python_version().encode(),
    )
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {
        "mediaType": media_type,
        "digest": _sha256(data),
        "size": len(data),
    }


def push(client: RegistryClient, repository: str, tags: Sequence[str], root: Path, recipe: Recipe) -> str:
    """Build and push the image of ``root`` under every tag; the manifest digest."""
    layer, config, manifest = build(root, recipe)
    client.push_blob(repository, layer)
    client.push_blob(repository, config)
    digest = ""
    for tag in tags:
        digest = client.push_manifest(repository, tag, manifest)
    return digest


def ensure_pushed(client: RegistryClient, repository: str, tags: Sequence[str], image: Image) -> bool:
    """Make every tag name ``image`` in the registry; False when it did already and nothing was sent.

    Skipped only when every tag's manifest digest (a HEAD) is the image's and the registry still
    holds its layer and config: a registry that lost its storage, or holds another image under a
    tag, gets the blobs it lacks and the manifest under every tag (docker-registry verifies both)."""
    layer, config = _sha256(image.layer), _sha256(image.config)
    if (
        all(client.manifest_digest(repository, tag) == image.digest for tag in tags)
        and client.has_blob(repository, layer)
        and client.has_blob(repository, config)
    ):
        return False
    client.upload_blob(repository, layer, len(image.layer), image.layer)
    client.upload_blob(repository, config, len(image.config), image.config)
    for tag in tags:
        client.push_manifest(repository, tag, image.manifest)
    return True


class BuildCache:
    """Built images on the outer machine by content key (:func:`nestlab.paths.image_build_cache`).

    The key is the caller's: a sha256 of everything that goes into the image, :func:`builder_fingerprint`
    included. An entry is a directory of the three blobs, written aside and renamed into place (two
    ``up`` runs at once both see whole entries); one that no longer hashes as its manifest says is
    dropped and rebuilt. The newest :data:`KEEP_BUILDS` entries by use are kept, older ones removed.
    """

    def __init__(self, root: Path, keep: int = KEEP_BUILDS) -> None:
        self.root = root
        self.keep = keep

    def image(self, key: str, make: Callable[[], Image]) -> tuple[Image, bool]:
        """The image cached under ``key``, else ``make()``'s (then cached); True when it was built."""
        found = self.get(key)
        if found is not None:
            return found, False
        made = make()
        self.put(key, made)
        return made, True

    def get(self, key: str) -> Image | None:
        """The image under ``key``, or None (absent, partial or corrupt)."""
        entry = self._entry(key)
        if not entry.is_dir():
            return None
        try:
            image = Image(*((entry / name).read_bytes() for name in _FILES))
        except FileNotFoundError:
            image = None  # entries appear whole (renamed into place): a file missing is damage
        if image is None or not image.consistent():
            shutil.rmtree(entry, ignore_errors=True)
            return None
        with contextlib.suppress(OSError):  # pruned by another process meanwhile: still a good image
            os.utime(entry)  # used now: kept by prune
        return image

    def put(self, key: str, image: Image) -> None:
        """Store ``image`` under ``key`` and remove the oldest entries beyond :attr:`keep`."""
        entry = self._entry(key)
        staging = self.root / f".{key}.{os.getpid()}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            for name, data in zip(_FILES, (image.layer, image.config, image.manifest), strict=True):
                (staging / name).write_bytes(data)
            try:
                os.replace(staging, entry)
            except OSError:
                if self.get(key) is None:  # not another process's entry for the same key: a real failure
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.prune()

    def prune(self) -> None:
        """Keep the :attr:`keep` most recently used entries; drop staging left by dead processes."""
        if not self.root.is_dir():
            return
        entries: list[tuple[float, Path]] = []
        for path in self.root.iterdir():
            try:
                used = path.stat().st_mtime
            except OSError:
                continue  # removed meanwhile
            if path.name.startswith("."):
                if time.time() - used > STALE_STAGING_S:
                    shutil.rmtree(path, ignore_errors=True)
            elif _KEY.match(path.name):
                entries.append((used, path))
        entries.sort(reverse=True)
        for _, old in entries[self.keep :]:
            shutil.rmtree(old, ignore_errors=True)

    def _entry(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"cache key {key!r} is not a sha256 hex digest")
        return self.root / key
