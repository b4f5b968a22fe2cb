"""The signed pod-kernel package and its signed apt repository, built and consumed by the real tools:
objcopy, sbsign/sbverify, dpkg-deb, reprepro, gpg, and apt (with gpgv) in a throwaway root fetching
over HTTP from 127.0.0.1. A repository signed with another lab's key is refused by apt."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from nestlab import paths
from nestlab.provision import podkernel
from nestlab.runtime import proc
from nestlab.runtime.initramfs import Entry, newc
from nestlab.trust import kernelsign, keys, manifest, peimage

pytestmark = pytest.mark.integration

CHECK_SCRIPT = paths.repo_root() / "roles" / "pod_kernel" / "files" / "check-manifest.py"


def stand_in_kernel() -> Path:
    """A cached pod vmlinux when one was built already; any ELF otherwise (the wrapper does not care)."""
    built = sorted((paths.cache_dir() / "kernels").glob("*/.complete"))
    return built[0].parent / "vmlinux" if built else Path("/bin/true")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("inputs")
    vmlinux = root / "vmlinux"
    shutil.copyfile(stand_in_kernel(), vmlinux)
    initramfs = root / "initramfs.cpio"
    initramfs.write_bytes(newc([Entry("init", 0o100755, b"#!/bin/sh\necho pod\n")]))
    return vmlinux, initramfs


@pytest.fixture(scope="module")
def lab_keys(tmp_path_factory: pytest.TempPathFactory) -> keys.LabKeys:
    return keys.ensure_lab_keys(tmp_path_factory.mktemp("keys") / "lab", "demo")


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> keys.LabKeys:
    return keys.ensure_lab_keys(tmp_path_factory.mktemp("keys") / "other", "other")


@pytest.fixture(scope="module")
def repo(
    lab_keys: keys.LabKeys, inputs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> podkernel.PodKernelRepo:
    return podkernel.build_pod_kernel_repo(lab_keys, *inputs, tmp_path_factory.mktemp("lab") / "apt")


class CountingRunner:
    """proc.run, counting calls: a warm build must not run any tool."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str], *, timeout: float, **kwargs: object) -> proc.Result:
        self.calls.append(tuple(argv))
        return proc.run(argv, timeout=timeout, **kwargs)  # type: ignore[arg-type]


def test_signed_image_verifies_with_the_lab_certificate_only(
    repo: podkernel.PodKernelRepo, lab_keys: keys.LabKeys, other_keys: keys.LabKeys
) -> None:
    assert kernelsign.verify_kernel(lab_keys.kernel_cert, repo.image) is None
    problem = kernelsign.verify_kernel(other_keys.kernel_cert, repo.image)
    assert problem is not None
    assert "Signature verification failed" in problem
    assert hashlib.sha256(repo.image.read_bytes()).hexdigest() == repo.image_sha256


