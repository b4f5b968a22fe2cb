"""Two real nestlab-controller processes elect a leader on a Lease; the leader binds pods."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nestlab.controller.leader import micro_time
from nestlab.runtime import proc
from tests.integration.api.conftest import ADMIN_TOKEN, ApiServer, wait_until

pytestmark = pytest.mark.integration
NS = "sched"
LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/nestlab-scheduler"


def node(
    name: str, labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or []},
    }


def web(name: str) -> dict[str, Any]:
    term = {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
    return {
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox:1.36", "resources": {"requests": {"cpu": "250m"}}}
            ],
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}},
        },
    }


@pytest.fixture(scope="module")
def lab(apiserver: ApiServer) -> Iterator[list[str]]:
    """Three Ready nodes (one in maintenance) and a namespace."""
    specs = [
        node("sched-1"),
        node("sched-2", labels={"disk": "ssd"}),
        node("sched-3", taints=[{"key": "maintenance", "value": "true", "effect": "NoSchedule"}]),
    ]
    names = []
    try:
        for spec in specs:
            code, created = apiserver.request("POST", "/api/v1/nodes", spec)
            assert code == 201, created
            names.append(spec["metadata"]["name"])
            created["status"] = {
                "conditions": [{"type": "Ready", "status": "True"}],
                "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "10"},
            }
            assert apiserver.request("PUT", f"/api/v1/nodes/{names[-1]}/status", created)[0] == 200
        assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
        yield names
    finally:
        pods = apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods")[1]
        for item in pods.get("items", []) if isinstance(pods, dict) else []:
            apiserver.request(
                "DELETE", f"/api/v1/namespaces/{NS}/pods/{item['metadata']['name']}?gracePeriodSeconds=0"
            )
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")
        for name in names:
            apiserver.request("DELETE", f"/api/v1/nodes/{name}")


@pytest.fixture
def start_controllers(apiserver: ApiServer, lab: list[str], tmp_path: Path) -> Iterator[Any]:
    """Start two controllers (cp-1, cp-2) with a given node grace period; stopped by PID at the end."""
    token = tmp_path / "token"
    token.write_text(ADMIN_TOKEN)
    running: dict[str, proc.Process] = {}

    def start(node_grace: int) -> dict[str, proc.Process]:
        for identity in ("cp-1", "cp-2"):
            argv = [
                sys.executable, "-m", "nestlab.controller.main", "--server", apiserver.url,
                "--certificate-authority", str(apiserver.pki.ca), "--token-file", str(token), "--identity", identity,
                "--leader-elect-lease-duration", "4", "--interval", "0.3",
                "--node-monitor-grace-period", str(node_grace),
            ]  # fmt: skip
            running[identity] = proc.spawn(argv, log=tmp_path / f"{identity}.log")
        return running

    try:
        yield start
    finally:
        for process in running.values():
            process.stop()


def holder(apiserver: ApiServer) -> str:
    code, lease = apiserver.request("GET", LEASE)
    return str(lease["spec"].get("holderIdentity", "")) if code == 200 else ""


def pod_state(apiserver: ApiServer, name: str) -> dict[str, Any]:
    code, pod = apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods/{name}")
    assert code == 200, pod
    return dict(pod)


def test_leader_binds_pods_and_hands_over(apiserver: ApiServer, start_controllers: Any) -> None:
    controllers = start_controllers(3600)  # no heartbeats in this test: keep node lifecycle out of it
    wait_until(lambda: holder(apiserver) in controllers, "a Lease holder", timeout=60)
    leader = holder(apiserver)

    for name in ("web-1", "web-2", "web-3"):
        assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", web(name))[0] == 201
    ssd = {
        "metadata": {"name": "db"},
        "spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": "i"}]},
    }
    assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", ssd)[0] == 201

    def settled() -> bool:
        third = pod_state(apiserver, "web-3")
        conditions = third["status"].get("conditions") or []
        return bool(pod_state(apiserver, "db")["spec"].get("nodeName")) and any(
            c["type"] == "PodScheduled" and c["status"] == "False" for c in conditions
        )

    wait_until(settled, "scheduling of web-1..3 and db", timeout=60)
    placed = {pod_state(apiserver, n)["spec"].get("nodeName") for n in ("web-1", "web-2")}
    assert placed == {"sched-1", "sched-2"}  # anti-affinity spreads them; sched-3 is in maintenance
    assert pod_state(apiserver, "db")["spec"]["nodeName"] == "sched-2"
    third = pod_state(apiserver, "web-3")
    assert "nodeName" not in third["spec"]
    condition = next(c for c in third["status"]["conditions"] if c["type"] == "PodScheduled")
    assert condition["reason"] == "Unschedulable"
    assert condition["message"] == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {maintenance: true}, "
        "2 node(s) didn't match pod anti-affinity rules. preemption: 0/3 nodes are available: "
        "1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
    )
    code, events = apiserver.request(
        "GET",
        f"/api/v1/namespaces/{NS}/events?fieldSelector=involvedObject.name%3Dweb-3,reason%3DFailedScheduling",
    )
    assert code == 200
    assert [e["message"] for e in events["items"]] == [condition["message"]]

    controllers[leader].stop()  # SIGTERM: the leader releases the Lease on its way out
    standby = next(identity for identity in controllers if identity != leader)
    wait_until(lambda: holder(apiserver) == standby, "the standby taking the Lease", timeout=60)
    code, maintenance = apiserver.request("GET", "/api/v1/nodes/sched-3")
    assert code == 200
    maintenance["spec"]["taints"] = []  # maintenance over: the pending replica now has a home
    assert apiserver.request("PUT", "/api/v1/nodes/sched-3", maintenance)[0] == 200
    wait_until(
        lambda: pod_state(apiserver, "web-3")["spec"].get("nodeName") == "sched-3", "web-3 bound", timeout=60
    )


def replica(name: str, cpu: str | None = None) -> dict[str, Any]:
    """A pod of the "spread" set: same labels, no rule of its own, tolerating maintenance."""
    resources = {"requests": {"cpu": cpu}} if cpu else {}
    return {
        "metadata": {"name": name, "labels": {"app": "spread"}},
        "spec": {
            "containers": [{"name": "c", "image": "busybox:1.36", "resources": resources}],
            "tolerations": [{"key": "maintenance", "operator": "Exists"}],
        },
    }


def test_replicas_spread_and_unschedulable_pod_says_why(apiserver: ApiServer, start_controllers: Any) -> None:
    """Three pods of one label set, created together, land on three nodes (default spreading);
    a pod asking for more cpu than any node has gets the upstream condition and Event."""
    for name in ("spread-1", "spread-2", "spread-3"):
        assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", replica(name))[0] == 201
    assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", replica("huge", cpu="3"))[0] == 201
    start_controllers(3600)

    def hosts() -> list[str]:
        return [
            pod_state(apiserver, n)["spec"].get("nodeName", "") for n in ("spread-1", "spread-2", "spread-3")
        ]

    def refused() -> list[dict[str, Any]]:
        conditions = pod_state(apiserver, "huge")["status"].get("conditions") or []
        return [c for c in conditions if c["type"] == "PodScheduled" and c["status"] == "False"]

    wait_until(lambda: all(hosts()) and refused(), "three replicas bound and huge refused", timeout=60)
    assert sorted(hosts()) == ["sched-1", "sched-2", "sched-3"]
    condition = refused()[0]
    assert condition["reason"] == "Unschedulable"
    assert condition["message"] == (
        "0/3 nodes are available: 3 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )
    code, events = apiserver.request(
        "GET",
        f"/api/v1/namespaces/{NS}/events?fieldSelector=involvedObject.name%3Dhuge,reason%3DFailedScheduling",
    )
    assert code == 200
    assert [(e["type"], e["message"]) for e in events["items"]] == [("Warning", condition["message"])]
    for name in ("spread-1", "spread-2", "spread-3", "huge"):
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/pods/{name}?gracePeriodSeconds=0")


def test_silent_node_becomes_unknown_and_unschedulable(apiserver: ApiServer, start_controllers: Any) -> None:
    """The node lifecycle pass: a host that stops renewing its Lease is tainted unreachable and the
    scheduler avoids it; when heartbeats resume, the taint goes."""
    leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    code, created = apiserver.request("POST", "/api/v1/nodes", node("life-1"))
    assert code == 201, created
    created["status"] = {
        "conditions": [{"type": "Ready", "status": "True"}],
        "allocatable": {"cpu": "2", "pods": "5"},
    }
    assert apiserver.request("PUT", "/api/v1/nodes/life-1/status", created)[0] == 200
    renewed = micro_time(datetime.now(UTC))
    lease = {"metadata": {"name": "life-1"}, "spec": {"holderIdentity": "life-1", "renewTime": renewed}}
    assert apiserver.request("POST", leases, lease)[0] == 201
    try:
        start_controllers(2)

        def taints() -> list[str]:
            return [
                t["key"]
                for t in apiserver.request("GET", "/api/v1/nodes/life-1")[1]["spec"].get("taints", [])
            ]

        wait_until(lambda: "node.kubernetes.io/unreachable" in taints(), "the unreachable taint", timeout=60)
        ready = next(c for c in apiserver.request("GET", "/api/v1/nodes/life-1")[1]["status"]["conditions"])
        assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "Unknown", "NodeStatusUnknown")

        code, current = apiserver.request("GET", f"{leases}/life-1")
        current["spec"]["renewTime"] = micro_time(
            datetime.now(UTC) + timedelta(hours=1)
        )  # heartbeats are back
        assert apiserver.request("PUT", f"{leases}/life-1", current)[0] == 200
        wait_until(lambda: "node.kubernetes.io/unreachable" not in taints(), "the taint removed", timeout=60)
    finally:
        apiserver.request("DELETE", f"{leases}/life-1")
        apiserver.request("DELETE", "/api/v1/nodes/life-1")


def test_bad_spread_and_affinity_are_refused_like_upstream(apiserver: ApiServer, lab: list[str]) -> None:
    """The terms the scheduler reads are validated at the door, with upstream's paths and messages."""
    bad = replica("bad")
    bad["spec"]["topologySpreadConstraints"] = [
        {"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "Sometimes"}
    ]
    bad["spec"]["affinity"] = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 101, "preference": {}}]
        }
    }
    code, answer = apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", bad)
    assert code == 422, answer
    causes = {(c["field"], c["message"]) for c in answer["details"]["causes"]}
    assert causes == {
        ("spec.topologySpreadConstraints[0].maxSkew", "Invalid value: 0: must be greater than zero"),
        (
            "spec.topologySpreadConstraints[0].whenUnsatisfiable",
            'Unsupported value: "Sometimes": supported values: "DoNotSchedule", "ScheduleAnyway"',
        ),
        (
            "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
            "Invalid value: 101: must be in the range 1-100",
        ),
    }
