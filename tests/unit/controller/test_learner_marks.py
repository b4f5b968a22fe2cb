"""What a learner sees on a Node after stopping a host (issue 15), decided by pure functions.

- An unreachable host is not marked as having failed attestation: only upstream's unreachable
  taint keeps pods away from it; a host that answered and failed still gets the attestation taint,
  and a Ready host that stays silent for a minute fails closed.
- A host that comes back gets a ``NodeReady`` Event, the counterpart of ``NodeNotReady``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.api.tolerations import NOT_READY, UNREACHABLE
from nestlab.controller import attestation
from nestlab.controller.leader import micro_time
from nestlab.controller.nodelifecycle import GRACE, assess
from nestlab.trust.verdict import HostName, Verdict

Obj = dict[str, Any]
NOW = datetime(2026, 12, 6, 6, 0, 0, tzinfo=UTC)
SILENT = (
    "the node agent at https://198.18.100.12:10250/attestation did not answer "
    "(timed out: is the host up and not overloaded?): TimeoutError()"
)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def failed(reason: str) -> Verdict:
    return Verdict(HostName("esx-02"), NOW.isoformat(), {}, (), "d" * 64, False, (reason,))


def node(ready: str = "True", taints: list[Obj] | None = None, attested: Obj | None = None) -> Obj:
    conditions: list[Obj] = [{"type": "Ready", "status": ready}]
    if attested is not None:
        conditions.append(attested)
    return {
        "metadata": {"name": "esx-02", "creationTimestamp": "2026-12-06T05:00:00Z"},
        "spec": {"taints": taints or []},
        "status": {"conditions": conditions},
    }


UNREACHABLE_BOTH = [
    {"key": UNREACHABLE, "effect": "NoSchedule", "timeAdded": "2026-12-06T05:59:00Z"},
    {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-12-06T05:59:00Z"},
]


def test_a_stopped_host_is_not_tainted_as_failing_attestation() -> None:
    marks = attestation.marks(node("Unknown", UNREACHABLE_BOTH), failed(SILENT), "lab", stamp(NOW))
    assert marks.taints is None
    assert marks.condition["status"] == "Unknown"
    assert marks.condition["reason"] == attestation.UNREACHABLE
    assert marks.condition["message"].startswith("the host did not answer the attestation challenge")


def test_a_host_stopped_a_moment_ago_is_not_tainted_either() -> None:
    """Its Node is still Ready (the Lease is not stale yet) when the verifier's round comes."""
    marks = attestation.marks(node("True"), failed(SILENT), "lab", stamp(NOW))
    assert marks.taints is None
    assert (marks.condition["status"], marks.condition["reason"]) == ("Unknown", attestation.UNANSWERED)


def test_a_ready_host_that_stays_silent_fails_closed() -> None:
    since = NOW - timedelta(seconds=attestation.UNANSWERED_GRACE_S)
    before = {"type": "Attested", "status": "Unknown", "reason": attestation.UNANSWERED,
              "lastTransitionTime": stamp(since)}  # fmt: skip
    marks = attestation.marks(node("True", attested=before), failed(SILENT), "lab", stamp(NOW))
    assert (marks.condition["status"], marks.condition["reason"]) == ("False", attestation.FAILED)
    assert marks.taints is not None
    assert [t["key"] for t in marks.taints] == [attestation.TAINT_KEY]


def test_silence_counts_from_when_the_node_was_ready_again() -> None:
    """A host that was unreachable for an hour and is Ready again gets the full minute to answer."""
    long_ago = {"type": "Attested", "status": "Unknown", "reason": attestation.UNREACHABLE,
                "lastTransitionTime": stamp(NOW - timedelta(hours=1))}  # fmt: skip
    marks = attestation.marks(node("True", attested=long_ago), failed(SILENT), "lab", stamp(NOW))
    assert marks.taints is None
    assert marks.condition["lastTransitionTime"] == stamp(NOW)


def test_a_host_that_answered_and_failed_is_tainted_even_when_not_ready() -> None:
    marks = attestation.marks(
        node("Unknown", UNREACHABLE_BOTH),
        failed("PCR 11 event 3: kernel digest not allowed"),
        "lab",
        stamp(NOW),
    )
    assert marks.condition["status"] == "False"
    assert marks.taints is not None
    assert attestation.TAINT_KEY in [t["key"] for t in marks.taints]


def test_a_failed_host_keeps_its_taint_while_it_is_unreachable() -> None:
    tainted = [*UNREACHABLE_BOTH, {"key": attestation.TAINT_KEY, "effect": "NoSchedule"}]
    marks = attestation.marks(node("Unknown", tainted), failed(SILENT), "lab", stamp(NOW))
    assert marks.taints is None  # no change: the attestation taint stays until the host passes


def lease(age: int) -> Obj:
    return {"metadata": {"name": "esx-02"}, "spec": {"renewTime": micro_time(NOW - timedelta(seconds=age))}}


def test_a_host_that_comes_back_is_announced_node_ready() -> None:
    change = assess(node("True", UNREACHABLE_BOTH), lease(1), NOW)
    assert change is not None
    assert change.taints == []
    assert change.went_ready
    assert not change.went_not_ready


def test_ready_again_after_not_ready_is_announced_too() -> None:
    not_ready = [{"key": NOT_READY, "effect": "NoSchedule"}, {"key": NOT_READY, "effect": "NoExecute"}]
    change = assess(node("True", not_ready), lease(1), NOW)
    assert change is not None
    assert change.went_ready


def test_no_node_ready_while_still_away_or_never_gone() -> None:
    assert assess(node("True"), lease(1), NOW) is None
    away = assess(node("Unknown", UNREACHABLE_BOTH), lease(GRACE + 5), NOW)
    assert away is None or not away.went_ready


def test_the_shared_agent_client_s_transport_failure_reads_as_unanswered() -> None:
    """The verifier's reason is the node-agent client's own error text: keep the two in step."""
    import asyncio
    import socket

    from nestlab.api import nodeagent

    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    try:
        asyncio.run(nodeagent.post_json(f"https://127.0.0.1:{port}/attestation", {}, None))
    except nodeagent.NodeAgentError as exc:
        reason = str(exc)
    assert attestation.unanswered(failed(reason)), reason
    assert not attestation.unanswered(failed("the node agent at https://x:1 answered 503: not registered"))
