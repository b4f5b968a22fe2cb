"""The attestation verifier on the control plane: challenge each host, judge it, mark its Node.

For every Node: a fresh nonce -> ``POST https://<InternalIP>:<kubeletEndpoint>/attestation`` (TLS
with the lab CA, the controller's client certificate) -> the AK certificate checked against the
attestation CA and the registration the host sent -> quote and event log verified against the
policy -> the verdict recorded on the Node (condition, annotation, taint: see :mod:`attestation`).

Fail closed: an unreachable agent, a malformed answer, a bad AK certificate, an unreadable policy
or any unexpected exception is a FAILED verdict naming the cause, never a pass. The policy file is
read at every round, so an administrator's edit takes effect at the next one.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from nestlab.api import nodeagent
from nestlab.api import status as api_status
from nestlab.api.client import ApiClient, path_of
from nestlab.api.resources import NODES
from nestlab.controller import attestation
from nestlab.errors import NestlabError
from nestlab.runtime import proc
from nestlab.trust import akcert, attest, tpm
from nestlab.trust.errors import SignatureError
from nestlab.trust.policy import Policy, parse_policy
from nestlab.trust.verdict import Verdict
from nestlab.trust.verify import SignatureChecker, verify

log = logging.getLogger(__name__)
Obj = dict[str, Any]
#: (url, JSON body, TLS context) -> the decoded JSON answer; raises on transport errors or non-200
Poster = Callable[[str, Obj, ssl.SSLContext | None], Awaitable[object]]

STRATEGIC: Final = "application/strategic-merge-patch+json"
CONCURRENCY: Final = 4  # hosts challenged at once: each check runs two or three short openssl/tpm2 tools
_RECORD_ATTEMPTS: Final = 5  # taint writes are compare-and-swap; the node lifecycle controller may race
AgentCallError = nodeagent.NodeAgentError
"""The host's agent could not be asked, or refused to answer (the shared node-agent client's error)."""


class RecordError(NestlabError):
    """A verdict could not be written to its Node."""


@dataclass(frozen=True)
class VerifierSettings:
    """Where the verifier's trust anchors are and how it reaches agents."""

    policy: Path
    """The policy file (nestlab.trust.policy format)."""
    attestation_ca: Path
    """The attestation CA certificate that signs AK certificates."""
    agent_tls: ssl.SSLContext | None
    """Client TLS for agents: the lab CA, the controller's certificate (None only for plain-HTTP tests)."""
    concurrency: int = CONCURRENCY


@dataclass(frozen=True)
class Outcome:
    """One host's attestation and what happened when it was recorded."""

    node: str
    verdict: Verdict
    ak_certificate: str
    """``verified``, ``refused`` or ``unchecked`` (no answer to check)."""
    recorded: str | None
    """None when the Node was marked, else why it could not be."""

    def to_json(self) -> Obj:
        return {**self.verdict.to_json(), "akCertificate": self.ak_certificate}


