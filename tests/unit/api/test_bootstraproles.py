"""Built-in ClusterRoles and bindings: contents, reconciliation, and ensure() against a fake registry."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from nestlab.api import bootstraproles as boot
from nestlab.api import status
from nestlab.api.auth import User
from nestlab.api.kinds import clusterrole, clusterrolebinding, rolebinding
from nestlab.api.kinds import role as role_kind
from nestlab.api.rbacrules import Attributes, allows, rules_of
from nestlab.api.resources import CLUSTERROLEBINDINGS, CLUSTERROLES, Resource

Obj = dict[str, Any]


def by_name() -> dict[str, Obj]:
    return {role["metadata"]["name"]: role for role in boot.cluster_roles()}


def test_every_built_in_object_is_valid() -> None:
    for role in boot.cluster_roles():
        assert clusterrole.validate(role) == [], role["metadata"]["name"]
    for binding in boot.cluster_role_bindings():
        assert clusterrolebinding.validate(binding) == [], binding["metadata"]["name"]
    assert {r["metadata"]["name"] for r in boot.cluster_roles()} == {
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:aggregate-to-admin",
        "system:aggregate-to-edit",
        "system:aggregate-to-view",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
        "system:nestlab-controller",
        "system:nestlab-dns",
    }
    for role in boot.namespace_roles():
        assert role_kind.validate(role) == [], role["metadata"]["name"]
    for binding in boot.namespace_role_bindings():
        assert rolebinding.validate(binding) == [], binding["metadata"]["name"]


def test_levels_include_each_other_and_match_the_units() -> None:
    roles = by_name()
    view, edit, admin = (rules_of(roles[level]) for level in boot.LEVELS)
    read_pods = Attributes("get", "", "pods", namespace="t")
    create_deploy = Attributes("create", "apps", "deployments", namespace="t")
    bind_roles = Attributes("create", "rbac.authorization.k8s.io", "rolebindings", namespace="t")
    assert allows(view, read_pods)
    assert not allows(view, create_deploy)
    assert not allows(
        view, Attributes("get", "", "secrets", namespace="t")
    )  # as upstream: view hides secrets
    assert allows(edit, read_pods)
    assert allows(edit, create_deploy)
    assert allows(edit, Attributes("create", "", "pods", subresource="exec", namespace="t"))
    assert not allows(edit, bind_roles)
    assert allows(admin, create_deploy)
    assert allows(admin, bind_roles)
    assert not allows(admin, Attributes("create", "", "namespaces"))


def test_registry_images_per_level() -> None:
    roles = by_name()

    def may(level: str, verb: str) -> bool:
        attrs = Attributes(verb, "registry.nestlab.dev", "images", namespace="team-a")
        return allows(rules_of(roles[level]), attrs)

    assert [may("view", v) for v in ("get", "create", "delete")] == [True, False, False]
    assert [may("edit", v) for v in ("get", "create", "delete")] == [True, True, False]
    assert [may("admin", v) for v in ("get", "create", "delete")] == [True, True, True]


def test_aggregation_labels_chain_the_levels() -> None:
    roles = by_name()
    assert clusterrole.aggregates(roles["admin"], roles["edit"])
    assert clusterrole.aggregates(roles["edit"], roles["view"])
    assert clusterrole.aggregates(roles["view"], roles["system:aggregate-to-view"])
    assert not clusterrole.aggregates(roles["view"], roles["edit"])
    assert roles["view"]["metadata"]["annotations"][boot.AUTOUPDATE] == "true"


def test_cluster_admin_and_public_rules() -> None:
    roles = by_name()
    assert allows(rules_of(roles["cluster-admin"]), Attributes("delete", "x.io", "things", name="y"))
    assert allows(rules_of(roles["cluster-admin"]), Attributes("get", path="/metrics"))
    assert allows(rules_of(roles["system:discovery"]), Attributes("get", path="/apis/apps/v1"))
    assert not allows(rules_of(roles["system:discovery"]), Attributes("post", path="/apis"))
    assert allows(rules_of(roles["system:public-info-viewer"]), Attributes("get", path="/version"))
    basic = rules_of(roles["system:basic-user"])
    assert allows(basic, Attributes("create", "authorization.k8s.io", "selfsubjectrulesreviews"))
    bindings = {b["metadata"]["name"]: b for b in boot.cluster_role_bindings()}
    assert [s["name"] for s in bindings["cluster-admin"]["subjects"]] == ["system:masters", "nestlab:admins"]
    assert bindings["system:basic-user"]["subjects"][0]["name"] == "system:authenticated"


def test_reconcile_adds_what_is_missing_and_keeps_extras() -> None:
    desired = by_name()["view"]
    assert boot.reconcile_role(copy.deepcopy(desired), desired) is None
    existing = copy.deepcopy(desired)
    existing["rules"] = [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]
    existing["metadata"]["labels"]["team"] = "x"
    updated = boot.reconcile_role(existing, desired)
    assert updated is not None
    assert updated["rules"][0] == existing["rules"][0]
    assert len(updated["rules"]) == 1 + len(desired["rules"])
    assert updated["metadata"]["labels"]["team"] == "x"
    opted_out = copy.deepcopy(existing)
    opted_out["metadata"]["annotations"][boot.AUTOUPDATE] = "false"
    assert boot.reconcile_role(opted_out, desired) is None


def test_reconcile_binding_adds_subjects() -> None:
    desired = boot.cluster_role_bindings()[0]
    existing = copy.deepcopy(desired)
    existing["subjects"] = [{"kind": "User", "name": "root", "apiGroup": "rbac.authorization.k8s.io"}]
    updated = boot.reconcile_binding(existing, desired)
    assert updated is not None
    assert [s["name"] for s in updated["subjects"]] == ["root", "system:masters", "nestlab:admins"]
    assert boot.reconcile_binding(updated, desired) is None


class FakeRegistry:
    """Objects by (plural, name); a lost race can be simulated once per name."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Obj] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.race: set[str] = set()
        self.version = 0
        self.created_in: dict[tuple[str, str], str] = {}  # (plural, name) -> the namespace asked

    async def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        found = self.objects.get((resource.plural, name))
        if found is None:
            raise status.not_found(resource.plural, resource.group, name)
        return copy.deepcopy(found)

    def _store(self, resource: Resource, obj: Obj) -> Obj:
        self.version += 1
        obj["metadata"].update(resourceVersion=str(self.version), uid=f"uid-{self.version}")
        self.objects[(resource.plural, obj["metadata"]["name"])] = obj
        return obj

    async def create(self, resource: Resource, namespace: str, body: Any, manager: str = "") -> Obj:
        name = body["metadata"]["name"]
        if name in self.race:  # another API server created it first
            self.race.discard(name)
            self._store(resource, copy.deepcopy(body))
            raise status.already_exists(resource.plural, resource.group, name)
        if (resource.plural, name) in self.objects:
            raise status.already_exists(resource.plural, resource.group, name)
        self.writes.append(("create", resource.plural, name))
        self.created_in[(resource.plural, name)] = namespace
        return self._store(resource, body)

    async def update(self, resource: Resource, namespace: str, name: str, body: Any) -> Obj:
        self.writes.append(("update", resource.plural, name))
        return self._store(resource, copy.deepcopy(body))

    async def delete(self, resource: Resource, namespace: str, name: str, options: Obj) -> Obj:
        self.writes.append(("delete", resource.plural, name))
        return self.objects.pop((resource.plural, name))


