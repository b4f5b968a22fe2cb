"""EndpointSlices from pods and from mirrored Endpoints, the write planner and the stale-cache tracker."""

from __future__ import annotations

import copy
from typing import Any

from nestlab.controller import endpointslicing as slicing
from nestlab.controller.endpointtracker import Tracker
from tests.unit.controller.test_endpointset import pod, service

Obj = dict[str, Any]


def ips(slice_: Obj) -> list[str]:
    return [e["addresses"][0] for e in slice_["endpoints"]]


def stored(slice_: Obj, name: str, version: int = 1) -> Obj:
    """A created slice as the server would hold it."""
    out = copy.deepcopy(slice_)
    out["metadata"].pop("generateName", None)
    out["metadata"].update(name=name, resourceVersion=str(version), uid=f"uid-{name}")
    return out


def many(count: int, *, ready: bool = True) -> list[Obj]:
    return [pod(f"p{i:03d}", f"198.19.{i // 200}.{i % 200 + 2}", ready=ready) for i in range(count)]


def test_endpoint_conditions_as_upstream() -> None:
    svc = service()
    ready = slicing.slice_endpoint(svc, pod("a", "198.19.1.5"))
    assert ready == {
        "addresses": ["198.19.1.5"],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "targetRef": {"kind": "Pod", "namespace": "demo", "name": "a", "uid": "uid-a"},
        "nodeName": "esx-01",
    }
    assert slicing.slice_endpoint(svc, pod("b", "198.19.1.6", ready=False))["conditions"] == {
        "ready": False, "serving": False, "terminating": False,
    }  # fmt: skip
    going = pod("c", "198.19.1.7", deleting=True)
    assert slicing.slice_endpoint(svc, going)["conditions"] == {
        "ready": False, "serving": True, "terminating": True,
    }  # fmt: skip
    publish = service(publishNotReadyAddresses=True)
    assert slicing.slice_endpoint(publish, going)["conditions"]["ready"] is True


def test_terminating_pods_are_in_slices_finished_ones_are_not() -> None:
    groups = slicing.groups_for_service(
        service(),
        [pod("a", "198.19.1.5", deleting=True), pod("b", "198.19.1.6", phase="Failed"), pod("c")],
    )
    (group,) = groups.values()
    assert [e["targetRef"]["name"] for e in group.endpoints.values()] == ["a"]


