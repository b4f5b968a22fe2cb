"""Fixtures for the trust chain against a real swtpm, as a ladder.

``swtpm_host`` (one swtpm per session, free loopback ports, state in a temp dir, stopped by PID)
-> ``registered`` (EK + AK enrolled and registered by real credential activation, once)
-> ``booted`` (per test: TPM reset like a host reboot, fresh event log, host components measured).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nestlab.trust import attest, measure, swtpm
from nestlab.trust.policy import Policy
from nestlab.trust.verdict import HostName, Verdict
from nestlab.trust.verify import Registration
from tests.integration.swtpm_running import running_swtpm

HOST = HostName("esx-01")


@pytest.fixture(scope="session")
def swtpm_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[swtpm.Swtpm]:
    with running_swtpm(tmp_path_factory.mktemp("swtpm")) as instance:
        yield instance


@pytest.fixture(scope="session")
def registered(swtpm_host: swtpm.Swtpm) -> Registration:
    tpm = swtpm_host.tpm()
    return attest.register(HOST, attest.enroll(tpm), tpm.activate_credential)


@dataclass(frozen=True)
class BootedHost:
    """A host right after boot: TPM reset, host components measured, nothing launched yet."""

    swtpm: swtpm.Swtpm
    registration: Registration
    measurer: measure.Measurer
    files: Path
    policy: Policy

    def gather(self, nonce: bytes) -> attest.Evidence:
        return attest.collect_evidence(self.swtpm.tpm(), self.measurer, nonce)

    def attest(self, policy: Policy | None = None) -> Verdict:
        return attest.attest_host(self.registration, policy or self.policy, self.gather)

    def pod(
        self, name: str, kernel: bytes = b"known kernel", cmdline: str = "console=hvc0"
    ) -> measure.PodLaunch:
        kernel_path = self.files / f"{name.replace('/', '_')}.vmlinuz"
        kernel_path.write_bytes(kernel)
        return measure.PodLaunch(name, kernel_path, self.files / "initramfs", cmdline)


@pytest.fixture
def booted(swtpm_host: swtpm.Swtpm, registered: Registration, tmp_path: Path) -> BootedHost:
    swtpm_host.reboot()
    measurer = measure.Measurer(swtpm_host.tpm(), tmp_path / "run" / "events.json")
    measurer.reset()
    (tmp_path / "agent.deb").write_bytes(b"nestlab-agent 0.1.0")
    (tmp_path / "agent.yaml").write_text("node: esx-01\n")
    (tmp_path / "initramfs").write_bytes(b"known initramfs")
    package = measurer.measure_package("nestlab-agent", "0.1.0", tmp_path / "agent.deb")
    config = measurer.measure_config(tmp_path / "agent.yaml")
    policy = Policy(
        name="integration",
        packages={"nestlab-agent": frozenset({package.data["sha256"]})},
        kernels=frozenset({hashlib.sha256(b"known kernel").hexdigest()}),
        initramfs=frozenset({measure.file_digest(tmp_path / "initramfs")}),
        configs=frozenset({config.data["sha256"]}),
        forbidden_cmdline_args=("init=", "rdinit="),
    )
    return BootedHost(swtpm_host, registered, measurer, tmp_path, policy)
