"""The signed pod-kernel package and the signed apt repository the depot serves it from.

vSphere ships the CRX kernel in a signed VIB from a depot; nestlab ships the pod kernel as a .deb
from a signed apt repository on the depot node. Built on the outer machine, where the lab's keys
live (they never leave the lab state directory): the vmlinux is wrapped in an EFI-stub PE image
(:mod:`nestlab.trust.peimage`), sbsign'ed with the lab kernel key, packaged with the initramfs and a
manifest of both, and published with reprepro; ``Release`` is signed with the lab's OpenPGP key
(``InRelease`` + ``Release.gpg``), so a host's apt refuses anything the lab did not sign.

The build is idempotent and atomic: ``out_dir/stamp.json`` records the digests of every input
(kernel, initramfs, EFI stub, both public keys); a call with the same inputs runs no tool at all, and
a new build is made in a sibling directory that replaces ``out_dir`` only once it is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from nestlab.errors import NestlabError
from nestlab.runtime import proc
from nestlab.trust import kernelsign, manifest, peimage
from nestlab.trust.keys import LabKeys
from nestlab.trust.measure import file_digest

STUB: Final = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")  # Debian's systemd-boot-efi
PACKAGE: Final = "nestlab-pod-kernel"
INSTALL_DIR: Final = "usr/lib/nestlab/pod-kernel"  # where the package puts its three files on a host
IMAGE: Final = "vmlinux.efi"
INITRAMFS: Final = "initramfs.cpio"
MANIFEST: Final = "MANIFEST.json"
SUITE: Final = "nestlab"
COMPONENT: Final = "main"
ARCH: Final = "amd64"
KERNEL_SERIES: Final = "6.1"  # the pod kernel is built from Debian's linux-source-6.1
HOST_APT_KEY: Final = "/etc/nestlab/trust/apt-signing.asc"  # where roles/pod_kernel installs the key
DEFAULT_URL: Final = "http://depot/apt"
_STAMP: Final = "stamp.json"
_FORMAT: Final = "nestlab-pod-kernel-repo/1"  # bump when the build changes, so stamps from before miss
_EPOCH: Final = "1700000000"  # SOURCE_DATE_EPOCH: file times in the .deb do not depend on the build time
_TIMEOUT: Final = 300.0  # seconds: compressing a ~17 MB kernel on a busy 2-core machine, with margin


class PodKernelError(NestlabError):
    """The pod-kernel package or its repository could not be built."""


@dataclass(frozen=True)
class PodKernelRepo:
    """A built, signed pod-kernel repository; every path lies inside the ``out_dir`` it was built in."""

    version: str
    """Package version, ``6.1+nl<12 hex>``: changes exactly when the kernel or initramfs change."""
    deb: Path
    """The package file, inside ``repo_dir``'s pool."""
    deb_sha256: str
    image: Path
    """A copy of the signed PE image (what the package installs as vmlinux.efi)."""
    image_sha256: str
    """sha256 of the SIGNED vmlinux.efi: the kernel a measurement policy allows."""
    initramfs_sha256: str
    repo_dir: Path
    """The apt repository (dists/, pool/) the depot role publishes as http://depot/apt/."""
    suite: str
    component: str
    apt_line: str
    """The sources line hosts use, signed-by pointing at the host path of the lab's apt key."""


def package_version(vmlinux: Path, initramfs: Path) -> str:
    """``6.1+nl`` + 12 hex of sha256(vmlinux bytes + initramfs bytes)."""
    digest = hashlib.sha256()
    for path in (vmlinux, initramfs):
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
    return f"{KERNEL_SERIES}+nl{digest.hexdigest()[:12]}"


def deb_name(version: str) -> str:
    return f"{PACKAGE}_{version}_{ARCH}.deb"


def apt_line(url: str = DEFAULT_URL, keyring: str = HOST_APT_KEY) -> str:
    return f"deb [arch={ARCH} signed-by={keyring}] {url} {SUITE} {COMPONENT}"


