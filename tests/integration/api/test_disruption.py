"""PodDisruptionBudgets against the REAL etcd + nestlab-apiserver: the disruption controller on real
informers computes status; the pods/eviction subresource answers 429 naming the budget; maintenance
mode empties a (fake) host while the test plays its agent, confirming deletions with grace 0."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from nestlab import maintenance
from nestlab.api.client import ApiClient, Credentials
from nestlab.api.resources import NODES, PDBS, PODS
from nestlab.api.status import ApiError
from nestlab.cli import cli
from nestlab.controller.disruption import DisruptionController
from nestlab.controller.manager import Term
from nestlab.maintenance import MaintenanceTimeoutError, cordon, evacuate
from tests.integration.api.conftest import ADMIN_TOKEN, ApiServer, wait_until
from tests.integration.api.control_thread import control_plane

pytestmark = pytest.mark.integration
NS = "budgets"
HOSTS = ("pdb-esx-1", "pdb-esx-2")
Obj = dict[str, Any]
DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def lab(apiserver: ApiServer) -> Iterator[ApiServer]:
    """A namespace and two Ready fake Nodes; everything removed at the end."""
    try:
        assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
        for host in HOSTS:
            code, created = apiserver.request("POST", "/api/v1/nodes", {"metadata": {"name": host}})
            assert code == 201, created
            created["status"] = {
                "conditions": [{"type": "Ready", "status": "True"}],
                "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "10"},
            }
            assert apiserver.request("PUT", f"/api/v1/nodes/{host}/status", created)[0] == 200
        yield apiserver
    finally:
        pods = apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods")[1]
        for item in pods.get("items", []) if isinstance(pods, dict) else []:
            name = item["metadata"]["name"]
            apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/pods/{name}?gracePeriodSeconds=0")
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")
        for host in HOSTS:
            apiserver.request("DELETE", f"/api/v1/nodes/{host}")


def client_of(server: ApiServer) -> ApiClient:
    return ApiClient(Credentials(server.url, server.pki.ca, ADMIN_TOKEN))


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except ApiError as exc:
            last = exc
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: not true after {timeout:g}s (last error: {last})")


async def ready_pod(client: ApiClient, name: str, host: str, app: str) -> None:
    """A Ready pod labelled ``app`` bound to ``host``, reported Running as its agent would."""
    pod = {
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}], "terminationGracePeriodSeconds": 30},
    }
    with contextlib.suppress(ApiError):
        await client.create(PODS, NS, pod)
    with contextlib.suppress(ApiError):
        await client.bind(NS, name, host)
    await set_ready(client, name, True)


async def set_ready(client: ApiClient, name: str, ready: bool) -> None:
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    await client.patch(PODS, NS, name, {"status": {"phase": "Running", "conditions": [condition]}}, "status")


def budget(name: str, app: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": app}}, **spec},
    }


async def budget_status(client: ApiClient, name: str = "web") -> Obj:
    return dict((await client.get(PDBS, NS, name)).get("status") or {})


@contextlib.asynccontextmanager
async def disruption_controller(client: ApiClient) -> AsyncIterator[Term]:
    term = Term(client, [DisruptionController])
    term.start()
    try:
        yield term
    finally:
        await term.stop()


@contextlib.asynccontextmanager
async def playing_agent(client: ApiClient, host: str) -> AsyncIterator[None]:
    """Confirm every deletion on ``host`` (grace 0), as the host's agent does once the VM stopped."""

    async def confirm() -> None:
        while True:
            with contextlib.suppress(ApiError):
                pods = await client.list(PODS, NS, fields=f"spec.nodeName={host}")
                for pod in pods["items"]:
                    if pod["metadata"].get("deletionTimestamp"):
                        with contextlib.suppress(ApiError):
                            await client.delete(PODS, NS, pod["metadata"]["name"], grace=0)
            await asyncio.sleep(0.2)

    task = asyncio.create_task(confirm())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_controller_computes_budget_status_from_ready_pods(lab: ApiServer) -> None:
    async def scenario() -> None:
        client = client_of(lab)
        try:
            for index in range(3):
                await ready_pod(client, f"calc-{index}", HOSTS[1], "calc")
            await client.create(PDBS, NS, budget("calc", "calc", minAvailable=2))
            async with disruption_controller(client):

                async def computed(allowed: int, healthy: int) -> bool:
                    got = await budget_status(client, "calc")
                    condition = (got.get("conditions") or [{}])[0]
                    return (
                        got.get("expectedPods") == 3
                        and got.get("desiredHealthy") == 2
                        and got.get("currentHealthy") == healthy
                        and got.get("disruptionsAllowed") == allowed
                        and int(got.get("observedGeneration") or 0) >= 1
                        and condition.get("status") == ("True" if allowed else "False")
                        and condition.get("reason") == ("SufficientPods" if allowed else "InsufficientPods")
                    )

                await eventually(lambda: computed(allowed=1, healthy=3), "status with one disruption allowed")
                await set_ready(client, "calc-2", False)
                await eventually(lambda: computed(allowed=0, healthy=2), "status after a pod went unready")
        finally:
            await cleanup(client, "calc")

    asyncio.run(scenario())


