"""Server-side apply and managedFields: ownership, removal of fields no longer applied, conflicts."""

from __future__ import annotations

import asyncio

import pytest

from nestlab.api import apply, reads
from nestlab.api import resources as r
from nestlab.api.registry import Registry
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd
from tests.unit.api.test_workload_kinds import deployment


def test_field_sets_use_merge_keys_for_named_lists() -> None:
    obj = deployment()
    paths = apply.field_set(obj)
    container = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}')
    assert (*container, "f:image") in paths
    assert (*container, ".") in paths
    assert ("f:spec", "f:selector", "f:matchLabels", "f:app") in paths
    assert apply.from_fields_v1(apply.to_fields_v1(paths)) == paths


def test_apply_merges_removes_and_conflicts() -> None:
    config = deployment(replicas=2)
    config["metadata"]["labels"] = {"team": "a"}
    first = apply.apply(None, config, "ci", force=False, api_version="apps/v1")
    assert [(m["manager"], m["operation"]) for m in first["metadata"]["managedFields"]] == [("ci", "Apply")]
    # another writer changes replicas: it now owns them
    edited = dict(first, spec={**first["spec"], "replicas": 5})
    apply.record_update(first, edited, "kubectl-edit", "apps/v1")
    assert {m["manager"] for m in edited["metadata"]["managedFields"]} == {"ci", "kubectl-edit"}
    again = deployment(replicas=3)  # no labels any more, and a different replicas
    with pytest.raises(ApiError) as conflict:
        apply.apply(edited, again, "ci", force=False, api_version="apps/v1")
    assert conflict.value.code == 409
    assert (
        conflict.value.message
        == 'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas'
    )
    forced = apply.apply(edited, again, "ci", force=True, api_version="apps/v1")
    assert forced["spec"]["replicas"] == 3
    assert (
        "labels" not in forced["metadata"] or "team" not in forced["metadata"]["labels"]
    )  # no longer applied
    assert [m["manager"] for m in forced["metadata"]["managedFields"]] == ["ci"]  # edit lost its only field


def test_same_value_is_shared_not_a_conflict() -> None:
    first = apply.apply(None, deployment(replicas=2), "a", force=False, api_version="apps/v1")
    second = apply.apply(first, deployment(replicas=2), "b", force=False, api_version="apps/v1")
    assert sorted(m["manager"] for m in second["metadata"]["managedFields"]) == ["a", "b"]


def test_apply_needs_a_field_manager() -> None:
    with pytest.raises(ApiError) as missing:
        apply.apply(None, deployment(), "", force=False, api_version="apps/v1")
    assert missing.value.code == 400


def test_registry_apply_creates_then_updates() -> None:
    async def scenario() -> None:
        registry = Registry(Store(FakeEtcd()))  # type: ignore[arg-type]
        await registry.create(r.NAMESPACES, "", {"metadata": {"name": "demo"}})
        created, was_new = await registry.apply(r.DEPLOYMENTS, "demo", "web", deployment(), "ci", force=False)
        assert was_new
        assert created["metadata"]["generation"] == 1
        updated, was_new = await registry.apply(
            r.DEPLOYMENTS, "demo", "web", deployment(replicas=4), "ci", force=False
        )
        assert not was_new
        assert (updated["spec"]["replicas"], updated["metadata"]["generation"]) == (4, 2)
        unchanged, _ = await registry.apply(
            r.DEPLOYMENTS, "demo", "web", deployment(replicas=4), "ci", force=False
        )
        assert unchanged["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("accept", "listing", "form"),
    [
        ("", False, ""),
        ("application/json", True, ""),
        ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json", True, "Table"),
        ("application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,"
         "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json", True,
         "PartialObjectMetadataList"),
        ("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json", False, ""),
        ("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1", False, "PartialObjectMetadata"),
    ],
)  # fmt: skip
def test_accept_chooses_the_form(accept: str, listing: bool, form: str) -> None:
    assert reads.form(accept, listing=listing) == form


def test_unacceptable_form_is_406() -> None:
    with pytest.raises(ApiError) as refused:
        reads.form("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1", listing=True)
    assert refused.value.code == 406
