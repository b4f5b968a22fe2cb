"""The eviction decision table (upstream eviction.go) on the real Registry over a fake etcd."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from nestlab.api import eviction
from nestlab.api import resources as r
from nestlab.api.eviction import evict
from nestlab.api.registry import Registry
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd

NS = "demo"
Obj = dict[str, Any]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def body(name: str = "web-0", version: str = "policy/v1", **options: Any) -> Obj:
    evicting: Obj = {"apiVersion": version, "kind": "Eviction", "metadata": {"name": name, "namespace": NS}}
    if options:
        evicting["deleteOptions"] = options
    return evicting


def budget(name: str = "web", *, allowed: int = 1, healthy: int = 3, desired: int = 2, **spec: Any) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "generation": 1},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "minAvailable": 2, **spec},
        "status": {
            "observedGeneration": 1,
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": 3,
        },
    }


async def fresh() -> Registry:
    registry = Registry(Store(FakeEtcd()))  # type: ignore[arg-type]
    await registry.create(r.NAMESPACES, "", {"metadata": {"name": NS}})
    return registry


async def add_pod(
    registry: Registry,
    name: str = "web-0",
    *,
    phase: str = "Running",
    ready: bool = True,
    node: str = "esx-01",
) -> Obj:
    pod = {
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
    }
    await registry.create(r.PODS, NS, pod)

    async def running(current: Obj) -> Obj:
        current["spec"]["nodeName"] = node
        current["status"]["phase"] = phase
        current["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
        return current

    return await registry.store.mutate(r.PODS, NS, name, running)


async def add_budget(registry: Registry, pdb: Obj) -> Obj:
    return await registry.store.create(r.PDBS, NS, copy.deepcopy(pdb))


async def refused(registry: Registry, request: Obj, name: str = "web-0") -> ApiError:
    with pytest.raises(ApiError) as caught:
        await evict(registry, NS, name, request)
    return caught.value


def test_missing_pod_is_404() -> None:
    async def scenario() -> None:
        registry = await fresh()
        error = await refused(registry, body())
        assert (error.code, error.reason, error.message) == (404, "NotFound", 'pods "web-0" not found')

    run(scenario())


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        (body(name="other"), "name in URL does not match name in Eviction object"),
        (
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0"}},
            "not a Eviction object: v1, Kind=Pod",
        ),
        ("nonsense", "the body must be an Eviction object"),
        (
            body() | {"deleteOptions": "x"},
            "deleteOptions must be a DeleteOptions object",
        ),
    ],
)
def test_malformed_evictions_are_400(request_body: Any, message: str) -> None:
    async def scenario() -> None:
        registry = await fresh()
        await add_pod(registry)
        error = await refused(registry, request_body)
        assert (error.code, error.reason) == (400, "BadRequest")
        assert error.message.startswith(message)

    run(scenario())


def test_no_budget_deletes_gracefully_and_answers_success() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await add_pod(registry)
        answer = await evict(registry, NS, "web-0", body(version="policy/v1beta1"))
        assert answer == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }
        pod = await registry.get(r.PODS, NS, "web-0")
        assert pod["metadata"]["deletionTimestamp"]  # graceful: the agent confirms later
        target = [c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget"]
        assert target[0]["reason"] == "EvictionByEvictionAPI"
        assert target[0]["message"] == "Eviction API: evicting"

    run(scenario())


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Pending"])
def test_pods_not_serving_ignore_budgets(phase: str) -> None:
    async def scenario() -> None:
        registry = await fresh()
        await add_pod(registry, phase=phase, node="" if phase == "Pending" else "esx-01")
        await add_budget(registry, budget(allowed=0))
        await evict(registry, NS, "web-0", body())
        with pytest.raises(ApiError) as gone:  # finished or never placed: deleted at once
            await registry.get(r.PODS, NS, "web-0")
        assert gone.value.code == 404
        pdb = await registry.get(r.PDBS, NS, "web")
        assert pdb["status"]["disruptionsAllowed"] == 0
        assert "disruptedPods" not in pdb["status"]

    run(scenario())


def test_pod_already_deleting_ignores_budgets() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await add_pod(registry)
        await registry.delete(r.PODS, NS, "web-0", {})
        await add_budget(registry, budget(allowed=0))
        assert (await evict(registry, NS, "web-0", body()))["status"] == "Success"

    run(scenario())


def test_budget_allowing_none_is_429_naming_it() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await add_pod(registry)
        await add_budget(registry, budget(allowed=0, healthy=2, desired=2))
        error = await refused(registry, body())
        assert error.status() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "reason": "TooManyRequests",
            "code": 429,
            "details": {
                "causes": [
                    {
                        "reason": "DisruptionBudget",
                        "message": "The disruption budget web needs 2 healthy pods and has 2 currently",
                        # upstream sends no "field" for a budget cause
                    }
                ]
            },
        }
        assert "deletionTimestamp" not in (await registry.get(r.PODS, NS, "web-0"))["metadata"]

    run(scenario())


def test_budget_not_yet_observed_is_429_still_processing() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await add_pod(registry)
        pdb = budget()
        pdb["metadata"]["generation"] = 2  # spec changed since the controller last computed status
        await add_budget(registry, pdb)
        error = await refused(registry, body())
        assert (error.code, error.reason) == (429, "TooManyRequests")
        assert error.details is not None
        assert error.details.retry_after == 10
        assert (
            error.details.causes[0].message
            == "The disruption budget web is still being processed by the server."
        )

    run(scenario())


def test_budget_without_status_is_still_processing() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await add_pod(registry)
        pdb = budget()
        del pdb["status"], pdb["metadata"]["generation"]
        await add_budget(registry, pdb)
        error = await refused(registry, body())
        assert error.code == 429
        assert error.details is not None
        assert "still being processed" in error.details.causes[0].message

    run(scenario())


def test_two_budgets_are_500_as_upstream() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await add_pod(registry)
        await add_budget(registry, budget("a"))
        await add_budget(registry, budget("b"))
        error = await refused(registry, body())
        assert error.code == 500
        assert error.message == (
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
        )

    run(scenario())


def test_allowed_eviction_spends_the_budget_and_records_the_pod() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await add_pod(registry)
        await add_budget(registry, budget(allowed=1))
        await evict(registry, NS, "web-0", body())
        pdb = await registry.get(r.PDBS, NS, "web")
        assert pdb["status"]["disruptionsAllowed"] == 0
        assert list(pdb["status"]["disruptedPods"]) == ["web-0"]
        condition = pdb["status"]["conditions"][0]
        assert (condition["type"], condition["status"], condition["reason"]) == (
            "DisruptionAllowed",
            "False",
            "InsufficientPods",
        )
        assert (await registry.get(r.PODS, NS, "web-0"))["metadata"]["deletionTimestamp"]

    run(scenario())


def test_negative_allowance_is_403() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await add_pod(registry)
        await add_budget(registry, budget(allowed=-1))
        error = await refused(registry, body())
        assert error.code == 403
        assert (
            error.message
            == 'poddisruptionbudget.policy "web" is forbidden: pdb disruptions allowed is negative'
        )

    run(scenario())


def test_unready_pod_goes_without_spending_when_the_budget_is_met() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await add_pod(registry, ready=False)
        await add_budget(registry, budget(allowed=0, healthy=2, desired=2))
        await evict(registry, NS, "web-0", body())
        pdb = await registry.get(r.PDBS, NS, "web")
        assert pdb["status"]["disruptionsAllowed"] == 0
        assert (await registry.get(r.PODS, NS, "web-0"))["metadata"]["deletionTimestamp"]

    run(scenario())


def test_unready_pod_is_guarded_while_the_budget_is_short() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await add_pod(registry, ready=False)
        await add_budget(registry, budget(allowed=0, healthy=1, desired=2))
        error = await refused(registry, body())
        assert error.code == 429
        assert error.details is not None
        assert (
            error.details.causes[0].message
            == "The disruption budget web needs 2 healthy pods and has 1 currently"
        )

    run(scenario())


def test_always_allow_lets_unready_pods_go() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await add_pod(registry, ready=False)
        await add_budget(
            registry, budget(allowed=0, healthy=1, desired=2, unhealthyPodEvictionPolicy="AlwaysAllow")
        )
        assert (await evict(registry, NS, "web-0", body()))["status"] == "Success"

    run(scenario())


def test_empty_selector_guards_nothing_in_eviction() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await add_pod(registry)
        await add_budget(registry, budget(allowed=0, selector={}))
        assert (await evict(registry, NS, "web-0", body()))["status"] == "Success"

    run(scenario())


def test_dry_run_changes_nothing() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await add_pod(registry)
        await add_budget(registry, budget(allowed=1))
        assert (await evict(registry, NS, "web-0", body(dryRun=["All"])))["status"] == "Success"
        assert (await registry.get(r.PDBS, NS, "web"))["status"]["disruptionsAllowed"] == 1
        assert "deletionTimestamp" not in (await registry.get(r.PODS, NS, "web-0"))["metadata"]

    run(scenario())


def test_racing_evictions_spend_one_disruption_once() -> None:
    async def scenario() -> None:
        registry = await fresh()
        for index in range(3):
            await add_pod(registry, f"web-{index}")
        await add_budget(registry, budget(allowed=1))
        results = await asyncio.gather(
            *(evict(registry, NS, f"web-{i}", body(f"web-{i}")) for i in range(3)), return_exceptions=True
        )
        codes = sorted(getattr(x, "code", 201) for x in results)
        assert codes == [201, 429, 429]
        assert (await registry.get(r.PDBS, NS, "web"))["status"]["disruptionsAllowed"] == 0

    run(scenario())


def test_stale_pin_from_the_client_is_a_conflict() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await add_pod(registry)
        error = await refused(registry, body(preconditions={"resourceVersion": "1"}))
        assert error.code == 409

    run(scenario())


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (None, {"app": "web"}, False),
        ({"matchLabels": {"app": "web"}}, {"app": "web", "tier": "x"}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
        (
            {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "db"]}]},
            {"app": "db"},
            True,
        ),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, {}, True),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, {"tier": "x"}, False),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, {"tier": "x"}, True),
        ({"matchExpressions": [{"key": "app", "operator": "Near"}]}, {"app": "web"}, False),
    ],
)
def test_label_selectors(selector: Any, labels: dict[str, str], expected: bool) -> None:
    assert eviction.selector_matches(selector, labels, empty_matches_all=False) is expected


def test_empty_selector_depends_on_the_reader() -> None:
    assert eviction.selector_matches({}, {"a": "b"}, empty_matches_all=True)
    assert not eviction.selector_matches({}, {"a": "b"}, empty_matches_all=False)
