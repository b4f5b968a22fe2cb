"""The pod-kernel package's pure parts (version, control file, sources line, input key) and the
build's atomicity: a failing tool leaves the previous build and no staging directory behind."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from nestlab.provision import podkernel
from nestlab.runtime import proc
from nestlab.trust.keys import LabKeys
from tests.fakes import FakeRunner


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "vmlinux").write_bytes(b"\x7fELF kernel")
    (tmp_path / "initramfs.cpio").write_bytes(b"070701 initramfs")
    return tmp_path / "vmlinux", tmp_path / "initramfs.cpio"


@pytest.fixture
def lab_keys(tmp_path: Path) -> LabKeys:
    keys = LabKeys(tmp_path / "keys")
    (keys.root / "gnupg").mkdir(parents=True)
    keys.apt_public.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    keys.kernel_cert.write_text("-----BEGIN CERTIFICATE-----\n")
    return keys


def test_version_is_the_kernel_series_and_12_hex_of_both_inputs(inputs: tuple[Path, Path]) -> None:
    version = podkernel.package_version(*inputs)
    assert re.fullmatch(r"6\.1\+nl[0-9a-f]{12}", version)
    assert podkernel.package_version(*inputs) == version
    inputs[1].write_bytes(b"070701 another initramfs")
    assert podkernel.package_version(*inputs) != version


def test_version_changes_with_the_kernel(inputs: tuple[Path, Path]) -> None:
    before = podkernel.package_version(*inputs)
    inputs[0].write_bytes(b"\x7fELF kernel 2")
    assert podkernel.package_version(*inputs) != before


def test_control_file_has_the_fields_dpkg_requires() -> None:
    text = podkernel.control_text("6.1+nl0123456789ab", 17000)
    fields = dict(line.split(": ", 1) for line in text.splitlines() if not line.startswith(" "))
    assert fields["Package"] == "nestlab-pod-kernel"
    assert fields["Version"] == "6.1+nl0123456789ab"
    assert fields["Architecture"] == "amd64"
    assert fields["Installed-Size"] == "17000"
    assert {"Maintainer", "Description"} <= fields.keys()
    assert text.endswith("\n")


def test_apt_line_trusts_only_the_lab_key_at_its_host_path() -> None:
    assert podkernel.apt_line() == (
        "deb [arch=amd64 signed-by=/etc/nestlab/trust/apt-signing.asc] http://depot/apt nestlab main"
    )
    assert podkernel.deb_name("6.1+nlab") == "nestlab-pod-kernel_6.1+nlab_amd64.deb"


def test_input_key_covers_kernel_initramfs_stub_and_both_public_keys(
    inputs: tuple[Path, Path], lab_keys: LabKeys, tmp_path: Path
) -> None:
    stub = tmp_path / "stub"
    stub.write_bytes(b"MZ stub")
    seen = {podkernel.input_key(*inputs, stub, lab_keys)}
    for path in (*inputs, stub, lab_keys.kernel_cert, lab_keys.apt_public):
        path.write_bytes(path.read_bytes() + b"changed")
        seen.add(podkernel.input_key(*inputs, stub, lab_keys))
    assert len(seen) == 6


def test_a_missing_stub_names_the_package_to_install(
    inputs: tuple[Path, Path], lab_keys: LabKeys, tmp_path: Path
) -> None:
    runner = FakeRunner()
    with pytest.raises(podkernel.PodKernelError, match="install systemd-boot-efi"):
        podkernel.build_pod_kernel_repo(lab_keys, *inputs, tmp_path / "out", runner, stub=tmp_path / "none")
    assert runner.calls == []


def _tools_that_work_until_reprepro(args: tuple[str, ...], _cwd: Path | None) -> proc.Result | None:
    """objcopy and sbsign copy their input to their output, dpkg-deb writes a file, reprepro fails."""
    if args[0] == "objcopy":
        shutil.copyfile(args[-2], args[-1])
    elif args[0] == "sbsign":
        shutil.copyfile(args[-1], args[args.index("--output") + 1])
    elif args[0] == "dpkg-deb":
        Path(args[-1]).write_bytes(b"!<arch>\n")
    elif args[0] == "reprepro":
        return proc.Result(args, 254, "", "reprepro: database locked")
    return None


def test_a_failed_build_keeps_the_previous_one_and_leaves_no_staging(
    inputs: tuple[Path, Path], lab_keys: LabKeys, tmp_path: Path
) -> None:
    stub = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
    out = tmp_path / "lab" / "apt"
    out.mkdir(parents=True)
    (out / "previous").write_text("the last good build")
    runner = FakeRunner(_tools_that_work_until_reprepro)
    with pytest.raises(podkernel.PodKernelError, match=r"reprepro could not publish .*database locked"):
        podkernel.build_pod_kernel_repo(lab_keys, *inputs, out, runner, stub=stub)
    assert runner.tools() == ["objcopy", "sbsign", "dpkg-deb", "reprepro"]
    assert [p.name for p in (tmp_path / "lab").iterdir()] == ["apt"]
    assert [p.name for p in out.iterdir()] == ["previous"]
