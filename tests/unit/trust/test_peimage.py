"""The PE reader on a small real image (systemd's EFI stub + sections added by objcopy) and on
malformed ones: exact section bytes, and PeImageError (never another exception) for bad input."""

from __future__ import annotations

import contextlib
import hashlib
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nestlab.runtime import proc
from nestlab.trust import peimage
from nestlab.trust.peimage import PeImageError
from tests.fakes import FakeRunner

STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
KERNEL = bytes(range(256)) * 37 + b"tail"  # 9476 bytes: not a multiple of the 512-byte file alignment
INITRD_SHA = hashlib.sha256(b"initramfs").hexdigest()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if not STUB.exists():
        pytest.fail(f"{STUB} is missing: run scripts/bootstrap.sh (systemd-boot-efi)")
    root = tmp_path_factory.mktemp("pe")
    (root / "vmlinux").write_bytes(KERNEL)
    return peimage.wrap(STUB, root / "vmlinux", INITRD_SHA, root / "out.efi").read_bytes()


def _section_header_offset(data: bytes, name: str) -> int:
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    count, optional_size = (
        struct.unpack_from("<H", data, pe + 6)[0],
        struct.unpack_from("<H", data, pe + 20)[0],
    )
    table = pe + 24 + optional_size
    for index in range(count):
        entry = table + 40 * index
        if data[entry : entry + 8].rstrip(b"\0").decode() == name:
            return entry
    raise AssertionError(f"no section {name}")


def _raw_offset(data: bytes, name: str) -> int:
    return int(struct.unpack_from("<I", data, _section_header_offset(data, name) + 20)[0])


def test_linux_section_is_exactly_the_kernel_although_the_raw_data_is_padded(image: bytes) -> None:
    layout = {s.name: s for s in peimage.read_layout(image).sections}
    linux = layout[".linux"]
    assert linux.virtual_size == len(KERNEL)
    assert linux.raw_size > linux.virtual_size  # padded to the file alignment
    kernel, digest = peimage.linux_and_initrd_digest(image)
    assert kernel == KERNEL
    assert digest == INITRD_SHA


def test_stub_sections_are_kept_and_new_ones_placed_after_them(image: bytes) -> None:
    stub = {s.name: s for s in peimage.read_layout(STUB.read_bytes()).sections}
    sections = peimage.read_layout(image).sections
    assert [s.name for s in sections] == [*stub, ".irdsha", ".linux"]
    stub_end = max(s.virtual_address + s.raw_size for s in stub.values())
    added = [s for s in sections if s.name in (".irdsha", ".linux")]
    assert all(s.virtual_address >= stub_end and s.virtual_address % 0x1000 == 0 for s in added)
    assert peimage.read_sections(image)[".sbat"] == peimage.read_sections(STUB.read_bytes())[".sbat"]


def test_the_stub_alone_is_not_a_pod_kernel_image() -> None:
    with pytest.raises(PeImageError, match=r"no \.linux or \.irdsha section"):
        peimage.linux_and_initrd_digest(STUB.read_bytes())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"ZM" + d[2:], "DOS 'MZ' signature"),
        (lambda d: d[:0x3E], "truncated: e_lfanew"),
        (lambda d: d[:0x3C] + struct.pack("<I", len(d) + 10) + d[0x40:], "no 'PE' signature"),
        (lambda d: d[:0x180], "truncated"),
        (lambda d: d[: _raw_offset(d, ".linux") + 100], r"section '\.linux' claims bytes .* truncated"),
    ],
    ids=["not-mz", "short-dos-header", "pe-offset-beyond-file", "short-section-table", "cut-kernel"],
)
def test_malformed_images_are_refused(image: bytes, mutate: object, message: str) -> None:
    assert callable(mutate)
    with pytest.raises(PeImageError, match=message):
        peimage.linux_and_initrd_digest(mutate(image))


def test_two_sections_with_one_name_are_refused(image: bytes) -> None:
    entry = _section_header_offset(image, ".irdsha")
    doubled = image[:entry] + b".linux\0\0" + image[entry + 8 :]
    with pytest.raises(PeImageError, match=r"two sections named '\.linux'"):
        peimage.read_sections(doubled)


@pytest.mark.parametrize(
    ("replacement", "message"),
    [
        (INITRD_SHA.upper().encode() + b"\n", "64 lowercase hex"),
        (INITRD_SHA.encode() + b" ", "and a newline"),
        (b"g" + INITRD_SHA[1:].encode() + b"\n", "64 lowercase hex"),
    ],
    ids=["uppercase", "no-newline", "not-hex"],
)
def test_a_bad_initramfs_digest_is_refused(image: bytes, replacement: bytes, message: str) -> None:
    start = _raw_offset(image, ".irdsha")
    bad = image[:start] + replacement + image[start + len(replacement) :]
    with pytest.raises(PeImageError, match=message):
        peimage.linux_and_initrd_digest(bad)


class Sample:
    """The image under a short name: hypothesis prints its arguments when an example fails."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"<pod kernel image, {len(self.data)} bytes>"


@pytest.fixture(scope="module")
def sample(image: bytes) -> Sample:
    return Sample(image)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=st.integers(min_value=0, max_value=0x400), value=st.integers(min_value=0, max_value=255))
def test_any_corrupted_header_byte_gives_pe_image_error_or_a_parse(
    sample: Sample, offset: int, value: int
) -> None:
    corrupted = sample.data[:offset] + bytes([value]) + sample.data[offset + 1 :]
    with contextlib.suppress(PeImageError):
        peimage.read_sections(corrupted)


@settings(deadline=None)  # a loaded shared machine must not turn into a failure
@given(st.binary(max_size=600))
def test_random_bytes_never_escape_as_another_exception(data: bytes) -> None:
    with contextlib.suppress(PeImageError):
        peimage.read_sections(b"MZ" + data)


def test_wrap_refuses_a_digest_that_is_not_sha256(tmp_path: Path) -> None:
    runner = FakeRunner()
    with pytest.raises(PeImageError, match="not a sha256"):
        peimage.wrap(STUB, tmp_path / "vmlinux", "abc", tmp_path / "out.efi", runner)
    assert runner.calls == []


def test_wrap_names_a_missing_stub(tmp_path: Path) -> None:
    with pytest.raises(PeImageError, match="install systemd-boot-efi"):
        peimage.wrap(
            tmp_path / "nostub", tmp_path / "vmlinux", INITRD_SHA, tmp_path / "out.efi", FakeRunner()
        )


def test_wrap_leaves_no_output_when_objcopy_fails(tmp_path: Path) -> None:
    (tmp_path / "vmlinux").write_bytes(KERNEL)
    runner = FakeRunner(lambda args, _cwd: proc.Result(args, 1, "", "objcopy: out of memory"))
    with pytest.raises(PeImageError, match=r"objcopy could not add the kernel .*out of memory"):
        peimage.wrap(STUB, tmp_path / "vmlinux", INITRD_SHA, tmp_path / "out.efi", runner)
    assert runner.tools() == ["objcopy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vmlinux"]
