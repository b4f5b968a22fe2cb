"""The firewall loop on fed informers: nothing before the first lists, one full build, then diffs;
irrelevant pod changes apply nothing; a refused transaction is followed by a full rebuild."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from nestlab.api import resources as r
from nestlab.controller.informer import Informer
from nestlab.proxy.firewall import Firewall

HOST = "esx-01"


class Recorder:
    """An NftApply that records transactions and refuses the next one when told to."""

    def __init__(self) -> None:
        self.transactions: list[list[str]] = []
        self.refuse = False

    def __call__(self, commands: Sequence[str]) -> None:
        if self.refuse:
            self.refuse = False
            raise RuntimeError("nft: Error: Could not process rule: No such file or directory")
        self.transactions.append(list(commands))


def pod(name: str, ip: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "a", "name": name, "labels": labels, "resourceVersion": "1"},
        "spec": {"nodeName": HOST, "containers": [{"name": "c"}]},
        "status": {"phase": "Running", "podIP": ip},
    }


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g}s")
        await asyncio.sleep(0.01)


def scenario(body: Callable[[Firewall, Recorder, dict[str, Informer]], Awaitable[None]]) -> None:
    async def main() -> None:
        informers = {res.plural: Informer(None, res) for res in (r.PODS, r.NAMESPACES, r.NETWORKPOLICIES)}  # type: ignore[arg-type]
        recorder = Recorder()
        firewall = Firewall(
            HOST,
            pods=informers["pods"],
            namespaces=informers["namespaces"],
            policies=informers["networkpolicies"],
            apply=recorder,
        )
        task = asyncio.create_task(firewall.run())
        try:
            await body(firewall, recorder, informers)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())


def test_waits_for_lists_then_builds_then_follows_changes() -> None:
    async def body(firewall: Firewall, recorder: Recorder, informers: dict[str, Informer]) -> None:
        informers["namespaces"].apply("ADDED", {"metadata": {"name": "a", "resourceVersion": "1"}})
        informers["pods"].apply("ADDED", pod("web", "10.0.0.2", app="web"))
        await asyncio.sleep(0.05)
        assert recorder.transactions == []  # not before every informer has listed once
        for informer in informers.values():
            informer.synced.set()
        await until(lambda: len(recorder.transactions) == 1, "the first build")
        assert recorder.transactions[0][:2] == [
            "add table ip nestlab-policy",
            "delete table ip nestlab-policy",
        ]

        deny = {
            "metadata": {"namespace": "a", "name": "deny", "resourceVersion": "2"},
            "spec": {"podSelector": {}},
        }
        informers["networkpolicies"].apply("ADDED", deny)
        await until(lambda: len(recorder.transactions) == 2, "the policy's transaction")
        assert "add element ip nestlab-policy ingress_isolated { 10.0.0.2 }" in recorder.transactions[1]
        assert not any("delete table" in c for c in recorder.transactions[1])

        touched = pod("web", "10.0.0.2", app="web")
        touched["metadata"]["annotations"] = {"note": "irrelevant"}
        informers["pods"].apply("MODIFIED", touched)
        informers["pods"].apply("ADDED", pod("db", "10.0.0.4", app="db"))
        await until(lambda: len(recorder.transactions) == 3, "the new pod's transaction")
        assert all("10.0.0.4" in c for c in recorder.transactions[2])
        assert firewall.queue.limiter.retries("ruleset") == 0

    scenario(body)


def test_a_refused_transaction_is_followed_by_a_full_rebuild() -> None:
    async def body(firewall: Firewall, recorder: Recorder, informers: dict[str, Informer]) -> None:
        for informer in informers.values():
            informer.synced.set()
        await until(lambda: len(recorder.transactions) == 1, "the first build")
        recorder.refuse = True
        informers["pods"].apply("ADDED", pod("web", "10.0.0.2", app="web"))
        deny = {
            "metadata": {"namespace": "a", "name": "deny", "resourceVersion": "2"},
            "spec": {"podSelector": {}},
        }
        informers["networkpolicies"].apply("ADDED", deny)
        await until(lambda: len(recorder.transactions) == 2, "the retry")
        assert recorder.transactions[1][1] == "delete table ip nestlab-policy"
        assert "add element ip nestlab-policy ingress_isolated { 10.0.0.2 }" in recorder.transactions[1]
        assert firewall.applied is not None

    scenario(body)
