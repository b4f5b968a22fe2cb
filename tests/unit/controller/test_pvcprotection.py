"""The pvc-protection controller: the finalizer goes only when no scheduled pod names the claim."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from nestlab.api.kinds import persistentvolumeclaim as pvcs
from nestlab.api.resources import PERSISTENTVOLUMECLAIMS, PODS, Resource
from nestlab.controller import main as controller_main
from nestlab.controller.pvcprotection import PVCProtectionController, uses
from tests.unit.controller.volumefakes import FakeApi, drain

Obj = dict[str, Any]
PROTECTION = "kubernetes.io/pvc-protection"


def pod(name: str, node: str = "esx-01", *, claim: str = "data", phase: str = "Running") -> Obj:
    return {
        "metadata": {"name": name, "namespace": "demo", "uid": f"p-{name}"},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "x"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": claim}},
            ],
        },
        "status": {"phase": phase},
    }


def claim(*, deleting: bool = True, finalizers: list[str] | None = None) -> Obj:
    meta: Obj = {
        "name": "data",
        "namespace": "demo",
        "uid": "u-data",
        "resourceVersion": "7",
        "finalizers": [PROTECTION] if finalizers is None else finalizers,
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-12-06T10:00:00Z"
    return {"metadata": meta, "spec": {"volumeName": "pvc-u-data"}, "status": {"phase": "Bound"}}


class Api(FakeApi):
    """The fake API plus PUT (the registry's rule: a deleting object without finalizers goes) and a
    live pod list that may hold pods the informer has not seen yet."""

    def __init__(self) -> None:
        super().__init__()
        self.live_only: list[Obj] = []
        self.lists = 0

    async def replace(self, resource: Resource, namespace: str, obj: Obj, subresource: str = "") -> Obj:
        self.writes.append(("update", resource.plural, obj["metadata"]["name"]))
        meta = obj["metadata"]
        gone = meta.get("deletionTimestamp") and not meta.get("finalizers")
        self.informers.informer(resource).apply("DELETED" if gone else "MODIFIED", copy.deepcopy(obj))
        return obj

    async def list(self, resource: Resource, namespace: str = "", **_: Any) -> Obj:
        self.lists += 1
        items = self.informers.informer(resource).list(namespace) + self.live_only
        return {"items": copy.deepcopy(items)}


class Setup:
    def __init__(self) -> None:
        self.api = Api()
        self.controller = PVCProtectionController(self.api.client(), self.api.informers)
        self.claims = self.api.informers.informer(PERSISTENTVOLUMECLAIMS)
        self.pods = self.api.informers.informer(PODS)

    async def drain(self) -> None:
        await drain(self.controller)


def test_the_api_server_gives_every_new_claim_the_finalizer() -> None:
    made: Obj = {"metadata": {"name": "data", "finalizers": ["example.com/keep"]}, "spec": {}}
    pvcs.on_create(made)
    assert made["metadata"]["finalizers"] == ["example.com/keep", PROTECTION]
    pvcs.on_create(made)  # never twice
    assert made["metadata"]["finalizers"] == ["example.com/keep", PROTECTION]
    bare: Obj = {"metadata": {"name": "data"}, "spec": {}}
    pvcs.on_create(bare)
    assert bare["metadata"]["finalizers"] == [PROTECTION]
    assert pvcs.PVC_PROTECTION == PROTECTION


def test_uses_is_upstreams_pod_uses_pvc() -> None:
    assert uses(pod("a"), "data")
    assert not uses(pod("a"), "other")
    assert not uses(pod("a", node=""), "data")  # not scheduled: the scheduler will not bind it now
    # upstream holds the claim for a finished pod too, until that pod is deleted (kubernetes#120756)
    assert uses(pod("a", phase="Succeeded"), "data")
    assert uses(pod("a", phase="Failed"), "data")


def test_a_claim_in_use_stays_until_its_last_pod_goes() -> None:
    async def scenario() -> None:
        s = Setup()
        s.pods.apply("ADDED", pod("a"))
        s.pods.apply("ADDED", pod("b", claim="other"))
        s.claims.apply("ADDED", claim())
        await s.drain()
        assert s.claims.get("demo/data") is not None  # Terminating: pod a uses it
        assert s.api.writes == []

        s.pods.apply("MODIFIED", pod("b", phase="Succeeded", claim="other"))  # not a user: no change
        await s.drain()
        assert s.claims.get("demo/data") is not None

        s.pods.apply("DELETED", pod("a"))
        await s.drain()
        assert s.claims.get("demo/data") is None  # finalizer removed: the API server deleted it
        assert s.api.writes == [("update", "persistentvolumeclaims", "data")]

    asyncio.run(scenario())


def test_an_unused_claim_goes_at_once_and_other_finalizers_stay() -> None:
    async def scenario() -> None:
        s = Setup()
        s.pods.apply("ADDED", pod("a", node=""))  # unscheduled: holds nothing
        s.claims.apply("ADDED", claim(finalizers=["example.com/keep", PROTECTION]))
        await s.drain()
        kept = s.claims.get("demo/data")
        assert kept is not None
        assert kept["metadata"]["finalizers"] == ["example.com/keep"]

    asyncio.run(scenario())


def test_a_pod_the_cache_has_not_seen_yet_keeps_the_claim() -> None:
    async def scenario() -> None:
        s = Setup()
        s.api.live_only.append(pod("new"))
        s.claims.apply("ADDED", claim())
        await s.drain()
        assert s.api.lists == 1  # the cache said unused: a live list decides
        assert s.claims.get("demo/data") is not None
        s.api.live_only.clear()
        s.pods.apply("ADDED", pod("new"))
        s.pods.apply("DELETED", pod("new"))
        await s.drain()
        assert s.claims.get("demo/data") is None

    asyncio.run(scenario())


def test_a_pod_replaced_under_the_same_name_releases_the_old_ones_claim() -> None:
    async def scenario() -> None:
        s = Setup()
        s.pods.apply("ADDED", pod("web-0"))
        s.claims.apply("ADDED", claim())
        await s.drain()
        assert s.claims.get("demo/data") is not None
        renewed = pod("web-0", claim="fresh")
        renewed["metadata"]["uid"] = "p-web-0-again"
        s.pods.apply("MODIFIED", renewed)  # a delete and a create seen as one update
        await s.drain()
        assert s.claims.get("demo/data") is None

    asyncio.run(scenario())


def test_a_claim_made_before_the_finalizer_gets_it() -> None:
    async def scenario() -> None:
        s = Setup()
        s.claims.apply("ADDED", claim(deleting=False, finalizers=[]))
        await s.drain()
        current = s.claims.get("demo/data")
        assert current is not None
        assert current["metadata"]["finalizers"] == [PROTECTION]
        s.controller.queue.add("demo/data")
        await s.drain()
        assert s.api.writes == [("update", "persistentvolumeclaims", "data")]  # once

    asyncio.run(scenario())


def test_nestlab_controller_runs_it() -> None:
    assert PVCProtectionController in controller_main.CONTROLLERS
