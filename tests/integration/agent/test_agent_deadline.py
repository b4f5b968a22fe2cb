"""activeDeadlineSeconds through the REAL agent, API server (etcd), registry and pod VM (TCG).

The kubelet reports a pod past its deadline Failed (DeadlineExceeded) at once and kills its
containers after, with the pod's grace period. A container that ignores SIGTERM makes that kill
last the whole grace period, so the order is visible through the API without timing anything:
the first Failed status still shows the container running, and only later its SIGKILL (137).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.agent.conftest import AgentProcess, qemu_pids, wait_until
from tests.integration.agent.test_agent import (
    BOOT_S,
    NS,
    _delete_and_wait_gone,
    _events,
    _get,
    _pod,
    _wait_phase,
    busybox_image,
    namespace,
)
from tests.integration.api.conftest import ApiServer

pytestmark = pytest.mark.integration
__all__ = ["busybox_image", "namespace"]  # the fixtures
GRACE_S = 20  # the kill of a SIGTERM-ignoring container lasts this long: the window the test reads in
DEADLINE_S = 10  # counted from the pod's startTime, boot included (an exceeded one ends it at once)


def test_a_pod_past_its_deadline_is_failed_before_its_container_is_killed(
    apiserver: ApiServer, node_agent: AgentProcess, namespace: str, busybox_image: str
) -> None:
    # sleep runs as its pid namespace's init: with no handler, it ignores SIGTERM
    pod = _pod("overdue", busybox_image, ["sleep", "600"], restart="Always")
    pod["spec"]["terminationGracePeriodSeconds"] = GRACE_S
    pod["spec"]["activeDeadlineSeconds"] = DEADLINE_S
    assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", pod)[0] == 201

    failed = _wait_phase(apiserver, "overdue", ("Failed", "Succeeded"))["status"]
    assert (failed["phase"], failed["reason"]) == ("Failed", "DeadlineExceeded"), json.dumps(failed)
    assert failed["message"] == "Pod was active on the node longer than the specified deadline"
    container = failed["containerStatuses"][0]
    assert "running" in container["state"], json.dumps(container)  # being killed: the grace runs

    def killed() -> dict[str, Any] | None:
        status = _get(apiserver, "overdue")["status"]
        state = status["containerStatuses"][0]["state"]
        return status if "terminated" in state else None

    wait_until(killed, "the container's SIGKILL after the grace period", timeout=GRACE_S + BOOT_S)
    final = killed()
    assert final is not None
    assert (final["phase"], final["reason"]) == ("Failed", "DeadlineExceeded")
    container = final["containerStatuses"][0]
    terminated = container["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"], container["restartCount"]) == (137, "Error", 0)
    assert container["lastState"] == {}  # never restarted: a terminal pod's containers stay down
    assert qemu_pids(node_agent.state) == []  # no container running is reported after the VM ended

    reasons = [e["reason"] for e in _events(apiserver, "overdue")]
    assert reasons.count("DeadlineExceeded") == 1, reasons
    assert "BackOff" not in reasons, reasons
    _delete_and_wait_gone(apiserver, "overdue")
