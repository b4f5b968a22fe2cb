"""Kernel signing with the lab db key on a real Debian cloud kernel; one flipped byte is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nestlab.trust import kernelsign, keys, manifest
from nestlab.trust.errors import SignatureError

from .kernel_image import cloud_kernel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab_keys(tmp_path_factory: pytest.TempPathFactory) -> keys.LabKeys:
    return keys.ensure_lab_keys(tmp_path_factory.mktemp("keys") / "lab", "demo")


@pytest.fixture(scope="module")
def signed(lab_keys: keys.LabKeys, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("kernel") / "vmlinuz.signed"
    return kernelsign.sign_kernel(lab_keys, cloud_kernel(), output)


def test_signed_kernel_verifies_with_the_lab_certificate(lab_keys: keys.LabKeys, signed: Path) -> None:
    assert kernelsign.verify_kernel(lab_keys.kernel_cert, signed) is None
    kernelsign.require_signed(lab_keys.kernel_cert, signed)


def test_unsigned_kernel_is_refused(lab_keys: keys.LabKeys) -> None:
    problem = kernelsign.verify_kernel(lab_keys.kernel_cert, cloud_kernel())
    assert problem is not None
    assert "No signature table present" in problem


def test_one_flipped_byte_is_refused(lab_keys: keys.LabKeys, signed: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "vmlinuz.tampered"
    content = bytearray(signed.read_bytes())
    content[len(content) // 2] ^= 0x01  # inside the compressed kernel payload
    tampered.write_bytes(bytes(content))
    problem = kernelsign.verify_kernel(lab_keys.kernel_cert, tampered)
    assert problem is not None
    assert "Image fails hash check" in problem
    with pytest.raises(SignatureError, match=r"refusing kernel .*vmlinuz\.tampered"):
        kernelsign.require_signed(lab_keys.kernel_cert, tampered)


def test_another_labs_certificate_does_not_verify(signed: Path, tmp_path: Path) -> None:
    other = keys.ensure_lab_keys(tmp_path / "other", "other")
    assert kernelsign.verify_kernel(other.kernel_cert, signed) is not None


def test_signing_something_that_is_not_a_pe_image_fails_clearly(
    lab_keys: keys.LabKeys, tmp_path: Path
) -> None:
    (tmp_path / "notpe").write_bytes(b"just text\n" * 100)
    with pytest.raises(Exception, match="is it a PE/EFI-stub kernel"):
        kernelsign.sign_kernel(lab_keys, tmp_path / "notpe", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_manifest_of_the_kernel_tree_catches_a_flipped_byte(signed: Path, tmp_path: Path) -> None:
    tree = tmp_path / "pkg"
    (tree / "boot").mkdir(parents=True)
    shutil.copyfile(signed, tree / "boot" / "vmlinuz")
    (tree / "boot" / "config").write_text("CONFIG_VIRTIO_MMIO=y\n")
    recorded = manifest.parse_manifest(manifest.build_manifest(tree).dumps())
    assert manifest.check_manifest(recorded, tree) == []
    content = bytearray((tree / "boot" / "vmlinuz").read_bytes())
    content[-1] ^= 0x80
    (tree / "boot" / "vmlinuz").write_bytes(bytes(content))
    problems = manifest.check_manifest(recorded, tree)
    assert len(problems) == 1
    assert problems[0].startswith("changed: boot/vmlinuz")
