"""The storage API against the REAL etcd + nestlab-apiserver, with real kubectl (1.20 and modern):
the default StorageClass from bootstrap, ``kubectl get sc,pv,pvc`` columns, claims defaulted to it,
the lab's refusals (422 naming the field), storage quota (upstream's 403), and the real scheduler
and StatefulSet controller acting on claims."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from nestlab.api.client import ApiClient, Credentials
from nestlab.api.kinds.persistentvolumeclaim import SELECTED_NODE
from nestlab.controller.manager import Term
from nestlab.controller.scheduler import Placed, Scheduler
from nestlab.controller.statefulset import StatefulSetController
from tests.integration.api.conftest import ADMIN_TOKEN, ApiServer, wait_until

pytestmark = pytest.mark.integration
Obj = dict[str, Any]


@pytest.fixture
def namespace(apiserver: ApiServer) -> Iterator[str]:
    name = f"storage-{uuid.uuid4().hex[:8]}"
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    yield name
    apiserver.request("DELETE", f"/api/v1/namespaces/{name}")


def claim(name: str, size: str = "1Gi", **spec: Any) -> Obj:
    body = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, **spec}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": body}


def volume(name: str, **spec: Any) -> Obj:
    body = {
        "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": "1Gi"},
        "csi": {"driver": "datastore.nestlab.io", "volumeHandle": f"vol-{name}", "fsType": "ext4"},
        **spec,
    }
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": body}


def create(kubectl: Any, obj: Obj, namespace: str = "", check: bool = True) -> Any:
    where = ["-n", namespace] if namespace else []
    return kubectl("create", "-f", "-", *where, stdin=json.dumps(obj), check=check)


def table(text: str) -> list[list[str]]:
    """kubectl's columns split on runs of 2+ spaces (single spaces live inside cells)."""
    return [[cell for cell in line.split("  ") if cell.strip()] for line in text.strip().splitlines()]


def test_the_default_class_exists_from_bootstrap(kubectl: Any) -> None:
    wait_until(lambda: "datastore (default)" in kubectl("get", "sc").stdout, "the default StorageClass")
    rows = [[c.strip() for c in row] for row in table(kubectl("get", "sc", "datastore").stdout)]
    assert rows[0] == [
        "NAME",
        "PROVISIONER",
        "RECLAIMPOLICY",
        "VOLUMEBINDINGMODE",
        "ALLOWVOLUMEEXPANSION",
        "AGE",
    ]
    assert rows[1][:5] == [
        "datastore (default)",
        "datastore.nestlab.io",
        "Delete",
        "WaitForFirstConsumer",
        "false",
    ]


def test_claims_and_volumes_print_as_upstream(kubectl: Any, apiserver: ApiServer, namespace: str) -> None:
    wait_until(lambda: apiserver.request("GET", "/apis/storage.k8s.io/v1/storageclasses/datastore")[0] == 200,
               "the default StorageClass")  # fmt: skip
    create(kubectl, claim("data"), namespace)
    got = json.loads(kubectl("get", "pvc", "data", "-n", namespace, "-o", "json").stdout)
    assert got["spec"]["storageClassName"] == "datastore"  # DefaultStorageClass
    assert got["status"]["phase"] == "Pending"
    rows = [[c.strip() for c in row] for row in table(kubectl("get", "pvc", "-n", namespace).stdout)]
    assert rows[0] == [
        "NAME",
        "STATUS",
        "VOLUME",
        "CAPACITY",
        "ACCESS MODES",
        "STORAGECLASS",
        "VOLUMEATTRIBUTESCLASS",
        "AGE",
    ]
    assert rows[1][:4] == ["data", "Pending", "datastore", "<unset>"]

    pv_name = f"pv-{namespace}"
    create(
        kubectl,
        volume(pv_name, storageClassName="datastore", claimRef={"namespace": namespace, "name": "data"}),
    )
    try:
        # what the provisioner does: bind the claim, then write both statuses
        path = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/data"
        merge = "application/merge-patch+json"
        assert (
            apiserver.request("PATCH", path, {"spec": {"volumeName": pv_name}}, content_type=merge)[0] == 200
        )
        bound = {
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}
        }
        assert apiserver.request("PATCH", f"{path}/status", bound, content_type=merge)[0] == 200
        pv_path = f"/api/v1/persistentvolumes/{pv_name}/status"
        assert (
            apiserver.request("PATCH", pv_path, {"status": {"phase": "Bound"}}, content_type=merge)[0] == 200
        )
        rows = [
            [c.strip() for c in row] for row in table(kubectl("get", "pvc", "data", "-n", namespace).stdout)
        ]
        assert rows[1][:7] == ["data", "Bound", pv_name, "1Gi", "RWO", "datastore", "<unset>"]
        rows = [[c.strip() for c in row] for row in table(kubectl("get", "pv", pv_name).stdout)]
        assert rows[0] == ["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS",
                           "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"]  # fmt: skip
        assert rows[1][:8] == [
            pv_name,
            "1Gi",
            "RWO",
            "Retain",
            "Bound",
            f"{namespace}/data",
            "datastore",
            "<unset>",
        ]
        everything = kubectl("get", "sc,pv,pvc", "-n", namespace).stdout
        for shown in ("storageclass.storage.k8s.io/datastore", f"persistentvolume/{pv_name}",
                      "persistentvolumeclaim/data"):  # fmt: skip
            assert shown in everything, everything
        # a bound claim of a class that does not allow expansion does not grow; no claim shrinks
        smaller = kubectl("patch", "pvc", "data", "-n", namespace, "-p",
                          '{"spec":{"resources":{"requests":{"storage":"512Mi"}}}}', check=False)  # fmt: skip
        assert smaller.returncode != 0
        assert (
            "spec.resources.requests.storage: Forbidden: field can not be less than previous value"
            in smaller.stderr
        )
    finally:
        kubectl("delete", "pv", pv_name, "--wait=false")