def test_a_flipped_byte_in_the_kernel_section_fails_sbverify(
    repo: podkernel.PodKernelRepo, lab_keys: keys.LabKeys, tmp_path: Path
) -> None:
    data = bytearray(repo.image.read_bytes())
    linux = next(s for s in peimage.read_layout(bytes(data)).sections if s.name == ".linux")
    data[linux.raw_offset + linux.virtual_size // 2] ^= 0x01
    tampered = tmp_path / "vmlinux.efi"
    tampered.write_bytes(bytes(data))
    problem = kernelsign.verify_kernel(lab_keys.kernel_cert, tampered)
    assert problem is not None
    assert "Image fails hash check" in problem


def test_extracted_kernel_is_the_original_and_irdsha_binds_the_initramfs(
    repo: podkernel.PodKernelRepo, inputs: tuple[Path, Path]
) -> None:
    vmlinux, initramfs = inputs
    linux, irdsha = peimage.linux_and_initrd_digest(repo.image.read_bytes())
    assert linux == vmlinux.read_bytes()
    assert irdsha == hashlib.sha256(initramfs.read_bytes()).hexdigest() == repo.initramfs_sha256


def _extract(deb: Path, into: Path) -> Path:
    proc.run(["dpkg-deb", "-x", str(deb), str(into)], timeout=120)
    return into / podkernel.INSTALL_DIR


def test_package_installs_the_three_files_and_the_manifest_checks_clean(
    repo: podkernel.PodKernelRepo, inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    fields = proc.run(["dpkg-deb", "-f", str(repo.deb), "Package", "Version", "Architecture"], timeout=60)
    assert fields.stdout.split("\n")[:3] == [
        "Package: nestlab-pod-kernel",
        f"Version: {repo.version}",
        "Architecture: amd64",
    ]
    assert hashlib.sha256(repo.deb.read_bytes()).hexdigest() == repo.deb_sha256
    installed = _extract(repo.deb, tmp_path / "root")
    assert sorted(p.name for p in installed.iterdir()) == ["MANIFEST.json", "initramfs.cpio", "vmlinux.efi"]
    assert (installed / "vmlinux.efi").read_bytes() == repo.image.read_bytes()
    assert (installed / "initramfs.cpio").read_bytes() == inputs[1].read_bytes()
    recorded = manifest.parse_manifest((installed / "MANIFEST.json").read_text())
    assert sorted(recorded.files) == ["initramfs.cpio", "vmlinux.efi"]
    assert manifest.check_manifest(recorded, installed) == ["unexpected: MANIFEST.json"]


def test_the_roles_manifest_check_finds_a_changed_and_an_extra_file(
    repo: podkernel.PodKernelRepo, tmp_path: Path
) -> None:
    installed = _extract(repo.deb, tmp_path / "root")
    clean = proc.run(["/usr/bin/python3", str(CHECK_SCRIPT), str(installed)], timeout=60)
    assert "every file matches MANIFEST.json" in clean.stdout
    with (installed / "initramfs.cpio").open("ab") as stream:
        stream.write(b"\0")
    (installed / "extra").write_text("x")
    bad = proc.run(["/usr/bin/python3", str(CHECK_SCRIPT), str(installed)], timeout=60, check=False)
    assert bad.returncode == 1
    assert f"{installed}/initramfs.cpio: sha256" in bad.stdout
    assert f"{installed}/extra: unexpected file" in bad.stdout


def test_a_second_build_with_the_same_inputs_runs_no_tool(
    repo: podkernel.PodKernelRepo, lab_keys: keys.LabKeys, inputs: tuple[Path, Path]
) -> None:
    runner = CountingRunner()
    again = podkernel.build_pod_kernel_repo(lab_keys, *inputs, repo.repo_dir.parent, runner)
    assert again == repo
    assert runner.calls == []


def test_a_changed_initramfs_is_a_new_version_replacing_the_old_build(
    lab_keys: keys.LabKeys, inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "lab" / "apt"
    first = podkernel.build_pod_kernel_repo(lab_keys, *inputs, out)
    changed = tmp_path / "initramfs.cpio"
    changed.write_bytes(inputs[1].read_bytes() + b"\0" * 512)
    second = podkernel.build_pod_kernel_repo(lab_keys, inputs[0], changed, out)
    assert second.version != first.version
    assert second.version.startswith("6.1+nl")
    assert second.initramfs_sha256 != first.initramfs_sha256
    assert [p.name for p in out.rglob("*.deb")] == [podkernel.deb_name(second.version)]
    assert os.listdir(tmp_path / "lab") == ["apt"]  # no staging or old build left next to it
    (out / "stamp.json").write_text("{broken")
    assert podkernel.build_pod_kernel_repo(lab_keys, inputs[0], changed, out).version == second.version


# --- apt in a throwaway root, over HTTP on loopback -------------------------------------------------


@dataclass(frozen=True)
class Apt:
    """apt-get confined to ``root`` by APT_CONFIG: its own sources, lists, cache and no system parts."""

    root: Path
    env: Mapping[str, str]

    def __call__(self, *args: str, cwd: Path | None = None) -> proc.Result:
        return proc.run(["apt-get", *args], timeout=120, check=False, env=self.env, cwd=cwd)


def make_apt(root: Path, source_line: str, keyring: Path) -> Apt:
    for directory in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/trusted.gpg.d"):
        (root / directory).mkdir(parents=True)
    for directory in ("var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "log"):
        (root / directory).mkdir(parents=True)
    (root / "etc/apt/sources.list").write_text(
        source_line.replace(podkernel.HOST_APT_KEY, str(keyring)) + "\n"
    )
    (root / "apt.conf").write_text(
        f'Dir "{root}/";\nDir::State::status "{root}/status";\nDir::Log "{root}/log";\n'
        'Dir::Etc::sourceparts "-";\nDebug::NoLocking "true";\n'
        'APT::Sandbox::User "root";\n'  # pytest's 0700 temp dirs are closed to the _apt user
        'Acquire::http::Proxy "DIRECT";\n'
    )
    (root / "status").write_text("")
    return Apt(root, {**os.environ, "APT_CONFIG": str(root / "apt.conf"), "LC_ALL": "C"})


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """apt's requests are not worth a line each in the test output."""


@pytest.fixture
def serve() -> Iterator[object]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(directory: Path) -> str:
        handler = partial(QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_apt_accepts_the_lab_signed_repository_and_fetches_the_package(
    repo: podkernel.PodKernelRepo, lab_keys: keys.LabKeys, serve: object, tmp_path: Path
) -> None:
    assert callable(serve)
    url = serve(repo.repo_dir)
    apt = make_apt(tmp_path / "apt", podkernel.apt_line(url), lab_keys.apt_public)
    update = apt("update")
    assert update.returncode == 0, update.stdout + update.stderr
    assert "W:" not in update.stderr, update.stderr
    assert "E:" not in update.stderr, update.stderr
    (tmp_path / "dl").mkdir()
    fetched = apt("download", f"nestlab-pod-kernel={repo.version}", cwd=tmp_path / "dl")
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    [deb] = (tmp_path / "dl").glob("nestlab-pod-kernel_*.deb")
    assert hashlib.sha256(deb.read_bytes()).hexdigest() == repo.deb_sha256


def test_apt_refuses_a_repository_signed_with_another_key(
    lab_keys: keys.LabKeys,
    other_keys: keys.LabKeys,
    inputs: tuple[Path, Path],
    serve: object,
    tmp_path: Path,
) -> None:
    rogue = podkernel.build_pod_kernel_repo(other_keys, *inputs, tmp_path / "rogue")
    assert callable(serve)
    apt = make_apt(tmp_path / "apt", podkernel.apt_line(serve(rogue.repo_dir)), lab_keys.apt_public)
    update = apt("update")
    assert update.returncode != 0
    assert "NO_PUBKEY" in update.stderr
    assert "is not signed" in update.stderr
    assert not list((tmp_path / "apt" / "var/lib/apt/lists").glob("*Packages*"))


def test_apt_refuses_a_package_swapped_after_signing(
    repo: podkernel.PodKernelRepo, lab_keys: keys.LabKeys, serve: object, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    shutil.copytree(repo.repo_dir, served)
    swapped = served / repo.deb.relative_to(repo.repo_dir)
    content = bytearray(swapped.read_bytes())
    content[-1] ^= 0x01  # same size: only the signed index's sha256 can tell
    swapped.write_bytes(bytes(content))
    assert callable(serve)
    apt = make_apt(tmp_path / "apt", podkernel.apt_line(serve(served)), lab_keys.apt_public)
    assert apt("update").returncode == 0
    (tmp_path / "dl").mkdir()
    fetched = apt("download", f"nestlab-pod-kernel={repo.version}", cwd=tmp_path / "dl")
    assert fetched.returncode != 0
    assert "Hash Sum mismatch" in fetched.stderr, fetched.stderr
