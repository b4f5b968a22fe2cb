"""Deployments, ReplicaSets and the garbage collector against the REAL API server and etcd.

The controllers run in-process on their informers (see :mod:`tests.integration.api.workloads`);
a fake kubelet marks pods Ready. Deletion propagation uses the server's DeleteOptions handling
(propagationPolicy -> foregroundDeletion/orphan finalizers) and the garbage collector's side.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nestlab.controller.deployment import DeploymentController
from nestlab.controller.gc import GarbageCollector
from nestlab.controller.replicaset import ReplicaSetController, ReplicationManager
from tests.integration.api.conftest import ApiServer, wait_until
from tests.integration.api.workloads import Harness, Observer, ready_pods, template_hashes

pytestmark = pytest.mark.integration
NS = "workloads"
APPS = f"/apis/apps/v1/namespaces/{NS}"
PODS = f"/api/v1/namespaces/{NS}/pods"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def harness(apiserver: ApiServer) -> Iterator[Harness]:
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
    running = Harness(
        apiserver, [ReplicaSetController, ReplicationManager, DeploymentController, GarbageCollector], NS
    )
    try:
        yield running
    finally:
        running.close()
        for path in (f"{APPS}/deployments", f"{APPS}/replicasets", PODS):
            listed = apiserver.request("GET", path)[1]
            for item in listed.get("items", []) if isinstance(listed, dict) else []:
                item_path = f"{path}/{item['metadata']['name']}"
                if item["metadata"].get("finalizers"):
                    apiserver.request("PATCH", item_path, {"metadata": {"finalizers": None}},
                                      content_type="application/merge-patch+json")  # fmt: skip
                apiserver.request("DELETE", item_path + "?gracePeriodSeconds=0")
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")


def deployment(name: str, image: str = "busybox:1.36", replicas: int = 3, **strategy: Any) -> Obj:
    spec: Obj = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": image}]},
        },
    }
    if strategy:
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": strategy}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def get(apiserver: ApiServer, path: str) -> Obj:
    code, body = apiserver.request("GET", path)
    assert code == 200, body
    return dict(body)


def items(apiserver: ApiServer, path: str, app: str) -> list[Obj]:
    return list(get(apiserver, f"{path}?labelSelector=app%3D{app}")["items"])


def gone(apiserver: ApiServer, path: str) -> bool:
    """The object at ``path`` no longer exists (asked as a list: a 404 would leak its socket)."""
    collection, _, name = path.rpartition("/")
    return not get(apiserver, f"{collection}?fieldSelector=metadata.name%3D{name}")["items"]


def condition(obj: Obj, kind: str) -> Obj:
    return next((c for c in obj.get("status", {}).get("conditions") or [] if c["type"] == kind), {})


def rolled_out(apiserver: ApiServer, name: str, replicas: int = 3) -> bool:
    deploy = get(apiserver, f"{APPS}/deployments/{name}")
    status = deploy.get("status") or {}
    return (
        status.get("observedGeneration", 0) >= deploy["metadata"].get("generation", 0)
        and status.get("updatedReplicas") == replicas
        and status.get("replicas") == replicas
        and status.get("availableReplicas") == replicas
        and condition(deploy, "Progressing").get("reason") == "NewReplicaSetAvailable"
    )


def test_deployment_creates_its_replica_set_and_pods(apiserver: ApiServer, harness: Harness) -> None:
    code, created = apiserver.request("POST", f"{APPS}/deployments", deployment("web"))
    assert code == 201, created
    wait_until(lambda: rolled_out(apiserver, "web"), "deployment web rolled out", timeout=60)
    (rs,) = items(apiserver, f"{APPS}/replicasets", "web")
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    (ref,) = rs["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"]) == ("Deployment", "web", created["metadata"]["uid"])
    assert ref["controller"] is True
    assert ref["blockOwnerDeletion"] is True
    pods = items(apiserver, PODS, "web")
    assert len(pods) == 3
    for pod in pods:
        assert pod["metadata"]["name"].startswith(f"web-{pod_hash}-")
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
    deploy = get(apiserver, f"{APPS}/deployments/web")
    assert deploy["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert condition(deploy, "Available")["reason"] == "MinimumReplicasAvailable"
    events = get(apiserver, f"/api/v1/namespaces/{NS}/events")["items"]
    said = {(e["involvedObject"]["name"], e["reason"], e["message"]) for e in events}
    assert ("web", "ScalingReplicaSet", f"Scaled up replica set web-{pod_hash} from 0 to 3") in said
    assert (
        sum(1 for name, reason, _ in said if (name, reason) == (rs["metadata"]["name"], "SuccessfulCreate"))
        == 3
    )


def test_rolling_update_with_max_unavailable_0_keeps_3_ready(apiserver: ApiServer, harness: Harness) -> None:
    body = deployment("roll", maxSurge=1, maxUnavailable=0)
    assert apiserver.request("POST", f"{APPS}/deployments", body)[0] == 201
    wait_until(lambda: rolled_out(apiserver, "roll"), "deployment roll rolled out", timeout=60)
    watch = Observer(harness, NS, ready_pods("roll"))
    wait_until(lambda: watch.current == 3, "3 ready pods seen by the watch", timeout=30)
    watch.arm()
    patch = {
        "metadata": {"annotations": {"kubernetes.io/change-cause": "new image"}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}}},
    }
    code, _ = apiserver.request(
        "PATCH", f"{APPS}/deployments/roll", patch, content_type="application/merge-patch+json"
    )
    assert code == 200

    def done() -> bool:
        pods = items(apiserver, PODS, "roll")
        images = {p["spec"]["containers"][0]["image"] for p in pods}
        return rolled_out(apiserver, "roll") and images == {"busybox:1.37"} and len(pods) == 3

    wait_until(done, "rollout of busybox:1.37", timeout=120)
    assert watch.minimum is not None
    assert watch.minimum >= 3, f"ready pods dropped to {watch.minimum}"
    replica_sets = {
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs
        for rs in items(apiserver, f"{APPS}/replicasets", "roll")
    }
    assert sorted(replica_sets) == ["1", "2"]
    assert replica_sets["1"]["spec"]["replicas"] == 0
    assert replica_sets["2"]["spec"]["replicas"] == 3
    assert replica_sets["2"]["metadata"]["annotations"]["kubernetes.io/change-cause"] == "new image"


def test_deleting_a_deployment_removes_replica_sets_and_pods(apiserver: ApiServer, harness: Harness) -> None:
    assert apiserver.request("POST", f"{APPS}/deployments", deployment("bye", replicas=2))[0] == 201
    wait_until(lambda: rolled_out(apiserver, "bye", 2), "deployment bye rolled out", timeout=60)
    assert apiserver.request("DELETE", f"{APPS}/deployments/bye")[0] == 200
    wait_until(
        lambda: not items(apiserver, f"{APPS}/replicasets", "bye") and not items(apiserver, PODS, "bye"),
        "replica sets and pods of bye collected",
        timeout=60,
    )


def test_foreground_deletion_removes_dependents_first(apiserver: ApiServer, harness: Harness) -> None:
    assert apiserver.request("POST", f"{APPS}/deployments", deployment("fg", replicas=2))[0] == 201
    wait_until(lambda: rolled_out(apiserver, "fg", 2), "deployment fg rolled out", timeout=60)
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"}
    code, marked = apiserver.request("DELETE", f"{APPS}/deployments/fg", options)
    assert code == 200, marked
    assert "foregroundDeletion" in marked["metadata"]["finalizers"]
    wait_until(
        lambda: gone(apiserver, f"{APPS}/deployments/fg"),
        "deployment fg gone after its dependents",
        timeout=60,
    )
    assert not items(apiserver, f"{APPS}/replicasets", "fg")
    assert not items(apiserver, PODS, "fg")


def test_orphan_deletion_keeps_replica_sets_and_pods(apiserver: ApiServer, harness: Harness) -> None:
    assert apiserver.request("POST", f"{APPS}/deployments", deployment("keep", replicas=2))[0] == 201
    wait_until(lambda: rolled_out(apiserver, "keep", 2), "deployment keep rolled out", timeout=60)
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Orphan"}
    assert apiserver.request("DELETE", f"{APPS}/deployments/keep", options)[0] == 200
    wait_until(lambda: gone(apiserver, f"{APPS}/deployments/keep"), "deployment keep gone", timeout=60)
    (rs,) = items(apiserver, f"{APPS}/replicasets", "keep")
    assert not rs["metadata"].get("ownerReferences")
    assert len(items(apiserver, PODS, "keep")) == 2  # still owned by their (now orphaned) ReplicaSet


def test_replica_set_adopts_orphans_replaces_failed_pods_and_releases(
    apiserver: ApiServer, harness: Harness
) -> None:
    orphan = {
        "metadata": {"name": "stray", "labels": {"app": "rs"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    assert apiserver.request("POST", PODS, orphan)[0] == 201
    rs = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "rs"}},
                 "template": {"metadata": {"labels": {"app": "rs"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
    }  # fmt: skip
    code, created = apiserver.request("POST", f"{APPS}/replicasets", rs)
    assert code == 201, created

    def owned() -> list[Obj]:
        uid = created["metadata"]["uid"]
        return [
            p
            for p in items(apiserver, PODS, "rs")
            if any(r["uid"] == uid for r in p["metadata"].get("ownerReferences") or [])
        ]

    wait_until(
        lambda: (
            len(owned()) == 2 and get(apiserver, f"{APPS}/replicasets/rs")["status"].get("readyReplicas") == 2
        ),
        "rs with 2 ready pods",
        timeout=60,
    )
    assert "stray" in {p["metadata"]["name"] for p in owned()}  # adopted, not duplicated
    failed = {"status": {"phase": "Failed"}}
    code, _ = apiserver.request(
        "PATCH", f"{PODS}/stray/status", failed, content_type="application/merge-patch+json"
    )
    assert code == 200
    wait_until(
        lambda: len([p for p in owned() if p["status"].get("phase") != "Failed"]) == 2,
        "failed pod replaced",
        timeout=60,
    )
    victim = next(p for p in owned() if p["status"].get("phase") != "Failed")["metadata"]["name"]
    relabel = {"metadata": {"labels": {"app": "rs-debug"}}}
    code, _ = apiserver.request(
        "PATCH", f"{PODS}/{victim}", relabel, content_type="application/merge-patch+json"
    )
    assert code == 200
    wait_until(
        lambda: not get(apiserver, f"{PODS}/{victim}")["metadata"].get("ownerReferences"),
        "relabelled pod released",
        timeout=60,
    )
    wait_until(
        lambda: len([p for p in owned() if p["status"].get("phase") != "Failed"]) == 2,
        "released pod replaced",
        timeout=60,
    )


def test_quota_refusal_sets_replica_failure(apiserver: ApiServer, harness: Harness) -> None:
    pods = get(apiserver, PODS)["items"]
    used = len([p for p in pods if p.get("status", {}).get("phase") not in ("Failed", "Succeeded")])
    quota = {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": str(used + 1)}}}  # room for one more
    assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/resourcequotas", quota)[0] == 201
    try:
        rs = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "capped"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "capped"}},
                     "template": {"metadata": {"labels": {"app": "capped"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        }  # fmt: skip
        assert apiserver.request("POST", f"{APPS}/replicasets", rs)[0] == 201

        def failing() -> bool:
            cond = condition(get(apiserver, f"{APPS}/replicasets/capped"), "ReplicaFailure")
            return cond.get("reason") == "FailedCreate" and "quota" in cond.get("message", "")

        wait_until(failing, "ReplicaFailure FailedCreate on capped", timeout=60)
        assert len(items(apiserver, PODS, "capped")) == 1
    finally:
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/resourcequotas/pods")
    wait_until(
        lambda: len(items(apiserver, PODS, "capped")) == 3,
        "capped reaches 3 once the quota is gone",
        timeout=120,
    )
    wait_until(
        lambda: not condition(get(apiserver, f"{APPS}/replicasets/capped"), "ReplicaFailure"),
        "ReplicaFailure cleared",
        timeout=60,
    )


def test_recreate_never_runs_two_templates_at_once(apiserver: ApiServer, harness: Harness) -> None:
    body = deployment("recreate", replicas=2)
    body["spec"]["strategy"] = {"type": "Recreate"}
    assert apiserver.request("POST", f"{APPS}/deployments", body)[0] == 201
    wait_until(lambda: rolled_out(apiserver, "recreate", 2), "deployment recreate rolled out", timeout=60)
    templates = Observer(harness, NS, template_hashes("recreate"))
    wait_until(lambda: templates.current == 1, "pods of one template seen by the watch", timeout=30)
    templates.arm()
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}}}}
    code, _ = apiserver.request(
        "PATCH", f"{APPS}/deployments/recreate", patch, content_type="application/merge-patch+json"
    )
    assert code == 200

    def done() -> bool:
        images = {p["spec"]["containers"][0]["image"] for p in items(apiserver, PODS, "recreate")}
        return rolled_out(apiserver, "recreate", 2) and images == {"busybox:1.37"}

    wait_until(done, "recreate rollout of busybox:1.37", timeout=120)
    assert templates.maximum == 1, "old and new pods ran at the same time"


def test_replication_controller_keeps_its_replicas(apiserver: ApiServer, harness: Harness) -> None:
    rc = {
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "legacy"},
        "spec": {"replicas": 2, "selector": {"app": "legacy"},
                 "template": {"metadata": {"labels": {"app": "legacy"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
    }  # fmt: skip
    code, created = apiserver.request("POST", f"/api/v1/namespaces/{NS}/replicationcontrollers", rc)
    assert code == 201, created

    def ready() -> bool:
        status = get(apiserver, f"/api/v1/namespaces/{NS}/replicationcontrollers/legacy").get("status") or {}
        return status.get("readyReplicas") == 2 and status.get("availableReplicas") == 2

    wait_until(ready, "replication controller legacy with 2 ready pods", timeout=60)
    refs = [p["metadata"]["ownerReferences"][0] for p in items(apiserver, PODS, "legacy")]
    assert {(r["apiVersion"], r["kind"], r["uid"]) for r in refs} == {
        ("v1", "ReplicationController", created["metadata"]["uid"])
    }
    # core/v1 ReplicationControllers orphan their pods by default (upstream, for compatibility);
    # kubectl delete asks for Background explicitly.
    background = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
    assert (
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/replicationcontrollers/legacy", background)[0]
        == 200
    )
    wait_until(lambda: not items(apiserver, PODS, "legacy"), "pods of legacy collected", timeout=60)


def test_a_stuck_rollout_exceeds_its_progress_deadline(apiserver: ApiServer, harness: Harness) -> None:
    body = deployment("stuck", image="registry.invalid/never-ready:1", replicas=1)
    body["spec"]["progressDeadlineSeconds"] = 2
    assert apiserver.request("POST", f"{APPS}/deployments", body)[0] == 201

    def timed_out() -> bool:
        cond = condition(get(apiserver, f"{APPS}/deployments/stuck"), "Progressing")
        return (cond.get("status"), cond.get("reason")) == ("False", "ProgressDeadlineExceeded")

    wait_until(timed_out, "Progressing=False ProgressDeadlineExceeded on stuck", timeout=60)
    cond = condition(get(apiserver, f"{APPS}/deployments/stuck"), "Progressing")
    assert cond["message"].endswith("has timed out progressing.")
