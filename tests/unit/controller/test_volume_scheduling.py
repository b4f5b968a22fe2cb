"""Claims in scheduling and in StatefulSets: the volume PreFilters' verdicts (missing, unbound
Immediate, ReadWriteOncePod in use), selected-node on WaitForFirstConsumer claims before the bind,
and ``<template>-<set>-<ordinal>`` claims created before each StatefulSet pod."""

from __future__ import annotations

import asyncio
import copy
from typing import Any, cast

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.kinds.persistentvolumeclaim import SELECTED_NODE
from nestlab.api.kinds.storageclass import lab_default
from nestlab.api.resources import (
    NODES,
    PERSISTENTVOLUMECLAIMS,
    STATEFULSETS,
    STORAGECLASSES,
    Resource,
)
from nestlab.controller import claims
from nestlab.controller.informer import InformerFactory
from nestlab.controller.scheduler import Scheduler
from nestlab.controller.statefulset import StatefulSetController, claims_for, use_claims
from tests.unit.controller.test_batch_stateful_sync import NOW, FakeClient, statefulset
from tests.unit.controller.test_placement import node, pod

Obj = dict[str, Any]
IMMEDIATE = {"metadata": {"name": "fast"}, "provisioner": "example.com/nas", "volumeBindingMode": "Immediate"}


def claim(
    name: str, *, cls: str = "datastore", volume: str = "", modes: tuple[str, ...] = ("ReadWriteOnce",)
) -> Obj:
    spec: Obj = {"accessModes": list(modes), "storageClassName": cls}
    if volume:
        spec["volumeName"] = volume
    return {"metadata": {"name": name, "namespace": "demo"}, "spec": spec, "status": {"phase": "Pending"}}


