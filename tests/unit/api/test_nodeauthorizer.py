"""The Node authorizer: a node reads only what the pods bound to it name (pure graph, then the chain)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nestlab.api import auth, nodeauthorizer
from nestlab.api import resources as r
from nestlab.api.access import Authorizer
from nestlab.api.rbacrules import Attributes
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd

NODE = auth.User("system:node:esx-01", frozenset({"system:nodes", "system:authenticated"}))
OTHER = auth.User("system:node:esx-02", frozenset({"system:nodes", "system:authenticated"}))


def pod(name: str, node: str, namespace: str = "team-a", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"nodeName": node, **spec}}


WEB = pod(
    "web",
    "esx-01",
    containers=[
        {
            "name": "c",
            "envFrom": [{"secretRef": {"name": "env-secret"}}, {"configMapRef": {"name": "env-cm"}}],
            "env": [
                {"name": "A", "valueFrom": {"secretKeyRef": {"name": "key-secret", "key": "k"}}},
                {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "key-cm", "key": "k"}}},
            ],
        }
    ],
    initContainers=[{"name": "i", "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
    volumes=[
        {"name": "s", "secret": {"secretName": "vol-secret"}},
        {"name": "c", "configMap": {"name": "vol-cm"}},
        {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
        {
            "name": "p",
            "projected": {
                "sources": [
                    {"secret": {"name": "proj-secret"}},
                    {"configMap": {"name": "kube-root-ca.crt"}},
                    {"serviceAccountToken": {"path": "token"}},
                ]
            },
        },
    ],
    imagePullSecrets=[{"name": "pull"}],
    serviceAccountName="builder",
)
ELSEWHERE = pod("db", "esx-02", volumes=[{"name": "s", "secret": {"secretName": "db-secret"}}])


def get(resource: str, name: str, namespace: str = "team-a") -> Attributes:
    return Attributes("get", "", resource, name=name, namespace=namespace)


def test_references_cover_every_upstream_edge() -> None:
    refs = nodeauthorizer.references(WEB)
    assert refs["secrets"] == {"env-secret", "key-secret", "init-secret", "vol-secret", "proj-secret", "pull"}
    assert refs["configmaps"] == {"env-cm", "key-cm", "vol-cm", "kube-root-ca.crt"}
    assert refs["persistentvolumeclaims"] == {"data"}
    assert refs["serviceaccounts"] == {"builder"}
    assert nodeauthorizer.references(pod("bare", "esx-01"))["serviceaccounts"] == {"default"}


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        (get("secrets", "vol-secret"), True),
        (get("secrets", "pull"), True),
        (get("configmaps", "kube-root-ca.crt"), True),
        (get("persistentvolumeclaims", "data"), True),
        (get("serviceaccounts", "builder"), True),
        (get("secrets", "db-secret"), False),  # named by a pod of another node
        (get("secrets", "vol-secret", "team-b"), False),  # same name, other namespace
        (get("configmaps", "unrelated"), False),
        (Attributes("list", "", "secrets", namespace="team-a"), False),  # no name: never
    ],
)
def test_related(attrs: Attributes, expected: bool) -> None:
    assert nodeauthorizer.related("esx-01", attrs, [WEB, ELSEWHERE]) is expected


def test_volume_through_its_bound_claim() -> None:
    claim = {"metadata": {"name": "data", "namespace": "team-a"}, "spec": {"volumeName": "pv-1"}}
    foreign = {"metadata": {"name": "data", "namespace": "team-b"}, "spec": {"volumeName": "pv-2"}}
    volume = Attributes("get", "", "persistentvolumes", name="pv-1")
    assert nodeauthorizer.related("esx-01", volume, [WEB], [claim, foreign])
    assert not nodeauthorizer.related(
        "esx-01", Attributes("get", "", "persistentvolumes", name="pv-2"), [WEB], [claim, foreign]
    )
    assert not nodeauthorizer.related("esx-02", volume, [WEB], [claim])


def test_governs_only_reads_of_graph_kinds() -> None:
    assert nodeauthorizer.governs(get("secrets", "x"))
    assert not nodeauthorizer.governs(Attributes("create", "", "serviceaccounts", "token", "sa", "team-a"))
    assert not nodeauthorizer.governs(get("services", "x"))


def test_the_chain_answers_with_upstream_words() -> None:
    async def main() -> None:
        store = Store(FakeEtcd())  # type: ignore[arg-type]
        for p in (WEB, ELSEWHERE):
            await store.create(r.PODS, "team-a", dict(p))
        await store.create(
            r.PERSISTENTVOLUMECLAIMS, "team-a", {"metadata": {"name": "data"}, "spec": {"volumeName": "pv-1"}}
        )
        authorizer = Authorizer(store)
        assert await authorizer.allowed(NODE, "get", r.SECRETS, namespace="team-a", name="vol-secret")
        assert await authorizer.allowed(NODE, "get", r.PERSISTENTVOLUMES, namespace="", name="pv-1")
        assert await authorizer.allowed(OTHER, "get", r.SECRETS, namespace="team-a", name="db-secret")
        assert await authorizer.allowed(NODE, "list", r.SERVICES, namespace="team-a", name="")  # not governed
        assert not await authorizer.allowed(NODE, "list", r.SECRETS, namespace="team-a", name="")
        with pytest.raises(ApiError) as refused:
            await authorizer.check(NODE, "get", r.SECRETS, namespace="team-a", name="db-secret")
        assert refused.value.code == 403
        assert refused.value.message == (
            'secrets "db-secret" is forbidden: User "system:node:esx-01" cannot get resource "secrets" '
            'in API group "" in the namespace "team-a": '
            "no relationship found between node 'esx-01' and this object"
        )
        with pytest.raises(ApiError) as listing:
            await authorizer.check(NODE, "watch", r.CONFIGMAPS, namespace="team-a", name="")
        assert listing.value.message.endswith(": No Object name found")
        unnamed = auth.User("agent", frozenset({"system:nodes"}))
        assert not await authorizer.allowed(unnamed, "get", r.SECRETS, namespace="team-a", name="vol-secret")

    asyncio.run(main())


def attachment(name: str, node: str) -> dict[str, Any]:
    spec = {"attacher": "datastore.nestlab.io", "nodeName": node, "source": {"persistentVolumeName": "pv-1"}}
    return {"metadata": {"name": name}, "spec": spec}


def test_volume_attachments_are_governed_and_reach_only_their_node() -> None:
    va = Attributes("get", "storage.k8s.io", "volumeattachments", name="csi-a")
    assert nodeauthorizer.governs(va)
    assert not nodeauthorizer.governs(Attributes("get", "storage.k8s.io", "volumeattachments", "status", "x"))
    assert not nodeauthorizer.governs(Attributes("get", "storage.k8s.io", "storageclasses", name="x"))
    assert nodeauthorizer.attached_to(attachment("csi-a", "esx-01"), "esx-01")
    assert not nodeauthorizer.attached_to(attachment("csi-a", "esx-02"), "esx-01")
    assert not nodeauthorizer.attached_to(attachment("csi-a", ""), "")


def test_a_node_gets_its_own_attachments_only_and_never_lists_them() -> None:
    async def main() -> None:
        store = Store(FakeEtcd())  # type: ignore[arg-type]
        await store.create(r.VOLUMEATTACHMENTS, "", attachment("csi-mine", "esx-01"))
        await store.create(r.VOLUMEATTACHMENTS, "", attachment("csi-theirs", "esx-02"))
        authorizer = Authorizer(store)

        def allowed(user: auth.User, verb: str, name: str) -> Any:
            return authorizer.allowed(user, verb, r.VOLUMEATTACHMENTS, namespace="", name=name)

        assert await allowed(NODE, "get", "csi-mine")
        assert await allowed(OTHER, "get", "csi-theirs")
        assert not await allowed(NODE, "get", "csi-theirs")
        assert not await allowed(NODE, "get", "csi-missing")  # no edge: a 403, as another node's
        for verb in ("list", "watch"):
            assert not await allowed(NODE, verb, "")
            assert not await allowed(NODE, verb, "csi-mine")  # a single-object watch is no get
        with pytest.raises(ApiError) as theirs:
            await authorizer.check(NODE, "get", r.VOLUMEATTACHMENTS, namespace="", name="csi-theirs")
        assert theirs.value.message == (
            'volumeattachments.storage.k8s.io "csi-theirs" is forbidden: User "system:node:esx-01" cannot '
            'get resource "volumeattachments" in API group "storage.k8s.io" at the cluster scope: '
            "no relationship found between node 'esx-01' and this object"
        )
        with pytest.raises(ApiError) as listing:
            await authorizer.check(NODE, "list", r.VOLUMEATTACHMENTS, namespace="", name="")
        assert listing.value.code == 403
        assert listing.value.message.endswith(
            'cannot list resource "volumeattachments" in API group "storage.k8s.io" at the cluster scope: '
            "can only get individual resources of this type"
        )
        with pytest.raises(ApiError) as volumes:
            await authorizer.check(NODE, "list", r.PERSISTENTVOLUMES, namespace="", name="")
        assert volumes.value.message.endswith(": can only get individual resources of this type")

    asyncio.run(main())