def test_named_ports_split_pods_into_groups() -> None:
    svc = service([{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    pods = [
        pod("a", "198.19.1.5", ports=[{"name": "web", "containerPort": 8080}]),
        pod("b", "198.19.1.6", ports=[{"name": "web", "containerPort": 8081}]),
        pod("c", "198.19.1.7"),
    ]
    groups = slicing.groups_for_service(svc, pods)
    by_ports = {tuple(p["port"] for p in g.ports): [e["addresses"][0] for e in g.endpoints.values()]
                for g in groups.values()}  # fmt: skip
    assert by_ports == {(8080,): ["198.19.1.5"], (8081,): ["198.19.1.6"], (): ["198.19.1.7"]}


def test_slice_metadata_labels_owner_and_name() -> None:
    svc = service()
    svc["metadata"]["labels"][slicing.MANAGED_BY_LABEL] = "someone-else"
    meta = slicing.service_slice_meta(svc)
    assert meta["generateName"] == "web-"
    assert meta["labels"] == {
        "team": "a",
        slicing.SERVICE_NAME_LABEL: "web",
        slicing.MANAGED_BY_LABEL: "endpointslice-controller.k8s.io",
    }
    assert meta["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "svc-uid",
         "controller": True, "blockOwnerDeletion": True}
    ]  # fmt: skip
    assert (
        slicing.service_slice_meta(service(cluster_ip="None"))["labels"]["service.kubernetes.io/headless"]
        == ""
    )


def test_first_plan_creates_one_ipv4_slice() -> None:
    svc = service()
    groups = slicing.groups_for_service(svc, [pod("b", "198.19.1.6"), pod("a", "198.19.1.5")])
    plan = slicing.plan(groups, [], slicing.service_slice_meta(svc), placeholder=True)
    (made,) = plan.creates
    assert (plan.updates, plan.deletes) == ([], [])
    assert made["addressType"] == "IPv4"
    assert made["ports"] == [{"name": "", "port": 8080, "protocol": "TCP"}]  # upstream writes name ""
    assert ips(made) == ["198.19.1.5", "198.19.1.6"]


def test_more_than_100_endpoints_make_several_slices_and_growth_fills_room_first() -> None:
    svc = service()
    meta = slicing.service_slice_meta(svc)
    plan = slicing.plan(slicing.groups_for_service(svc, many(250)), [], meta)
    assert [len(s["endpoints"]) for s in plan.creates] == [100, 100, 50]
    existing = [stored(s, f"web-{i}") for i, s in enumerate(plan.creates)]
    # nothing changed: nothing to write
    assert slicing.plan(slicing.groups_for_service(svc, many(250)), existing, meta).empty
    # 30 more: they go into the slice with room, no new slice
    grown = slicing.plan(slicing.groups_for_service(svc, many(280)), existing, meta)
    assert (len(grown.creates), len(grown.deletes)) == (0, 0)
    (updated,) = grown.updates
    assert (updated["metadata"]["name"], len(updated["endpoints"])) == ("web-2", 80)


def test_one_pod_turning_not_ready_rewrites_only_its_slice() -> None:
    svc = service()
    meta = slicing.service_slice_meta(svc)
    pods = many(150)
    existing = [stored(s, f"web-{i}") for i, s in
                enumerate(slicing.plan(slicing.groups_for_service(svc, pods), [], meta).creates)]  # fmt: skip
    pods[120]["status"]["conditions"][0]["status"] = "False"
    plan = slicing.plan(slicing.groups_for_service(svc, pods), existing, meta)
    (updated,) = plan.updates
    assert not plan.creates
    assert not plan.deletes
    assert updated["metadata"]["resourceVersion"] == "1"  # compare-and-swap
    flipped = [e for e in updated["endpoints"] if e["targetRef"]["name"] == "p120"]
    assert flipped[0]["conditions"]["ready"] is False


def test_removed_pods_empty_slices_are_deleted_and_placeholder_kept() -> None:
    svc = service()
    meta = slicing.service_slice_meta(svc)
    existing = [stored(s, f"web-{i}") for i, s in
                enumerate(slicing.plan(slicing.groups_for_service(svc, many(150)), [], meta).creates)]  # fmt: skip
    shrunk = slicing.plan(slicing.groups_for_service(svc, many(150)[:10]), existing, meta)
    assert [s["metadata"]["name"] for s in shrunk.deletes] == ["web-1"]
    assert [len(s["endpoints"]) for s in shrunk.updates] == [10]
    # no pods at all: one empty placeholder slice, as upstream
    gone = slicing.plan({}, existing, meta, placeholder=True)
    (placeholder,) = gone.creates
    assert (placeholder["endpoints"], placeholder["ports"]) == ([], [])
    assert len(gone.deletes) == 2
    kept = [stored(placeholder, "web-9")]
    assert slicing.plan({}, kept, meta, placeholder=True).empty


def test_pods_changing_ports_move_between_slices() -> None:
    svc = service([{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    meta = slicing.service_slice_meta(svc)
    before = [pod("a", "198.19.1.5", ports=[{"name": "web", "containerPort": 8080}])]
    existing = [
        stored(s, "web-0") for s in slicing.plan(slicing.groups_for_service(svc, before), [], meta).creates
    ]
    after = [pod("a", "198.19.1.5", ports=[{"name": "web", "containerPort": 9090}])]
    plan = slicing.plan(slicing.groups_for_service(svc, after), existing, meta)
    assert [s["ports"][0]["port"] for s in plan.creates] == [9090]
    assert [s["metadata"]["name"] for s in plan.deletes] == ["web-0"]


def test_service_label_change_rewrites_slice_metadata() -> None:
    svc = service()
    existing = [stored(s, "web-0") for s in
                slicing.plan(slicing.groups_for_service(svc, many(3)), [], slicing.service_slice_meta(svc)).creates]  # fmt: skip
    svc["metadata"]["labels"]["team"] = "b"
    plan = slicing.plan(slicing.groups_for_service(svc, many(3)), existing, slicing.service_slice_meta(svc))
    (updated,) = plan.updates
    assert updated["metadata"]["labels"]["team"] == "b"


def endpoints_object(subsets: list[Obj], **labels: str) -> Obj:
    return {
        "metadata": {"name": "kubernetes", "namespace": "default", "uid": "ep-uid", "labels": labels,
                     "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "x", "note": "y"}},
        "subsets": subsets,
    }  # fmt: skip


def test_mirroring_conversion() -> None:
    ep = endpoints_object(
        [
            {
                "addresses": [{"ip": "198.18.0.10", "nodeName": "cp-1", "hostname": "api"}],
                "notReadyAddresses": [{"ip": "198.18.0.11"}, {"ip": "not-an-ip"}, {"ip": "fd00::1"}],
                "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
            }
        ],
        app="api",
    )
    (group,) = slicing.groups_for_endpoints(ep).values()
    assert group.ports == [{"name": "https", "port": 6443, "protocol": "TCP"}]
    assert list(group.endpoints.values()) == [
        {"addresses": ["198.18.0.10"], "conditions": {"ready": True}, "nodeName": "cp-1", "hostname": "api"},
        {"addresses": ["198.18.0.11"], "conditions": {"ready": False}},
    ]
    meta = slicing.mirror_slice_meta(ep)
    assert meta["labels"] == {
        "app": "api",
        slicing.SERVICE_NAME_LABEL: "kubernetes",
        slicing.MANAGED_BY_LABEL: "endpointslicemirroring-controller.k8s.io",
    }
    assert meta["annotations"] == {"note": "y"}
    assert meta["ownerReferences"][0]["kind"] == "Endpoints"
    assert meta["generateName"] == "kubernetes-"
    plan = slicing.plan(slicing.groups_for_endpoints(ep), [], meta, max_per_slice=slicing.MAX_MIRRORED)
    (made,) = plan.creates
    assert ips(made) == ["198.18.0.10", "198.18.0.11"]


def test_mirroring_subsets_with_equal_ports_share_a_slice_and_skip_mirror() -> None:
    dns = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    ep = endpoints_object(
        [{"addresses": [{"ip": "198.18.0.21"}], "ports": dns},
         {"addresses": [{"ip": "198.18.0.22"}], "ports": list(reversed(dns))}]
    )  # fmt: skip
    (group,) = slicing.groups_for_endpoints(ep).values()
    assert len(group.endpoints) == 2
    assert slicing.should_mirror(ep)
    ep["metadata"]["labels"][slicing.SKIP_MIRROR_LABEL] = "true"
    assert not slicing.should_mirror(ep)
    assert not slicing.should_mirror(None)


def test_tracker_waits_for_the_cache_then_forgets() -> None:
    now = [0.0]
    tracker = Tracker(ttl=10, clock=lambda: now[0])
    cache: dict[str, Obj] = {}
    tracker.wrote("demo/web", {"metadata": {"name": "web-abc", "resourceVersion": "7"}})
    assert tracker.stale("demo/web", cache.get)
    cache["web-abc"] = {"metadata": {"name": "web-abc", "resourceVersion": "6"}}
    assert tracker.stale("demo/web", cache.get)
    cache["web-abc"]["metadata"]["resourceVersion"] = "7"
    assert not tracker.stale("demo/web", cache.get)
    tracker.deleted("demo/web", "web-abc")
    assert tracker.stale("demo/web", cache.get)
    del cache["web-abc"]
    assert not tracker.stale("demo/web", cache.get)
    tracker.wrote("demo/web", {"metadata": {"name": "web-def", "resourceVersion": "9"}})
    now[0] = 11.0  # a watch lagging longer than the ttl: stop waiting for it
    assert not tracker.stale("demo/web", cache.get)
