"""`nestlab namespace` against a fake API: the objects a vSphere Namespace is made of, idempotent
create, `set` changing only what is given, users checked against the identity store, delete
waiting with progress, and the list table."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from nestlab.api import status
from nestlab.api.resources import NAMESPACES, Resource
from nestlab.commands.namespace import namespace
from nestlab.errors import NestlabError, UsageError
from nestlab.render import render_namespaces
from nestlab.tenancy import namespaceapi
from nestlab.tenancy import namespaces as plan

Obj = dict[str, Any]


class FakeApi:
    """Objects in a dict; a deleted namespace lingers for ``linger`` reads, as one terminates."""

    def __init__(self, users: tuple[str, ...] = ("alice", "bob"), linger: int = 2) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.users = users
        self.linger = linger
        self.writes: list[str] = []

    async def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        key = (resource.plural, namespace, name)
        if key not in self.objects:
            raise status.not_found(resource.plural, resource.group, name)
        found = self.objects[key]
        if resource is NAMESPACES and found["metadata"].get("deletionTimestamp"):
            self.linger -= 1
            if self.linger < 0:
                del self.objects[key]
                raise status.not_found(resource.plural, resource.group, name)
        return copy.deepcopy(found)

    async def list(
        self, resource: Resource, namespace: str = "", *, labels: str = "", fields: str = ""
    ) -> Obj:
        key, _, value = labels.partition("=")
        items = [
            copy.deepcopy(o)
            for (plural, ns, _name), o in sorted(self.objects.items())
            if plural == resource.plural
            and ns == namespace
            and (not key or (o["metadata"].get("labels") or {}).get(key) == value)
        ]
        return {"items": items}

    async def create(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        key = (resource.plural, namespace, obj["metadata"]["name"])
        if key in self.objects:
            raise status.already_exists(resource.plural, resource.group, key[2])
        self.writes.append(f"create {resource.plural}/{key[2]}")
        self.objects[key] = copy.deepcopy(obj)
        return obj

    async def replace(self, resource: Resource, namespace: str, obj: Obj, subresource: str = "") -> Obj:
        self.writes.append(f"replace {resource.plural}/{obj['metadata']['name']}")
        self.objects[(resource.plural, namespace, obj["metadata"]["name"])] = copy.deepcopy(obj)
        return obj

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: Obj, subresource: str = ""
    ) -> Obj:
        self.writes.append(f"patch {resource.plural}/{name}")
        target = self.objects[(resource.plural, namespace, name)]
        target["metadata"].setdefault("labels", {}).update(patch["metadata"]["labels"])
        return target

    async def delete(self, resource: Resource, namespace: str, name: str) -> Obj:
        self.writes.append(f"delete {resource.plural}/{name}")
        key = (resource.plural, namespace, name)
        if resource is NAMESPACES:
            self.objects[key]["metadata"]["deletionTimestamp"] = "2026-12-05T10:00:00Z"
            return self.objects[key]
        return self.objects.pop(key)

    async def request(self, method: str, path: str, body: Any = None) -> Obj:
        user = path.removeprefix(namespaceapi.USERS_PATH + "/")
        if user not in self.users:
            raise status.not_found("users", "identity.nestlab.dev", user)
        return {"name": user}


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def lines() -> tuple[list[str], Callable[[str], None]]:
    said: list[str] = []
    return said, said.append


TEAM_A = plan.Settings(cpu="2", memory="4Gi", edit=("alice",), view=("bob",))


def test_create_makes_every_object_and_twice_changes_nothing() -> None:
    api = FakeApi()
    said, say = lines()
    run(namespaceapi.create(api, "team-a", TEAM_A, say))
    ns = api.objects[("namespaces", "", "team-a")]
    assert ns["metadata"]["labels"][plan.LABEL] == "true"
    assert ns["metadata"]["labels"][plan.PROJECT_LABEL] == "team-a"
    quota = api.objects[("resourcequotas", "team-a", "nestlab-limits")]
    assert quota["spec"]["hard"] == {"limits.cpu": "2", "limits.memory": "4Gi"}
    limits = api.objects[("limitranges", "team-a", "nestlab-defaults")]
    assert limits["spec"]["limits"] == [
        {
            "type": "Container",
            "default": {"cpu": "500m", "memory": "512Mi"},
            "defaultRequest": {"cpu": "500m", "memory": "512Mi"},
        }
    ]
    edit = api.objects[("rolebindings", "team-a", "nestlab-edit")]
    assert edit["roleRef"] == {"apiGroup": plan.RBAC_GROUP, "kind": "ClusterRole", "name": "edit"}
    assert edit["subjects"] == [{"kind": "User", "apiGroup": plan.RBAC_GROUP, "name": "alice"}]
    assert ("rolebindings", "team-a", "nestlab-admin") not in api.objects
    assert said[0] == "created namespace team-a"
    writes = len(api.writes)
    assert run(namespaceapi.create(api, "team-a", TEAM_A, say)) == []
    assert len(api.writes) == writes


def test_set_changes_only_what_is_given() -> None:
    api = FakeApi()
    run(namespaceapi.create(api, "team-a", TEAM_A, lines()[1]))
    done = run(namespaceapi.update(api, "team-a", {"cpu": "4", "view": None, "pods": "10"}, lines()[1]))
    assert done == ["updated resourcequota nestlab-limits"]
    quota = api.objects[("resourcequotas", "team-a", "nestlab-limits")]
    assert quota["spec"]["hard"] == {"limits.cpu": "4", "limits.memory": "4Gi", "pods": "10"}
    assert api.objects[("rolebindings", "team-a", "nestlab-view")]["subjects"][0]["name"] == "bob"
    done = run(namespaceapi.update(api, "team-a", {"view": (), "memory": plan.UNSET}, lines()[1]))
    assert "deleted rolebinding nestlab-view" in done
    assert api.objects[("resourcequotas", "team-a", "nestlab-limits")]["spec"]["hard"] == {
        "limits.cpu": "4",
        "pods": "10",
    }


def test_an_unknown_user_is_refused_before_anything_is_made() -> None:
    api = FakeApi(users=("alice",))
    with pytest.raises(UsageError, match=r"user 'bob' does not exist in this lab: .*`nestlab user add bob`"):
        run(namespaceapi.create(api, "team-a", TEAM_A, lines()[1]))
    assert api.writes == []


def test_service_accounts_are_bound_without_the_identity_store() -> None:
    api = FakeApi(users=())
    settings = plan.Settings(view=("system:serviceaccount:team-a:ci",))
    said, say = lines()
    run(namespaceapi.create(api, "team-a", settings, say))
    assert said[0] == (
        "warning: service account team-a/ci does not exist yet: --view binds it once it is created "
        "(`kubectl create serviceaccount ci -n team-a`)"
    )
    view = api.objects[("rolebindings", "team-a", "nestlab-view")]
    assert view["subjects"] == [{"kind": "ServiceAccount", "name": "ci", "namespace": "team-a"}]
    assert plan.settings_of({"view": view}).view == ("system:serviceaccount:team-a:ci",)


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("Team_A", plan.Settings(), "is not a valid namespace name"),
        ("kube-system", plan.Settings(), "one of the cluster's own namespaces"),
        ("team-a", plan.Settings(cpu="two"), "--cpu 'two' is not a quantity"),
        ("team-a", plan.Settings(memory="-1Gi"), "--memory '-1Gi' must not be negative"),
        ("team-a", plan.Settings(pods="1.5"), "--pods '1.5' must be a whole number"),
        (
            "team-a",
            plan.Settings(cpu="1", default_cpu="2"),
            "--default-cpu 2 is more than the namespace's --cpu 1",
        ),
        ("team-a", plan.Settings(edit=("al ice ",)), "--edit 'al ice ' is not a user or group name"),
    ],
)
def test_bad_input_is_a_usage_error(name: str, settings: plan.Settings, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        run(namespaceapi.create(FakeApi(), name, settings, lines()[1]))


def test_set_needs_an_existing_vsphere_namespace() -> None:
    with pytest.raises(UsageError, match="there is no vSphere Namespace 'team-b': create it with"):
        run(namespaceapi.update(FakeApi(), "team-b", {"cpu": "1"}, lines()[1]))


def test_delete_waits_with_progress_and_leaves_other_namespaces_alone() -> None:
    api = FakeApi(linger=2)
    run(namespaceapi.create(api, "team-a", TEAM_A, lines()[1]))
    api.objects[("pods", "team-a", "web")] = {"metadata": {"name": "web", "namespace": "team-a"}}
    said, say = lines()
    assert run(namespaceapi.delete(api, "team-a", say, poll=0)) is True
    assert said[0] == "deleting namespace team-a"
    assert "namespace team-a is terminating: 1 pod(s) left" in said
    assert said[-1] == "namespace team-a deleted"
    assert run(namespaceapi.delete(api, "team-a", say, poll=0)) is False
    api.objects[("namespaces", "", "default")] = {"metadata": {"name": "default"}}
    with pytest.raises(UsageError, match="not a vSphere Namespace made by `nestlab namespace create`"):
        run(namespaceapi.delete(api, "default", say, poll=0))


def test_delete_gives_up_after_its_timeout_saying_what_is_left() -> None:
    api = FakeApi(linger=10**6)
    run(namespaceapi.create(api, "team-a", TEAM_A, lines()[1]))
    with pytest.raises(NestlabError, match="still terminating after 0s"):
        run(namespaceapi.delete(api, "team-a", lines()[1], timeout=0, poll=0))


def test_list_shows_used_over_limit_and_who() -> None:
    api = FakeApi()
    run(namespaceapi.create(api, "team-a", TEAM_A, lines()[1]))
    run(namespaceapi.create(api, "team-b", plan.Settings(view_groups=("auditors",)), lines()[1]))
    quota = api.objects[("resourcequotas", "team-a", "nestlab-limits")]
    quota["status"] = {
        "hard": quota["spec"]["hard"],
        "used": {"limits.cpu": "500m", "limits.memory": "512Mi"},
    }
    text = plan.table(run(namespaceapi.rows(api)))
    assert text.splitlines() == [
        "NAME     CPU      MEMORY      STORAGE   PODS   VIEW             EDIT    ADMIN   COUNTS",
        "team-a   500m/2   512Mi/4Gi   -         -      bob              alice   -       -",
        "team-b   -        -           -         -      group:auditors   -       -       -",
    ]


def test_settings_read_back_from_the_objects_they_make() -> None:
    settings = plan.with_defaults(
        plan.Settings(
            cpu="2",
            storage="20Gi",
            pods="10",
            counts=(("configmaps", "20"), ("count/deployments.apps", "5")),
            admin=("carol",),
            edit_groups=("devs",),
        )
    )
    assert plan.settings_of(plan.desired("team-a", settings)) == settings


def test_the_cli_group(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi()

    async def with_fake(_lab: str, work: Callable[[Any], Awaitable[Any]]) -> Any:
        return await work(api)

    monkeypatch.setattr(namespaceapi, "_with_client", with_fake)
    runner = CliRunner()
    args = ["create", "team-a", "--cpu", "2", "--memory", "4Gi", "--edit", "alice", "--view", "bob"]
    first = runner.invoke(namespace, args)
    assert first.exit_code == 0, first.output
    assert "created namespace team-a" in first.output
    second = runner.invoke(namespace, args)
    assert second.exit_code == 0
    assert second.output == "namespace team-a unchanged\n"
    bad = runner.invoke(namespace, ["create", "team-b", "--edit", "mallory"])
    assert bad.exit_code == UsageError.exit_code
    assert "user 'mallory' does not exist" in bad.output
    listed = runner.invoke(namespace, ["list"])
    assert listed.output.splitlines()[1].split()[0] == "team-a"
    assert runner.invoke(namespace, ["set", "team-a", "--cpu", "lots"]).exit_code == UsageError.exit_code
    assert runner.invoke(namespace, ["set", "team-a", "--view", "none"]).exit_code == 0
    assert ("rolebindings", "team-a", "nestlab-view") not in api.objects
    deleted = runner.invoke(namespace, ["delete", "team-a"])
    assert deleted.exit_code == 0
    assert deleted.output.splitlines()[-1] == "namespace team-a deleted"


def test_status_renders_the_namespaces_table() -> None:
    console = Console(record=True, width=120)
    render_namespaces(console, [])
    assert console.export_text() == ""
    row = plan.row("team-a", plan.desired("team-a", plan.with_defaults(TEAM_A)))
    render_namespaces(console, [row])
    text = console.export_text()
    assert "vSphere Namespaces (used/limit)" in text
    assert "0/2" in text
    assert "alice" in text


def test_a_replace_that_lost_a_race_is_retried_on_the_fresh_object() -> None:
    api = FakeApi()
    run(namespaceapi.create(api, "team-a", TEAM_A, lines()[1]))
    replace = api.replace
    lost: list[str] = []

    async def racing(resource: Resource, namespace: str, obj: Obj, subresource: str = "") -> Obj:
        if not lost:
            lost.append(obj["metadata"]["name"])
            raise status.conflict(resource.plural, resource.group, obj["metadata"]["name"])
        return await replace(resource, namespace, obj, subresource)

    api.replace = racing  # type: ignore[method-assign]
    done = run(namespaceapi.update(api, "team-a", {"cpu": "3"}, lines()[1]))
    assert lost == ["nestlab-limits"]
    assert done == ["updated resourcequota nestlab-limits"]
    assert api.objects[("resourcequotas", "team-a", "nestlab-limits")]["spec"]["hard"]["limits.cpu"] == "3"


def test_a_service_account_of_an_unknown_namespace_is_refused() -> None:
    api = FakeApi()
    settings = plan.Settings(edit=("system:serviceaccount:nope:ci",))
    with pytest.raises(UsageError) as refused:
        run(namespaceapi.create(api, "team-a", settings, lines()[1]))
    assert str(refused.value) == (
        "--edit system:serviceaccount:nope:ci: namespace 'nope' does not exist: "
        "create it first (`kubectl create namespace nope`) or correct the name"
    )
    assert api.writes == []
    run(namespaceapi.create(api, "team-a", TEAM_A, lines()[1]))
    writes = len(api.writes)
    with pytest.raises(UsageError, match="namespace 'nope' does not exist"):
        run(namespaceapi.update(api, "team-a", {"view": ("system:serviceaccount:nope:ci",)}, lines()[1]))
    assert len(api.writes) == writes


def test_a_missing_account_of_an_existing_namespace_is_bound_with_a_warning() -> None:
    api = FakeApi()
    api.objects[("namespaces", "", "ci")] = {"metadata": {"name": "ci"}}
    api.objects[("serviceaccounts", "ci", "deployer")] = {"metadata": {"name": "deployer"}}
    said, say = lines()
    subjects = ("system:serviceaccount:ci:deployer", "system:serviceaccount:ci:default")
    run(namespaceapi.create(api, "team-a", plan.Settings(edit=subjects), say))
    assert not [line for line in said if line.startswith("warning:")]  # both there (default: always)
    said, say = lines()
    run(namespaceapi.update(api, "team-a", {"view": ("system:serviceaccount:ci:robot",)}, say))
    assert said[0].startswith("warning: service account ci/robot does not exist yet: --view binds it")
    view = api.objects[("rolebindings", "team-a", "nestlab-view")]
    assert view["subjects"] == [{"kind": "ServiceAccount", "name": "robot", "namespace": "ci"}]


def test_the_cli_prints_warnings_on_stderr_and_refusals_with_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi()

    async def with_fake(_lab: str, work: Callable[[Any], Awaitable[Any]]) -> Any:
        return await work(api)

    monkeypatch.setattr(namespaceapi, "_with_client", with_fake)
    runner = CliRunner()
    refused = runner.invoke(namespace, ["create", "team-a", "--edit", "system:serviceaccount:nope:ci"])
    assert refused.exit_code == UsageError.exit_code
    assert refused.stderr.splitlines() == [
        "error: --edit system:serviceaccount:nope:ci: namespace 'nope' does not exist: "
        "create it first (`kubectl create namespace nope`) or correct the name"
    ]
    warned = runner.invoke(namespace, ["create", "team-a", "--edit", "system:serviceaccount:team-a:ci"])
    assert warned.exit_code == 0, warned.output
    assert warned.stderr.startswith("warning: service account team-a/ci does not exist yet")
    assert "warning" not in warned.stdout


@pytest.mark.parametrize(
    ("given", "wanted"),
    [
        (("configmaps=20",), {"configmaps": "20"}),
        (("services=3", "secrets=4"), {"services": "3", "secrets": "4"}),
        (("persistentvolumeclaims=2",), {"persistentvolumeclaims": "2"}),
        (("deployments.apps=5", "jobs.batch = 1"), {"count/deployments.apps": "5", "count/jobs.batch": "1"}),
        (("count/deployments.apps=5",), {"count/deployments.apps": "5"}),
        (("serviceaccounts=2",), {"count/serviceaccounts": "2"}),
        ((), None),
    ],
)
def test_counts_map_to_upstreams_quota_keys(given: tuple[str, ...], wanted: Obj | None) -> None:
    assert plan.parse_counts(given, allow_unset=False) == wanted


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("configmaps", "--count 'configmaps' is not RESOURCE=N (e.g. --count configmaps=20"),
        ("=5", "--count '=5' is not RESOURCE=N"),
        ("widgets=5", "--count 'widgets': nestlab serves no namespaced kind 'widgets' (e.g."),
        ("deployments=5", "--count 'deployments': nestlab serves no namespaced kind 'deployments': "
         "did you mean deployments.apps?"),
        ("namespaces=5", "nestlab serves no namespaced kind 'namespaces'"),
        ("resourcequotas=1", "nestlab serves no namespaced kind 'resourcequotas'"),
        ("configmaps=1.5", "--count configmaps=1.5: the count must be a whole number (e.g. 10)"),
        ("configmaps=-1", "the count must be a whole number"),
        ("configmaps=many", "the count must be a whole number"),
        ("configmaps=none", "the count must be a whole number"),
        ("pods=3", "--count pods=N: the number of pods is --pods N"),
    ],
)  # fmt: skip
def test_bad_counts_are_refused_naming_them(given: str, message: str) -> None:
    with pytest.raises(UsageError) as refused:
        plan.parse_counts((given,), allow_unset=False)
    assert message in str(refused.value)
    assert str(refused.value).startswith("--count ")


def test_counts_are_created_set_one_by_one_and_listed() -> None:
    api = FakeApi()
    counts = (("configmaps", "20"), ("count/deployments.apps", "5"))
    run(namespaceapi.create(api, "team-a", plan.Settings(cpu="2", counts=counts), lines()[1]))
    quota = api.objects[("resourcequotas", "team-a", "nestlab-limits")]
    assert quota["spec"]["hard"] == {"limits.cpu": "2", "configmaps": "20", "count/deployments.apps": "5"}
    assert run(namespaceapi.create(api, "team-a", plan.Settings(cpu="2", counts=counts), lines()[1])) == []
    change = {"counts": plan.parse_counts(("configmaps=none", "secrets=10"), allow_unset=True)}
    assert run(namespaceapi.update(api, "team-a", change, lines()[1])) == [
        "updated resourcequota nestlab-limits"
    ]
    quota = api.objects[("resourcequotas", "team-a", "nestlab-limits")]
    assert quota["spec"]["hard"] == {"limits.cpu": "2", "count/deployments.apps": "5", "secrets": "10"}
    quota["status"] = {"hard": quota["spec"]["hard"], "used": {"count/deployments.apps": "1"}}
    [row] = run(namespaceapi.rows(api))
    assert row["COUNTS"] == "deployments.apps=1/5,secrets=0/10"
    assert row["PODS"] == "-"
    with pytest.raises(UsageError, match="the count must be a whole number"):
        run(namespaceapi.create(api, "team-b", plan.Settings(counts=(("secrets", "x"),)), lines()[1]))


def test_the_cli_count_option(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi()

    async def with_fake(_lab: str, work: Callable[[Any], Awaitable[Any]]) -> Any:
        return await work(api)

    monkeypatch.setattr(namespaceapi, "_with_client", with_fake)
    runner = CliRunner()
    made = runner.invoke(
        namespace, ["create", "team-a", "--count", "configmaps=20", "--count", "jobs.batch=2"]
    )
    assert made.exit_code == 0, made.output
    hard = api.objects[("resourcequotas", "team-a", "nestlab-limits")]["spec"]["hard"]
    assert hard == {"configmaps": "20", "count/jobs.batch": "2"}
    changed = runner.invoke(namespace, ["set", "team-a", "--count", "jobs.batch=none"])
    assert changed.exit_code == 0, changed.output
    assert api.objects[("resourcequotas", "team-a", "nestlab-limits")]["spec"]["hard"] == {"configmaps": "20"}
    for args in (["create", "team-b", "--count", "gizmos=1"], ["set", "team-a", "--count", "configmaps"]):
        bad = runner.invoke(namespace, args)
        assert bad.exit_code == UsageError.exit_code, bad.output
        assert len(bad.stderr.splitlines()) == 1
        assert bad.stderr.startswith("error: --count ")
    listed = runner.invoke(namespace, ["list"]).output.splitlines()
    assert listed[0].split()[-1] == "COUNTS"
    assert listed[1].split()[-1] == "configmaps=0/20"
