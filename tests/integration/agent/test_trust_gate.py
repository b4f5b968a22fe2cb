"""The launch gate in the REAL agent: REAL sbverify, a REAL swtpm and REAL pod microVMs (QEMU, TCG).

The agent is started with the trust gate on (``--kernel-cert``) against a signed pod kernel image
"installed" in a temp dir. A pod boots from it and the host's event log gains its three launch
events, replaying to the TPM's PCR 11; a flipped byte in the installed image, or a changed
initramfs, fails the next pod with KernelVerificationFailed and no QEMU is ever started for it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nestlab.trust import eventlog, pcrs, swtpm
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

pytestmark = pytest.mark.integration
__all__ = ["busybox_image", "namespace"]  # fixtures shared with the agent's other tests


@pytest.fixture(scope="module")
def signed_pod_kernel(
    pod_boot: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> signed_kernel.SignedPodKernel:
    return signed_kernel.build(pod_boot[0], pod_boot[1], tmp_path_factory.mktemp("signed"))


@pytest.fixture(scope="module")
def host_swtpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[swtpm.Swtpm]:
    root = tmp_path_factory.mktemp("gate-swtpm")
    instance = swtpm.start_swtpm(root / "state", log=root / "swtpm.log")
    try:
        yield instance
    finally:
        instance.stop()


@dataclass(frozen=True)
class GatedHost:
    agent: AgentProcess
    tpm: swtpm.Swtpm
    image: Path
    """The installed signed image (tests may damage it)."""
    initrd: Path
    log: Path


@pytest.fixture
def gated(  # noqa: PLR0917 - pytest passes fixtures positionally
    apiserver: ApiServer,
    registry: Registry,
    pod_boot: tuple[Path, Path],
    signed_pod_kernel: signed_kernel.SignedPodKernel,
    host_swtpm: swtpm.Swtpm,
    tmp_path: Path,
) -> Iterator[GatedHost]:
    installed = tmp_path / "pod-kernel"
    installed.mkdir()
    image = Path(shutil.copyfile(signed_pod_kernel.image, installed / "vmlinux.efi"))
    initrd = Path(shutil.copyfile(signed_pod_kernel.initrd, installed / "initramfs.cpio"))
    host_swtpm.reboot()
    log = tmp_path / "run" / "measurements.json"
    agent = start_agent(
        apiserver, registry, pod_boot, tmp_path,
        "--kernel-image", str(image), "--initrd", str(initrd), "--kernel-cert", str(signed_pod_kernel.cert),
        "--tpm", host_swtpm.tcti, "--measure-log", str(log),
    )  # fmt: skip
    try:
        yield GatedHost(agent, host_swtpm, image, initrd, log)
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
    from nestlab.trust.measure import file_digest

    assert events[0].data["sha256"] == file_digest(gated.image)
    assert events[1].data["sha256"] == file_digest(gated.initrd)
    tpm_pcr = gated.tpm.tpm().pcr_read([pcrs.PCR_PODS])[pcrs.PCR_PODS]
    assert eventlog.replay(events)[pcrs.PCR_PODS] == tpm_pcr != pcrs.ZERO


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