def user(name: str, *claim_names: str, node_name: str = "") -> Obj:
    volumes = [
        {"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claim_names)
    ]
    return pod(name, node_name=node_name, volumes=volumes)


def verdict(target: Obj, known: list[Obj], placed: tuple[Obj, ...] = ()) -> claims.ClaimCheck:
    return claims.Claims(known, [lab_default(), IMMEDIATE], list(placed)).check(target)


def test_a_pod_without_claims_is_not_looked_at() -> None:
    assert verdict(pod("web"), []) == claims.ClaimCheck()


def test_missing_deleting_and_lost_claims_keep_the_pod_pending() -> None:
    assert verdict(user("web", "data"), []).refusal == 'persistentvolumeclaim "data" not found'
    going = claim("data")
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert verdict(user("web", "data"), [going]).refusal == 'persistentvolumeclaim "data" is being deleted'
    lost = claim("data", volume="pvc-1")
    lost["status"]["phase"] = "Lost"
    expected = 'persistentvolumeclaim "data" bound to non-existent persistentvolume "pvc-1"'
    assert verdict(user("web", "data"), [lost]).refusal == expected


def test_unbound_immediate_claims_wait_and_first_consumer_claims_are_selected() -> None:
    assert verdict(user("web", "data"), [claim("data", cls="fast")]).refusal == claims.UNBOUND_IMMEDIATE
    assert verdict(user("web", "data"), [claim("data", cls="missing")]).refusal == claims.UNBOUND_IMMEDIATE
    assert verdict(user("web", "data"), [claim("data", cls="")]).refusal == claims.UNBOUND_IMMEDIATE
    ok = verdict(user("web", "data", "logs"), [claim("data"), claim("logs", cls="fast", volume="pv-9")])
    assert ok == claims.ClaimCheck(select=("data",))


def test_a_read_write_once_pod_claim_in_use_refuses_a_second_pod() -> None:
    only = claim("data", volume="pv-1", modes=("ReadWriteOncePod",))
    first = user("first", "data", node_name="esx-01")
    assert verdict(user("second", "data"), [only], (first,)).refusal == claims.RWOP_CONFLICT
    assert verdict(user("second", "data"), [only]).refusal == ""
    shared = claim("data", volume="pv-1")
    assert verdict(user("second", "data"), [shared], (first,)).refusal == ""


class VolumeApi:
    """Nodes, pods, claims and classes in memory, for one scheduling pass."""

    def __init__(self, pods: list[Obj], known: list[Obj]) -> None:
        self.pods = {p["metadata"]["name"]: p for p in pods}
        self.claims = {c["metadata"]["name"]: c for c in known}
        self.calls: list[tuple[str, str, Any]] = []

    async def list(
        self, resource: Resource, namespace: str = "", *, labels: str = "", fields: str = ""
    ) -> Obj:
        if resource is NODES:
            return {"items": [node("esx-01")]}
        if resource is PERSISTENTVOLUMECLAIMS:
            return {"items": list(self.claims.values())}
        if resource is STORAGECLASSES:
            return {"items": [lab_default(), IMMEDIATE]}
        items = list(self.pods.values())
        return {"items": [p for p in items if not p["spec"].get("nodeName")] if fields else items}

    async def patch(
        self, resource: Resource, namespace: str, name: str, body: Obj, subresource: str = ""
    ) -> Obj:
        self.calls.append(("patch", f"{resource.plural}/{name}", body))
        if resource is PERSISTENTVOLUMECLAIMS and name not in self.claims:
            raise status.ApiError(404, "NotFound", f'persistentvolumeclaims "{name}" not found')
        return {}

    async def bind(self, namespace: str, name: str, node_name: str) -> Obj:
        self.calls.append(("bind", name, node_name))
        return {}

    async def create(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        self.calls.append(("event", obj["reason"], obj["message"]))
        return obj


def test_the_scheduler_selects_the_node_on_the_claim_before_binding() -> None:
    api = VolumeApi([user("web", "data")], [claim("data")])
    placed = asyncio.run(Scheduler(cast(ApiClient, api)).pass_once())
    assert [p.node for p in placed] == ["esx-01"]
    annotate = (
        "patch",
        "persistentvolumeclaims/data",
        {"metadata": {"annotations": {SELECTED_NODE: "esx-01"}}},
    )
    assert api.calls.index(annotate) < api.calls.index(("bind", "web", "esx-01"))


def test_a_claim_already_pointing_at_the_node_is_not_patched_again() -> None:
    selected = claim("data")
    selected["metadata"]["annotations"] = {SELECTED_NODE: "esx-01"}
    api = VolumeApi([user("web", "data")], [selected])
    asyncio.run(Scheduler(cast(ApiClient, api)).pass_once())
    assert [c[0] for c in api.calls if c[0] != "event"] == ["bind"]


def test_the_scheduler_reports_a_missing_claim_as_upstream_does() -> None:
    api = VolumeApi([user("web", "data")], [])
    placed = asyncio.run(Scheduler(cast(ApiClient, api)).pass_once())
    expected = (
        '0/1 nodes are available: persistentvolumeclaim "data" not found. '
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
    assert [p.message for p in placed] == [expected]
    assert ("event", "FailedScheduling", expected) in api.calls
    assert not [c for c in api.calls if c[0] == "bind"]


# -- StatefulSet volumeClaimTemplates ----------------------------------------------------------------
def with_templates() -> Obj:
    sts = statefulset()
    template = {"metadata": {"name": "data", "labels": {"tier": "db"}}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}  # fmt: skip
    sts["spec"]["volumeClaimTemplates"] = [template]
    sts["spec"]["template"]["spec"]["volumes"] = [
        {"name": "data", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    return sts


def test_claims_and_pod_volumes_of_an_ordinal() -> None:
    sts = with_templates()
    made = claims_for(sts, 2)
    assert [c["metadata"]["name"] for c in made] == ["data-web-2"]
    assert made[0]["metadata"]["labels"] == {"tier": "db", "app": "web"}
    assert made[0]["metadata"]["namespace"] == "demo"
    assert "ownerReferences" not in made[0]["metadata"]  # Retain: the claim outlives the pod and the set
    body = {"metadata": {"name": "web-2"}, "spec": copy.deepcopy(sts["spec"]["template"]["spec"])}
    volumes = use_claims(body, sts, 2)["spec"]["volumes"]
    assert volumes == [
        {"name": "tmp", "emptyDir": {}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-2"}},
    ]


def test_the_controller_creates_the_claim_before_the_pod() -> None:
    async def scenario() -> None:
        client = FakeClient()
        informers = InformerFactory(cast(ApiClient, client))
        controller = StatefulSetController(cast(ApiClient, client), informers, clock=lambda: NOW)
        informers.informer(STATEFULSETS).apply("ADDED", with_templates())
        await controller.sync("demo/web")
        creates = [
            w[1:] for w in client.writes if w[0] == "create" and w[1] in ("persistentvolumeclaims", "pods")
        ]
        assert creates == [("persistentvolumeclaims", "data-web-0"), ("pods", "web-0")]
        made = client.objects[("pods", "demo", "web-0")]
        assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}} in made["spec"][
            "volumes"
        ]
        controller.queue.shutdown()

    asyncio.run(scenario())


def test_an_existing_claim_is_reused_and_a_deleting_one_holds_the_pod() -> None:
    async def scenario() -> None:
        client = FakeClient()
        kept = claims_for(with_templates(), 0)[0]
        client.objects[("persistentvolumeclaims", "demo", "data-web-0")] = kept
        informers = InformerFactory(cast(ApiClient, client))
        controller = StatefulSetController(cast(ApiClient, client), informers, clock=lambda: NOW)
        informers.informer(STATEFULSETS).apply("ADDED", with_templates())
        await controller.sync("demo/web")
        assert ("create", "pods", "web-0") in client.writes
        del client.objects[("pods", "demo", "web-0")]
        client.writes.clear()
        kept["metadata"]["deletionTimestamp"] = "2026-12-05T12:00:00Z"
        await controller.sync("demo/web")
        assert ("create", "pods", "web-0") not in client.writes
        controller.queue.shutdown()

    asyncio.run(scenario())


def test_pods_stay_as_they_were_without_templates() -> None:
    sts = statefulset()
    body = {"metadata": {"name": "web-0"}, "spec": {"containers": []}}
    assert use_claims(copy.deepcopy(body), sts, 0) == body
    assert claims_for(sts, 0) == []
