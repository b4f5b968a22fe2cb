"""Registry rules (CAS, status subresource, graceful deletion, binding, namespaces, quota) on a fake etcd."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nestlab.api import resources as r
from nestlab.api.registry import Registry
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd


def pod(name: str = "web", cpu: str = "100m", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            "containers": [{"name": "c", "image": "busybox:1.36", "resources": {"requests": {"cpu": cpu}}}],
            **spec,
        },
    }


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def fresh(namespace: str = "demo") -> Registry:
    registry = Registry(Store(FakeEtcd()))  # type: ignore[arg-type]
    await registry.create(r.NAMESPACES, "", {"metadata": {"name": namespace}})
    return registry


def test_create_defaults_and_versions() -> None:
    async def scenario() -> None:
        registry = await fresh()
        created = await registry.create(r.PODS, "demo", pod())
        assert created["metadata"]["namespace"] == "demo"
        assert created["spec"]["restartPolicy"] == "Always"
        assert created["status"] == {"phase": "Pending", "qosClass": "Burstable"}
        assert created["metadata"]["uid"]
        again = await registry.get(r.PODS, "demo", "web")
        assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        listed = await registry.list(r.PODS, "", lambda _o: True)
        assert listed["kind"] == "PodList"
        assert int(listed["metadata"]["resourceVersion"]) >= int(created["metadata"]["resourceVersion"])
        with pytest.raises(ApiError) as exists:
            await registry.create(r.PODS, "demo", pod())
        assert (exists.value.code, exists.value.reason) == (409, "AlreadyExists")

    run(scenario())


def test_create_in_missing_or_terminating_namespace() -> None:
    async def scenario() -> None:
        registry = await fresh()
        with pytest.raises(ApiError) as missing:
            await registry.create(r.PODS, "nope", pod())
        assert missing.value.code == 404
        assert missing.value.message == 'namespaces "nope" not found'
        ns = await registry.get(r.NAMESPACES, "", "demo")
        ns["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        await registry.store.replace(r.NAMESPACES, "", ns, int(ns["metadata"]["resourceVersion"]))
        with pytest.raises(ApiError) as closed:
            await registry.create(r.PODS, "demo", pod())
        assert closed.value.code == 403
        assert "because it is being terminated" in closed.value.message

    run(scenario())


def test_update_with_stale_resource_version_is_409() -> None:
    async def scenario() -> None:
        registry = await fresh()
        created = await registry.create(r.PODS, "demo", pod())
        first = dict(created, metadata={**created["metadata"], "labels": {"v": "1"}})
        await registry.update(r.PODS, "demo", "web", first)
        stale = dict(created, metadata={**created["metadata"], "labels": {"v": "2"}})
        with pytest.raises(ApiError) as conflict:
            await registry.update(r.PODS, "demo", "web", stale)
        assert conflict.value.code == 409
        assert conflict.value.message.startswith('Operation cannot be fulfilled on pods "web"')

    run(scenario())


def test_main_resource_cannot_change_status_and_status_cannot_change_spec() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await registry.create(r.PODS, "demo", pod())
        patched = await registry.patch(
            r.PODS, "demo", "web", "application/merge-patch+json", {"status": {"phase": "Running"}}
        )
        assert patched["status"]["phase"] == "Pending"
        via_status = await registry.patch(
            r.PODS,
            "demo",
            "web",
            "application/merge-patch+json",
            {"status": {"phase": "Running"}, "spec": {"nodeName": "x"}},
            subresource="status",
        )
        assert via_status["status"]["phase"] == "Running"
        assert "nodeName" not in via_status["spec"]

    run(scenario())


def test_pod_spec_is_immutable_except_image() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await registry.create(r.PODS, "demo", pod())
        image = {"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}}
        updated = await registry.patch(r.PODS, "demo", "web", "application/strategic-merge-patch+json", image)
        assert updated["spec"]["containers"][0]["image"] == "busybox:1.37"
        with pytest.raises(ApiError) as invalid:
            await registry.patch(
                r.PODS, "demo", "web", "application/merge-patch+json", {"spec": {"restartPolicy": "Never"}}
            )
        assert invalid.value.code == 422
        assert invalid.value.details is not None
        assert invalid.value.details.causes[0].field == "spec"

    run(scenario())


def test_unscheduled_pod_deletes_at_once_scheduled_pod_waits_for_agent() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await registry.create(r.PODS, "demo", pod("a"))
        await registry.delete(r.PODS, "demo", "a", {})
        with pytest.raises(ApiError):
            await registry.get(r.PODS, "demo", "a")
        await registry.create(r.PODS, "demo", pod("b"))
        await registry.bind("demo", "b", {"target": {"kind": "Node", "name": "esx-01"}})
        marked = await registry.delete(r.PODS, "demo", "b", {})
        assert marked["metadata"]["deletionTimestamp"]
        assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
        assert (await registry.get(r.PODS, "demo", "b"))["metadata"]["deletionTimestamp"]
        await registry.delete(r.PODS, "demo", "b", {"gracePeriodSeconds": 0})  # the agent confirms
        with pytest.raises(ApiError):
            await registry.get(r.PODS, "demo", "b")

    run(scenario())


def test_binding_assigns_once() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await registry.create(r.PODS, "demo", pod())
        await registry.bind("demo", "web", {"target": {"kind": "Node", "name": "esx-01"}})
        bound = await registry.get(r.PODS, "demo", "web")
        assert bound["spec"]["nodeName"] == "esx-01"
        assert bound["status"]["conditions"][0]["type"] == "PodScheduled"
        with pytest.raises(ApiError) as twice:
            await registry.bind("demo", "web", {"target": {"kind": "Node", "name": "esx-02"}})
        assert twice.value.code == 409
        assert "already assigned" in twice.value.message

    run(scenario())


def test_namespace_deletion_empties_then_removes_namespace() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await registry.create(r.PODS, "demo", pod())
        ns = await registry.delete(r.NAMESPACES, "", "demo", {})
        assert ns["status"]["phase"] == "Terminating"
        for _ in range(100):
            try:
                await registry.get(r.NAMESPACES, "", "demo")
            except ApiError:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("namespace was never removed")
        assert (await registry.list(r.PODS, "demo", lambda _o: True))["items"] == []
        await registry.close()

    run(scenario())


def test_quota_charges_refuses_and_releases() -> None:
    async def scenario() -> None:
        registry = await fresh()
        quota = {"metadata": {"name": "compute"}, "spec": {"hard": {"cpu": "1", "pods": "5"}}}
        await registry.create(r.QUOTAS, "demo", quota)
        await registry.create(r.PODS, "demo", pod("a", cpu="600m"))
        with pytest.raises(ApiError) as over:
            await registry.create(r.PODS, "demo", pod("b", cpu="600m"))
        assert over.value.code == 403
        assert over.value.message == (
            'pods "b" is forbidden: exceeded quota: compute, requested: cpu=600m, used: cpu=600m, limited: cpu=1'
        )
        await registry.delete(r.PODS, "demo", "a", {})
        used = (await registry.get(r.QUOTAS, "demo", "compute"))["status"]["used"]
        assert used == {"cpu": "0", "pods": "0"}

    run(scenario())


def test_concurrent_creates_never_overrun_quota() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await registry.create(r.QUOTAS, "demo", {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "3"}}})
        results = await asyncio.gather(
            *(registry.create(r.PODS, "demo", pod(f"p{i}")) for i in range(8)), return_exceptions=True
        )
        admitted = [x for x in results if isinstance(x, dict)]
        refused = [x for x in results if isinstance(x, ApiError)]
        assert len(admitted) == 3
        assert len(refused) == 5
        assert all(x.code == 403 for x in refused)
        used = (await registry.get(r.QUOTAS, "demo", "q"))["status"]["used"]
        assert used == {"pods": "3"}

    run(scenario())


def test_watch_translates_events_and_refuses_compacted() -> None:
    async def scenario() -> None:
        registry = await fresh()
        created = await registry.create(r.PODS, "demo", pod())
        since = created["metadata"]["resourceVersion"]
        events = await registry.store.open_watch(
            r.PODS, "demo", since, lambda o: o["metadata"]["labels"].get("app") == "web"
        )
        await registry.patch(
            r.PODS, "demo", "web", "application/merge-patch+json", {"metadata": {"labels": {"x": "1"}}}
        )
        await registry.patch(
            r.PODS, "demo", "web", "application/merge-patch+json", {"metadata": {"labels": {"app": None}}}
        )
        await registry.create(r.PODS, "demo", pod("other"))
        seen = [await anext(events) for _ in range(3)]
        assert [(e.type, e.object["metadata"]["name"]) for e in seen] == [
            ("MODIFIED", "web"),
            ("DELETED", "web"),  # no longer matches the selector
            ("ADDED", "other"),
        ]
        await events.aclose()  # type: ignore[attr-defined]
        await registry.store.etcd.compact(int(since) + 1)
        with pytest.raises(ApiError) as gone:
            await registry.store.open_watch(r.PODS, "demo", since, lambda _o: True)
        assert gone.value.code == 410

    run(scenario())


def test_bootstrap_creates_system_namespaces_once_and_protects_them() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await asyncio.gather(registry.bootstrap(), registry.bootstrap())  # two API servers starting
        listed = await registry.list(r.NAMESPACES, "", lambda _o: True)
        names = sorted(item["metadata"]["name"] for item in listed["items"])
        assert names == ["default", "demo", "kube-node-lease", "kube-public", "kube-system"]
        with pytest.raises(ApiError) as refused:
            await registry.delete(r.NAMESPACES, "", "kube-system", {})
        assert refused.value.code == 403
        assert (
            refused.value.message
            == 'namespaces "kube-system" is forbidden: this namespace may not be deleted'
        )

    run(scenario())


def test_pagination_tokens() -> None:
    async def scenario() -> None:
        registry = await fresh()
        for index in range(3):
            await registry.create(r.PODS, "demo", pod(f"p{index}"))
        first = await registry.list(r.PODS, "demo", lambda _o: True, limit=2)
        assert [p["metadata"]["name"] for p in first["items"]] == ["p0", "p1"]
        rest = await registry.list(
            r.PODS, "demo", lambda _o: True, limit=2, token=first["metadata"]["continue"]
        )
        assert [p["metadata"]["name"] for p in rest["items"]] == ["p2"]
        assert "continue" not in rest["metadata"]
        assert rest["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        with pytest.raises(ApiError) as foreign:
            await registry.list(r.NODES, "", lambda _o: True, limit=2, token=first["metadata"]["continue"])
        assert foreign.value.code == 400

    run(scenario())


def test_dry_run_admits_and_validates_but_writes_nothing() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await registry.create(r.QUOTAS, "demo", {"metadata": {"name": "q"}, "spec": {"hard": {"cpu": "1"}}})
        etcd = registry.store.etcd
        before = etcd.rev  # type: ignore[attr-defined]
        dry = registry.dry_run()
        created = await dry.create(r.PODS, "demo", pod("a", cpu="500m"))
        assert created["metadata"]["uid"]
        with pytest.raises(ApiError) as over:
            await dry.create(r.PODS, "demo", pod("b", cpu="2"))
        assert over.value.code == 403
        with pytest.raises(ApiError) as invalid:
            await dry.create(r.PODS, "demo", {"metadata": {"name": "c"}, "spec": {"containers": []}})
        assert invalid.value.code == 422
        assert etcd.rev == before  # type: ignore[attr-defined]
        await registry.create(r.PODS, "demo", pod("real"))
        before = etcd.rev  # type: ignore[attr-defined]
        await dry.delete(r.PODS, "demo", "real", {})
        await dry.delete(r.NAMESPACES, "", "demo", {})
        await dry.patch(
            r.PODS, "demo", "real", "application/merge-patch+json", {"metadata": {"labels": {"x": "y"}}}
        )
        assert etcd.rev == before  # type: ignore[attr-defined]
        assert (await registry.get(r.NAMESPACES, "", "demo"))["status"]["phase"] == "Active"

    run(scenario())
