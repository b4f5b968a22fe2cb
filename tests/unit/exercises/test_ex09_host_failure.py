"""Exercise 9's check and reset, and the lab restore exercises 9-13 share, against a fake Lab.

:class:`FakeLab` is the small stand-in the tests of exercises 9-13 use: API objects by path, node
machines that start when told to, and canned answers for the commands the checks run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from nestlab.errors import NestlabError, UsageError
from nestlab.exercises import ex09_host_failure as ex09
from nestlab.exercises.base import Obj

PLACED = {"esx-01": ("lb-1", "cp-1"), "esx-02": ("lb-2", "cp-2"), "esx-03": ("depot", "cp-3")}
ROLES = {
    **dict.fromkeys(PLACED, "host"),
    "depot": "depot",
    **{f"lb-{i}": "load-balancer" for i in (1, 2)},
    **{f"cp-{i}": "control-plane" for i in (1, 2, 3)},
}


def node(
    name: str, *, ready: str = "True", unschedulable: bool = False, taints: list[Obj] | None = None
) -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {"unschedulable": unschedulable, "taints": taints or []},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }


def event(reason: str, kind: str, name: str, at: str) -> Obj:
    return {"reason": reason, "involvedObject": {"kind": kind, "name": name}, "firstTimestamp": at}


class FakeLab:
    """A lab in memory: what the checks read, what the resets do to it, every command recorded."""

    name = "fake"

    def __init__(self) -> None:
        self.objects: dict[str, Obj] = {f"/api/v1/nodes/{n}": node(n) for n in PLACED}
        self.lists: dict[str, list[Obj]] = {}
        self.running = dict.fromkeys(ROLES, True)
        self.readyz = "ok"
        self.attest_output = "1 of 1 host(s) passed attestation"
        self.ssh_answers: list[tuple[str, str, Callable[[], str] | str]] = []
        self.calls: list[tuple[str, ...]] = []

    def get(self, path: str) -> Obj | None:
        return self.objects.get(path)

    def items(self, path: str) -> list[Obj]:
        if path == "/api/v1/nodes":
            return [self.objects[f"/api/v1/nodes/{n}"] for n in PLACED]
        return self.lists.get(path, [])

    def kubectl(self, *args: str, check: bool = True) -> str:
        self.calls.append(("kubectl", *args))
        if args[:3] == ("get", "--raw", "/readyz"):
            return self.readyz if all(self.running.values()) else "Unable to connect to the server"
        return ""

    def nestlab(self, *args: str, check: bool = True) -> str:
        self.calls.append(("nestlab", *args))
        if args[:2] == ("node", "start"):
            self.running[args[2]] = True
            for placed in PLACED.get(args[2], ()):
                self.running[placed] = True
        if args[:3] == ("host", "maintenance", "exit"):
            self.objects[f"/api/v1/nodes/{args[3]}"]["spec"]["unschedulable"] = False
        if args[:1] == ("attest",):
            return self.attest_output
        return ""

    def ssh(self, node: str, command: str, check: bool = True) -> str:
        self.calls.append(("ssh", node, command))
        if not self.running[node]:
            return ""
        for on, text, answer in self.ssh_answers:
            if on == node and text in command:
                return answer() if callable(answer) else answer
        return ""

    def node_running(self, node: str) -> bool:
        return self.running[node]

    def stop_host(self, host: str) -> None:
        for name in (host, *PLACED[host]):
            self.running[name] = False

    def commands(self, tool: str) -> list[tuple[str, ...]]:
        return [call[1:] for call in self.calls if call[0] == tool]


def no_sleep(_seconds: float) -> None:
    return None


def deployment(replicas: int = 3, ready: int = 3) -> Obj:
    return {"spec": {"replicas": replicas}, "status": {"readyReplicas": ready}}


@pytest.fixture
def done() -> FakeLab:
    """Exercise 9 as a learner leaves it: eviction, replacement, esx-02 back."""
    lab = FakeLab()
    lab.objects["/apis/apps/v1/namespaces/ex09/deployments/web"] = deployment()
    lab.lists["/api/v1/namespaces/ex09/events"] = [
        event("SuccessfulCreate", "ReplicaSet", "web-68869679db", "2026-12-06T02:13:41Z"),
        event("TaintManagerEviction", "Pod", "web-68869679db-fdd83", "2026-12-06T02:15:03Z"),
        event("SuccessfulCreate", "ReplicaSet", "web-68869679db", "2026-12-06T02:15:03Z"),
    ]
    return lab


def test_passes_after_eviction_replacement_and_return(done: FakeLab) -> None:
    assert ex09.check(done) == []


def test_a_fresh_lab_misses_the_deployment() -> None:
    assert ex09.check(FakeLab()) == ["there is no Deployment ex09/web: create it with 3 replicas (step 1)"]


def test_no_eviction_yet_says_to_stop_the_host(done: FakeLab) -> None:
    done.lists["/api/v1/namespaces/ex09/events"] = done.lists["/api/v1/namespaces/ex09/events"][:1]
    (missing,) = ex09.check(done)
    assert "no pod of ex09/web was evicted" in missing
    assert "stop esx-02" in missing


def test_a_create_before_the_eviction_is_no_replacement(done: FakeLab) -> None:
    done.lists["/api/v1/namespaces/ex09/events"].pop()
    assert ex09.check(done) == ["the ReplicaSet of ex09/web created no replacement pod after the eviction"]


def test_a_stopped_host_and_missing_replicas_are_named(done: FakeLab) -> None:
    done.stop_host("esx-02")
    done.objects["/api/v1/nodes/esx-02"] = node("esx-02", ready="Unknown")
    done.objects["/apis/apps/v1/namespaces/ex09/deployments/web"] = deployment(ready=2)
    missing = ex09.check(done)
    assert any("esx-02 is not back" in m and "node start esx-02" in m for m in missing)
    assert "Deployment ex09/web has 2 of 3 replicas ready" in missing


def test_restore_starts_the_host_once_uncordons_and_waits_for_health() -> None:
    lab = FakeLab()
    lab.stop_host("esx-02")
    lab.running["cp-1"] = False
    lab.objects["/api/v1/nodes/esx-03"]["spec"]["unschedulable"] = True
    ex09.restore_lab(lab, sleep=no_sleep)
    starts = [c for c in lab.commands("nestlab") if c[:2] == ("node", "start")]
    assert starts == [("node", "start", "esx-02"), ("node", "start", "cp-1")], (
        "a host brings its placed nodes"
    )
    assert ("host", "maintenance", "exit", "esx-03") in lab.commands("nestlab")
    assert ex09.lab_problem(lab) is None


def test_restore_gives_up_naming_what_is_still_wrong() -> None:
    lab = FakeLab()
    lab.objects["/api/v1/nodes/esx-01"] = node(
        "esx-01", taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]
    )
    now = [0.0]

    def clock() -> float:
        return now[0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(NestlabError, match="not back after 10s: Node esx-01 still has the taint"):
        ex09.restore_lab(lab, 10.0, clock=clock, sleep=sleep)


def test_lab_problem_names_each_kind_of_damage() -> None:
    lab = FakeLab()
    lab.readyz = "Error from server (InternalError)"
    assert "does not answer /readyz" in str(ex09.lab_problem(lab))
    lab.objects["/api/v1/nodes/esx-02"] = node("esx-02", ready="Unknown")
    assert ex09.lab_problem(lab) == "Node esx-02 is not Ready"
    lab.running["lb-2"] = False
    assert ex09.lab_problem(lab) == "stopped: lb-2"


def test_lab_problem_ignores_nodes_that_are_not_the_labs_own() -> None:
    lab = FakeLab()
    lab.objects["/api/v1/nodes/simh3-001"] = node("simh3-001", ready="Unknown")  # a bench's simulated host
    assert ex09.lab_problem(lab) is None
    lab.objects["/api/v1/nodes/esx-03"] = node("esx-03", ready="Unknown")
    assert ex09.lab_problem(lab) == "Node esx-03 is not Ready"


def test_api_errors_while_waiting_are_a_problem_not_a_crash() -> None:
    class Flaky(FakeLab):
        def items(self, path: str) -> list[Any]:
            raise NestlabError("lab fake does not answer")

    assert ex09.lab_problem(Flaky()) == "lab fake does not answer"


def test_reset_restores_before_it_deletes_the_namespace() -> None:
    lab = FakeLab()
    lab.stop_host("esx-02")
    ex09.reset(lab)
    order = [c[1] for c in lab.calls if c[0] == "nestlab" or c[:3] == ("kubectl", "delete", "namespace")]
    assert order.index("node") < order.index("delete")
    assert lab.commands("kubectl")[-1][:3] == ("wait", "--for=delete", "namespace/ex09")


def test_nodes_a_lab_does_not_have_are_skipped() -> None:
    class Smaller(FakeLab):
        def node_running(self, node: str) -> bool:
            if node == "depot":
                raise UsageError("lab fake has no node 'depot'")
            return super().node_running(node)

    lab = Smaller()
    lab.running["cp-3"] = False
    assert ex09.stopped_nodes(lab) == ["cp-3"]
