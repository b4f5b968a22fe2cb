"""``nestlab-trust`` as a host runs it: the REAL command (a subprocess) against a REAL swtpm.

Measured boot twice gives the same PCRs, a TPM reset starts a fresh log, enrollment and
credential activation satisfy the verifier's ``attest.register``, and evidence verifies with a
policy that knows the boot components, until a tamper drill measures a "rootkit" package.
"""

from __future__ import annotations

import json
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nestlab.runtime import proc
from nestlab.trust import attest, eventlog, pcrs, swtpm
from nestlab.trust.measure import file_digest
from nestlab.trust.policy import Policy
from nestlab.trust.verdict import HostName

pytestmark = pytest.mark.integration
HOST = HostName("esx-09")


@dataclass(frozen=True)
class Host:
    tpm: swtpm.Swtpm
    log: Path
    files: Path

    def trust(self, *args: str, stdin: str | None = None) -> str:
        argv = [
            sys.executable,
            "-m",
            "nestlab.agent.trustcli",
            "--tpm",
            self.tpm.tcti,
            "--log",
            str(self.log),
        ]
        return proc.run([*argv, *args], timeout=120, stdin=stdin).stdout

    def boot_args(self) -> list[str]:
        return [
            *("--package", f"nestlab-pod-kernel={self.files / 'nestlab-pod-kernel.deb'}"),
            *("--package", f"nestlab={self.files / 'nestlab.whl'}"),
            *("--config", str(self.files / "nestlab-agent.service")),
        ]


def _deb(directory: Path) -> Path:
    """A real (tiny) .deb, so the version comes from dpkg-deb as on a host."""
    root = directory / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: nestlab-pod-kernel\nVersion: 6.1+nl0123456789ab\nArchitecture: amd64\n"
        "Maintainer: nestlab <lab@nestlab.invalid>\nDescription: test package\n"
    )
    (root / "usr" / "lib" / "nestlab").mkdir(parents=True)
    (root / "usr" / "lib" / "nestlab" / "x").write_text("x\n")
    deb = directory / "nestlab-pod-kernel.deb"
    proc.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], timeout=60)
    return deb


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    root = tmp_path_factory.mktemp("host-trust")
    files = root / "files"
    files.mkdir()
    _deb(files)
    with zipfile.ZipFile(files / "nestlab.whl", "w") as wheel:
        wheel.writestr(
            "nestlab-0.1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: nestlab\nVersion: 0.1.0\n"
        )
    (files / "nestlab-agent.service").write_text("[Service]\nExecStart=/opt/nestlab/bin/nestlab-agent\n")
    instance = swtpm.start_swtpm(root / "state", log=root / "swtpm.log")
    try:
        yield Host(instance, root / "run" / "measurements.json", files)
    finally:
        instance.stop()


def _pcrs(host: Host) -> dict[int, bytes]:
    return host.tpm.tpm().pcr_read(pcrs.MEASURED)


def test_measure_boot_is_idempotent_and_a_tpm_reset_starts_a_fresh_log(host: Host) -> None:
    host.tpm.reboot()
    first = host.trust("measure-boot", *host.boot_args())
    assert [line.split()[0] for line in first.splitlines()] == ["measured"] * 3
    assert "nestlab-pod-kernel 6.1+nl0123456789ab" in first
    after_first = _pcrs(host)
    assert after_first[pcrs.PCR_PACKAGES] != pcrs.ZERO
    assert after_first[pcrs.PCR_CONFIG] != pcrs.ZERO

    second = host.trust("measure-boot", *host.boot_args())
    assert [line.split()[0] for line in second.splitlines()] == ["skipped"] * 3
    assert _pcrs(host) == after_first

    host.tpm.reboot()
    third = host.trust("measure-boot", *host.boot_args())
    assert [line.split()[0] for line in third.splitlines()] == ["measured"] * 3
    log = eventlog.parse(host.log.read_text())
    assert len(log.events) == 3
    assert eventlog.replay(log.events) == _pcrs(host) == after_first


def test_enroll_activate_and_evidence_verify_until_a_rootkit_is_measured(host: Host) -> None:
    host.tpm.reboot()
    host.trust("measure-boot", *host.boot_args())
    offered = json.loads(host.trust("enroll"))
    enrollment = attest.Enrollment(bytes.fromhex(offered["ekPublic"]), bytes.fromhex(offered["akPublic"]))
    assert json.loads(host.trust("enroll")) == offered  # persisted keys are reused
    # what the registrar records as the host's firmware: a swtpm saw none, so PCRs 0-7 are zero
    assert offered["firmwarePcrs"] == {str(index): pcrs.ZERO.hex() for index in pcrs.FIRMWARE}

    def activate(blob: bytes) -> bytes:
        return bytes.fromhex(host.trust("activate", stdin=blob.hex()).strip())

    registration = attest.register(HOST, enrollment, activate)

    def gather(nonce: bytes) -> attest.Evidence:
        return attest.evidence_from_json(json.loads(host.trust("evidence", "--nonce", nonce.hex())))

    policy = Policy(
        name="host-trust-test",
        packages={
            "nestlab-pod-kernel": frozenset({file_digest(host.files / "nestlab-pod-kernel.deb")}),
            "nestlab": frozenset({file_digest(host.files / "nestlab.whl")}),
        },
        kernels=frozenset(),
        initramfs=frozenset(),
        configs=frozenset({file_digest(host.files / "nestlab-agent.service")}),
    )
    passed = attest.attest_host(registration, policy, gather)
    assert passed.passed, passed.reasons
    assert len(passed.events) == 3

    rootkit = host.files / "rootkit.deb"
    rootkit.write_bytes(b"not what the lab built")
    out = host.trust("measure", "--type", "package", "--name", "rootkit", "--version", "6.6.6", str(rootkit))
    assert "into PCR 8" in out
    failed = attest.attest_host(registration, policy, gather)
    assert not failed.passed
    assert any("rootkit" in reason for reason in failed.reasons), failed.reasons


def test_usage_errors_exit_2_with_a_message(host: Host) -> None:
    argv = [sys.executable, "-m", "nestlab.agent.trustcli", "--tpm", host.tpm.tcti, "--log", str(host.log)]
    result = proc.run([*argv, "evidence", "--nonce", "xyz"], timeout=60, check=False)
    assert result.returncode == 2
    assert "not hex" in result.stderr


def _unclean_reset(host: Host) -> None:
    """A host failure: the TPM is reset with no TPM2_Shutdown first (a dictionary-attack failure)."""
    instance = host.tpm
    proc.run(["swtpm_ioctl", "--tcp", f"{instance.host}:{instance.ctrl_port}", "-i"], timeout=10)
    instance.tpm().startup()


def test_measured_boot_clears_the_lockout_that_unclean_resets_cause(host: Host) -> None:
    host.trust("enroll")
    tpm = host.tpm.tpm()
    refusal = ""
    for _ in range(40):  # swtpm locks out after a few unorderly resets; far fewer than 40
        _unclean_reset(host)
        try:
            tpm.quote(bytes(16), [pcrs.PCR_PACKAGES])
        except swtpm.TpmError as exc:
            refusal = str(exc)
            break
    assert "lockout" in refusal.lower(), f"unclean resets did not lock the AK out: {refusal!r}"
    host.trust("measure-boot", *host.boot_args())
    assert tpm.quote(bytes(16), [pcrs.PCR_PACKAGES]).message, "the AK quotes again after measured boot"
