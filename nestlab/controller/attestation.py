"""What an attestation verdict changes on a Node, and what the agent's answer means: pure functions.

The verifier (:mod:`nestlab.controller.verifier`) asks each host's agent for evidence and judges it;
this module turns a verdict into the three marks an administrator sees with kubectl, like a
vSphere host that failed attestation shows an alarm and gets no new vSphere Pods:

- the Node condition ``Attested`` (True/False, reason AttestationPassed/AttestationFailed);
- the annotation ``trust.nestlab.dev/attestation``: a compact JSON summary of the last verdict;
- the taint ``nestlab.dev/attestation-failed:NoSchedule`` while the host is failed, so the scheduler
  places nothing new there (pods already running stay; removing them is the administrator's call).

It also parses the agent's ``POST /attestation`` answer (interface D) into typed parts, raising
:class:`AttestationReplyError` on anything malformed, which the verifier turns into a failed verdict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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


def marks(node: Obj, verdict: Verdict, policy_name: str, now: str) -> NodeMarks:
    """What to write to ``node`` for ``verdict`` (judged at ``now``, a Kubernetes Time)."""
    conditions = (node.get("status") or {}).get("conditions") or []
    previous = next((c for c in conditions if c.get("type") == CONDITION), None)
    status = "True" if verdict.passed else "False"
    transition = now
    if previous is not None and previous.get("status") == status and previous.get("lastTransitionTime"):
        transition = str(previous["lastTransitionTime"])
    condition = {
        "type": CONDITION,
        "status": status,
        "reason": PASSED if verdict.passed else FAILED,
        "message": condition_message(verdict, policy_name),
        "lastHeartbeatTime": now,
        "lastTransitionTime": transition,
    }
    taints = list((node.get("spec") or {}).get("taints") or [])
    tainted = any(t.get("key") == TAINT_KEY for t in taints)
    new_taints: list[Obj] | None = None
    if verdict.passed and tainted:
        new_taints = [t for t in taints if t.get("key") != TAINT_KEY]
    elif not verdict.passed and not tainted:
        new_taints = [*taints, {"key": TAINT_KEY, "effect": "NoSchedule", "timeAdded": now}]
    return NodeMarks(condition, summary(verdict), new_taints)
