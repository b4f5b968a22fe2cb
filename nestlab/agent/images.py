"""The agent's image service: registry image -> read-only erofs disk, cached by manifest digest.

vSphere's Image Service stages a container image on a disk that every pod using it shares; here
the image's layers are pulled (every blob verified against its digest), applied in order with
their whiteouts, and packed into one erofs file system by ``mkfs.erofs``. The disk is named by
the manifest digest, so two tags of one image share one disk, and a pull whose manifest digest is
already on disk downloads nothing else. ``refs.json`` remembers which digest each reference
resolved to. The container's ``imagePullPolicy`` decides as the kubelet's does: ``IfNotPresent``
uses that remembered digest (so a pod whose image is cached still starts while the registry is
down), ``Always`` asks the registry what the tag means now on every start of the pod VM (a new
digest is pulled, the same digest reuses its disk), ``Never`` never asks and fails with
``ErrImageNeverPull`` if the image is not here. :meth:`ImageStore.collect` removes disks no pod uses.
A pull is made for a pod (its namespace's registry project rights): a disk another namespace's pod
pulled is reused only once the registry has let this namespace pull that digest (``grants.json``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NewType, get_args

from nestlab.agent import layers
from nestlab.agent.registry import ImageNeverPullError, ImageRef, RegistryClient, RegistryError, check_digest
from nestlab.runtime import disks, proc

Digest = NewType("Digest", str)
PullPolicy = Literal["Always", "IfNotPresent", "Never"]
DISK = "rootfs.erofs"
CONFIG = "image.json"


@dataclass(frozen=True)
class ImageConfig:
    """What the image says about running it (OCI image config ``config`` section)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = "/"
    user: str = ""


@dataclass(frozen=True)
class Image:
    """A pulled image: its disk, ready to attach read-only to any number of pods."""

    ref: str
    digest: Digest
    disk: Path
    config: ImageConfig


def parse_config(doc: dict[str, Any]) -> ImageConfig:
    """The runtime part of an OCI image config document."""
    conf = doc.get("config") or {}
    env: list[tuple[str, str]] = []
    for item in conf.get("Env") or []:
        name, _, value = str(item).partition("=")
        env.append((name, value))
    return ImageConfig(
        entrypoint=tuple(str(a) for a in conf.get("Entrypoint") or ()),
        cmd=tuple(str(a) for a in conf.get("Cmd") or ()),
        env=tuple(env),
        working_dir=str(conf.get("WorkingDir") or "/"),
        user=str(conf.get("User") or ""),
    )


def default_policy(image: str) -> PullPolicy:
    """Upstream's default: ``Always`` for ``:latest`` or no tag, else ``IfNotPresent``."""
    last = image.rsplit("/", 1)[-1]
    return "Always" if ":" not in last or image.endswith(":latest") else "IfNotPresent"


def pull_policy(pod: dict[str, Any], container: str) -> tuple[PullPolicy, str]:
    """The ``imagePullPolicy`` and ``image`` (as written) of ``container`` in ``pod``'s spec."""
    spec = pod.get("spec") or {}
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if isinstance(c, dict) and c.get("name") == container:
            image, policy = str(c.get("image") or ""), c.get("imagePullPolicy")
            for known in get_args(PullPolicy):
                if policy == known:
                    return known, image
            return default_policy(image), image
    return "IfNotPresent", ""


ClientFactory = Callable[[str], RegistryClient]


