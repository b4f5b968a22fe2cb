"""The attestation verifier against REAL swtpm evidence over HTTPS, recording on the REAL API server.

Hosts att-1..3 each have a swtpm, a measured boot and an AK certificate from real lab keys; each is
answered by nestlab-agent's own ``POST /attestation`` application over TLS with lab-CA client
certificates required. Verdicts must land on the Nodes as the Attested condition, the annotation
and the taint; the real scheduler must then refuse the tainted node; every way attestation can
break must be a FAILED verdict.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nestlab.agent.node import NodeInfo, NodeReporter
from nestlab.api.client import ApiClient, Credentials
from nestlab.controller import attestation
from nestlab.controller.scheduler import Scheduler
from nestlab.controller.verifier import Outcome, Verifier, VerifierSettings, agent_tls
from nestlab.runtime import proc
from nestlab.trust import akcert, keys
from nestlab.trust.errors import SignatureError
from nestlab.trust.verdict import HostName
from tests.integration.api.attest_hosts import (
    AgentEndpoints,
    Host,
    policy_for,
    server_tls,
    start_host,
    stop_hosts,
)
from tests.integration.api.conftest import ApiServer, free_port, wait_until

pytestmark = pytest.mark.integration
NS = "attest"
NAMES = ("att-1", "att-2", "att-3")
LABEL = "attest-test"


@dataclass
class Lab:
    apiserver: ApiServer
    hosts: dict[str, Host]
    lab_keys: keys.LabKeys
    other_keys: keys.LabKeys
    policy: Path
    root: Path

    @property
    def credentials(self) -> Credentials:
        pki = self.apiserver.pki
        return Credentials(self.apiserver.url, pki.ca, None, pki.alice_cert, pki.alice_key)

    def settings(self) -> VerifierSettings:
        pki = self.apiserver.pki
        tls = agent_tls(pki.ca, pki.alice_cert, pki.alice_key)
        return VerifierSettings(self.policy, self.lab_keys.ca_cert, tls)

    def attest(self, *names: str, **verifier_args: Any) -> dict[str, Outcome]:
        async def run() -> list[Outcome]:
            client = ApiClient(self.credentials)
            try:
                return await Verifier(client, self.settings(), **verifier_args).attest_nodes(names)
            finally:
                await client.close()

        return {outcome.node: outcome for outcome in asyncio.run(run())}

    def node(self, name: str) -> dict[str, Any]:
        code, node = self.apiserver.request("GET", f"/api/v1/nodes/{name}")
        assert code == 200, node
        return dict(node)


def condition(node: dict[str, Any]) -> dict[str, Any] | None:
    conditions = (node.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == attestation.CONDITION), None)


def tainted(node: dict[str, Any]) -> bool:
    return any(t.get("key") == attestation.TAINT_KEY for t in (node.get("spec") or {}).get("taints") or [])


def annotation(node: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(node["metadata"]["annotations"][attestation.ANNOTATION]))


async def register_node(credentials: Credentials, name: str, port: int) -> None:
    """Create the Node as the agent does (with a test label), then post its status with the agent's code."""
    client = ApiClient(credentials)
    try:
        body = {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, LABEL: "yes"}}}
        await client.request("POST", "/api/v1/nodes", body)
        await NodeReporter(client, NodeInfo(name, "127.0.0.1", 2000, 1024, 10, port)).register()
    finally:
        await client.close()


