"""The workload kinds' units on a fake etcd: defaults, validation causes, generation, /scale,
deletion propagation finalizers, and the DaemonSet refusal."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from nestlab.api import kinds, scale
from nestlab.api import resources as r
from nestlab.api.registry import Registry
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd


def deployment(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "depot:5000/nestlab/web:1"}]},
            },
            **spec,
        },
    }


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def fresh() -> Registry:
    registry = Registry(Store(FakeEtcd()))  # type: ignore[arg-type]
    await registry.create(r.NAMESPACES, "", {"metadata": {"name": "demo"}})
    return registry


def causes(resource: r.Resource, obj: dict[str, Any]) -> list[str]:
    unit = kinds.of(resource)
    unit.default(obj)
    return [f"{c.field}: {c.message}" for c in unit.validate(obj)]


def test_deployment_defaults_as_upstream() -> None:
    obj = deployment()
    assert causes(r.DEPLOYMENTS, obj) == []
    spec = obj["spec"]
    assert spec["replicas"] == 1
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["template"]["spec"]["restartPolicy"] == "Always"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"replicas": -1}, "spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        ({"selector": {"matchLabels": {"app": "other"}}}, "`selector` does not match template `labels`"),
        ({"selector": {}}, "spec.selector: Invalid value: empty selector is invalid for deployment"),
        ({"strategy": {"type": "Sideways"}}, 'spec.strategy.type: Unsupported value: "Sideways"'),
        (
            {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}},
            "may not be 0 when `maxSurge` is 0",
        ),
        ({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "150%"}}}, "must not be greater than 100%"),
        ({"strategy": {"type": "Recreate", "rollingUpdate": {}}}, "may not be specified when strategy `type` is 'Recreate'"),
    ],
)  # fmt: skip
def test_bad_deployments(change: dict[str, Any], expected: str) -> None:
    obj = deployment()
    obj["spec"].update(change)
    found = causes(r.DEPLOYMENTS, obj)
    assert any(expected in cause for cause in found), found


def test_template_restart_policy_must_be_always_for_deployments_and_not_for_jobs() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert any("spec.template.spec.restartPolicy: Unsupported value" in c for c in causes(r.DEPLOYMENTS, obj))
    job = {
        "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
    }
    kinds.of(r.JOBS).default(job)
    kinds.of(r.JOBS).on_create(job)
    found = [f"{c.field}: {c.message}" for c in kinds.of(r.JOBS).validate(job)]
    assert found == ['spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"']


def test_statefulset_needs_a_service_name_and_checks_claim_templates() -> None:
    obj = deployment()
    obj["kind"] = "StatefulSet"
    obj["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}}]
    found = causes(r.STATEFULSETS, obj)
    assert "spec.serviceName: Required value" in found
    assert "spec.volumeClaimTemplates[0].spec: Required value" in found


def test_cronjob_schedule_checks() -> None:
    from nestlab.api.kinds.cronjob import schedule_problem

    assert schedule_problem("*/5 * * * *") == ""
    assert schedule_problem("@hourly") == ""
    assert "expected exactly 5 fields, found 3" in schedule_problem("* * *")
    assert "use timeZone field instead" in schedule_problem("TZ=UTC * * * * *")
    assert schedule_problem("") == "Required value"


def test_pdb_min_and_max_cannot_both_be_set() -> None:
    budget = {"metadata": {"name": "b"}, "spec": {"minAvailable": 2, "maxUnavailable": "10%", "selector": {}}}
    assert "spec: Invalid value: minAvailable and maxUnavailable cannot be both set" in causes(r.PDBS, budget)


def test_generation_counts_spec_changes_only() -> None:
    async def scenario() -> None:
        registry = await fresh()
        created = await registry.create(r.DEPLOYMENTS, "demo", deployment())
        assert created["metadata"]["generation"] == 1
        labelled = await registry.patch(
            r.DEPLOYMENTS, "demo", "web", "application/merge-patch+json", {"metadata": {"labels": {"a": "b"}}}
        )
        assert labelled["metadata"]["generation"] == 1
        status = await registry.patch(
            r.DEPLOYMENTS, "demo", "web", "application/merge-patch+json", {"status": {"replicas": 1}}, subresource="status"
        )  # fmt: skip
        assert status["metadata"]["generation"] == 1
        scaled = await registry.patch(
            r.DEPLOYMENTS, "demo", "web", "application/merge-patch+json", {"spec": {"replicas": 3}}
        )
        assert scaled["metadata"]["generation"] == 2

    run(scenario())


def test_selector_is_immutable_on_update() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await registry.create(r.DEPLOYMENTS, "demo", deployment())
        changed = deployment()
        changed["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "x"}}
        changed["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
        with pytest.raises(ApiError) as refused:
            await registry.update(r.DEPLOYMENTS, "demo", "web", changed)
        assert refused.value.code == 422
        assert (
            "spec.selector: Invalid value: v1.LabelSelector{app=web,tier=x}: field is immutable"
            in refused.value.message
        )

    run(scenario())


def test_scale_reads_and_writes_replicas() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await registry.create(r.DEPLOYMENTS, "demo", deployment(replicas=2))
        current = await scale.get(registry, r.DEPLOYMENTS, "demo", "web")
        assert current["spec"] == {"replicas": 2}
        assert current["status"] == {"replicas": 0, "selector": "app=web"}
        body = copy.deepcopy(current)
        body["spec"]["replicas"] = 4
        assert (await scale.update(registry, r.DEPLOYMENTS, "demo", "web", body))["spec"]["replicas"] == 4
        stale = copy.deepcopy(current)
        stale["spec"]["replicas"] = 6
        with pytest.raises(ApiError) as conflict:
            await scale.update(registry, r.DEPLOYMENTS, "demo", "web", stale)  # names an old resourceVersion
        assert conflict.value.code == 409
        patched = await scale.patch(
            registry, r.DEPLOYMENTS, "demo", "web", content_type="application/merge-patch+json",
            body={"spec": {"replicas": 1}},
        )  # fmt: skip
        assert patched["spec"]["replicas"] == 1
        assert (await registry.get(r.DEPLOYMENTS, "demo", "web"))["spec"]["replicas"] == 1

    run(scenario())


@pytest.mark.parametrize(
    ("options", "finalizers"),
    [
        ({"propagationPolicy": "Orphan"}, ["orphan"]),
        ({"propagationPolicy": "Foreground"}, ["foregroundDeletion"]),
        ({"orphanDependents": True}, ["orphan"]),
    ],
)
def test_propagation_policies_leave_the_collectors_finalizer(
    options: dict[str, Any], finalizers: list[str]
) -> None:
    async def scenario() -> None:
        registry = await fresh()
        await registry.create(r.DEPLOYMENTS, "demo", deployment())
        deleting = await registry.delete(r.DEPLOYMENTS, "demo", "web", options)
        assert deleting["metadata"]["finalizers"] == finalizers
        assert deleting["metadata"]["deletionTimestamp"]
        current = await registry.get(r.DEPLOYMENTS, "demo", "web")
        await registry.patch(
            r.DEPLOYMENTS, "demo", "web", "application/merge-patch+json", {"metadata": {"finalizers": None}}
        )
        with pytest.raises(ApiError) as gone:
            await registry.get(r.DEPLOYMENTS, "demo", "web")
        assert gone.value.code == 404
        assert current["metadata"]["finalizers"] == finalizers

    run(scenario())


def test_background_deletes_at_once_and_bad_policy_is_422() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await registry.create(r.DEPLOYMENTS, "demo", deployment())
        with pytest.raises(ApiError) as bad:
            await registry.delete(r.DEPLOYMENTS, "demo", "web", {"propagationPolicy": "Sometimes"})
        assert bad.value.code == 422
        await registry.delete(r.DEPLOYMENTS, "demo", "web", {"propagationPolicy": "Background"})
        with pytest.raises(ApiError):
            await registry.get(r.DEPLOYMENTS, "demo", "web")

    run(scenario())


def test_replication_controllers_orphan_by_default_and_take_the_selector_from_labels() -> None:
    async def scenario() -> None:
        registry = await fresh()
        rc = deployment("rc")
        rc["kind"], rc["apiVersion"] = "ReplicationController", "v1"
        del rc["spec"]["selector"]
        created = await registry.create(r.REPLICATION_CONTROLLERS, "demo", rc)
        assert created["spec"]["selector"] == {"app": "rc"}
        deleting = await registry.delete(r.REPLICATION_CONTROLLERS, "demo", "rc", {})
        assert deleting["metadata"]["finalizers"] == ["orphan"]

    run(scenario())


def test_daemonsets_are_refused_with_the_reason() -> None:
    async def scenario() -> None:
        registry = await fresh()
        body = deployment("agent")
        body["kind"] = "DaemonSet"
        with pytest.raises(ApiError) as refused:
            await registry.create(r.DAEMONSETS, "demo", body)
        assert refused.value.code == 403
        assert "DaemonSets are not supported on vSphere Pods" in refused.value.message

    run(scenario())


def test_every_kind_unit_is_complete() -> None:
    """Each served kind has columns matching its row, a model for OpenAPI, and a known verb set."""
    sample = {
        "metadata": {"name": "x", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {},
        "status": {},
    }
    for unit in kinds.ALL:
        assert unit.model, unit.name
        if unit.resource.stored:
            assert len(unit.row(copy.deepcopy(sample))) == len(unit.columns), unit.name
