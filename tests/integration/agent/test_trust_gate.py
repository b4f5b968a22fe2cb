"""The launch gate in the REAL agent: REAL sbverify, a REAL swtpm and REAL pod microVMs (QEMU, TCG).

The agent is started with the trust gate on (``--kernel-cert``) against a signed pod kernel image
"installed" in a temp dir. A pod boots from it and the host's event log gains its three launch
events, replaying to the TPM's PCR 11; a flipped byte in the installed image, or a changed
initramfs, fails the next pod with KernelVerificationFailed and no QEMU is ever started for it.
"""

from __future__ import annotations

import json
import secrets
import shutil
import ssl
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nestlab.trust import akcert, attest, eventlog, pcrs, swtpm, tpm
from nestlab.trust.measure import file_digest
from nestlab.trust.policy import Policy
from nestlab.trust.verdict import HostName, Verdict
from nestlab.trust.verify import Registration, verify
from tests.integration.agent import signed_kernel
from tests.integration.agent.conftest import (
    AgentProcess,
    Registry,
    qemu_pids,
    start_agent,
    stop_agent,
    wait_until,
)
from tests.integration.agent.test_agent import _events, _get, _pod, _wait_phase, busybox_image, namespace
from tests.integration.api.conftest import ApiServer
from tests.integration.swtpm_running import running_swtpm

pytestmark = pytest.mark.integration
__all__ = ["busybox_image", "namespace"]  # fixtures shared with the agent's other tests
HOST = HostName("esx-07")