@pytest.fixture(scope="module")
def lab(apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("attest")
    lab_keys = keys.ensure_lab_keys(root / "keys", "attest")
    other_keys = keys.ensure_lab_keys(root / "other-keys", "other")
    pki = apiserver.pki
    endpoints = AgentEndpoints(server_tls(pki.server_cert, pki.server_key, pki.ca))
    hosts: list[Host] = []
    try:
        for name in NAMES:
            hosts.append(start_host(name, root / "hosts", lab_keys))
            port = endpoints.serve(hosts[-1])
            credentials = Credentials(apiserver.url, pki.ca, None, pki.alice_cert, pki.alice_key)
            asyncio.run(register_node(credentials, name, port))
        policy = root / "policy.json"
        policy.write_text(json.dumps(policy_for(hosts[0].files).to_json()))
        assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
        yield Lab(apiserver, {h.name: h for h in hosts}, lab_keys, other_keys, policy, root)
    finally:
        pods = apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods")[1]
        for item in pods.get("items", []) if isinstance(pods, dict) else []:
            name = item["metadata"]["name"]
            apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/pods/{name}?gracePeriodSeconds=0")
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")
        for name in NAMES:
            apiserver.request("DELETE", f"/api/v1/nodes/{name}")
        endpoints.close()
        stop_hosts(hosts, root)


@pytest.fixture
def clean(lab: Lab) -> Lab:
    """Every host freshly booted and truthful."""
    for host in lab.hosts.values():
        host.present()
        host.boot_clean()
    return lab


def test_verdicts_land_on_nodes_and_the_taint_follows_failure_and_recovery(clean: Lab) -> None:
    lab = clean
    outcomes = lab.attest("att-1", "att-2")
    assert all(o.verdict.passed for o in outcomes.values()), [o.verdict.reasons for o in outcomes.values()]
    assert {o.ak_certificate for o in outcomes.values()} == {"verified"}
    node = lab.node("att-1")
    assert condition(node) is not None
    assert condition(node)["status"] == "True"  # type: ignore[index]
    assert condition(node)["reason"] == "AttestationPassed"  # type: ignore[index]
    assert condition(node)["message"] == "all 2 events allowed by policy integration"  # type: ignore[index]
    summary = annotation(node)
    assert summary["passed"] is True
    assert summary["events"] == 2
    assert summary["policyDigest"] == policy_for(lab.hosts["att-1"].files).digest()
    assert not tainted(node)

    lab.hosts["att-2"].launch("evil/miner", b"a kernel nobody signed")  # the drill
    outcomes = lab.attest("att-1", "att-2")
    assert outcomes["att-1"].verdict.passed
    failed = outcomes["att-2"].verdict
    assert not failed.passed
    node = lab.node("att-2")
    assert condition(node)["status"] == "False"  # type: ignore[index]
    assert condition(node)["reason"] == "AttestationFailed"  # type: ignore[index]
    assert "pod evil/miner kernel: pod-kernel digest" in condition(node)["message"]  # type: ignore[index]
    assert annotation(node)["passed"] is False
    assert annotation(node)["reasons"] == list(failed.reasons)
    assert tainted(node)

    # the agent's periodic status post (real agent code) keeps the Attested condition
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]

    async def agent_heartbeat() -> None:
        client = ApiClient(lab.credentials)
        try:
            await NodeReporter(client, NodeInfo("att-2", "127.0.0.1", 2000, 1024, 10, port)).post_status()
        finally:
            await client.close()

    asyncio.run(agent_heartbeat())
    node = lab.node("att-2")
    assert condition(node)["status"] == "False"  # type: ignore[index]
    assert {c["type"] for c in node["status"]["conditions"]} == {"Ready", "Attested"}

    # the real scheduler places nothing new on the tainted host
    anywhere = {"metadata": {"name": "anywhere"}, "spec": {"nodeSelector": {LABEL: "yes"}, "containers": [
        {"name": "c", "image": "busybox:1.36"}]}}  # fmt: skip
    pinned = {"metadata": {"name": "pinned"}, "spec": {"nodeSelector": {"kubernetes.io/hostname": "att-2"},
              "containers": [{"name": "c", "image": "busybox:1.36"}]}}  # fmt: skip
    for pod in (anywhere, pinned):
        assert lab.apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", pod)[0] == 201
    lab.hosts["att-3"].unregister()  # out of this test: tainted as a failed host
    lab.attest("att-3")

    async def schedule() -> list[Any]:
        client = ApiClient(lab.credentials)
        try:
            return await Scheduler(client).pass_once()
        finally:
            await client.close()

    placed = {p.pod: p for p in asyncio.run(schedule()) if p.namespace == NS}
    assert placed["anywhere"].node == "att-1"
    assert placed["pinned"].node is None
    assert attestation.TAINT_KEY in placed["pinned"].message

    # the host reboots clean: the next attestation passes and lifts the taint
    lab.hosts["att-2"].boot_clean()
    assert lab.attest("att-2")["att-2"].verdict.passed
    node = lab.node("att-2")
    assert condition(node)["status"] == "True"  # type: ignore[index]
    assert not tainted(node)
    assert annotation(node)["passed"] is True
    placed = {p.pod: p for p in asyncio.run(schedule()) if p.namespace == NS}
    assert placed["pinned"].node == "att-2"


