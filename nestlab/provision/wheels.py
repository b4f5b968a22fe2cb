"""The wheelhouse the depot serves: nestlab and its base dependencies, built on the outer machine.

Lab nodes have no route out, so they install nestlab with ``pip --no-index --find-links`` from the
depot. The wheelhouse holds the nestlab wheel, the wheels of ``[project] dependencies`` (never the
``outer`` extra: nodes do not provision or run Pulumi) and pip itself (nodes' python3 has no
ensurepip; a venv made ``--without-pip`` runs pip straight from its wheel).

Two caches under ``cache_dir()/wheels``, each keyed by content: the dependency wheels by the
dependency list, the nestlab wheel by the package sources. Editing the API rebuilds one small wheel
and downloads nothing. Both are merged into ``<lab dir>/wheelhouse``, and packed into one
reproducible archive (:func:`lab_wheelhouse_archive`) that the depot role unpacks: copying a directory
costs Ansible a round trip per file (over a minute for the forty wheels on a loaded machine).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from nestlab import paths
from nestlab.errors import NestlabError
from nestlab.paths import LabFiles
from nestlab.runtime import proc

PIP_TIMEOUT_S = 600.0  # a cold download of aiohttp and its dependencies over a slow mirror
PACKAGE_SUFFIXES = (".py", ".c", ".yaml", ".txt", ".j2", ".cfg")  # what setuptools packs (package-data)
PIP_REQUIREMENT = "pip>=23"  # any pip that knows --find-links over HTTP and wheels


KEEP_NESTLAB_BUILDS = 4  # recent source states kept, so switching between branches does not rebuild
MANIFEST = "wheelhouse.json"  # the nestlab wheel's name and the set's digest, read by the roles


class WheelhouseError(NestlabError):
    """The wheelhouse could not be built."""


@dataclass(frozen=True)
class Wheelhouse:
    """The merged wheelhouse of one lab."""

    path: Path
    """Directory of ``*.whl`` files (the depot serves it as /wheels/)."""
    nestlab_wheel: str
    """File name of the nestlab wheel in it."""
    digest: str
    """Content digest of the whole set (changes when any wheel changes)."""


def lab_wheelhouse(files: LabFiles) -> Path:
    """Where a lab's wheelhouse is mirrored (the depot role publishes it from there)."""
    return files.root / "wheelhouse"


def lab_wheelhouse_archive(files: LabFiles) -> Path:
    """The lab's wheelhouse as one archive (roles/depot: depot_wheelhouse_archive), made by
    :func:`nestlab.provision.archive.pack_tree`."""
    return files.root / "wheelhouse.tar"


NODE_EXTRAS = ("apiserver",)  # extras some nodes install (control-plane nodes: nestlab[apiserver])


def base_dependencies(pyproject: Path) -> list[str]:
    """``[project] dependencies`` and the node extras' (the ``outer`` extra is left out)."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    extras = data["project"].get("optional-dependencies", {})
    return [str(d) for d in data["project"]["dependencies"]] + [
        str(d) for name in NODE_EXTRAS for d in extras.get(name, [])
    ]


def source_digest(root: Path) -> str:
    """Digest of everything that goes into the nestlab wheel: pyproject.toml and the package files."""
    h = hashlib.sha256()
    files = [root / "pyproject.toml", *sorted((root / "nestlab").rglob("*"))]
    for path in files:
        if path.is_file() and (path.name == "pyproject.toml" or path.suffix in PACKAGE_SUFFIXES):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def requirements_digest(requirements: list[str]) -> str:
    """Digest of a dependency list (and the interpreter it is resolved for)."""
    key = "\n".join([f"py{sys.version_info.major}.{sys.version_info.minor}", PIP_REQUIREMENT, *requirements])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _build(target: Path, argv: list[str], out_flag: str, runner: proc.Runner) -> None:
    """Run a pip command into a scratch directory and move it to ``target`` only when it succeeded."""
    scratch = target.with_name(target.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        runner([*argv, out_flag, str(scratch)], timeout=PIP_TIMEOUT_S)
    except proc.ProcessError as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise WheelhouseError(
            f"building wheels failed ({' '.join(argv[:4])}...): {exc}; the outer machine needs PyPI for the "
            "first build of the wheelhouse"
        ) from exc
    os.replace(scratch, target)


def _source_tree(root: Path, scratch: Path) -> Path:
    """A copy of what the wheel is built from, so setuptools' build/ and egg-info stay out of the checkout."""
    tree = scratch / "nestlab"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (root / name).exists():
            shutil.copy2(root / name, tree / name)
    shutil.copytree(root / "nestlab", tree / "nestlab", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tree


def ensure_wheelhouse(dest: Path, *, root: Path | None = None, runner: proc.Runner = proc.run) -> Wheelhouse:
    """Build (or reuse from the cache) the wheelhouse and mirror it into ``dest``."""
    root = root or paths.repo_root()
    python = sys.executable
    requirements = base_dependencies(root / "pyproject.toml")
    cache = paths.cache_dir() / "wheels"
    deps = cache / f"deps-{requirements_digest(requirements)}"
    if not deps.is_dir():
        pip_download = [python, "-m", "pip", "download", "--quiet", "--only-binary", ":all:"]
        _build(deps, [*pip_download, PIP_REQUIREMENT, *requirements], "--dest", runner)
    own = cache / f"nestlab-{source_digest(root)}"
    if not own.is_dir():
        _prune(cache)
        with tempfile.TemporaryDirectory(prefix="nestlab-sdist-") as tree:
            source = _source_tree(root, Path(tree))
            _build(
                own,
                [python, "-m", "pip", "wheel", "--quiet", "--no-deps", str(source)],
                "--wheel-dir",
                runner,
            )
    wheels = sorted([*deps.glob("*.whl"), *own.glob("*.whl")])
    ours = [w.name for w in own.glob("nestlab-*.whl")]
    if len(ours) != 1:
        raise WheelhouseError(
            f"{own} should hold exactly one nestlab wheel, found {ours}; remove it and retry"
        )
    house = Wheelhouse(dest, ours[0], _mirror(wheels, dest))
    manifest = json.dumps({"nestlabWheel": house.nestlab_wheel, "digest": house.digest}, indent=2) + "\n"
    if not (dest / MANIFEST).exists() or (dest / MANIFEST).read_text(encoding="utf-8") != manifest:
        (dest / MANIFEST).write_text(manifest, encoding="utf-8")
    return house


def _prune(cache: Path) -> None:
    """Keep the newest few nestlab wheels: every source edit makes one, and they are cheap to rebuild."""
    builds = [p for p in cache.glob("nestlab-*") if p.suffix != ".partial"]
    builds.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in builds[KEEP_NESTLAB_BUILDS - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def _mirror(wheels: list[Path], dest: Path) -> str:
    """Make ``dest`` hold exactly ``wheels`` (copies, so the lab dir outlives a cache clean)."""
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {w.name: w for w in wheels}
    for stale in dest.glob("*.whl"):
        if stale.name not in wanted:
            stale.unlink()
    h = hashlib.sha256()
    for name, source in sorted(wanted.items()):
        data = source.read_bytes()
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        target = dest / name
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
    return h.hexdigest()[:16]