class ImageStore:
    """Image disks under ``root``/images/<hex digest>/, shared by every pod on the host."""

    def __init__(
        self,
        root: Path,
        client: ClientFactory = RegistryClient,
        run: proc.Runner = proc.run,
    ) -> None:
        self.root = root
        self._client = client
        self._run = run
        self._lock = threading.Lock()
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(exist_ok=True)

    def _dir(self, digest: str) -> Path:
        return self.root / "images" / digest.removeprefix("sha256:")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One pull or collection at a time, across threads and across agent processes."""
        with self._lock, (self.root / "lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _refs(self) -> dict[str, str]:
        try:
            data = json.loads((self.root / "refs.json").read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _remember(self, ref: str, digest: str) -> None:
        refs = self._refs()
        refs[ref] = digest
        tmp = self.root / "refs.json.tmp"
        tmp.write_text(json.dumps(refs, indent=1, sort_keys=True))
        os.replace(tmp, self.root / "refs.json")

    def cached(self, ref: ImageRef) -> Image | None:
        """The disk ``ref`` last resolved to (or names, by digest), if it is still here."""
        digest = ref.reference if ref.reference.startswith("sha256:") else self._refs().get(str(ref))
        return None if digest is None else self.load(str(ref), Digest(digest))

    def load(self, ref: str, digest: Digest) -> Image | None:
        """The image with manifest ``digest``, if its disk is complete."""
        directory = self._dir(digest)
        if not (directory / DISK).is_file():
            return None
        config = parse_config(json.loads((directory / CONFIG).read_text()))
        return Image(ref, digest, directory / DISK, config)

    def pull(
        self,
        ref: ImageRef,
        *,
        always: bool = False,
        policy: PullPolicy = "IfNotPresent",
        shown: str = "",
        pod: str = "",
    ) -> Image:
        """The image's disk as ``policy`` says (``always`` is ``policy="Always"``): ``IfNotPresent``
        pulls and builds it unless present, ``Always`` re-resolves the tag first, ``Never`` only
        looks (:class:`ImageNeverPullError` naming ``shown``, the image as the pod wrote it, if absent).
        ``pod`` (``namespace/name``) is who the pull is for: the registry token is scoped to it, and a
        disk cached for one namespace is used for another only once the registry lets that namespace
        pull it (upstream's KubeletEnsureSecretPulledImages: a cache never widens who may run an image)."""
        always = always or policy == "Always"
        namespace = pod.partition("/")[0]
        with self._locked():
            if not always and (hit := self.cached(ref)) is not None:
                if pod and namespace not in self._grants().get(hit.digest, ()):
                    if policy == "Never":  # never ask the registry: as if the image were not here
                        raise ImageNeverPullError(shown or str(ref))
                    client = self._client(ref.registry).for_pod(pod)
                    client.manifest(
                        ImageRef(ref.registry, ref.repository, hit.digest)
                    )  # may this pod pull it?
                    self._grant(hit.digest, namespace)
                os.utime(self._dir(hit.digest))
                return hit
            if policy == "Never":
                raise ImageNeverPullError(shown or str(ref))
            client = self._client(ref.registry)
            if pod:
                client = client.for_pod(pod)
            digest, manifest = client.manifest(ref)
            image = self.load(str(ref), Digest(digest)) or self._build(client, ref, Digest(digest), manifest)
            self._remember(str(ref), digest)
            if pod:
                self._grant(digest, namespace)
            os.utime(self._dir(digest))  # last use: collect() spares recently pulled images
            return image

    def _grants(self) -> dict[str, list[str]]:
        """Image digest -> namespaces whose pods the registry let pull it on this host."""
        try:
            data = json.loads((self.root / "grants.json").read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): [str(n) for n in v] for k, v in data.items() if isinstance(v, list)}

    def _grant(self, digest: str, namespace: str) -> None:
        grants = self._grants()
        if namespace in grants.setdefault(digest, []):
            return
        grants[digest].append(namespace)
        tmp = self.root / "grants.json.tmp"
        tmp.write_text(json.dumps(grants, indent=1, sort_keys=True))
        os.replace(tmp, self.root / "grants.json")

    def _build(
        self, client: RegistryClient, ref: ImageRef, digest: Digest, manifest: dict[str, Any]
    ) -> Image:
        work = Path(tempfile.mkdtemp(prefix="pull-", dir=self.root / "tmp"))
        try:
            config_digest = check_digest(
                str((manifest.get("config") or {}).get("digest")), f"image {ref} config"
            )
            config_doc = json.loads(client.blob(ref.repository, config_digest, work / "config").read_text())
            if not isinstance(config_doc, dict):
                raise RegistryError(f"image {ref}: config is not a JSON object")  # noqa: TRY301
            rootfs = work / "rootfs"
            rootfs.mkdir()
            rootfs.chmod(0o755)  # the image's / (mkdtemp's 0700 would lock non-root users out)
            for layer in manifest["layers"]:
                layer_digest = check_digest(str(layer.get("digest")), f"image {ref} layer")
                blob = client.blob(ref.repository, layer_digest, work / "layer")
                layers.apply(blob, rootfs)
                blob.unlink()
            disks.make_image(rootfs, work / DISK, run=self._run)
            (work / CONFIG).write_text(json.dumps(config_doc))
            shutil.rmtree(rootfs)
            (work / "config").unlink()
            (work / "manifest.json").write_text(json.dumps(manifest))
            final = self._dir(digest)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        image = self.load(str(ref), digest)
        assert image is not None  # noqa: S101 - just renamed into place
        return image

    def digests(self) -> set[Digest]:
        """Every complete image on disk."""
        return {Digest("sha256:" + d.name) for d in (self.root / "images").iterdir() if (d / DISK).is_file()}

    def collect(self, in_use: Set[str], min_age_s: float = 0.0) -> list[Digest]:
        """Remove every image no pod uses and that is older than ``min_age_s`` (a pod between its pull
        and its launch is not yet counted as a user), and half-finished pulls; the digests removed."""
        with self._locked():
            cutoff = time.time() - min_age_s
            removed = sorted(
                d for d in self.digests() if d not in in_use and self._dir(d).stat().st_mtime <= cutoff
            )
            for digest in removed:
                shutil.rmtree(self._dir(digest), ignore_errors=True)
            for leftover in (self.root / "tmp").iterdir():
                shutil.rmtree(leftover, ignore_errors=True)
            refs = {k: v for k, v in self._refs().items() if v not in removed}
            (self.root / "refs.json").write_text(json.dumps(refs, indent=1, sort_keys=True))
            grants = {k: v for k, v in self._grants().items() if k not in removed}
            (self.root / "grants.json").write_text(json.dumps(grants, indent=1, sort_keys=True))
            return removed
