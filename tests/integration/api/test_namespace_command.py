"""`nestlab namespace` applied to the REAL etcd + API server: a vSphere Namespace's objects made once
(a second create changes nothing), a bare pod defaulted by its LimitRange and charged by its quota,
the quota's refusal naming the limit, `set` changing only what it is given, users checked against
the identity store, and delete waiting until the namespace is gone."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from click.testing import CliRunner

from nestlab import maintenance
from nestlab.api.client import ApiClient, Credentials
from nestlab.api.resources import (
    CONFIGMAPS,
    LIMITRANGES,
    NAMESPACES,
    PODS,
    QUOTAS,
    ROLEBINDINGS,
    SERVICEACCOUNTS,
)
from nestlab.api.status import ApiError
from nestlab.commands.namespace import namespace
from nestlab.errors import UsageError
from nestlab.tenancy import namespaceapi
from nestlab.tenancy import namespaces as plan
from tests.integration.api.conftest import ADMIN_TOKEN, ApiServer

pytestmark = pytest.mark.integration
Obj = dict[str, Any]


def with_api(apiserver: ApiServer, work: Callable[[ApiClient], Awaitable[Any]]) -> Any:
    async def session() -> Any:
        client = ApiClient(Credentials(apiserver.url, apiserver.pki.ca, ADMIN_TOKEN))
        try:
            return await work(client)
        finally:
            await client.close()

    return asyncio.run(session())


def bare_pod(name: str, limits: Obj | None = None) -> Obj:
    container: Obj = {"name": "c", "image": "busybox:1.36"}
    if limits:
        container["resources"] = {"limits": limits}
    return {"metadata": {"name": name}, "spec": {"containers": [container]}}


@pytest.fixture
def team(apiserver: ApiServer) -> Any:
    name = f"team-{uuid.uuid4().hex[:8]}"
    yield name
    apiserver.request("DELETE", f"/api/v1/namespaces/{name}")


def test_a_vsphere_namespace_end_to_end(apiserver: ApiServer, team: str) -> None:
    said: list[str] = []
    robot = f"system:serviceaccount:{team}:ci"
    settings = plan.Settings(cpu="2", memory="4Gi", pods="5", view=(robot,))

    async def work(api: ApiClient) -> None:
        made = await namespaceapi.create(api, team, settings, said.append)
        assert said[0] == (
            f"warning: service account {team}/ci does not exist yet: --view binds it once it is "
            f"created (`kubectl create serviceaccount ci -n {team}`)"
        )
        assert made[0] == f"created namespace {team}"
        assert await namespaceapi.create(api, team, settings, said.append) == []
        namespace = await api.get(NAMESPACES, "", team)
        assert namespace["metadata"]["labels"][plan.PROJECT_LABEL] == team
        assert (await api.get(LIMITRANGES, team, plan.DEFAULTS))["spec"]["limits"][0]["defaultRequest"] == {
            "cpu": "500m",
            "memory": "512Mi",
        }
        view = await api.get(ROLEBINDINGS, team, "nestlab-view")
        assert view["subjects"] == [{"kind": "ServiceAccount", "name": "ci", "namespace": team}]

        pod = await api.create(PODS, team, bare_pod("bare"))
        assert pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
        rows = [r for r in await namespaceapi.rows(api) if r["NAME"] == team]
        assert rows == [
            {
                "NAME": team,
                "CPU": "500m/2",
                "MEMORY": "512Mi/4Gi",
                "STORAGE": "-",
                "PODS": "1/5",
                "VIEW": robot,
                "EDIT": "-",
                "ADMIN": "-",
                "COUNTS": "-",
            }
        ]
        with pytest.raises(ApiError) as refused:
            await api.create(PODS, team, bare_pod("big", {"cpu": "3"}))
        assert refused.value.code == 403
        assert refused.value.message == (
            f'pods "big" is forbidden: exceeded quota: {plan.QUOTA}, requested: limits.cpu=3, '
            "used: limits.cpu=500m, limited: limits.cpu=2"
        )

        changed = await namespaceapi.update(api, team, {"cpu": "4", "pods": plan.UNSET}, said.append)
        assert changed == [f"updated resourcequota {plan.QUOTA}"]
        quota = await api.get(QUOTAS, team, plan.QUOTA)
        assert quota["spec"]["hard"] == {"limits.cpu": "4", "limits.memory": "4Gi"}
        assert (await api.get(ROLEBINDINGS, team, "nestlab-view"))["subjects"] == view["subjects"]

        assert await namespaceapi.delete(api, team, said.append, timeout=60, poll=0.2) is True
        assert said[-1] == f"namespace {team} deleted"
        with pytest.raises(ApiError) as gone:
            await api.get(NAMESPACES, "", team)
        assert gone.value.code == 404

    with_api(apiserver, work)


def test_users_must_exist_in_the_identity_store(apiserver: ApiServer, team: str) -> None:
    user = f"u{uuid.uuid4().hex[:8]}"
    body = {"name": user, "password": secrets.token_urlsafe(24)}
    code, answer = apiserver.request("POST", namespaceapi.USERS_PATH, body)
    assert code == 201, answer

    async def work(api: ApiClient) -> None:
        with pytest.raises(UsageError, match=f"user 'nobody-{user}' does not exist .*nestlab user add"):
            await namespaceapi.create(api, team, plan.Settings(edit=(f"nobody-{user}",)), lambda _line: None)
        with pytest.raises(ApiError) as absent:
            await api.get(NAMESPACES, "", team)
        assert absent.value.code == 404
        await namespaceapi.create(api, team, plan.Settings(edit=(user,)), lambda _line: None)
        edit = await api.get(ROLEBINDINGS, team, "nestlab-edit")
        assert edit["subjects"] == [{"kind": "User", "apiGroup": plan.RBAC_GROUP, "name": user}]

    with_api(apiserver, work)


def test_the_command_group_against_the_api(
    apiserver: ApiServer, team: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        maintenance,
        "credentials",
        lambda _lab: Credentials(apiserver.url, apiserver.pki.ca, ADMIN_TOKEN),
    )
    runner = CliRunner()
    made = runner.invoke(namespace, ["create", team, "--cpu", "1", "--storage", "5Gi", "--name", "it"])
    assert made.exit_code == 0, made.output
    assert f"created namespace {team}" in made.output
    assert runner.invoke(namespace, ["create", team, "--cpu", "1", "--storage", "5Gi"]).output == (
        f"namespace {team} unchanged\n"
    )
    listed = runner.invoke(namespace, ["list"]).output.splitlines()
    assert listed[0].split() == list(plan.COLUMNS)
    assert next(line for line in listed if line.startswith(team)).split()[1:4] == ["0/1", "-", "0/5Gi"]
    assert [r["NAME"] for r in namespaceapi.summary("it")].count(team) == 1
    deleted = runner.invoke(namespace, ["delete", team])
    assert deleted.exit_code == 0, deleted.output
    assert deleted.output.splitlines()[-1] == f"namespace {team} deleted"
    monkeypatch.setattr(
        maintenance,
        "credentials",
        lambda _lab: Credentials("https://127.0.0.1:1", apiserver.pki.ca),
    )
    down = runner.invoke(namespace, ["list", "--name", "gone"])
    assert down.exit_code == UsageError.exit_code
    assert "the API of lab gone at https://127.0.0.1:1 does not answer" in down.output
    assert namespaceapi.summary("gone") == []


def test_service_accounts_must_be_of_an_existing_namespace(apiserver: ApiServer, team: str) -> None:
    said: list[str] = []

    async def work(api: ApiClient) -> None:
        nowhere = plan.Settings(edit=(f"system:serviceaccount:{team}-nope:ci",))
        with pytest.raises(UsageError, match=f"namespace '{team}-nope' does not exist: create it first"):
            await namespaceapi.create(api, team, nowhere, said.append)
        with pytest.raises(ApiError) as absent:
            await api.get(NAMESPACES, "", team)
        assert absent.value.code == 404
        await namespaceapi.create(api, team, plan.Settings(), said.append)
        await api.create(SERVICEACCOUNTS, team, {"metadata": {"name": "deployer"}})
        said.clear()
        there = (f"system:serviceaccount:{team}:deployer",)
        assert await namespaceapi.update(api, team, {"edit": there}, said.append) == [
            "created rolebinding nestlab-edit"
        ]
        assert said == ["created rolebinding nestlab-edit"]  # it exists: no warning
        said.clear()
        await namespaceapi.update(api, team, {"view": (f"system:serviceaccount:{team}:robot",)}, said.append)
        assert said[0].startswith(f"warning: service account {team}/robot does not exist yet")

    with_api(apiserver, work)


def test_object_counts_are_enforced_by_the_quota(apiserver: ApiServer, team: str) -> None:
    counts = plan.parse_counts(("configmaps=1", "deployments.apps=0"), allow_unset=False)
    assert counts is not None

    async def work(api: ApiClient) -> None:
        await namespaceapi.create(api, team, plan.Settings(counts=tuple(sorted(counts.items()))), print)
        quota = await api.get(QUOTAS, team, plan.QUOTA)
        assert quota["spec"]["hard"] == {"configmaps": "1", "count/deployments.apps": "0"}
        await api.create(CONFIGMAPS, team, {"metadata": {"name": "one"}})
        with pytest.raises(ApiError) as refused:
            await api.create(CONFIGMAPS, team, {"metadata": {"name": "two"}})
        assert refused.value.code == 403
        assert "exceeded quota: nestlab-limits, requested: configmaps=1" in refused.value.message
        row = next(r for r in await namespaceapi.rows(api) if r["NAME"] == team)
        assert row["COUNTS"] == "configmaps=1/1,deployments.apps=0/0"
        change = {"counts": plan.parse_counts(("configmaps=none",), allow_unset=True)}
        assert await namespaceapi.update(api, team, change, print) == [f"updated resourcequota {plan.QUOTA}"]
        assert (await api.get(QUOTAS, team, plan.QUOTA))["spec"]["hard"] == {"count/deployments.apps": "0"}

    with_api(apiserver, work)