def test_what_the_datastore_cannot_do_is_refused_by_name(kubectl: Any, namespace: str) -> None:
    shared = create(kubectl, claim("shared", accessModes=["ReadWriteMany"]), namespace, check=False)
    assert shared.returncode != 0
    assert (
        "spec.accessModes: Forbidden: ReadWriteMany is not supported by this lab: the lab datastore attaches "
        "a volume to one host at a time"
    ) in shared.stderr
    nfs = volume("nfs-volume", nfs={"server": "198.18.0.9", "path": "/export"})
    del nfs["spec"]["csi"]
    refused = create(kubectl, nfs, check=False)
    assert refused.returncode != 0
    assert "spec.nfs: Forbidden: nestlab does not implement nfs volumes" in refused.stderr
    create(kubectl, claim("fixed"), namespace)
    grown = kubectl("patch", "pvc", "fixed", "-n", namespace, "-p",
                    '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}', check=False)  # fmt: skip
    assert grown.returncode != 0
    assert "spec: Forbidden: spec is immutable after creation except resources.requests" in grown.stderr


def test_storage_quota_refuses_with_upstreams_403(kubectl: Any, namespace: str) -> None:
    kubectl(
        "create", "quota", "storage", "--hard=requests.storage=1Gi,persistentvolumeclaims=2", "-n", namespace
    )
    refused = create(kubectl, claim("big", "2Gi"), namespace, check=False)
    assert refused.returncode != 0
    assert (
        'persistentvolumeclaims "big" is forbidden: exceeded quota: storage, requested: requests.storage=2Gi, '
        "used: requests.storage=0, limited: requests.storage=1Gi"
    ) in refused.stderr
    create(kubectl, claim("small", "1Gi"), namespace)
    described = kubectl("describe", "quota", "storage", "-n", namespace).stdout
    assert any(line.split()[:3] == ["requests.storage", "1Gi", "1Gi"] for line in described.splitlines()), (
        described
    )


# -- the real scheduler and StatefulSet controller -----------------------------------------------------
@pytest.fixture
def host(apiserver: ApiServer) -> Iterator[str]:
    """A Ready node for this test only (pods pin themselves to it with a nodeSelector)."""
    name = f"stor-{uuid.uuid4().hex[:6]}"
    node = {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": {}}
    code, created = apiserver.request("POST", "/api/v1/nodes", node)
    assert code == 201, created
    created["status"] = {
        "conditions": [{"type": "Ready", "status": "True"}],
        "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "10"},
    }
    assert apiserver.request("PUT", f"/api/v1/nodes/{name}/status", created)[0] == 200
    yield name
    apiserver.request("DELETE", f"/api/v1/nodes/{name}")


def credentials(apiserver: ApiServer) -> Credentials:
    return Credentials(apiserver.url, apiserver.pki.ca, ADMIN_TOKEN)


def schedule(apiserver: ApiServer, namespace: str) -> dict[str, Placed]:
    async def one_pass() -> list[Placed]:
        client = ApiClient(credentials(apiserver))
        try:
            return await Scheduler(client).pass_once()
        finally:
            await client.close()

    return {p.pod: p for p in asyncio.run(one_pass()) if p.namespace == namespace}


def consumer(name: str, claim_name: str, host: str) -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": host},
            "containers": [
                {"name": "c", "image": "busybox:1.36", "volumeMounts": [{"name": "d", "mountPath": "/d"}]}
            ],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }


def test_the_scheduler_waits_for_claims_and_selects_the_node(
    apiserver: ApiServer, namespace: str, host: str
) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    claims = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
    assert apiserver.request("POST", pods, consumer("early", "data", host))[0] == 201
    placed = schedule(apiserver, namespace)
    assert placed["early"].node is None
    assert placed["early"].message.startswith("0/")
    assert 'persistentvolumeclaim "data" not found.' in placed["early"].message

    now_class = f"now-{namespace}"
    immediate: Obj = {"metadata": {"name": now_class}, "provisioner": "example.com/none"}
    assert apiserver.request("POST", "/apis/storage.k8s.io/v1/storageclasses", immediate)[0] == 201
    try:
        assert apiserver.request("POST", claims, claim("now", storageClassName=now_class))[0] == 201
        assert apiserver.request("POST", pods, consumer("hasty", "now", host))[0] == 201
        assert (
            apiserver.request("POST", claims, claim("data"))[0] == 201
        )  # the default class: WaitForFirstConsumer
        placed = schedule(apiserver, namespace)
        assert "pod has unbound immediate PersistentVolumeClaims" in placed["hasty"].message
        assert placed["early"].node == host
        selected = apiserver.request("GET", f"{claims}/data")[1]
        assert selected["metadata"]["annotations"][SELECTED_NODE] == host
        event = apiserver.request("GET", f"/api/v1/namespaces/{namespace}/events")[1]
        assert any(
            e["reason"] == "FailedScheduling" and e["involvedObject"]["name"] == "hasty"
            for e in event["items"]
        )
    finally:
        apiserver.request("DELETE", f"/apis/storage.k8s.io/v1/storageclasses/{now_class}")
        for name in ("early", "hasty"):
            apiserver.request("DELETE", f"{pods}/{name}?gracePeriodSeconds=0")


@contextlib.contextmanager
def statefulset_controller(apiserver: ApiServer) -> Iterator[None]:
    """The real StatefulSet controller (informers and workers) in a background thread."""
    started, running = threading.Event(), dict[str, Any]()

    async def main() -> None:
        stop = asyncio.Event()
        running.update(loop=asyncio.get_running_loop(), stop=stop)
        client = ApiClient(credentials(apiserver))
        term = Term(client, [StatefulSetController])
        term.start()
        started.set()
        try:
            await stop.wait()
        finally:
            await term.stop()
            await client.close()
            await asyncio.sleep(0.25)  # aiohttp's advice: let TLS connections finish closing

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(timeout=30), "the controller thread did not start"
    try:
        yield
    finally:
        running["loop"].call_soon_threadsafe(running["stop"].set)
        thread.join(timeout=30)
        assert not thread.is_alive(), "the controller thread did not stop"


def test_a_statefulset_gets_a_claim_per_ordinal(apiserver: ApiServer, namespace: str) -> None:
    template = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}  # fmt: skip
    sts: Obj = {
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 2,
            "serviceName": "db",
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [
                {"name": "c", "image": "busybox:1.36", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
            "volumeClaimTemplates": [template],
        },
    }  # fmt: skip
    refused = {
        **sts,
        "spec": {**sts["spec"], "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}},
    }
    code, body = apiserver.request("POST", f"/apis/apps/v1/namespaces/{namespace}/statefulsets", refused)
    assert code == 422, body
    assert "spec.persistentVolumeClaimRetentionPolicy.whenDeleted" in json.dumps(body)
    code, body = apiserver.request("POST", f"/apis/apps/v1/namespaces/{namespace}/statefulsets", sts)
    assert code == 201, body
    assert body["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"
    with statefulset_controller(apiserver):

        def pods_made() -> bool:
            listed = apiserver.request("GET", f"/api/v1/namespaces/{namespace}/pods")[1]
            return len(listed["items"]) == 2

        wait_until(pods_made, "both StatefulSet pods")
    listed = apiserver.request("GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims")[1]
    made = {c["metadata"]["name"]: c for c in listed["items"]}
    assert sorted(made) == ["data-db-0", "data-db-1"]
    assert made["data-db-0"]["spec"]["storageClassName"] == "datastore"
    assert made["data-db-0"]["metadata"]["labels"] == {"app": "db"}
    pod = apiserver.request("GET", f"/api/v1/namespaces/{namespace}/pods/db-1")[1]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}} in pod["spec"]["volumes"]
    for name in ("db-0", "db-1"):
        apiserver.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}?gracePeriodSeconds=0")