def certificate_from(issuer: keys.LabKeys, host: Host, name: str, directory: Path) -> str:
    registration = host.registration if name == host.name else _renamed(host, name)
    return akcert.issue_ak_certificate(issuer, registration, directory / f"{name}.crt").read_text()


def _renamed(host: Host, name: str) -> Any:
    from dataclasses import replace

    return replace(host.registration, host=HostName(name))


def assert_failed(lab: Lab, outcome: Outcome, fragment: str) -> None:
    assert not outcome.verdict.passed
    assert any(fragment in reason for reason in outcome.verdict.reasons), outcome.verdict.reasons
    node = lab.node(outcome.node)
    assert condition(node)["status"] == "False"  # type: ignore[index]
    assert fragment in condition(node)["message"]  # type: ignore[index]
    assert tainted(node)


def test_bad_ak_certificates_fail_closed(clean: Lab, tmp_path: Path) -> None:
    lab, host = clean, clean.hosts["att-3"]
    host.present(certificate=certificate_from(lab.other_keys, host, "att-3", tmp_path))
    outcome = lab.attest("att-3")["att-3"]
    assert outcome.ak_certificate == "refused"
    assert_failed(lab, outcome, "is not signed by the lab attestation CA")

    host.present(certificate=certificate_from(lab.lab_keys, host, "att-1", tmp_path))
    assert_failed(lab, lab.attest("att-3")["att-3"], "is not issued to att-3")

    other = lab.hosts["att-1"]  # att-3's agent presents att-1's (valid) registration and certificate
    host.present(registration=other.registration, certificate=other.certificate)
    assert_failed(lab, lab.attest("att-3")["att-3"], "presented the registration of att-1")

    host.present()
    assert lab.attest("att-3")["att-3"].verdict.passed
    assert not tainted(lab.node("att-3"))


