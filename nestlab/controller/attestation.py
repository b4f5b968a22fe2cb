"""What an attestation verdict changes on a Node, and what the agent's answer means: pure functions.

The verifier (:mod:`nestlab.controller.verifier`) asks each host's agent for evidence and judges it;
this module turns a verdict into the three marks an administrator sees with kubectl, like a
vSphere host that failed attestation shows an alarm and gets no new vSphere Pods:

- the Node condition ``Attested`` (True/False, reason AttestationPassed/AttestationFailed);
- the annotation ``trust.nestlab.dev/attestation``: a compact JSON summary of the last verdict;
- the taint ``nestlab.dev/attestation-failed:NoSchedule`` while the host is failed, so the scheduler
  places nothing new there (pods already running stay; removing them is the administrator's call).

A host whose agent did not answer at all (stopped, network gone) proved nothing, but it did not
fail either: upstream marks such a node with ``node.kubernetes.io/unreachable`` and that taint is
what keeps pods away. So an unanswered challenge sets ``Attested=Unknown`` and adds no attestation
taint; a taint the host already had stays until it answers and passes. The reason says which case
it is: AttestationUnanswered while the Node is still Ready (a host stopped a moment ago, its Lease
not yet stale), HostUnreachable once the node lifecycle controller has marked it. Fail closed
still holds for a host that heartbeats but will not answer: a Ready Node whose challenges have gone
unanswered for :data:`UNANSWERED_GRACE_S` is tainted as failed (a stopped host is NotReady by then,
so it never gets there). For that count the condition's lastTransitionTime moves when the reason
moves between these two, not only when the status does.

It also parses the agent's ``POST /attestation`` answer (interface D) into typed parts, raising
:class:`AttestationReplyError` on anything malformed, which the verifier turns into a failed verdict.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NewType

from nestlab.errors import NestlabError
from nestlab.trust import attest
from nestlab.trust.errors import TrustError
from nestlab.trust.verdict import HostName, Verdict
from nestlab.trust.verify import Evidence, Registration

Obj = dict[str, Any]
NodeName = NewType("NodeName", str)

CONDITION: Final = "Attested"
ANNOTATION: Final = "trust.nestlab.dev/attestation"
TAINT_KEY: Final = "nestlab.dev/attestation-failed"
PASSED: Final = "AttestationPassed"
FAILED: Final = "AttestationFailed"
UNANSWERED: Final = "AttestationUnanswered"
UNREACHABLE: Final = "HostUnreachable"
# Longer than the node lifecycle controller's 30 s grace plus a lease renewal: a stopped host is
# NotReady (tainted unreachable) before its unanswered challenges could count as a refusal.
UNANSWERED_GRACE_S: Final = 60
NOT_READY_TAINTS: Final = ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")
# The shared node-agent client's transport failures (nestlab.api.nodeagent): no answer came back.
_NO_ANSWER = re.compile(r"^(the node agent at \S+ did not answer \(|cannot open a session to )")
_MAX_MESSAGE: Final = 1024  # characters: a condition message is read in `kubectl describe node`


class AttestationReplyError(NestlabError):
    """A host's agent answered the challenge with something that is not attestation evidence."""


@dataclass(frozen=True)
class Reply:
    """The agent's answer to one challenge, parsed."""

    registration: Registration
    """What the host registered (registration.json); checked against its AK certificate."""
    ak_certificate: str
    """PEM of the AK certificate the attestation CA issued for the host."""
    evidence: Evidence
    """The quote and the event log for the verifier's nonce."""


@dataclass(frozen=True)
class NodeMarks:
    """The writes one verdict asks for; None where nothing needs to change."""

    condition: Obj
    """The ``Attested`` condition (status subresource, merged by type)."""
    annotation: str
    """The annotation's new value."""
    taints: list[Obj] | None
    """The node's complete new taint list, or None when the taints are already right."""


def parse_reply(raw: object) -> Reply:
    """The agent's JSON answer as typed parts; AttestationReplyError names what is wrong."""
    if not isinstance(raw, dict):
        raise AttestationReplyError("the agent's attestation answer is not a JSON object")
    missing = [key for key in ("registration", "akCertificate", "evidence") if key not in raw]
    if missing:
        raise AttestationReplyError(f"the agent's attestation answer lacks {', '.join(missing)}")
    certificate = raw["akCertificate"]
    if not isinstance(certificate, str) or "BEGIN CERTIFICATE" not in certificate:
        raise AttestationReplyError("the agent's akCertificate is not a PEM certificate")
    registration, evidence = raw["registration"], raw["evidence"]
    if not isinstance(registration, dict) or not isinstance(evidence, dict):
        raise AttestationReplyError("the agent's registration and evidence must be JSON objects")
    try:
        return Reply(
            attest.registration_from_json(registration), certificate, attest.evidence_from_json(evidence)
        )
    except TrustError as exc:
        raise AttestationReplyError(f"the agent's attestation answer is malformed: {exc}") from exc


