"""Measurer: the right PCR per event type, extend before log, one log per boot."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from nestlab.trust import eventlog, measure
from nestlab.trust.errors import MeasurementError
from nestlab.trust.measure import Measurer, PodLaunch, file_digest


class FakeTpm:
    """Keeps PCRs in memory like a TPM's sha256 bank."""

    def __init__(self) -> None:
        self.pcrs: dict[int, bytes] = {}
        self.fail = False

    def pcr_extend(self, index: int, digest: bytes) -> None:
        if self.fail:
            raise MeasurementError("TPM unavailable")
        self.pcrs[index] = eventlog.extend(self.pcrs.get(index, bytes(32)), digest)


@pytest.fixture
def launch(tmp_path: Path) -> PodLaunch:
    (tmp_path / "vmlinuz").write_bytes(b"kernel")
    (tmp_path / "initrd").write_bytes(b"initrd")
    return PodLaunch("demo/web", tmp_path / "vmlinuz", tmp_path / "initrd", "console=hvc0")


def test_pod_launch_is_three_events_in_pcr_11_that_replay_to_the_tpm(
    tmp_path: Path, launch: PodLaunch
) -> None:
    tpm = FakeTpm()
    measurer = Measurer(tpm, tmp_path / "run" / "events.json")
    measurer.reset()
    kernel, initramfs, cmdline = measurer.measure_pod_launch(launch)
    assert (kernel.type, initramfs.type, cmdline.type) == ("pod-kernel", "pod-initramfs", "pod-cmdline")
    assert {kernel.pcr, initramfs.pcr, cmdline.pcr} == {11}
    assert kernel.data["sha256"] == hashlib.sha256(b"kernel").hexdigest()
    assert kernel.digest == eventlog.template_digest("pod-kernel", "pod demo/web kernel", kernel.data)
    assert cmdline.data == {"pod": "demo/web", "cmdline": "console=hvc0"}
    log = measurer.read()
    assert [event.seq for event in log.events] == [0, 1, 2]
    assert eventlog.replay(log.events)[11] == tpm.pcrs[11]


def test_host_components_go_to_pcr_8_and_9(tmp_path: Path) -> None:
    (tmp_path / "agent.deb").write_bytes(b"deb")
    (tmp_path / "agent.yaml").write_text("a: 1\n")
    tpm = FakeTpm()
    measurer = Measurer(tpm, tmp_path / "events.json")
    package = measurer.measure_package("nestlab-agent", "0.1.0", tmp_path / "agent.deb")
    config = measurer.measure_config(tmp_path / "agent.yaml")
    assert (package.pcr, config.pcr) == (8, 9)
    assert package.description == "nestlab-agent 0.1.0"
    assert set(tpm.pcrs) == {8, 9}


def test_reset_starts_an_empty_log(tmp_path: Path, launch: PodLaunch) -> None:
    measurer = Measurer(FakeTpm(), tmp_path / "events.json")
    measurer.measure_pod_launch(launch)
    measurer.reset()
    assert measurer.read().events == ()


def test_unassigned_type_is_refused_before_touching_the_tpm(tmp_path: Path) -> None:
    tpm = FakeTpm()
    with pytest.raises(MeasurementError, match="no PCR is assigned to event type 'bios'"):
        Measurer(tpm, tmp_path / "events.json").measure("bios", "x", {})
    assert tpm.pcrs == {}


def test_failed_extend_logs_nothing(tmp_path: Path, launch: PodLaunch) -> None:
    tpm = FakeTpm()
    measurer = Measurer(tpm, tmp_path / "events.json")
    tpm.fail = True
    with pytest.raises(MeasurementError):
        measurer.measure_pod_launch(launch)
    assert measurer.read().events == ()


def test_failed_log_write_after_extend_says_the_host_will_fail_attestation(
    tmp_path: Path, launch: PodLaunch, monkeypatch: pytest.MonkeyPatch
) -> None:
    tpm = FakeTpm()
    measurer = Measurer(tpm, tmp_path / "events.json")
    measurer.reset()

    def disk_full(path: Path, text: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(measure, "_write_atomic", disk_full)
    with pytest.raises(MeasurementError, match=r"extended PCR 11 but could not log it.*until it reboots"):
        measurer.measure_pod_launch(launch)
    assert 11 in tpm.pcrs
    assert measurer.read().events == ()


def test_file_digest_streams_large_files(tmp_path: Path) -> None:
    content = b"x" * (3 * (1 << 20) + 5)
    (tmp_path / "big").write_bytes(content)
    assert file_digest(tmp_path / "big") == hashlib.sha256(content).hexdigest()
