"""The verifier's control flow with fakes: fail closed on every error, record what it decided, pace rounds."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nestlab.api import status as api_status
from nestlab.controller import attestation
from nestlab.controller.verifier import (
    AgentCallError,
    Outcome,
    PeriodicAttestation,
    Verifier,
    VerifierSettings,
)
from nestlab.trust.verdict import HostName, Verdict

Obj = dict[str, Any]
NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
POLICY = '{"name": "unit", "kernels": []}'


def make_node(name: str, taints: list[Obj] | None = None) -> Obj:
    return {
        "metadata": {"name": name, "resourceVersion": "5"},
        "spec": {"taints": taints or []},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "198.18.0.21"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        },
    }


class FakeClient:
    """Nodes in memory; refuses the first ``conflicts`` pinned patches with 409."""

    def __init__(self, nodes: list[Obj], conflicts: int = 0) -> None:
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        self.patches: list[tuple[str, Obj]] = []
        self.status_patches: list[tuple[str, Obj, str]] = []
        self.conflicts = conflicts

    async def list(self, resource: Any, namespace: str = "") -> Obj:
        return {"items": list(self.nodes.values())}

    async def get(self, resource: Any, namespace: str, name: str) -> Obj:
        return self.nodes[name]

    async def patch(self, resource: Any, namespace: str, name: str, patch: Obj, subresource: str = "") -> Obj:
        if patch["metadata"].get("resourceVersion") and self.conflicts:
            self.conflicts -= 1
            raise api_status.ApiError(409, "Conflict", "the object has been modified")
        self.patches.append((name, patch))
        return {}

    async def request(self, method: str, path: str, body: Obj, *, content_type: str) -> Obj:
        self.status_patches.append((path, body, content_type))
        return {}


def settings(tmp_path: Path, policy: str = POLICY) -> VerifierSettings:
    (tmp_path / "policy.json").write_text(policy)
    return VerifierSettings(tmp_path / "policy.json", tmp_path / "ca.crt", None)


def verifier(client: FakeClient, tmp_path: Path, post: Any, policy: str = POLICY) -> Verifier:
    return Verifier(client, settings(tmp_path, policy), post=post, clock=lambda: NOW)  # type: ignore[arg-type]


async def unreachable(url: str, body: Obj, context: ssl.SSLContext | None) -> object:
    raise AgentCallError(f"the agent at {url} did not answer: ConnectionRefused")


def test_an_unreachable_agent_is_a_recorded_failure_with_a_taint(tmp_path: Path) -> None:
    client = FakeClient([make_node("esx-01")])
    (outcome,) = asyncio.run(verifier(client, tmp_path, unreachable).attest_nodes())
    assert not outcome.verdict.passed
    assert outcome.verdict.reasons == ("the agent at https://198.18.0.21:10250/attestation did not answer: "
                                       "ConnectionRefused",)  # fmt: skip
    assert outcome.ak_certificate == "unchecked"
    assert outcome.recorded is None
    name, patch = client.patches[0]
    assert name == "esx-01"
    assert patch["metadata"]["resourceVersion"] == "5"
    assert patch["spec"]["taints"][0]["key"] == attestation.TAINT_KEY
    path, body, content_type = client.status_patches[0]
    assert path == "/api/v1/nodes/esx-01/status"
    assert content_type == "application/strategic-merge-patch+json"
    assert body["status"]["conditions"][0]["status"] == "False"


def test_unexpected_errors_and_garbage_fail_closed(tmp_path: Path) -> None:
    async def crashing(url: str, body: Obj, context: ssl.SSLContext | None) -> object:
        raise KeyError("boom")

    async def garbage(url: str, body: Obj, context: ssl.SSLContext | None) -> object:
        assert len(bytes.fromhex(body["nonce"])) == 32
        return {"hello": "world"}

    for post, fragment in ((crashing, "verifier error: KeyError"), (garbage, "lacks registration")):
        client = FakeClient([make_node("esx-01")])
        (outcome,) = asyncio.run(verifier(client, tmp_path, post).attest_nodes())
        assert not outcome.verdict.passed
        assert fragment in outcome.verdict.reasons[0]


def test_an_unusable_policy_fails_every_host_without_asking_them(tmp_path: Path) -> None:
    asked: list[str] = []

    async def post(url: str, body: Obj, context: ssl.SSLContext | None) -> object:
        asked.append(url)
        return {}

    client = FakeClient([make_node("esx-01"), make_node("esx-02")])
    outcomes = asyncio.run(verifier(client, tmp_path, post, policy="{").attest_nodes())
    assert [o.verdict.passed for o in outcomes] == [False, False]
    assert "is unusable" in outcomes[0].verdict.reasons[0]
    assert asked == []


def test_only_named_nodes_are_attested(tmp_path: Path) -> None:
    client = FakeClient([make_node("esx-01"), make_node("esx-02")])
    outcomes = asyncio.run(verifier(client, tmp_path, unreachable).attest_nodes(["esx-02"]))
    assert [o.node for o in outcomes] == ["esx-02"]


def test_taint_write_retries_on_conflict_and_gives_up_eventually(tmp_path: Path) -> None:
    client = FakeClient([make_node("esx-01")], conflicts=2)
    (outcome,) = asyncio.run(verifier(client, tmp_path, unreachable).attest_nodes())
    assert outcome.recorded is None
    assert len(client.patches) == 1
    client = FakeClient([make_node("esx-01")], conflicts=100)
    (outcome,) = asyncio.run(verifier(client, tmp_path, unreachable).attest_nodes())
    assert outcome.recorded is not None
    assert "RecordError: node esx-01 kept changing" in outcome.recorded
    assert client.status_patches == []


class CountingVerifier:
    def __init__(self) -> None:
        self.rounds = 0

    async def attest_nodes(self) -> list[Outcome]:
        self.rounds += 1
        await asyncio.sleep(0)
        verdict = Verdict(HostName("esx-01"), "t", {}, (), "", False, ("x",))
        return [Outcome("esx-01", verdict, "unchecked", None)]


def test_periodic_rounds_start_when_due_and_never_overlap() -> None:
    clock = [100.0]

    async def scenario() -> int:
        counting = CountingVerifier()
        periodic = PeriodicAttestation(counting, 30.0, monotonic=lambda: clock[0])  # type: ignore[arg-type]
        assert await periodic.pass_once()  # due at once
        assert not await periodic.pass_once()  # still running
        await periodic.close()
        assert not await periodic.pass_once()  # done, but not due yet
        clock[0] += 30.0
        assert await periodic.pass_once()
        await periodic.close()
        return counting.rounds

    assert asyncio.run(scenario()) == 2


@pytest.mark.parametrize("error", [api_status.ApiError(503, "ServiceUnavailable", "x"), RuntimeError("x")])
def test_a_failing_round_is_logged_not_raised(error: Exception) -> None:
    class Broken:
        async def attest_nodes(self) -> list[Outcome]:
            raise error

    async def scenario() -> None:
        periodic = PeriodicAttestation(Broken(), 1.0, monotonic=lambda: 0.0)  # type: ignore[arg-type]
        assert await periodic.pass_once()
        await periodic.close()

    asyncio.run(scenario())
