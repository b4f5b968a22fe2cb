"""Claims in admission: the default class (DefaultStorageClass), storage quota charged at create in
total and per class (upstream's 403 wording), released at removal, and resize admission."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nestlab.api import kinds, quota, storageclasses
from nestlab.api import resources as r
from nestlab.api.kinds import resourcequota, storageclass
from nestlab.api.registry import Registry
from nestlab.api.status import ApiError
from tests.unit.api.test_registry import fresh, run

Obj = dict[str, Any]
GOLD = "gold.storageclass.storage.k8s.io"


def claim(name: str, size: str = "1Gi", **spec: Any) -> Obj:
    body = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, **spec}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": body}


def limits(**hard: str) -> Obj:
    return {"metadata": {"name": "storage"}, "spec": {"hard": hard}}


async def with_classes() -> Registry:
    registry = await fresh()
    assert await storageclasses.ensure_default_class(registry.create)
    assert not await storageclasses.ensure_default_class(registry.create)  # a second server: no error
    gold = {"metadata": {"name": "gold"}, "provisioner": "example.com/nas", "allowVolumeExpansion": True}
    await registry.create(r.STORAGECLASSES, "", gold)
    return registry


@pytest.mark.parametrize(
    "key",
    [
        "requests.storage",
        "persistentvolumeclaims",
        f"{GOLD}/requests.storage",
        f"{GOLD}/persistentvolumeclaims",
    ],
)
def test_storage_keys_are_enforced_keys(key: str) -> None:
    assert resourcequota.validate(limits(**{key: "1"})) == []


def test_a_claim_without_a_class_gets_the_default_and_an_empty_class_stays_empty() -> None:
    async def scenario() -> None:
        registry = await with_classes()
        made = await registry.create(r.PERSISTENTVOLUMECLAIMS, "demo", claim("data"))
        assert made["spec"]["storageClassName"] == storageclass.DEFAULT_CLASS
        assert made["status"] == {"phase": "Pending"}
        none = await registry.create(r.PERSISTENTVOLUMECLAIMS, "demo", claim("static", storageClassName=""))
        assert none["spec"]["storageClassName"] == ""
        named = await registry.create(r.PERSISTENTVOLUMECLAIMS, "demo", claim("nas", storageClassName="gold"))
        assert named["spec"]["storageClassName"] == "gold"

    run(scenario())


def test_without_a_default_class_the_claim_keeps_no_class() -> None:
    async def scenario() -> None:
        registry = await fresh()
        made = await registry.create(r.PERSISTENTVOLUMECLAIMS, "demo", claim("data"))
        assert "storageClassName" not in made["spec"]

    run(scenario())


def test_storage_quota_refuses_with_upstreams_words_and_releases_on_delete() -> None:
    async def scenario() -> None:
        registry = await with_classes()
        await registry.create(r.PERSISTENTVOLUMECLAIMS, "demo", claim("before", "512Mi"))
        made = await registry.create(
            r.QUOTAS, "demo", limits(**{"requests.storage": "2Gi", "persistentvolumeclaims": "5"})
        )
        assert made["status"]["used"] == {"requests.storage": "512Mi", "persistentvolumeclaims": "1"}
        await registry.create(r.PERSISTENTVOLUMECLAIMS, "demo", claim("one", "1Gi"))
        with pytest.raises(ApiError) as over:
            await registry.create(r.PERSISTENTVOLUMECLAIMS, "demo", claim("two", "1Gi"))
        assert over.value.code == 403
        assert over.value.message == (
            'persistentvolumeclaims "two" is forbidden: exceeded quota: storage, requested: '
            "requests.storage=1Gi, used: requests.storage=1536Mi, limited: requests.storage=2Gi"
        )
        used = (await registry.get(r.QUOTAS, "demo", "storage"))["status"]["used"]
        assert used == {
            "requests.storage": "1536Mi",
            "persistentvolumeclaims": "2",
        }  # the refusal charged nothing
        await registry.delete(r.PERSISTENTVOLUMECLAIMS, "demo", "before", {})
        # Terminating (kubernetes.io/pvc-protection): still charged until it is gone, as upstream
        with pytest.raises(ApiError):
            await registry.create(r.PERSISTENTVOLUMECLAIMS, "demo", claim("two", "1Gi"))
        going = await registry.get(r.PERSISTENTVOLUMECLAIMS, "demo", "before")
        assert going["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
        going["metadata"]["finalizers"] = []  # what the pvc-protection controller does: no pod uses it
        await registry.update(r.PERSISTENTVOLUMECLAIMS, "demo", "before", going)
        await registry.create(r.PERSISTENTVOLUMECLAIMS, "demo", claim("two", "1Gi"))

    run(scenario())


def test_per_class_quota_counts_only_that_class() -> None:
    async def scenario() -> None:
        registry = await with_classes()
        hard = {f"{GOLD}/requests.storage": "1Gi", f"{GOLD}/persistentvolumeclaims": "1"}
        await registry.create(r.QUOTAS, "demo", limits(**hard))
        await registry.create(r.PERSISTENTVOLUMECLAIMS, "demo", claim("plain", "5Gi"))  # the default class
        await registry.create(r.PERSISTENTVOLUMECLAIMS, "demo", claim("nas", "1Gi", storageClassName="gold"))
        with pytest.raises(ApiError) as over:
            await registry.create(
                r.PERSISTENTVOLUMECLAIMS, "demo", claim("more", "1Mi", storageClassName="gold")
            )
        assert over.value.message == (
            'persistentvolumeclaims "more" is forbidden: exceeded quota: storage, requested: '
            f"{GOLD}/persistentvolumeclaims=1,{GOLD}/requests.storage=1Mi, used: "
            f"{GOLD}/persistentvolumeclaims=1,{GOLD}/requests.storage=1Gi, limited: "
            f"{GOLD}/persistentvolumeclaims=1,{GOLD}/requests.storage=1Gi"
        )

    run(scenario())


def test_growth_is_admitted_only_when_the_class_allows_it_and_is_charged() -> None:
    async def scenario() -> None:
        registry = await with_classes()
        await registry.create(r.QUOTAS, "demo", limits(**{"requests.storage": "3Gi"}))
        nas = await registry.create(r.PERSISTENTVOLUMECLAIMS, "demo", claim("nas", storageClassName="gold"))
        plain = await registry.create(r.PERSISTENTVOLUMECLAIMS, "demo", claim("plain"))
        admission = registry.quota
        bigger = copy.deepcopy(nas)
        bigger["spec"]["resources"]["requests"]["storage"] = "2Gi"
        charged = await admission.admit_update(r.PERSISTENTVOLUMECLAIMS, "demo", bigger, nas)
        assert charged == ["storage"]
        used = (await registry.get(r.QUOTAS, "demo", "storage"))["status"]["used"]
        assert used == {"requests.storage": "3Gi"}
        await admission.refund_update("demo", bigger, nas, charged)
        used = (await registry.get(r.QUOTAS, "demo", "storage"))["status"]["used"]
        assert used == {"requests.storage": "2Gi"}
        grown = copy.deepcopy(plain)
        grown["spec"]["resources"]["requests"]["storage"] = "2Gi"
        with pytest.raises(ApiError) as refused:
            await admission.admit_update(r.PERSISTENTVOLUMECLAIMS, "demo", grown, plain)
        assert refused.value.code == 403
        assert (
            refused.value.message
            == f'persistentvolumeclaims "plain" is forbidden: {storageclasses.RESIZE_REFUSED}'
        )
        assert await admission.admit_update(r.PERSISTENTVOLUMECLAIMS, "demo", plain, plain) == []

    run(scenario())


def test_claim_usage_formats_class_storage_in_bytes() -> None:
    usage = quota.claim_usage(claim("x", "1536Mi", storageClassName="gold"))
    assert quota.recompute(limits(**{f"{GOLD}/requests.storage": "2Gi"}), [usage])["status"]["used"] == {
        f"{GOLD}/requests.storage": "1536Mi"
    }


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=6), st.lists(st.text(max_size=4), max_size=2)
)
_SPEC_FIELDS = st.sampled_from([
    "accessModes", "resources", "storageClassName", "volumeName", "volumeMode", "capacity", "csi",
    "claimRef", "nfs", "provisioner", "reclaimPolicy", "attacher", "source", "nodeName",
])  # fmt: skip


_VALID: dict[str, Obj] = {
    "persistentvolumeclaims": claim("odd")["spec"],
    "persistentvolumes": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
                          "csi": {"driver": storageclass.PROVISIONER, "volumeHandle": "v"}},
    "storageclasses": {"provisioner": storageclass.PROVISIONER},
    "volumeattachments": {"attacher": storageclass.PROVISIONER, "nodeName": "esx-01",
                          "source": {"persistentVolumeName": "pv"}},
}  # fmt: skip
_TOP_LEVEL = ("storageclasses",)  # a StorageClass has no spec: its fields are the object's own


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([r.PERSISTENTVOLUMECLAIMS, r.PERSISTENTVOLUMES, r.STORAGECLASSES, r.VOLUMEATTACHMENTS]),
    st.dictionaries(
        _SPEC_FIELDS, st.one_of(_VALUES, st.dictionaries(st.text(max_size=8), _VALUES, max_size=3))
    ),
    st.one_of(
        _VALUES, st.dictionaries(st.sampled_from(["phase", "capacity", "attached"]), _VALUES, max_size=2)
    ),
)
def test_odd_storage_bodies_get_a_status_never_a_crash(resource: r.Resource, odd: Obj, state: Any) -> None:
    """Valid bodies with odd fields mixed in (an empty mix reaches admission and quota) are stored or
    refused with a Status, on create, update and status update, and print."""

    async def scenario() -> None:
        registry = await with_classes()
        hard = {"requests.storage": "5Gi", f"{GOLD}/requests.storage": "1Gi"}
        await registry.create(r.QUOTAS, "demo", limits(**hard))
        namespace = "demo" if resource.namespaced else ""
        fields = {**_VALID[resource.plural], **odd}
        body: Obj = {"metadata": {"name": "odd", "annotations": None}, "status": state}
        body.update(fields if resource.plural in _TOP_LEVEL else {"spec": fields})
        for attempt in (
            lambda: registry.create(resource, namespace, copy.deepcopy(body)),
            lambda: registry.update(resource, namespace, "odd", copy.deepcopy(body)),
            lambda: registry.update(resource, namespace, "odd", copy.deepcopy(body), "status"),
        ):
            with contextlib.suppress(ApiError):
                stored = await attempt()
                kinds.of(resource).row(stored)

    run(scenario())
