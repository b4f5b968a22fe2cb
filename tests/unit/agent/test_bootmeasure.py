"""Measured boot and the host trust CLI's input checks with a fake TPM (the integration test uses swtpm)."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from nestlab.agent import bootmeasure
from nestlab.agent.attestation import BadChallengeError, parse_nonce
from nestlab.agent.bootmeasure import ComponentError
from nestlab.runtime.proc import Result
from nestlab.trust import eventlog, firmware, pcrs
from nestlab.trust.measure import Measurer
from tests.fakes import FakeRunner


class FakeTpm:
    """PCRs that really extend (sha256), so "all zero" means what it means on a TPM."""

    def __init__(self) -> None:
        self.values = dict.fromkeys(range(24), pcrs.ZERO)

    def pcr_extend(self, index: int, digest: bytes) -> None:
        self.values[index] = eventlog.extend(self.values[index], digest)

    def pcr_read(self, indexes: Sequence[int]) -> dict[int, bytes]:
        return {i: self.values[i] for i in indexes}


def dpkg(version: str) -> FakeRunner:
    return FakeRunner(
        lambda args, _cwd: Result(args, 0, version + "\n", "") if args[0] == "dpkg-deb" else None
    )


def components(tmp_path: Path) -> tuple[list[tuple[str, Path]], list[Path]]:
    deb = tmp_path / "kernel.deb"
    deb.write_bytes(b"deb bytes")
    wheel = tmp_path / "nestlab.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(
            "nestlab-0.3.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: nestlab\nVersion: 0.3.1\n"
        )
    config = tmp_path / "nestlab-agent.service"
    config.write_text("[Service]\nExecStart=/opt/nestlab/bin/nestlab-agent\n")
    return [("nestlab-pod-kernel", deb), ("nestlab", wheel)], [config]


def test_measure_boot_is_idempotent_and_starts_fresh_after_a_tpm_reset(tmp_path: Path) -> None:
    tpm = FakeTpm()
    measurer = Measurer(tpm, tmp_path / "run" / "log.json")
    packages, configs = components(tmp_path)
    first = bootmeasure.measure_boot(tpm, measurer, packages, configs, dpkg("6.1+nl0123"))
    assert [o.action for o in first] == ["measured"] * 3
    assert [o.description for o in first][:2] == ["nestlab-pod-kernel 6.1+nl0123", "nestlab 0.3.1"]
    after_first = dict(tpm.values)
    second = bootmeasure.measure_boot(tpm, measurer, packages, configs, dpkg("6.1+nl0123"))
    assert [o.action for o in second] == ["skipped"] * 3
    assert tpm.values == after_first
    assert len(measurer.read().events) == 3

    tpm.values = dict.fromkeys(range(24), pcrs.ZERO)  # host reboot: the old log no longer matches
    third = bootmeasure.measure_boot(tpm, measurer, packages, configs, dpkg("6.1+nl0123"))
    assert [o.action for o in third] == ["measured"] * 3
    assert len(measurer.read().events) == 3
    assert eventlog.replay(measurer.read().events) == tpm.pcr_read(pcrs.MEASURED)


def test_a_changed_component_is_measured_again(tmp_path: Path) -> None:
    tpm = FakeTpm()
    measurer = Measurer(tpm, tmp_path / "log.json")
    packages, configs = components(tmp_path)
    bootmeasure.measure_boot(tpm, measurer, packages, configs, dpkg("1"))
    configs[0].write_text("[Service]\nExecStart=/bin/sh\n")
    again = bootmeasure.measure_boot(tpm, measurer, packages, configs, dpkg("1"))
    assert [o.action for o in again] == ["skipped", "skipped", "measured"]


def test_missing_or_unversioned_components_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match="does not exist"):
        bootmeasure.package_version(tmp_path / "nope.deb")
    (tmp_path / "x.tar").write_bytes(b"x")
    with pytest.raises(ComponentError, match=r"only \.deb and \.whl"):
        bootmeasure.package_version(tmp_path / "x.tar")
    with pytest.raises(ComponentError, match="NAME=PATH"):
        bootmeasure.parse_package("just-a-path.deb")
    assert bootmeasure.parse_package("a=/b.deb") == ("a", Path("/b.deb"))


def test_a_wheel_without_metadata_takes_its_version_from_its_name(tmp_path: Path) -> None:
    wheel = tmp_path / "nestlab-0.2.0-py3-none-any.whl"
    wheel.write_bytes(b"not a zip")
    assert bootmeasure.package_version(wheel) == "0.2.0"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "JSON object"),
        ({"nonce": "zz"}, "hexadecimal"),
        ({"nonce": ""}, "1 to 32"),
        ({"nonce": "00" * 33}, "1 to 32"),
    ],
)
def test_malformed_challenges_are_refused(body: object, problem: str) -> None:
    with pytest.raises(BadChallengeError, match=problem):
        parse_nonce(body)
    assert parse_nonce({"nonce": "ab" * 32}) == bytes.fromhex("ab" * 32)


def test_after_a_reset_on_a_libvirt_host_the_firmware_pcr9_event_is_not_taken_for_a_measured_boot(
    tmp_path: Path,
) -> None:
    """OVMF's log (recorded in the libvirt test's VM) has Linux's initrd event in PCR 9: a fresh boot."""
    firmware_log = (Path(__file__).parents[1] / "trust" / "fixtures" / "vm" / "firmware.log").read_bytes()
    booted = firmware.replay(firmware.parse(firmware_log).events, range(24))
    assert booted[pcrs.PCR_CONFIG] != pcrs.ZERO
    tpm = FakeTpm()
    measurer = Measurer(tpm, tmp_path / "run" / "log.json")
    packages, configs = components(tmp_path)
    tpm.values = dict(booted)
    bootmeasure.measure_boot(tpm, measurer, packages, configs, dpkg("6.1+nl0123"), firmware_log=firmware_log)
    tpm.values = dict(booted)  # reboot: the firmware measured the same things again, nestlab not yet
    again = bootmeasure.measure_boot(
        tpm, measurer, packages, configs, dpkg("6.1+nl0123"), firmware_log=firmware_log
    )
    assert [o.action for o in again] == ["measured"] * 3  # a fresh log, not "skipped" from the old one
    assert len(measurer.read().events) == 3
    second = bootmeasure.measure_boot(
        tpm, measurer, packages, configs, dpkg("6.1+nl0123"), firmware_log=firmware_log
    )
    assert [o.action for o in second] == ["skipped"] * 3
    # without the firmware log the same host looks already measured: the old log would be kept
    tpm.values = dict(booted)
    stale = bootmeasure.measure_boot(tpm, measurer, packages, configs, dpkg("6.1+nl0123"))
    assert [o.action for o in stale] == ["skipped"] * 3