def agent_tls(ca: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    """Client TLS towards agents: lab-CA server certificates; ours proves we are the control plane."""
    return nodeagent.client_tls(ca, cert, key)


post_json: Final[Poster] = nodeagent.post_json
"""The one HTTP call to an agent (the shared client); NodeAgentError on transport failure or non-200."""


def _kube_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Verifier:
    """Attests Nodes and records verdicts through the API (pass fakes in to unit-test it)."""

    def __init__(
        self,
        client: ApiClient,
        settings: VerifierSettings,
        *,
        post: Poster = post_json,
        runner: proc.Runner = proc.run,
        check_signature: SignatureChecker = tpm.check_quote_signature,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.settings = settings
        self.post = post
        self.runner = runner
        self.check_signature = check_signature
        self.clock = clock

    def load_policy(self) -> Policy:
        """The policy as it is on disk now; PolicyError/OSError propagate (a round then fails closed)."""
        return parse_policy(self.settings.policy.read_text())

    async def attest_nodes(self, only: Sequence[str] = ()) -> list[Outcome]:
        """Attest every Node (or those named), at most ``concurrency`` at once, and record each verdict."""
        nodes = (await self.client.list(NODES))["items"]
        if only:
            nodes = [n for n in nodes if n["metadata"]["name"] in only]
        try:
            policy: Policy | str = self.load_policy()
        except (NestlabError, OSError) as exc:
            policy = f"attestation policy {self.settings.policy} is unusable: {exc}"
        gate = asyncio.Semaphore(max(1, self.settings.concurrency))

        async def one(node: Obj) -> Outcome:
            async with gate:
                return await self.attest_and_record(node, policy)

        return list(await asyncio.gather(*(one(node) for node in nodes)))

    async def attest_and_record(self, node: Obj, policy: Policy | str) -> Outcome:
        """Attest one Node against ``policy`` (a string: why there is none) and mark it."""
        name = node["metadata"]["name"]
        if isinstance(policy, str):
            verdict, ak = attestation.failed_verdict(name, self.clock().isoformat(), policy), "unchecked"
            policy_name = "(none)"
        else:
            verdict, ak = await self.attest(node, policy)
            policy_name = policy.name
        try:
            await self.record(node, verdict, policy_name)
        except Exception as exc:  # one node's write must not lose the other hosts' verdicts
            log.warning("could not record the attestation of %s: %s", name, exc)
            return Outcome(name, verdict, ak, f"{type(exc).__name__}: {exc}")
        log.info("%s attestation %s", name, "passed" if verdict.passed else f"FAILED: {verdict.reasons}")
        return Outcome(name, verdict, ak, None)

    async def attest(self, node: Obj, policy: Policy) -> tuple[Verdict, str]:
        """Challenge one Node's agent and judge its answer; never raises, never passes by accident."""
        name = node["metadata"]["name"]
        ak = "unchecked"
        try:
            nonce = secrets.token_bytes(attest.NONCE_SIZE)
            raw = await self.post(
                nodeagent.base_url(node) + "/attestation", {"nonce": nonce.hex()}, self.settings.agent_tls
            )
            reply = attestation.parse_reply(raw)
            ak = "refused"
            await asyncio.to_thread(self._check_certificate, name, reply)
            ak = "verified"
            verdict = await asyncio.to_thread(
                verify,
                registration=reply.registration,
                policy=policy,
                nonce=nonce,
                evidence=reply.evidence,
                check_signature=self.check_signature,
                now=self.clock(),
            )
        except NestlabError as exc:
            return attestation.failed_verdict(name, self.clock().isoformat(), str(exc), policy.digest()), ak
        except Exception as exc:  # fail closed: whatever broke, the host proved nothing
            reason = f"verifier error: {type(exc).__name__}: {exc}"
            return attestation.failed_verdict(name, self.clock().isoformat(), reason, policy.digest()), ak
        return verdict, ak

    def _check_certificate(self, node: str, reply: attestation.Reply) -> None:
        """The host is who the Node says, and the attestation CA vouches for its AK."""
        if reply.registration.host != node:
            raise SignatureError(
                f"the agent of node {node} presented the registration of {reply.registration.host}"
            )
        with tempfile.TemporaryDirectory(prefix="nestlab-akcert-") as tmp:
            certificate = Path(tmp) / "ak.crt"
            certificate.write_text(reply.ak_certificate)
            akcert.check_ak_certificate(
                self.settings.attestation_ca, certificate, reply.registration, self.runner
            )

    async def record(self, node: Obj, verdict: Verdict, policy_name: str) -> None:
        """Mark the Node: annotation and taint (compare-and-swap, retried), then the condition."""
        name = node["metadata"]["name"]
        now = _kube_time(self.clock())
        current = node
        for _attempt in range(_RECORD_ATTEMPTS):
            marks = attestation.marks(current, verdict, policy_name, now)
            patch: Obj = {"metadata": {"annotations": {attestation.ANNOTATION: marks.annotation}}}
            if marks.taints is not None:
                patch["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                patch["spec"] = {"taints": marks.taints}
            try:
                await self.client.patch(NODES, "", name, patch)
                break
            except api_status.ApiError as exc:
                if exc.code != 409:
                    raise
                current = await self.client.get(NODES, "", name)
        else:
            raise RecordError(f"node {name} kept changing; its attestation taint was not written")
        await self.client.request(
            "PATCH",
            path_of(NODES, "", name, "status"),
            {"status": {"conditions": [marks.condition]}},
            content_type=STRATEGIC,
        )


class PeriodicAttestation:
    """The controller pass: every ``interval`` seconds, start a round in the background.

    The round runs as its own task so a slow host does not hold up scheduling; the manager calls
    :meth:`pass_once` only while this process leads, so only the leader starts rounds.
    """

    def __init__(
        self, verifier: Verifier, interval: float, monotonic: Callable[[], float] | None = None
    ) -> None:
        self.verifier = verifier
        self.interval = interval
        self.monotonic = monotonic or asyncio.get_running_loop().time
        self._due = self.monotonic()
        self._task: asyncio.Task[list[Outcome]] | None = None

    async def pass_once(self) -> bool:
        """Start a round when one is due and none is running; whether one was started."""
        if self._task is not None and not self._task.done():
            return False
        if self.monotonic() < self._due:
            return False
        self._due = self.monotonic() + self.interval
        self._task = asyncio.create_task(self._round())
        return True

    async def _round(self) -> list[Outcome]:
        try:
            return await self.verifier.attest_nodes()
        except Exception as exc:  # the API may be away for a moment: the next round retries
            log.warning("attestation round failed: %s", exc)
            return []

    async def close(self) -> None:
        """Wait for a running round (it is bounded by the agent timeout)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