def failed_verdict(host: str, now: str, reason: str, policy_digest: str = "") -> Verdict:
    """A verdict that fails for ``reason`` before any evidence could be judged (fail closed)."""
    return Verdict(HostName(host), now, {}, (), policy_digest, False, (reason,))


def condition_message(verdict: Verdict, policy_name: str) -> str:
    """The first reason of a failure, or what passed."""
    if verdict.passed:
        return f"all {len(verdict.events)} events allowed by policy {policy_name}"
    first = verdict.reasons[0] if verdict.reasons else "attestation failed"
    more = len(verdict.reasons) - 1
    text = first + (f" (and {more} more reason(s))" if more else "")
    return text[:_MAX_MESSAGE]


def summary(verdict: Verdict) -> str:
    """The annotation value: the verdict without its per-event detail, as compact JSON."""
    return json.dumps(
        {
            "time": verdict.time,
            "passed": verdict.passed,
            "reasons": list(verdict.reasons),
            "policyDigest": verdict.policy_digest,
            "events": len(verdict.events),
        },
        separators=(",", ":"),
    )


def unanswered(verdict: Verdict) -> bool:
    """The verdict failed because the host's agent gave no answer at all (not a judged failure)."""
    return (
        not verdict.passed
        and not verdict.events
        and bool(_NO_ANSWER.match(verdict.reasons[0] if verdict.reasons else ""))
    )


def node_ready(node: Obj) -> bool:
    """The Node's Ready condition is True and it carries no unreachable/not-ready taint."""
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    taints = (node.get("spec") or {}).get("taints") or []
    return ready and not any(t.get("key") in NOT_READY_TAINTS for t in taints)


def _parse(time: str) -> datetime | None:
    try:
        return datetime.strptime(time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def refusing(previous: Obj | None, node: Obj, now: str) -> bool:
    """A Ready Node whose challenges have gone unanswered for :data:`UNANSWERED_GRACE_S`: it
    heartbeats but will not attest, which fail-closed treats as a failure."""
    if previous is None or previous.get("reason") != UNANSWERED or not node_ready(node):
        return False
    since, at = _parse(str(previous.get("lastTransitionTime") or "")), _parse(now)
    return since is not None and at is not None and (at - since).total_seconds() >= UNANSWERED_GRACE_S


def judged(node: Obj, verdict: Verdict, previous: Obj | None, now: str) -> tuple[str, str]:
    """(status, reason) of the Attested condition for ``verdict``."""
    if verdict.passed:
        return "True", PASSED
    if not unanswered(verdict) or refusing(previous, node, now):
        return "False", FAILED
    return "Unknown", UNANSWERED if node_ready(node) else UNREACHABLE


def marks(node: Obj, verdict: Verdict, policy_name: str, now: str) -> NodeMarks:
    """What to write to ``node`` for ``verdict`` (judged at ``now``, a Kubernetes Time)."""
    conditions = (node.get("status") or {}).get("conditions") or []
    previous = next((c for c in conditions if c.get("type") == CONDITION), None)
    status, reason = judged(node, verdict, previous, now)
    silent = status == "Unknown"
    transition = now
    if (
        previous is not None
        and previous.get("status") == status
        and (not silent or previous.get("reason") == reason)  # unanswered-while-Ready counts anew
        and previous.get("lastTransitionTime")
    ):
        transition = str(previous["lastTransitionTime"])
    message = condition_message(verdict, policy_name)
    if silent:
        message = f"the host did not answer the attestation challenge, so it proved nothing: {message}"
    condition = {
        "type": CONDITION,
        "status": status,
        "reason": reason,
        "message": message[:_MAX_MESSAGE],
        "lastHeartbeatTime": now,
        "lastTransitionTime": transition,
    }
    taints = list((node.get("spec") or {}).get("taints") or [])
    tainted = any(t.get("key") == TAINT_KEY for t in taints)
    new_taints: list[Obj] | None = None
    if verdict.passed and tainted:
        new_taints = [t for t in taints if t.get("key") != TAINT_KEY]
    elif not verdict.passed and not silent and not tainted:
        new_taints = [*taints, {"key": TAINT_KEY, "effect": "NoSchedule", "timeAdded": now}]
    return NodeMarks(condition, summary(verdict), new_taints)
