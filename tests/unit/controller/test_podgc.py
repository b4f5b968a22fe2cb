"""PodGC decisions: orphans of a deleted node after the quarantine, terminating pods of a node
declared out of service at once, nothing else."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from nestlab.api.client import ApiClient
from nestlab.api.resources import NODES, PODS, Resource
from nestlab.controller.podgc import OUT_OF_SERVICE, PodGC, collectable

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
OOS = {"key": OUT_OF_SERVICE, "value": "nodeshutdown", "effect": "NoExecute"}


def node(name: str, ready: str = "True", taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"taints": taints or []},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }


def pod(name: str, on: str = "esx-02", terminating: bool = False, phase: str = "Running") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns"}
    if terminating:
        meta["deletionTimestamp"] = "2026-11-21T11:59:00Z"
    return {"metadata": meta, "spec": {"nodeName": on}, "status": {"phase": phase}}


# (id, pods, nodes, gone, expected (pod, why) pairs)
CASES: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], set[str], list[tuple[str, str]]]] = [
    ("healthy node", [pod("a"), pod("b", terminating=True)], [node("esx-02")], set(), []),
    (
        "unreachable, terminating: waits for the host",
        [pod("a", terminating=True)],
        [node("esx-02", "Unknown")],
        set(),
        [],
    ),
    (
        "out-of-service, terminating: collected",
        [pod("a", terminating=True), pod("b")],
        [node("esx-02", "Unknown", [OOS])],
        set(),
        [("a", "out-of-service")],
    ),
    (
        "out-of-service but Ready: left alone",
        [pod("a", terminating=True)],
        [node("esx-02", "True", [OOS])],
        set(),
        [],
    ),
    ("node missing, still in quarantine", [pod("a")], [], set(), []),
    (
        "node gone past quarantine",
        [pod("a"), pod("b", phase="Succeeded")],
        [],
        {"esx-02"},
        [("a", "orphaned"), ("b", "orphaned")],
    ),
    ("unscheduled pods are not ours", [pod("a", on="")], [], {""}, []),
]


@pytest.mark.parametrize(("case", "pods", "nodes", "gone", "expected"), CASES, ids=[c[0] for c in CASES])
def test_collectable(
    case: str,
    pods: list[dict[str, Any]],
    nodes: list[dict[str, Any]],
    gone: set[str],
    expected: list[tuple[str, str]],
) -> None:
    by_name = {n["metadata"]["name"]: n for n in nodes}
    assert [(c.pod, c.why) for c in collectable(pods, by_name, gone)] == expected


class FakeClient:
    """Lists fixed pods and nodes; records status writes and deletes."""

    def __init__(self, pods: list[dict[str, Any]], nodes: list[dict[str, Any]]) -> None:
        self.pods, self.nodes = pods, nodes
        self.writes: list[tuple[str, Any]] = []

    async def list(self, resource: Resource, namespace: str = "", **_: str) -> dict[str, Any]:
        return {"items": self.pods if resource is PODS else self.nodes if resource is NODES else []}

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> dict[str, Any]:
        self.writes.append((f"{method} {path}", body))
        return {}

    async def delete(
        self, resource: Resource, namespace: str, name: str, grace: int | None = None
    ) -> dict[str, Any]:
        self.writes.append((f"DELETE {namespace}/{name}", grace))
        return {}


def test_orphans_wait_out_the_quarantine_then_are_failed_and_force_deleted() -> None:
    clock = [NOW]
    fake = FakeClient([pod("a"), pod("done", phase="Failed")], [])
    gc = PodGC(cast(ApiClient, fake), quarantine=40, clock=lambda: clock[0])
    assert asyncio.run(gc.pass_once()) == []
    clock[0] = NOW + timedelta(seconds=39)
    assert asyncio.run(gc.pass_once()) == []
    clock[0] = NOW + timedelta(seconds=40)
    assert [c.pod for c in asyncio.run(gc.pass_once())] == ["a", "done"]
    status_write, delete_a, delete_done = fake.writes
    assert status_write[0] == "PATCH /api/v1/namespaces/ns/pods/a/status"
    assert status_write[1]["status"]["phase"] == "Failed"
    [condition] = status_write[1]["status"]["conditions"]
    assert (condition["type"], condition["reason"], condition["message"]) == (
        "DisruptionTarget",
        "DeletionByPodGC",
        "PodGC: node no longer exists",
    )
    assert delete_a == ("DELETE ns/a", 0)
    assert delete_done == ("DELETE ns/done", 0)  # already Failed: no status write


def test_a_node_that_reappears_ends_the_quarantine() -> None:
    clock = [NOW]
    fake = FakeClient([pod("a")], [])
    gc = PodGC(cast(ApiClient, fake), quarantine=40, clock=lambda: clock[0])
    asyncio.run(gc.pass_once())
    fake.nodes = [node("esx-02")]
    clock[0] = NOW + timedelta(seconds=30)
    asyncio.run(gc.pass_once())
    fake.nodes = []
    clock[0] = NOW + timedelta(seconds=50)  # missing again, but only for 20 s
    assert asyncio.run(gc.pass_once()) == []
    assert fake.writes == []