def control_text(version: str, installed_kib: int) -> str:
    """The DEBIAN/control file of the package."""
    return (
        f"Package: {PACKAGE}\nVersion: {version}\nArchitecture: {ARCH}\n"
        "Maintainer: nestlab <lab@nestlab.invalid>\nSection: kernel\nPriority: optional\n"
        f"Installed-Size: {installed_kib}\n"
        "Description: nestlab pod kernel, signed with the lab's kernel key\n"
        " The sbsign'ed EFI-stub image wrapping the pod microVM kernel (.linux) and the\n"
        " sha256 of its initramfs (.irdsha), the initramfs, and a manifest of both. The node\n"
        " agent verifies the signature before every pod launch.\n"
    )


def distributions_text() -> str:
    """reprepro's conf/distributions: one suite, unsigned (Release is signed by :func:`_sign_release`)."""
    return (
        f"Origin: nestlab\nLabel: nestlab\nSuite: {SUITE}\nCodename: {SUITE}\n"
        f"Architectures: {ARCH}\nComponents: {COMPONENT}\nDescription: nestlab lab depot\n"
    )


def input_key(vmlinux: Path, initramfs: Path, stub: Path, keys: LabKeys) -> str:
    """Digest of everything a build depends on; the stamp records it."""
    parts = {
        "format": _FORMAT,
        "vmlinux": file_digest(vmlinux),
        "initramfs": file_digest(initramfs),
        "stub": file_digest(stub),
        "kernelCert": file_digest(keys.kernel_cert),
        "aptKey": file_digest(keys.apt_public),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _from_stamp(out_dir: Path, key: str) -> PodKernelRepo | None:
    try:
        stamp = json.loads((out_dir / _STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("key") != key:
        return None
    try:
        fields = dict(stamp["repo"])
        for name in ("deb", "image", "repo_dir"):
            fields[name] = out_dir / fields[name]
        repo = PodKernelRepo(**fields)
    except (KeyError, TypeError, ValueError):
        return None  # a stamp from another format: rebuild
    complete = (
        repo.deb.is_file()
        and repo.image.is_file()
        and (repo.repo_dir / "dists" / SUITE / "InRelease").is_file()
    )
    return repo if complete else None


def build_pod_kernel_repo(
    keys: LabKeys,
    vmlinux: Path,
    initramfs: Path,
    out_dir: Path,
    runner: proc.Runner = proc.run,
    *,
    stub: Path = STUB,
    url: str = DEFAULT_URL,
) -> PodKernelRepo:
    """Build (or reuse) the signed package and repository in ``out_dir`` (owned by this function)."""
    for path, what in ((vmlinux, "pod kernel"), (initramfs, "pod initramfs"), (stub, "EFI stub")):
        if not path.is_file():
            hint = "install systemd-boot-efi (scripts/bootstrap.sh)" if path == stub else "build it first"
            raise PodKernelError(f"{what} {path} does not exist; {hint}")
    key = input_key(vmlinux, initramfs, stub, keys)
    cached = _from_stamp(out_dir, key)
    if cached is not None:
        return cached
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=out_dir.parent))
    try:
        repo = _build(
            keys, vmlinux=vmlinux, initramfs=initramfs, stub=stub, stage=stage, url=url, runner=runner
        )
        stamp = {"key": key, "repo": {**asdict(repo), **_relative(repo, stage)}}
        (stage / _STAMP).write_text(json.dumps(stamp, indent=1) + "\n", encoding="utf-8")
        _replace(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    located = _from_stamp(out_dir, key)
    assert located is not None  # noqa: S101 - just written and moved into place
    return located


def _relative(repo: PodKernelRepo, root: Path) -> dict[str, str]:
    return {name: str(getattr(repo, name).relative_to(root)) for name in ("deb", "image", "repo_dir")}


def _replace(stage: Path, out_dir: Path) -> None:
    """Swap the finished ``stage`` in for ``out_dir``; the old build is deleted afterwards."""
    os.chmod(stage, 0o755)  # noqa: S103 - a public repository: mkdtemp made it 0700, the depot reads it
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / "build")
        os.replace(stage, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(stage, out_dir)


def _build(
    keys: LabKeys, *, vmlinux: Path, initramfs: Path, stub: Path, stage: Path, url: str, runner: proc.Runner
) -> PodKernelRepo:
    version = package_version(vmlinux, initramfs)
    initramfs_sha256 = file_digest(initramfs)
    tree = stage / "package"
    files = tree / INSTALL_DIR
    files.mkdir(parents=True)
    unsigned = peimage.wrap(stub, vmlinux, initramfs_sha256, stage / "vmlinux.efi.unsigned", runner)
    try:
        kernelsign.sign_kernel(keys, unsigned, files / IMAGE, runner)
    finally:
        unsigned.unlink(missing_ok=True)
    shutil.copyfile(initramfs, files / INITRAMFS)
    (files / MANIFEST).write_text(manifest.build_manifest(files).dumps(), encoding="utf-8")
    shutil.copyfile(files / IMAGE, stage / IMAGE)
    size_kib = sum(-(-p.stat().st_size // 1024) for p in files.iterdir())
    (tree / "DEBIAN").mkdir()
    (tree / "DEBIAN" / "control").write_text(control_text(version, size_kib), encoding="utf-8")
    for path in [tree, *tree.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    deb = stage / deb_name(version)
    env = {**os.environ, "SOURCE_DATE_EPOCH": _EPOCH}
    # gzip: a quarter of xz's time on the 17 MB kernel, and the package only travels inside the lab
    dpkg = ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)]
    runner(dpkg, timeout=_TIMEOUT, env=env)
    shutil.rmtree(tree)
    repo_dir = stage / "repo"
    _publish(deb, stage / "reprepro", repo_dir, runner)
    deb.unlink()
    _sign_release(keys, repo_dir / "dists" / SUITE, runner)
    pooled = next(repo_dir.glob(f"pool/**/{deb.name}"))
    return PodKernelRepo(
        version=version,
        deb=pooled,
        deb_sha256=file_digest(pooled),
        image=stage / IMAGE,
        image_sha256=file_digest(stage / IMAGE),
        initramfs_sha256=initramfs_sha256,
        repo_dir=repo_dir,
        suite=SUITE,
        component=COMPONENT,
        apt_line=apt_line(url),
    )


def _publish(deb: Path, base: Path, repo_dir: Path, runner: proc.Runner) -> None:
    """reprepro's database stays in ``base`` (deleted after); ``repo_dir`` gets only dists/ and pool/."""
    (base / "conf").mkdir(parents=True)
    (base / "conf" / "distributions").write_text(distributions_text(), encoding="utf-8")
    argv = ["reprepro", "--silent", "--basedir", str(base), "--outdir", str(repo_dir)]
    try:
        runner([*argv, "includedeb", SUITE, str(deb)], timeout=_TIMEOUT)
    except proc.ProcessError as exc:
        raise PodKernelError(f"reprepro could not publish {deb.name}: {exc}") from exc
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _sign_release(keys: LabKeys, dist: Path, runner: proc.Runner) -> None:
    """InRelease (clearsigned) and Release.gpg (detached) with the lab's apt key.

    gpg-agent's socket lives in the homedir unless /run/user/<uid> exists, and socket paths are limited
    to 108 bytes, so the signing happens in a short-named copy of the keyring. The agent is stopped
    afterwards so no process outlives the build, and the copy is deleted.
    """
    with tempfile.TemporaryDirectory(prefix="nlgpg-", dir="/tmp") as short:  # a short path on purpose
        copy = LabKeys(Path(short))
        shutil.copytree(keys.gnupg_home, copy.gnupg_home, ignore=shutil.ignore_patterns("S.*", "*.lock"))
        os.chmod(copy.gnupg_home, 0o700)
        home = str(copy.gnupg_home)
        release = str(dist / "Release")
        try:
            fingerprint = copy.apt_fingerprint(runner)
            gpg = [
                "gpg",
                "--homedir",
                home,
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ]
            gpg += ["--local-user", fingerprint, "--digest-algo", "SHA512"]
            runner([*gpg, "--clearsign", "--output", str(dist / "InRelease"), release], timeout=_TIMEOUT)
            runner(
                [*gpg, "--armor", "--detach-sign", "--output", str(dist / "Release.gpg"), release],
                timeout=_TIMEOUT,
            )
        except proc.ProcessError as exc:
            raise PodKernelError(
                f"signing {release} with the lab apt key in {keys.gnupg_home} failed: {exc}"
            ) from exc
        finally:
            runner(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], timeout=_TIMEOUT, check=False)