async def cleanup(client: ApiClient, app: str) -> None:
    """Remove the test's pods and budget (also after a failure), then close the client."""
    try:
        for pod in (await client.list(PODS, NS, labels=f"app={app}"))["items"]:
            with contextlib.suppress(ApiError):
                await client.delete(PODS, NS, pod["metadata"]["name"], grace=0)
        with contextlib.suppress(ApiError):
            await client.request("DELETE", f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{app}")
    finally:
        await client.close()


def test_eviction_429_names_the_budget_and_maintenance_empties_the_host(lab: ApiServer) -> None:
    host, other = HOSTS

    async def scenario() -> None:
        client = client_of(lab)
        lines: list[str] = []
        try:
            for name, where in (("evict-0", host), ("evict-1", host), ("evict-2", other)):
                await ready_pod(client, name, where, "evict")
            await client.create(PDBS, NS, budget("evict", "evict", minAvailable=2))
            async with disruption_controller(client), playing_agent(client, host):

                async def one_allowed() -> bool:
                    got = await budget_status(client, "evict")
                    return got.get("disruptionsAllowed") == 1 and got.get("currentHealthy") == 3

                await eventually(one_allowed, "budget evict allowing one disruption")
                # One pod may go; the second would leave 1 of the 2 the budget needs.
                with pytest.raises(MaintenanceTimeoutError) as caught:
                    await evacuate(client, host, 8.0, lines.append, retry=0.5)
                shortfall = "The disruption budget evict needs 2 healthy pods and has 2 currently"
                assert f"{NS}/evict-1 is blocked: {shortfall}" in str(caught.value)
                assert (await client.get(NODES, "", host))["spec"]["unschedulable"] is True
                code, answer = lab.request(
                    "POST",
                    f"/api/v1/namespaces/{NS}/pods/evict-1/eviction",
                    {"apiVersion": "policy/v1beta1", "kind": "Eviction", "metadata": {"name": "evict-1"}},
                )
                assert code == 429, answer
                assert answer["reason"] == "TooManyRequests"
                assert (
                    answer["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
                )
                causes = [(c["reason"], c["message"]) for c in answer["details"]["causes"]]
                assert causes == [("DisruptionBudget", shortfall)]
                # What the ReplicaSet would do: a replacement on the other host; now evict-1 may go.
                await ready_pod(client, "evict-3", other, "evict")
                result = await evacuate(client, host, DEADLINE_S, lines.append, retry=0.5)
                assert result.evicted == [f"{NS}/evict-1"]
                assert (await client.list(PODS, fields=f"spec.nodeName={host}"))["items"] == []
            assert await cordon(client, host, False) is True
            assert not (await client.get(NODES, "", host)).get("spec", {}).get("unschedulable")
        finally:
            await cleanup(client, "evict")

    asyncio.run(scenario())


def test_cli_enter_names_the_budget_then_empties_the_host_and_exit_uncordons(
    lab: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``nestlab host maintenance enter|exit`` end to end against the real API server."""
    host, other = "esx-05", HOSTS[1]
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path))
    saved = tmp_path / "labs" / "t5" / "spec.yaml"
    saved.parent.mkdir(parents=True)
    saved.write_text(
        "apiVersion: nestlab.dev/v1alpha1\nkind: Lab\nmetadata: {name: t5}\nspec: {hosts: {count: 5}}\n"
    )
    monkeypatch.setattr(
        maintenance, "credentials", lambda _name: Credentials(lab.url, lab.pki.ca, ADMIN_TOKEN)
    )

    async def setup(client: ApiClient, pods: tuple[tuple[str, str], ...], pdb: bool) -> None:
        try:
            for name, where in pods:
                await ready_pod(client, name, where, "cli")
            if pdb:
                await client.create(PDBS, NS, budget("cli", "cli", minAvailable=2))
        finally:
            await client.close()

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["host", "maintenance", *args, host, "--name", "t5"])

    code, created = lab.request("POST", "/api/v1/nodes", {"metadata": {"name": host}})
    assert code == 201, created
    try:
        created["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
        assert lab.request("PUT", f"/api/v1/nodes/{host}/status", created)[0] == 200
        asyncio.run(setup(client_of(lab), (("cli-0", host), ("cli-1", host), ("cli-2", other)), True))
        with control_plane(lab, host):

            def one_allowed() -> bool:
                got = lab.request("GET", f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/cli")[1]
                return bool(got.get("status", {}).get("disruptionsAllowed") == 1)

            wait_until(one_allowed, "budget cli allowing one disruption")
            blocked = run("enter", "--timeout", "6")
            assert blocked.exit_code == 1, blocked.output
            assert f"error: {host} still holds 1 pod(s) after 6s; it stays cordoned" in blocked.output
            shortfall = "The disruption budget cli needs 2 healthy pods and has 2 currently"
            assert f"error: {NS}/cli-1 is blocked: {shortfall}" in blocked.output
            assert f"evicting {NS}/cli-0" in blocked.output
            asyncio.run(setup(client_of(lab), (("cli-3", other),), False))  # the ReplicaSet's replacement
            done = run("enter", "--timeout", "60")
            assert done.exit_code == 0, done.output
            assert f"{host} was already cordoned" in done.output
            assert f"{host} is in maintenance mode: 1 pod(s) evicted, no pod left" in done.output
        assert lab.request("GET", f"/api/v1/nodes/{host}")[1]["spec"]["unschedulable"] is True
        left = run("exit")
        assert (left.exit_code, left.output.strip()) == (0, f"{host} left maintenance mode")
        assert not lab.request("GET", f"/api/v1/nodes/{host}")[1].get("spec", {}).get("unschedulable")
        assert run("exit").output.strip() == f"{host} was not in maintenance mode"
    finally:
        asyncio.run(cleanup(client_of(lab), "cli"))
        lab.request("DELETE", f"/api/v1/nodes/{host}")
