"""Messages a learner reads (issue 15): an eviction blocked by a budget, exec to a host that is gone."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from nestlab.api import eviction, podstreams
from nestlab.api.status import ApiError

Obj = dict[str, Any]
UPSTREAM = "The disruption budget web needs 3 healthy pods and has 3 currently"


def budget(desired: int, current: int, allowed: int = 0, disrupted: Obj | None = None) -> Obj:
    return {
        "metadata": {"name": "web", "namespace": "ex10", "generation": 1},
        "status": {
            "observedGeneration": 1,
            "desiredHealthy": desired,
            "currentHealthy": current,
            "disruptionsAllowed": allowed,
            "disruptedPods": disrupted or {},
        },
    }


def test_the_budget_message_keeps_upstream_words_and_says_why() -> None:
    text = eviction.shortfall(budget(3, 3))
    assert text.startswith(UPSTREAM)
    assert "it allows 0 disruptions now (status.disruptionsAllowed)" in text
    assert "evicting one more pod would leave 2 healthy, fewer than the 3 it needs" in text
    assert "scale the workload up" in text
    assert "minAvailable/maxUnavailable" in text


def test_unconfirmed_evictions_are_named_as_the_reason() -> None:
    text = eviction.shortfall(budget(2, 3, disrupted={"web-1": "2026-12-06T06:00:00Z"}))
    assert "1 eviction(s) it already granted are not yet confirmed" in text


def test_the_api_cause_stays_upstream_byte_for_byte() -> None:
    refusal = eviction.violates(budget(3, 3))
    assert refusal.code == 429
    assert refusal.message == "Cannot evict pod as it would violate the pod's disruption budget."
    assert refusal.details is not None
    assert [c.message for c in refusal.details.causes] == [UPSTREAM]


def node(ready: str | None, taints: list[Obj] | None = None, port: int = 10250) -> Obj:
    conditions = [] if ready is None else [
        {"type": "Ready", "status": ready, "message": "Kubelet stopped posting node status."}
    ]  # fmt: skip
    return {
        "metadata": {"name": "esx-02"},
        "spec": {"taints": taints or []},
        "status": {
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        },
    }


def test_a_node_marked_unreachable_is_named_at_once() -> None:
    text = podstreams.unreachable(node("Unknown"))
    assert text is not None
    assert text.startswith(
        "error dialing backend: node esx-02 is NotReady (Kubelet stopped posting node status)"
    )
    tainted = podstreams.unreachable(node("True", [{"key": "node.kubernetes.io/unreachable"}]))
    assert tainted is not None
    assert "tainted node.kubernetes.io/unreachable" in tainted
    assert podstreams.unreachable(node("True")) is None
    assert podstreams.unreachable(node("False")) is None  # its agent posts status: it can be dialled
    assert podstreams.unreachable(node(None)) is None


def test_a_dial_that_gets_no_answer_is_a_503_i_o_timeout() -> None:
    with socket.socket() as listener:  # a full backlog: connects hang like SYNs to a stopped host
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            with pytest.raises(ApiError) as caught:
                asyncio.run(podstreams.dial(node("True", port=port), timeout=0.3))
        finally:
            for filler in fillers:
                filler.close()
    assert caught.value.code == 503
    assert caught.value.message.startswith(
        f"error dialing backend: node esx-02: dial tcp 127.0.0.1:{port}: i/o timeout"
    )


def test_a_refused_dial_is_left_to_the_session() -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    asyncio.run(podstreams.dial(node("True", port=port), timeout=1.0))  # no error: the session names it
