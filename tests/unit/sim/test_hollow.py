"""The simulated hosts' objects say what they are, and report pods without pretending a network."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nestlab.sim import hollow


def test_names_sort_and_are_bounded() -> None:
    assert hollow.names(3) == ["sim-001", "sim-002", "sim-003"]
    assert hollow.names(2, "hx") == ["hx-001", "hx-002"]
    with pytest.raises(ValueError, match="between 0 and 999"):
        hollow.names(1000)


def test_node_is_labelled_and_tainted_as_simulated() -> None:
    node = hollow.node("sim-001")
    assert node["metadata"]["name"] == "sim-001"
    assert node["metadata"]["labels"][hollow.LABEL] == "true"
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "sim-001"
    assert node["spec"]["taints"] == [{"key": hollow.LABEL, "value": "true", "effect": "NoSchedule"}]
    assert hollow.is_simulated(node)
    assert not hollow.is_simulated({"metadata": {"name": "esx-01", "labels": {}}})


def test_status_is_ready_and_names_the_simulation() -> None:
    status = hollow.status("sim-001")
    (ready,) = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert ready["status"] == "True"
    assert ready["reason"] == hollow.READY_REASON
    assert "simulated" in ready["message"]
    assert status["nodeInfo"]["containerRuntimeVersion"] == hollow.RUNTIME
    assert status["allocatable"]["pods"] == str(hollow.MAX_PODS)
    assert {"type": "InternalIP", "address": hollow.ADDRESS} in status["addresses"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == hollow.PORT


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        ({"metadata": {}, "status": {"phase": "Pending"}}, True),
        ({"metadata": {}}, True),
        ({"metadata": {}, "status": {"phase": "Running"}}, False),
        ({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Pending"}}, False),
        ({"metadata": {}, "status": {"phase": "Succeeded"}}, False),
    ],
)
def test_needs_running(pod: dict[str, object], expected: bool) -> None:
    assert hollow.needs_running(pod) is expected


def test_running_reports_every_container_started_without_a_pod_ip() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "n", "uid": "u-1"},
        "spec": {"containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "nginx"}]},
    }
    moment = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)
    body = hollow.running(pod, moment)["status"]
    assert body["phase"] == "Running"
    assert "podIP" not in body
    assert "podIPs" not in body
    assert body["startTime"] == "2026-12-06T06:00:00Z"
    assert [c["containerID"] for c in body["containerStatuses"]] == ["sim://u-1/a", "sim://u-1/b"]
    assert all(c["ready"] and "running" in c["state"] for c in body["containerStatuses"])
    assert {c["type"] for c in body["conditions"] if c["status"] == "True"} == {
        "PodScheduled",
        "Initialized",
        "ContainersReady",
        "Ready",
    }


def test_tolerations_cover_the_simulation_and_attestation_taints() -> None:
    keys = {t["key"] for t in hollow.TOLERATIONS}
    assert keys == {hollow.LABEL, hollow.ATTESTATION_TAINT}


def test_capacity_can_be_set_for_a_layout() -> None:
    """50 hosts x 40 pods: each host registers room for 40, so the scheduler spreads them."""
    status = hollow.status("sim-001", max_pods=40)
    assert status["allocatable"]["pods"] == "40"
    assert status["capacity"]["pods"] == "40"
