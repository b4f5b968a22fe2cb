"""Agent trip-ups (issue 15) with the REAL agent, API server and a REAL pod microVM (TCG).

A pod that the launch gate refuses (a flipped byte in the signed kernel) on an agent WITH a pod
network reports no pod IP: an address was reserved for it, but no VM ever configured it.

A pod whose container ignores SIGTERM is deleted with its own long grace period, then again with
``--grace-period=1`` (what a learner types when the first delete "hangs"): the API shortens the
deletion, and the agent must end the stop in progress at the new deadline instead of waiting out
the grace period pod-init booted with.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nestlab.trust import akcert, attest, swtpm
from nestlab.trust.verify import Registration
from tests.integration.agent import signed_kernel
from tests.integration.agent.conftest import (
    AgentProcess,
    Registry,
    qemu_pids,
    remove_bridge,
    start_agent,
    stop_agent,
    wait_until,
)
from tests.integration.agent.test_agent import (  # noqa: F401 - fixtures, used by name
    NS,
    _get,
    _pod,
    _wait_phase,
    busybox_image,
    namespace,
)
from tests.integration.agent.test_trust_gate import (  # noqa: F401 - fixtures, used by name
    host_registration,
    host_swtpm,
    signed_pod_kernel,
)
from tests.integration.api.conftest import ApiServer

pytestmark = pytest.mark.integration
LONG_GRACE_S = 900  # the pod's own grace: far beyond how long the test waits for the shortened stop
SHORTENED_WITHIN_S = 180.0  # a TCG VM on a loaded machine: SIGKILL, QEMU gone, deletion confirmed
TRIPS_SUBNET = "198.18.249.0/28"  # this file's own pod range (.247 test_agent, .248 restart, labs .241-245)


@pytest.fixture
def refusing_networked_agent(  # noqa: PLR0917 - pytest passes fixtures positionally
    apiserver: ApiServer,
    registry: Registry,
    pod_boot: tuple[Path, Path],
    signed_pod_kernel: signed_kernel.SignedPodKernel,  # noqa: F811
    host_swtpm: swtpm.Swtpm,  # noqa: F811
    host_registration: Registration,  # noqa: F811
    tmp_path: Path,
) -> Iterator[AgentProcess]:
    """An agent with the trust gate on, a pod bridge of its own, and a damaged pod kernel."""
    installed = tmp_path / "pod-kernel"
    installed.mkdir()
    data = bytearray(signed_pod_kernel.image.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside .linux: the signature no longer verifies
    image = installed / "vmlinux.efi"
    image.write_bytes(bytes(data))
    initrd = Path(shutil.copyfile(signed_pod_kernel.initrd, installed / "initramfs.cpio"))
    attestation = tmp_path / "attestation"
    attestation.mkdir()
    (attestation / "registration.json").write_text(json.dumps(attest.registration_to_json(host_registration)))
    akcert.issue_ak_certificate(signed_pod_kernel.keys, host_registration, attestation / "ak.crt")
    bridge = f"nltr{os.getpid() % 100000}"
    agent = start_agent(
        apiserver, registry, pod_boot, tmp_path,
        "--pod-subnet", TRIPS_SUBNET, "--pod-bridge", bridge,
        "--kernel-image", str(image), "--initrd", str(initrd), "--kernel-cert", str(signed_pod_kernel.cert),
        "--tpm", host_swtpm.tcti, "--measure-log", str(tmp_path / "run" / "measurements.json"),
        "--attestation-dir", str(attestation),
    )  # fmt: skip
    try:
        yield agent
    finally:
        stop_agent(agent)
        remove_bridge(bridge)


def test_a_pod_whose_kernel_was_refused_shows_no_pod_ip(
    apiserver: ApiServer,
    refusing_networked_agent: AgentProcess,
    namespace: str,  # noqa: F811
    busybox_image: str,  # noqa: F811
) -> None:
    code, body = apiserver.request(
        "POST", f"/api/v1/namespaces/{NS}/pods", _pod("refused", busybox_image, ["sh", "-c", "echo hi"])
    )
    assert code == 201, body
    pod = _wait_phase(apiserver, "refused", ("Failed", "Running", "Succeeded"))
    assert pod["status"]["phase"] == "Failed", pod["status"]
    assert pod["status"]["reason"] == "KernelVerificationFailed"
    assert "podIP" not in pod["status"], pod["status"]
    assert "podIPs" not in pod["status"], pod["status"]
    assert qemu_pids(refusing_networked_agent.state) == []


def test_a_second_delete_with_a_shorter_grace_period_ends_the_stop(
    apiserver: ApiServer,
    node_agent: AgentProcess,
    namespace: str,  # noqa: F811
    busybox_image: str,  # noqa: F811
) -> None:
    stubborn = _pod("stubborn", busybox_image, ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"])
    stubborn["spec"]["terminationGracePeriodSeconds"] = LONG_GRACE_S
    code, body = apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", stubborn)
    assert code == 201, body
    _wait_phase(apiserver, "stubborn", ("Running",))
    assert qemu_pids(node_agent.state)

    code, body = apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/pods/stubborn")
    assert code == 200, body
    assert body["metadata"]["deletionGracePeriodSeconds"] == LONG_GRACE_S
    wait_until(
        lambda: any(e.get("reason") == "Killing" for e in events(apiserver)),
        "the agent starts stopping the pod VM",
        timeout=60,
    )
    assert _get(apiserver, "stubborn")["metadata"]["deletionTimestamp"]  # still stopping: SIGTERM ignored

    code, body = apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/pods/stubborn?gracePeriodSeconds=1")
    assert code == 200, body
    wait_until(
        lambda: apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods/stubborn")[0] == 404,
        "the pod gone after the shorter delete",
        timeout=SHORTENED_WITHIN_S,
    )
    assert qemu_pids(node_agent.state) == []
    killing = [e["message"] for e in events(apiserver) if e.get("reason") == "Killing"]
    assert any(m.startswith("The delete's shorter grace period is over") for m in killing), killing


def events(apiserver: ApiServer) -> list[dict[str, Any]]:
    code, body = apiserver.request("GET", f"/api/v1/namespaces/{NS}/events")
    assert code == 200, body
    return [e for e in body["items"] if e["involvedObject"].get("name") == "stubborn"]
