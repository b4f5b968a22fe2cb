"""The Node authorizer, for real: a node agent reads only the Secrets, ConfigMaps, claims and volumes
its own pods name (the real API server, on the real etcd; the node is system:node:esx-07)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.api.conftest import NODE_TOKEN, ApiServer

pytestmark = pytest.mark.integration
PV = f"pv-nodeauthz-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(apiserver: ApiServer) -> Iterator[str]:
    name = f"nodeauthz-{uuid.uuid4().hex[:8]}"
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    account = {"metadata": {"name": "default"}}
    assert apiserver.request("POST", f"/api/v1/namespaces/{name}/serviceaccounts", account)[0] in (201, 409)
    yield name
    apiserver.request("DELETE", f"/api/v1/persistentvolumes/{PV}")
    apiserver.request("DELETE", f"/api/v1/namespaces/{name}")


def pod(name: str, node: str, secret: str, configmap: str, claim: str = "") -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [
        {"name": "s", "secret": {"secretName": secret}},
        {"name": "c", "configMap": {"name": configmap}},
    ]
    if claim:
        volumes.append({"name": "d", "persistentVolumeClaim": {"claimName": claim}})
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "automountServiceAccountToken": False,
            "containers": [{"name": "c", "image": "busybox:1.36"}],
            "volumes": volumes,
        },
    }


def test_node_reads_only_what_its_pods_name(apiserver: ApiServer, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}"
    for kind, name in [("secrets", "mine"), ("secrets", "theirs"), ("configmaps", "mine-cm")]:
        assert apiserver.request("POST", f"{base}/{kind}", {"metadata": {"name": name}})[0] == 201
    claim = {
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "volumeName": PV,
            "storageClassName": "",
        },
    }
    assert apiserver.request("POST", f"{base}/persistentvolumeclaims", claim)[0] == 201
    volume = {
        "metadata": {"name": PV},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"},
            "storageClassName": "",
            "csi": {"driver": "datastore.nestlab.io", "volumeHandle": f"vol-{PV}", "fsType": "ext4"},
        },
    }
    assert apiserver.request("POST", "/api/v1/persistentvolumes", volume)[0] == 201
    code, body = apiserver.request("POST", f"{base}/pods", pod("web", "esx-07", "mine", "mine-cm", "data"))
    assert code == 201, body
    code, body = apiserver.request("POST", f"{base}/pods", pod("db", "esx-08", "theirs", "mine-cm"))
    assert code == 201, body

    def get(path: str) -> tuple[int, Any]:
        return apiserver.request("GET", path, token=NODE_TOKEN)

    assert get(f"{base}/secrets/mine")[0] == 200
    assert get(f"{base}/configmaps/mine-cm")[0] == 200
    assert get(f"{base}/persistentvolumeclaims/data")[0] == 200
    assert get(f"/api/v1/persistentvolumes/{PV}")[0] == 200
    code, body = get(f"{base}/secrets/theirs")  # named by a pod of another node only
    assert (code, body["message"]) == (
        403,
        f'secrets "theirs" is forbidden: User "system:node:esx-07" cannot get resource "secrets" in API '
        f'group "" in the namespace "{namespace}": no relationship found between node \'esx-07\' and this object',
    )
    assert get(f"{base}/secrets")[0] == 403  # no listing of secrets for a node
    assert get(f"{base}/configmaps?watch=true")[0] == 403
    assert get("/api/v1/persistentvolumes")[0] == 403
    assert get(f"{base}/pods")[0] == 200  # other reads keep their node rules
    # a name its pod gives but nobody created yet: 404, never 403 (the agent waits for it)
    code, _ = apiserver.request("POST", f"{base}/pods", pod("later", "esx-07", "not-yet", "mine-cm"))
    assert code == 201
    assert get(f"{base}/secrets/not-yet")[0] == 404
    assert apiserver.request("DELETE", f"{base}/pods/later?gracePeriodSeconds=0")[0] == 200
    # the pod leaves the node: the relationship goes with it
    assert apiserver.request("DELETE", f"{base}/pods/db?gracePeriodSeconds=0")[0] == 200
    assert apiserver.request("DELETE", f"{base}/pods/web?gracePeriodSeconds=0")[0] == 200
    assert get(f"{base}/persistentvolumeclaims/data")[0] == 403
    assert get(f"/api/v1/persistentvolumes/{PV}")[0] == 403
    assert get(f"{base}/secrets/mine")[0] == 403


def test_node_gets_only_its_own_volume_attachments_by_name(apiserver: ApiServer) -> None:
    """Upstream's va -> node edge: a host learns nothing of the volumes attached to other hosts."""
    storage, suffix = "/apis/storage.k8s.io/v1/volumeattachments", uuid.uuid4().hex[:6]
    mine, theirs = f"csi-nodeauthz-mine-{suffix}", f"csi-nodeauthz-theirs-{suffix}"
    for name, node in ((mine, "esx-07"), (theirs, "esx-08")):
        spec = {"attacher": "datastore.nestlab.io", "nodeName": node, "source": {"persistentVolumeName": PV}}
        code, body = apiserver.request("POST", storage, {"metadata": {"name": name}, "spec": spec})
        assert code == 201, body
    try:

        def get(path: str) -> tuple[int, Any]:
            return apiserver.request("GET", path, token=NODE_TOKEN)

        code, body = get(f"{storage}/{mine}")
        assert (code, body["spec"]["nodeName"]) == (200, "esx-07")
        code, body = get(f"{storage}/{theirs}")
        assert (code, body["message"]) == (
            403,
            f'volumeattachments.storage.k8s.io "{theirs}" is forbidden: User "system:node:esx-07" cannot '
            'get resource "volumeattachments" in API group "storage.k8s.io" at the cluster scope: '
            "no relationship found between node 'esx-07' and this object",
        )
        # one that does not exist is no more readable than another node's: names cannot be probed
        assert get(f"{storage}/csi-nodeauthz-none-{suffix}")[0] == 403
        code, body = get(storage)
        assert (code, body["message"]) == (
            403,
            'volumeattachments.storage.k8s.io is forbidden: User "system:node:esx-07" cannot list resource '
            '"volumeattachments" in API group "storage.k8s.io" at the cluster scope: '
            "can only get individual resources of this type",
        )
        assert get(f"{storage}?watch=true")[0] == 403
        assert get(f"{storage}?watch=true&fieldSelector=metadata.name%3D{mine}")[0] == 403
        assert apiserver.request("GET", f"{storage}/{theirs}")[0] == 200  # the administrator reads all
    finally:
        for name in (mine, theirs):
            apiserver.request("DELETE", f"{storage}/{name}")