@pytest.fixture(scope="module")
def signed_pod_kernel(
    pod_boot: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> signed_kernel.SignedPodKernel:
    return signed_kernel.build(pod_boot[0], pod_boot[1], tmp_path_factory.mktemp("signed"))


@pytest.fixture(scope="module")
def host_swtpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[swtpm.Swtpm]:
    with running_swtpm(tmp_path_factory.mktemp("gate-swtpm")) as instance:
        yield instance


@dataclass(frozen=True)
class GatedHost:
    agent: AgentProcess
    tpm: swtpm.Swtpm
    image: Path
    """The installed signed image (tests may damage it)."""
    initrd: Path
    log: Path
    registration: Registration
    ca_cert: Path
    """The attestation CA that issued the host's AK certificate."""


@pytest.fixture(scope="module")
def host_registration(host_swtpm: swtpm.Swtpm) -> Registration:
    return attest.register(HOST, attest.enroll(host_swtpm.tpm()), host_swtpm.tpm().activate_credential)


@pytest.fixture
def gated(  # noqa: PLR0917 - pytest passes fixtures positionally
    apiserver: ApiServer,
    registry: Registry,
    pod_boot: tuple[Path, Path],
    signed_pod_kernel: signed_kernel.SignedPodKernel,
    host_swtpm: swtpm.Swtpm,
    host_registration: Registration,
    tmp_path: Path,
) -> Iterator[GatedHost]:
    installed = tmp_path / "pod-kernel"
    installed.mkdir()
    image = Path(shutil.copyfile(signed_pod_kernel.image, installed / "vmlinux.efi"))
    initrd = Path(shutil.copyfile(signed_pod_kernel.initrd, installed / "initramfs.cpio"))
    host_swtpm.reboot()
    log = tmp_path / "run" / "measurements.json"
    attestation = tmp_path / "attestation"
    attestation.mkdir()
    registration_json = json.dumps(attest.registration_to_json(host_registration))
    (attestation / "registration.json").write_text(registration_json)
    akcert.issue_ak_certificate(signed_pod_kernel.keys, host_registration, attestation / "ak.crt")
    agent = start_agent(
        apiserver, registry, pod_boot, tmp_path,
        "--kernel-image", str(image), "--initrd", str(initrd), "--kernel-cert", str(signed_pod_kernel.cert),
        "--tpm", host_swtpm.tcti, "--measure-log", str(log), "--attestation-dir", str(attestation),
    )  # fmt: skip
    try:
        yield GatedHost(
            agent, host_swtpm, image, initrd, log, host_registration, signed_pod_kernel.keys.ca_cert
        )
    finally:
        stop_agent(agent)


def _create(apiserver: ApiServer, name: str, image: str) -> None:
    code, body = apiserver.request(
        "POST", "/api/v1/namespaces/agent-it/pods", _pod(name, image, ["sh", "-c", "echo verified"])
    )
    assert code == 201, body


def _refused(apiserver: ApiServer, host: GatedHost, name: str) -> dict[str, Any]:
    pod = _wait_phase(apiserver, name, ("Failed", "Succeeded", "Running"))
    assert pod["status"]["phase"] == "Failed", pod["status"]
    assert pod["status"]["reason"] == "KernelVerificationFailed"
    assert qemu_pids(host.agent.state) == []
    assert not (host.agent.state / "pods" / pod["metadata"]["uid"] / "vm" / "console.log").exists()
    warnings = [e for e in _events(apiserver, name) if e["reason"] == "KernelVerificationFailed"]
    assert warnings
    assert warnings[0]["type"] == "Warning"
    return dict(warnings[0])


def test_a_signed_kernel_boots_and_its_launch_is_measured_into_pcr_11(
    apiserver: ApiServer, gated: GatedHost, namespace: str, busybox_image: str
) -> None:
    _create(apiserver, "signed", busybox_image)
    pod = _wait_phase(apiserver, "signed", ("Succeeded", "Failed"))
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    vm_dir = gated.agent.state / "pods" / pod["metadata"]["uid"] / "vm"
    wait_until(lambda: not (vm_dir / "vmlinux").exists(), "the verified copies removed", timeout=60)
    assert not (vm_dir / "vmlinux.efi").exists()
    assert (vm_dir / "console.log").exists()  # logs stay until the pod is deleted
    events = eventlog.parse(gated.log.read_text()).events
    assert [e.type for e in events] == ["pod-kernel", "pod-initramfs", "pod-cmdline"]
    assert {e.data["pod"] for e in events} == {"agent-it/signed"}
    assert events[0].data["sha256"] == file_digest(gated.image)
    assert events[1].data["sha256"] == file_digest(gated.initrd)
    tpm_pcr = gated.tpm.tpm().pcr_read([pcrs.PCR_PODS])[pcrs.PCR_PODS]
    assert eventlog.replay(events)[pcrs.PCR_PODS] == tpm_pcr != pcrs.ZERO

    # the verifier's view, through the real agent's POST /attestation (lab-CA client certificate)
    policy = Policy(
        "gate", {}, frozenset({file_digest(gated.image)}), frozenset({file_digest(gated.initrd)}), frozenset()
    )
    verdict = _attest(apiserver, gated, policy)
    assert verdict.passed, verdict.reasons
    assert len(verdict.events) == 3
    unknown_kernel = Policy("gate", {}, frozenset(), frozenset({file_digest(gated.initrd)}), frozenset())
    refused = _attest(apiserver, gated, unknown_kernel)
    assert not refused.passed
    assert any("agent-it/signed" in reason for reason in refused.reasons), refused.reasons


def _attest(apiserver: ApiServer, gated: GatedHost, policy: Policy) -> Verdict:
    context = ssl.create_default_context(cafile=str(apiserver.pki.ca))
    context.load_cert_chain(str(apiserver.pki.alice_cert), str(apiserver.pki.alice_key))
    nonce = secrets.token_bytes(attest.NONCE_SIZE)
    request = urllib.request.Request(  # noqa: S310 - https to the agent on loopback
        f"{gated.agent.log_url}/attestation",
        data=json.dumps({"nonce": nonce.hex()}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, context=context, timeout=60) as response:  # noqa: S310 - loopback
        answer = json.loads(response.read())
    received = attest.registration_from_json(answer["registration"])
    assert received == gated.registration
    certificate = gated.log.with_name("ak.crt")
    certificate.write_text(answer["akCertificate"])
    akcert.check_ak_certificate(gated.ca_cert, certificate, received)
    return verify(
        registration=received,
        policy=policy,
        nonce=nonce,
        evidence=attest.evidence_from_json(answer["evidence"]),
        check_signature=tpm.check_quote_signature,
        now=datetime.now(UTC),
    )


def test_a_flipped_byte_or_a_changed_initramfs_is_refused_without_qemu(
    apiserver: ApiServer, gated: GatedHost, namespace: str, busybox_image: str
) -> None:
    data = bytearray(gated.image.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside .linux: the kernel QEMU would boot
    original = gated.image.read_bytes()
    gated.image.write_bytes(bytes(data))
    _create(apiserver, "flipped", busybox_image)
    warning = _refused(apiserver, gated, "flipped")
    assert str(gated.image) in warning["message"]
    assert "is not signed by" in warning["message"]

    gated.image.write_bytes(original)
    with gated.initrd.open("ab") as initrd:
        initrd.write(b"\0" * 512)  # a cpio archive still, but not the one the signature binds
    _create(apiserver, "changed-initrd", busybox_image)
    warning = _refused(apiserver, gated, "changed-initrd")
    assert str(gated.initrd) in warning["message"]
    assert "initramfs was changed" in warning["message"]
    assert _get(apiserver, "changed-initrd")["status"]["phase"] == "Failed"
    assert not gated.log.exists() or eventlog.parse(gated.log.read_text()).events == ()
    assert gated.tpm.tpm().pcr_read([pcrs.PCR_PODS])[pcrs.PCR_PODS] == pcrs.ZERO