def test_unreachable_refusing_or_broken_agents_fail_closed(clean: Lab) -> None:
    lab = clean
    lab.hosts["att-3"].unregister()
    assert_failed(lab, lab.attest("att-3")["att-3"], "answered 503: this host is not registered")

    async def move(port: int) -> None:
        client = ApiClient(lab.credentials)
        try:
            await NodeReporter(client, NodeInfo("att-3", "127.0.0.1", 2000, 1024, 10, port)).post_status()
        finally:
            await client.close()

    original = lab.node("att-3")["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    asyncio.run(move(free_port()))  # nothing listens there
    try:
        # A Ready host that does not answer proved nothing, but may just have stopped (its Lease is
        # not stale yet): Attested=Unknown, no taint; still unanswered a minute later while its
        # Node stays Ready, it refuses to attest and fails closed.
        outcome = lab.attest("att-3")["att-3"]
        assert outcome.ak_certificate == "unchecked"
        assert not outcome.verdict.passed
        node = lab.node("att-3")
        assert condition(node)["status"] == "Unknown"  # type: ignore[index]
        assert condition(node)["reason"] == attestation.UNANSWERED  # type: ignore[index]
        assert tainted(node)  # the refusal just before tainted it: silence does not lift that
        later = datetime.now(UTC) + timedelta(seconds=attestation.UNANSWERED_GRACE_S + 1)
        assert_failed(lab, lab.attest("att-3", clock=lambda: later)["att-3"], "did not answer")
    finally:
        asyncio.run(move(original))

    lab.hosts["att-3"].present()

    def exploding_checker(*_args: object) -> None:
        raise RuntimeError("checker crashed")

    assert_failed(lab, lab.attest("att-3", check_signature=exploding_checker)["att-3"], "RuntimeError")

    def forging_checker(*_args: object) -> None:
        raise SignatureError("quote signature does not verify with the registered AK")

    assert_failed(lab, lab.attest("att-3", check_signature=forging_checker)["att-3"], "does not verify")

    lab.policy.write_text("{not json")
    try:
        assert_failed(lab, lab.attest("att-3")["att-3"], "is unusable")
    finally:
        lab.policy.write_text(json.dumps(policy_for(lab.hosts["att-1"].files).to_json()))
    assert lab.attest("att-3")["att-3"].verdict.passed


def test_nestlab_attest_command_reports_and_exits_by_verdict(clean: Lab, tmp_path: Path) -> None:
    lab = clean
    pki = lab.apiserver.pki
    config = tmp_path / "verifier.conf"
    config.write_text(
        "# written by roles/control_plane\n"
        f"server = {lab.apiserver.url}\ncertificate-authority = {pki.ca}\n"
        f"client-certificate = {pki.alice_cert}\nclient-key = {pki.alice_key}\n"
        f"attestation-policy = {lab.policy}\nattestation-ca = {lab.lab_keys.ca_cert}\n"
    )
    command = [sys.executable, "-m", "nestlab.controller.attestcli", "--config", str(config)]
    passed = proc.run([*command, "att-1"], timeout=120, check=False)
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.startswith("att-1: PASSED\n")
    assert "AK certificate: verified" in passed.stdout
    assert "1 of 1 host(s) passed attestation" in passed.stdout

    lab.hosts["att-2"].launch("evil/miner", b"a kernel nobody signed")
    failed = proc.run([*command, "--json", "att-2"], timeout=120, check=False)
    assert failed.returncode == 1, failed.stderr
    (verdict,) = json.loads(failed.stdout)
    assert verdict["host"] == "att-2"
    assert verdict["passed"] is False
    assert verdict["akCertificate"] == "verified"
    assert [e["description"] for e in verdict["events"] if not e["allowed"]] == ["pod evil/miner kernel"]
    assert tainted(lab.node("att-2"))

    everyone = proc.run(command, timeout=120, check=False)
    assert everyone.returncode == 1
    assert "att-1: PASSED" in everyone.stdout
    assert "att-2: FAILED" in everyone.stdout

    unknown = proc.run([*command, "esx-99"], timeout=120, check=False)
    assert unknown.returncode == 2
    assert "no Node named esx-99" in unknown.stderr
    missing = proc.run([sys.executable, "-m", "nestlab.controller.attestcli", "--config", str(tmp_path / "x")],
                       timeout=60, check=False)  # fmt: skip
    assert missing.returncode == 2


def test_controller_reattests_periodically_while_leading(clean: Lab, tmp_path: Path) -> None:
    lab = clean
    pki = lab.apiserver.pki
    before = {name: annotation(lab.node(name))["time"] for name in ("att-1", "att-2")}
    lab.hosts["att-2"].launch("evil/miner", b"a kernel nobody signed")
    argv = [
        sys.executable, "-m", "nestlab.controller.main", "--server", lab.apiserver.url,
        "--certificate-authority", pki.ca, "--client-certificate", pki.alice_cert,
        "--client-key", pki.alice_key, "--identity", "attest-cp", "--leader-elect-lease-duration", "4",
        "--interval", "0.5", "--node-monitor-grace-period", "3600",
        "--attestation-policy", lab.policy, "--attestation-ca", lab.lab_keys.ca_cert,
        "--attest-interval", "1",
    ]  # fmt: skip
    controller = proc.spawn(argv, log=tmp_path / "controller.log")
    try:

        def reattested(name: str, passed: bool) -> bool:
            summary = annotation(lab.node(name))
            return bool(summary["time"] > before[name] and summary["passed"] is passed)

        wait_until(lambda: reattested("att-1", True) and reattested("att-2", False), "re-attestation", 90)
        assert tainted(lab.node("att-2"))
        lab.hosts["att-2"].boot_clean()
        wait_until(lambda: not tainted(lab.node("att-2")), "taint lifted on the next round", 60)
    finally:
        controller.stop()
    assert "Traceback" not in (tmp_path / "controller.log").read_text()
