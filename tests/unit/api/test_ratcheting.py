"""Ratcheting: a pod-spec field the API refuses today, stored by an older server, does not block
the object's later updates (the agent's status reports, labels, finalizers)."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.api import resources as r
from nestlab.api.status import ApiError
from tests.unit.api.test_registry import fresh, pod, run


def test_a_field_refused_after_the_object_was_stored_does_not_block_its_updates() -> None:
    """Ratcheting: a pod stored before the pod-field table refused hostIPC still takes status and
    label updates; a new refused field in the same update is still refused."""

    async def scenario() -> None:
        registry = await fresh()
        await registry.create(r.PODS, "demo", pod("legacy"))

        async def as_an_older_server_stored_it(current: dict[str, Any]) -> dict[str, Any]:
            current["spec"]["hostIPC"] = True
            return current

        await registry.store.mutate(r.PODS, "demo", "legacy", as_an_older_server_stored_it)
        await registry.patch(r.PODS, "demo", "legacy", "application/merge-patch+json",
                             {"status": {"phase": "Running"}}, subresource="status")  # fmt: skip
        await registry.patch(r.PODS, "demo", "legacy", "application/merge-patch+json",
                             {"metadata": {"labels": {"x": "y"}}})  # fmt: skip
        with pytest.raises(ApiError) as refused:
            await registry.patch(r.PODS, "demo", "legacy", "application/merge-patch+json",
                                 {"spec": {"hostPID": True}})  # fmt: skip
        assert refused.value.code == 422
        assert "spec.hostPID" in refused.value.message

    run(scenario())
