"""What a verdict writes on a Node, and how an agent's answer is read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nestlab.controller import attestation
from nestlab.controller.attestation import AttestationReplyError
from nestlab.trust.verdict import EventVerdict, HostName, Verdict

NOW = "2026-11-21T12:00:00Z"
EARLIER = "2026-11-21T11:00:00Z"
EVENT = EventVerdict(0, 8, "package", "nestlab-agent 0.1.0", "ab" * 32, True, None)


def verdict(passed: bool, reasons: tuple[str, ...] = ()) -> Verdict:
    return Verdict(HostName("esx-01"), "2026-11-21T12:00:00+00:00", {8: "00" * 32}, (EVENT, EVENT), "d" * 64,
                   passed, reasons)  # fmt: skip


def node(conditions: list[dict[str, Any]] | None = None, taints: list[dict[str, Any]] | None = None) -> Any:
    return {
        "metadata": {"name": "esx-01", "resourceVersion": "7"},
        "spec": {"taints": taints or []},
        "status": {
            "conditions": conditions or [{"type": "Ready", "status": "True"}],
            "addresses": [
                {"type": "Hostname", "address": "esx-01"},
                {"type": "InternalIP", "address": "198.18.0.21"},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        },
    }


def test_a_pass_marks_the_node_attested_and_untainted() -> None:
    marks = attestation.marks(node(), verdict(True), "lab-default", NOW)
    assert marks.condition == {
        "type": "Attested", "status": "True", "reason": "AttestationPassed",
        "message": "all 2 events allowed by policy lab-default",
        "lastHeartbeatTime": NOW, "lastTransitionTime": NOW,
    }  # fmt: skip
    assert marks.taints is None  # nothing to remove
    assert json.loads(marks.annotation) == {
        "time": "2026-11-21T12:00:00+00:00", "passed": True, "reasons": [], "policyDigest": "d" * 64, "events": 2,
    }  # fmt: skip


def test_a_failure_taints_once_and_keeps_other_taints() -> None:
    other = {"key": "maintenance", "effect": "NoSchedule"}
    marks = attestation.marks(node(taints=[other]), verdict(False, ("bad kernel", "bad log")), "p", NOW)
    assert marks.condition["status"] == "False"
    assert marks.condition["reason"] == "AttestationFailed"
    assert marks.condition["message"] == "bad kernel (and 1 more reason(s))"
    assert marks.taints == [other, {"key": attestation.TAINT_KEY, "effect": "NoSchedule", "timeAdded": NOW}]
    already = attestation.marks(node(taints=marks.taints), verdict(False, ("bad kernel",)), "p", NOW)
    assert already.taints is None


def test_a_pass_lifts_only_the_attestation_taint() -> None:
    other = {"key": "maintenance", "effect": "NoSchedule"}
    mine = {"key": attestation.TAINT_KEY, "effect": "NoSchedule"}
    assert attestation.marks(node(taints=[other, mine]), verdict(True), "p", NOW).taints == [other]


def test_transition_time_moves_only_when_the_status_changes() -> None:
    previous = [{"type": "Attested", "status": "False", "lastTransitionTime": EARLIER}]
    same = attestation.marks(node(previous), verdict(False, ("x",)), "p", NOW)
    assert same.condition["lastTransitionTime"] == EARLIER
    flipped = attestation.marks(node(previous), verdict(True), "p", NOW)
    assert flipped.condition["lastTransitionTime"] == NOW


def test_long_reasons_are_cut_for_the_condition() -> None:
    marks = attestation.marks(node(), verdict(False, ("x" * 5000,)), "p", NOW)
    assert len(marks.condition["message"]) == 1024


REGISTRATION = {"host": "esx-01", "ekPublic": "00", "akPublic": "01", "akName": "02"}
EVIDENCE = {"message": "aa", "signature": "bb", "pcrs": {"8": "00" * 32}, "eventLog": "{}"}
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_a_well_formed_reply_parses() -> None:
    reply = attestation.parse_reply(
        {"registration": REGISTRATION, "akCertificate": PEM, "evidence": EVIDENCE}
    )
    assert reply.registration.host == "esx-01"
    assert reply.registration.ak_name == b"\x02"
    assert reply.evidence.pcr_values == {8: bytes(32)}
    assert reply.ak_certificate == PEM


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "not a JSON object"),
        ({"registration": REGISTRATION, "evidence": EVIDENCE}, "lacks akCertificate"),
        ({"registration": REGISTRATION, "akCertificate": "junk", "evidence": EVIDENCE}, "not a PEM"),
        ({"registration": "x", "akCertificate": PEM, "evidence": EVIDENCE}, "must be JSON objects"),
        (
            {"registration": {**REGISTRATION, "akName": "zz"}, "akCertificate": PEM, "evidence": EVIDENCE},
            "malformed",
        ),
        ({"registration": REGISTRATION, "akCertificate": PEM, "evidence": {"message": "aa"}}, "malformed"),
    ],
)
def test_malformed_replies_are_refused(raw: object, message: str) -> None:
    with pytest.raises(AttestationReplyError, match=message):
        attestation.parse_reply(raw)
