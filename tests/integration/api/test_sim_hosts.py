"""Simulated hosts against the REAL API server: registered, heartbeating, running what is bound.

A :class:`~nestlab.sim.hosts.Fleet` of three hosts registers tainted, labelled Nodes and their
Leases; a scheduler of its own binds pods that tolerate the taint, and the hosts report them
Running (no pod IP), and only once released when the fleet was told to hold them; a pod that does not tolerate the taint stays unscheduled; a graceful delete
is confirmed; stopping the fleet removes its Nodes and Leases; a Node that is not simulated is
never taken over.
"""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.api.client import ApiClient
from nestlab.controller.scheduler import Scheduler
from nestlab.sim import hollow
from nestlab.sim.hosts import Fleet, NotSimulatedError, SimHost, Tally
from tests.integration.api.conftest import ApiServer, wait_until
from tests.integration.api.workloads import LoopThread, credentials

pytestmark = pytest.mark.integration

NS = "sim-hosts"
SCHEDULER = "sim-test-scheduler"
PREFIX = "simt"
Obj = dict[str, Any]


def _pod(name: str, *, tolerates: bool = True) -> Obj:
    spec: Obj = {
        "schedulerName": SCHEDULER,
        "containers": [{"name": "c", "image": "busybox:1.36", "resources": {"requests": {"cpu": "10m"}}}],
    }
    if tolerates:
        spec["tolerations"] = [dict(t) for t in hollow.TOLERATIONS]
        spec["nodeSelector"] = {hollow.LABEL: "true"}
    return {"metadata": {"name": name}, "spec": spec}


def _get(apiserver: ApiServer, path: str) -> tuple[int, Obj]:
    code, body = apiserver.request("GET", path)
    return int(code), body


def test_a_fleet_registers_runs_bound_pods_and_leaves_no_trace(
    apiserver: ApiServer, loop: LoopThread
) -> None:
    names = hollow.names(3, PREFIX)
    fleet = Fleet(lambda: ApiClient(credentials(apiserver)), names, max_pods=2)
    scheduler_client = ApiClient(credentials(apiserver))
    apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
    loop.run(fleet.start())
    try:
        for name in names:
            code, node = _get(apiserver, f"/api/v1/nodes/{name}")
            assert code == 200
            assert hollow.is_simulated(node)
            assert {"key": hollow.LABEL, "value": "true", "effect": "NoSchedule"} in node["spec"]["taints"]
            (ready,) = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
            assert (ready["status"], ready["reason"]) == ("True", hollow.READY_REASON)
            assert (
                _get(apiserver, f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}")[0]
                == 200
            )

        for index in range(6):
            assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", _pod(f"p{index}"))[0] == 201
        assert (
            apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", _pod("intolerant", tolerates=False))[0]
            == 201
        )
        scheduler = Scheduler(scheduler_client, name=SCHEDULER)
        fleet.hold()  # the bench's --hold-hosts: bound pods wait until released
        placed = {p.pod: p for p in loop.run(scheduler.pass_once())}
        loop.run(scheduler.flush())
        hosts = sorted(str(placed[f"p{i}"].node) for i in range(6))
        assert hosts == sorted(names * 2)  # two pods each: the capacity the hosts registered
        assert placed["intolerant"].node is None
        assert "untolerated taint" in placed["intolerant"].message

        def running() -> int:
            items = apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods")[1]["items"]
            return len([p for p in items if p["status"].get("phase") == "Running"])

        wait_until(lambda: fleet.tally.held == 6, "the hosts holding the six pods bound to them")
        assert (running(), fleet.tally.running) == (0, 0)
        fleet.release()
        wait_until(lambda: running() == 6, "six pods reported Running by the simulated hosts")
        assert fleet.tally.held == 0
        code, pod = _get(apiserver, f"/api/v1/namespaces/{NS}/pods/p0")
        assert "podIP" not in pod["status"]
        assert pod["status"]["containerStatuses"][0]["containerID"].startswith("sim://")
        assert fleet.tally.running == 6
        assert fleet.tally.failures == 0

        assert apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/pods/p1")[0] == 200  # graceful
        wait_until(lambda: _get(apiserver, f"/api/v1/namespaces/{NS}/pods/p1")[0] == 404, "p1 confirmed gone")
        wait_until(lambda: fleet.tally.confirmed_gone == 1, "the host counting its confirmation")
    finally:
        loop.run(fleet.stop())
        loop.run(scheduler_client.close())
    for name in names:
        assert _get(apiserver, f"/api/v1/nodes/{name}")[0] == 404
        assert (
            _get(apiserver, f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}")[0]
            == 404
        )
    items = apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods")[1]["items"]
    assert [p["metadata"]["name"] for p in items] == ["intolerant"]  # the hosts' pods went with them


def test_a_real_node_is_never_taken_over(apiserver: ApiServer, loop: LoopThread) -> None:
    name = f"{PREFIX}-real"
    node = {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}
    assert apiserver.request("POST", "/api/v1/nodes", node)[0] == 201
    client = ApiClient(credentials(apiserver))
    try:
        with pytest.raises(NotSimulatedError, match="not a simulated host"):
            loop.run(SimHost(client, name, Tally()).register())
        code, kept = _get(apiserver, f"/api/v1/nodes/{name}")
        assert code == 200
        assert not hollow.is_simulated(kept)
        assert "taints" not in kept.get("spec", {})
    finally:
        loop.run(client.close())
        apiserver.request("DELETE", f"/api/v1/nodes/{name}")
