"""Object-count quota: count/<resource>[.<group>] and the legacy names, charged at create, released
at removal, counted when the quota is made; keys nothing enforces are refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.api import resources as r
from nestlab.api.kinds import resourcequota
from nestlab.api.status import ApiError
from tests.unit.api.test_registry import fresh, run


def cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}


def quota(**hard: str) -> dict[str, Any]:
    return {"metadata": {"name": "objects"}, "spec": {"hard": hard}}


def test_configmaps_are_counted_by_both_names_and_released() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await registry.create(r.CONFIGMAPS, "demo", cm("before"))
        made = await registry.create(r.QUOTAS, "demo", {"metadata": {"name": "objects"}, "spec": {
            "hard": {"configmaps": "2", "count/configmaps": "5"}}})  # fmt: skip
        assert made["status"]["used"] == {"configmaps": "1", "count/configmaps": "1"}
        await registry.create(r.CONFIGMAPS, "demo", cm("second"))
        with pytest.raises(ApiError) as over:
            await registry.create(r.CONFIGMAPS, "demo", cm("third"))
        assert over.value.code == 403
        assert over.value.message == (
            'configmaps "third" is forbidden: exceeded quota: objects, requested: configmaps=1, '
            "used: configmaps=2, limited: configmaps=2"
        )
        await registry.delete(r.CONFIGMAPS, "demo", "before", {})
        used = (await registry.get(r.QUOTAS, "demo", "objects"))["status"]["used"]
        assert used == {"configmaps": "1", "count/configmaps": "1"}
        await registry.create(r.CONFIGMAPS, "demo", cm("third"))

    run(scenario())


def test_a_count_key_does_not_ask_pods_for_compute_or_other_kinds_for_anything() -> None:
    async def scenario() -> None:
        registry = await fresh()
        await registry.create(r.QUOTAS, "demo", quota(**{"cpu": "1", "count/configmaps": "1"}))
        await registry.create(r.CONFIGMAPS, "demo", cm("one"))  # cpu is not asked of a ConfigMap
        with pytest.raises(ApiError) as over:
            await registry.create(r.CONFIGMAPS, "demo", cm("two"))
        assert "count/configmaps=1" in over.value.message

    run(scenario())


@pytest.mark.parametrize(
    "key",
    [
        "requests.ephemeral-storage",
        "gold.storageclass.storage.k8s.io/requests.cpu",
        "count/widgets.example.com",
        "nvidia.com/gpu",
        "count/nodes",
    ],
)
def test_keys_nothing_enforces_are_refused_by_name(key: str) -> None:
    causes = resourcequota.validate(quota(**{key: "1"}))
    assert [c.field for c in causes] == [f"spec.hard[{key}]"]
    assert "nestlab enforces" in causes[0].message


@pytest.mark.parametrize(
    "key", ["cpu", "limits.memory", "pods", "services", "secrets", "count/deployments.apps", "count/pods"]
)
def test_enforced_keys_are_accepted(key: str) -> None:
    assert resourcequota.validate(quota(**{key: "1"})) == []


def test_scopes_are_refused() -> None:
    causes = resourcequota.validate(
        {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]}}
    )
    assert [c.field for c in causes] == ["spec.scopes"]
