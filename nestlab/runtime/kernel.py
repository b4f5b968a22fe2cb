"""Build the just-enough pod kernel: tinyconfig + kernel/fragments, checked, cached by content.

A vSphere Pod boots its own Linux kernel, and boot time is pod start time. Debian's cloud kernel
carries virtio as modules and needs an initramfs to load them; this kernel has exactly the drivers
a QEMU ``microvm`` exposes built in, boots through PVH from an uncompressed vmlinux (nothing to
decompress under TCG) and cannot load modules. The result lives under
``cache_dir()/kernels/<key>/`` where ``key`` hashes the source tarball, the fragments and this
build code, so a second call is instant and any change rebuilds.

The compile reports progress (objects compiled, of the previous build's count) through the
``progress`` it is given, and names its full log (``<key>.build.log`` beside the cache entry).
Run ``python -m nestlab.runtime.kernel build`` (or ``make kernel``) to build and print the path.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nestlab import paths
from nestlab.progress import PlainProgress, Report
from nestlab.runtime import kbuild, kconfig, proc

SOURCE_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")  # Debian's linux-source-6.1 package
SOURCE_DIR_NAME = "linux-source-6.1"  # the top directory inside that tarball
FRAGMENTS_DIR = paths.repo_root() / "kernel" / "fragments"
ARCH = "x86_64"
JOBS = 2  # the build machines have two cores, shared with everything else
NICE = 10  # keep the lab's own services responsive while the kernel compiles
BUILD_TIMEOUT_S = 3600.0  # measured under 3 min on 2 idle cores; generous for a loaded machine
STEP_TIMEOUT_S = 300.0  # extracting the tarball or running a config target
_CHUNK = 1 << 20


class KernelBuildError(kconfig.KernelConfigError):
    """The kernel could not be built; the message names the failing step."""


@dataclass(frozen=True)
class PodKernel:
    """A built pod kernel in the cache."""

    key: str
    """sha256 of tarball + fragments + build code: the cache directory's name."""
    vmlinux: Path
    """Uncompressed ELF kernel with a PVH note, for ``qemu -kernel``."""
    config: Path
    """The final, checked .config."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tarball_sha256(tarball: Path, root: Path) -> str:
    """sha256 of the source tarball, remembered per (path, size, mtime): hashing it takes seconds."""
    info = tarball.stat()
    stamp = hashlib.sha256(f"{tarball.resolve()} {info.st_size} {info.st_mtime_ns}".encode()).hexdigest()
    memo = root / "src" / f"{stamp[:32]}.sha256"
    if memo.exists():
        return memo.read_text(encoding="ascii").strip()
    digest = file_sha256(tarball)
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(digest + "\n", encoding="ascii")
    return digest


def read_fragments(directory: Path = FRAGMENTS_DIR) -> list[tuple[str, str]]:
    """``(name, text)`` of every ``*.config`` fragment, in name order (the merge order)."""
    fragments = [(p.name, p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.config"))]
    if not fragments:
        raise KernelBuildError(f"no *.config fragments in {directory}")
    return fragments


def build_key(tarball_sha256: str, fragments: Sequence[tuple[str, str]], code: Sequence[bytes]) -> str:
    """The cache key: changes whenever the source, a fragment or the build code changes."""
    digest = hashlib.sha256()
    digest.update(f"tarball {tarball_sha256}\narch {ARCH}\n".encode())
    for name, text in fragments:
        digest.update(f"fragment {name} {len(text)}\n{text}".encode())
    for blob in code:
        digest.update(b"code %d\n" % len(blob) + blob)
    return digest.hexdigest()


def _build_code() -> list[bytes]:
    return [Path(kconfig.__file__).read_bytes(), Path(__file__).read_bytes()]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialize builds of one cache entry across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_source(tarball: Path, tarball_sha256: str, root: Path, run: proc.Runner = proc.run) -> Path:
    """The extracted source tree for ``tarball``, extracted once under ``root``."""
    base = root / "src" / tarball_sha256[:16]
    tree = base / SOURCE_DIR_NAME
    marker = base / ".complete"
    with _locked(base.with_suffix(".lock")):
        if marker.exists():
            return tree
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        run(["nice", "-n", str(NICE), "tar", "-xJf", str(tarball), "-C", str(base)], timeout=STEP_TIMEOUT_S)
        if not (tree / "Makefile").exists():
            raise KernelBuildError(f"{tarball} did not contain {SOURCE_DIR_NAME}/Makefile")
        marker.touch()
    return tree


def _make(tree: Path, out: Path, *targets: str, silent: bool = True) -> list[str]:
    quiet = ["-s"] if silent else []  # the compile is not silent: its CC lines are the progress
    return ["nice", "-n", str(NICE), "make", *quiet, "-C", str(tree), f"O={out}", f"ARCH={ARCH}", *targets]


def build(
    *,
    tarball: Path = SOURCE_TARBALL,
    fragments_dir: Path = FRAGMENTS_DIR,
    root: Path | None = None,
    run: proc.Runner = proc.run,
    progress: Report = lambda _message: None,
) -> PodKernel:
    """Build (or find in the cache) the pod kernel; KernelConfigError names any lost option."""
    if not tarball.exists():
        raise KernelBuildError(f"{tarball} is missing: install linux-source-6.1 (scripts/bootstrap.sh)")
    root = root or paths.cache_dir() / "kernels"
    fragments = read_fragments(fragments_dir)
    requirements = kconfig.merge_fragments(fragments)
    tarball_sha = tarball_sha256(tarball, root)
    key = build_key(tarball_sha, fragments, _build_code())
    final = root / key
    kernel = PodKernel(key, final / "vmlinux", final / "config")
    if (final / ".complete").exists():
        return kernel
    tree = ensure_source(tarball, tarball_sha, root, run)
    with _locked(root / f"{key}.lock"):
        if (final / ".complete").exists():
            return kernel
        work = root / f"{key}.work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        log = root / f"{key}.build.log"
        log.unlink(missing_ok=True)
        progress(f"pod kernel {key[:12]}: building it (minutes, once per source and config); log: {log}")
        try:
            _configure_and_compile(tree, work, requirements, run, _Compile(log, root, progress))
            _install(work, final, fragments)
        finally:
            shutil.rmtree(work, ignore_errors=True)  # objects are not reused: any change is a new key
    return kernel


@dataclass(frozen=True)
class _Compile:
    """Where the compile reports: its log, the cache root (object-count estimate), the progress."""

    log: Path
    root: Path
    progress: Report


def _configure_and_compile(
    tree: Path,
    work: Path,
    requirements: dict[kconfig.Option, kconfig.Requirement],
    run: proc.Runner,
    compile_: _Compile,
) -> None:
    """tinyconfig, the fragments merged in, olddefconfig, the check, then the compile (streamed)."""
    run(_make(tree, work, "tinyconfig"), timeout=STEP_TIMEOUT_S)
    dot_config = work / ".config"
    merged = kconfig.apply(dot_config.read_text(encoding="utf-8"), requirements)
    dot_config.write_text(merged, encoding="utf-8")
    run(_make(tree, work, "olddefconfig"), timeout=STEP_TIMEOUT_S)
    kconfig.ensure(requirements, dot_config.read_text(encoding="utf-8"))
    kbuild.compile_counting(
        _make(tree, work, f"-j{JOBS}", "vmlinux", silent=False),
        timeout=BUILD_TIMEOUT_S,
        log=compile_.log,
        estimate=compile_.root / kbuild.ESTIMATE_FILE,
        progress=compile_.progress,
        title="pod kernel: compiling",
    )


def _install(work: Path, final: Path, fragments: Sequence[tuple[str, str]]) -> None:
    """Copy the artifacts into the cache entry atomically (a staging directory, then a rename)."""
    staging = final.with_name(final.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    shutil.copy2(work / "vmlinux", staging / "vmlinux")
    shutil.copy2(work / ".config", staging / "config")
    (staging / "fragments.config").write_text("".join(text for _, text in fragments), encoding="utf-8")
    (staging / ".complete").touch()
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nestlab.runtime.kernel build``: build the pod kernel and print its path."""
    parser = argparse.ArgumentParser(prog="python -m nestlab.runtime.kernel", description=__doc__)
    parser.add_argument("command", choices=["build"])
    parser.parse_args(argv)
    try:
        kernel = build(progress=PlainProgress(lambda line: print(line, file=sys.stderr, flush=True)))
    except kconfig.KernelConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except proc.ProcessError as exc:
        print(f"error: kernel build failed: {exc}", file=sys.stderr)
        return exc.exit_code
    print(kernel.vmlinux)
    return 0


if __name__ == "__main__":
    sys.exit(main())