def test_ensure_creates_then_keeps_then_repairs() -> None:
    async def scenario() -> None:
        registry = FakeRegistry()
        registry.race.add("edit")
        await boot.ensure(registry)
        assert ("clusterroles", "edit") in registry.objects
        assert ("create", "clusterroles", "edit") not in registry.writes  # the other server made it
        assert len(registry.objects) == sum(
            len(made())
            for made in (
                boot.cluster_roles,
                boot.cluster_role_bindings,
                boot.namespace_roles,
                boot.namespace_role_bindings,
            )
        )
        assert registry.created_in[("roles", "system:nestlab-dns")] == "kube-system"
        assert registry.created_in[("rolebindings", "system:nestlab-dns")] == "kube-system"
        assert registry.created_in[("clusterroles", "system:nestlab-dns")] == ""
        registry.writes.clear()
        await boot.ensure(registry)  # a second start writes nothing
        assert registry.writes == []
        view = registry.objects[(CLUSTERROLES.plural, "view")]
        view["rules"] = []  # someone emptied it
        binding = registry.objects[(CLUSTERROLEBINDINGS.plural, "cluster-admin")]
        binding["roleRef"]["name"] = "view"  # a wrong role: recreated, roleRef being immutable
        await boot.ensure(registry)
        assert ("update", "clusterroles", "view") in registry.writes
        assert ("delete", "clusterrolebindings", "cluster-admin") in registry.writes
        assert (
            registry.objects[(CLUSTERROLEBINDINGS.plural, "cluster-admin")]["roleRef"]["name"]
            == "cluster-admin"
        )
        assert rules_of(registry.objects[(CLUSTERROLES.plural, "view")])

    asyncio.run(scenario())


def test_admins_are_bound_to_cluster_admin() -> None:
    from nestlab.api.rbacrules import binds

    binding = boot.cluster_role_bindings()[0]
    assert binds(binding, User("ops", frozenset({"nestlab:admins"})))
    assert not binds(binding, User("alice", frozenset({"system:authenticated"})))
