"""Escalation prevention: upstream's ConfirmNoEscalation / escalate / bind semantics and 403 text."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from nestlab.api import escalation, status
from nestlab.api.auth import CURRENT_USER, User
from nestlab.api.rbacrules import Rule
from nestlab.api.resources import CLUSTERROLEBINDINGS, CLUSTERROLES, PODS, ROLEBINDINGS, ROLES, Resource

Obj = dict[str, Any]
ALICE = User("alice", frozenset({"team-a", "system:authenticated"}))
PODS_READ = Rule.of(["get", "list", "watch"], [""], ["pods"])
STORED: dict[tuple[str, str, str], Obj] = {
    ("roles", "team-a", "pod-reader"): {
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    },
    ("clusterroles", "", "edit"): {
        "metadata": {"name": "edit"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get"]}],
    },
}


def check(
    held: list[Rule], resource: Resource, new: Obj, old: Obj | None = None, user: User | None = ALICE
) -> None:
    asked: list[tuple[str, str]] = []

    async def rules_for(who: User, namespace: str) -> list[Rule]:
        asked.append((who.name, namespace))
        return held

    async def get(res: Resource, namespace: str, name: str) -> Obj:
        try:
            return STORED[(res.plural, namespace, name)]
        except KeyError:
            raise status.not_found(res.plural, res.group, name) from None

    hook = escalation.hook(rules_for, get)
    namespace = "team-a" if resource.namespaced else ""

    async def run() -> None:
        token = CURRENT_USER.set(user)
        try:
            await hook(resource, namespace, new, old)
        finally:
            CURRENT_USER.reset(token)

    asyncio.run(run())
    if asked:
        assert asked == [(ALICE.name, namespace)]


def role(*rules: Rule, **extra: Any) -> Obj:
    return {"metadata": {"name": "r"}, "rules": [r.to_json() for r in rules], **extra}


def binding(kind: str, name: str) -> Obj:
    return {
        "metadata": {"name": "b"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
        "subjects": [{"kind": "User", "name": "mallory"}],
    }


@pytest.fixture(autouse=True)
def _no_leaked_user() -> Iterator[None]:
    yield
    assert CURRENT_USER.get() is None


def forbidden(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(status.ApiError) as error:
        call(*args, **kwargs)
    assert error.value.code == 403
    assert error.value.reason == "Forbidden"
    return error.value.message


def test_a_role_within_what_you_hold_passes() -> None:
    check([PODS_READ], ROLES, role(Rule.of(["get"], [""], ["pods"])))


def test_a_wider_role_is_refused_with_upstream_text() -> None:
    wanted = role(Rule.of(["get", "create", "delete"], [""], ["pods"]), Rule.of(["get"], [""], ["secrets"]))
    message = forbidden(check, [PODS_READ], CLUSTERROLES, wanted)
    assert message == (
        'clusterroles.rbac.authorization.k8s.io "r" is forbidden: user "alice" '
        '(groups=["system:authenticated" "team-a"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["pods"], Verbs:["create" "delete"]}\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}'
    )


def test_escalate_verb_lets_it_through() -> None:
    escalate = Rule.of(["escalate"], ["rbac.authorization.k8s.io"], ["roles"])
    check([escalate], ROLES, role(Rule.of(["*"], ["*"], ["*"])))
    # resourceNames are honoured on update only: upstream asks without a name on create
    named = Rule.of(["escalate"], ["rbac.authorization.k8s.io"], ["roles"], ["r"])
    wide = role(Rule.of(["*"], ["*"], ["*"]))
    forbidden(check, [named], ROLES, wide)
    check([named], ROLES, wide, old=role())


def test_aggregated_cluster_roles_need_full_authority() -> None:
    aggregated = role(aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]})
    message = forbidden(check, [PODS_READ], CLUSTERROLES, aggregated)
    assert message.endswith("is forbidden: must have cluster-admin privileges to use the aggregationRule")
    check(list(escalation.FULL_AUTHORITY), CLUSTERROLES, aggregated)


def test_gc_only_updates_and_admins_and_bootstrap_pass() -> None:
    old = role(Rule.of(["*"], ["*"], ["*"]))
    new = role(Rule.of(["*"], ["*"], ["*"]))
    new["metadata"]["finalizers"] = ["x"]
    check([], ROLES, new, old=old)
    check([], ROLES, role(Rule.of(["*"], ["*"], ["*"])), user=User("root", frozenset({"system:masters"})))
    check([], ROLES, role(Rule.of(["*"], ["*"], ["*"])), user=None)
    new["metadata"]["labels"] = {"x": "y"}  # anything else is checked again
    forbidden(check, [], ROLES, new, old=old)


def test_other_kinds_are_not_checked() -> None:
    check([], PODS, {"metadata": {"name": "p"}})


def test_binding_needs_the_role_rules_or_bind() -> None:
    check([PODS_READ], ROLEBINDINGS, binding("Role", "pod-reader"))
    message = forbidden(check, [PODS_READ], ROLEBINDINGS, binding("ClusterRole", "edit"))
    assert message.startswith('rolebindings.rbac.authorization.k8s.io "b" is forbidden: user "alice"')
    assert message.endswith('{APIGroups:[""], Resources:["pods"], Verbs:["create"]}')
    bind_edit = Rule.of(["bind"], ["rbac.authorization.k8s.io"], ["clusterroles"], ["edit"])
    check([bind_edit], ROLEBINDINGS, binding("ClusterRole", "edit"))
    forbidden(check, [bind_edit], CLUSTERROLEBINDINGS, binding("ClusterRole", "cluster-admin"))


def test_binding_a_missing_role_needs_bind() -> None:
    message = forbidden(check, [PODS_READ], CLUSTERROLEBINDINGS, binding("ClusterRole", "ghost"))
    assert message == (
        'clusterrolebindings.rbac.authorization.k8s.io "b" is forbidden: '
        'clusterroles.rbac.authorization.k8s.io "ghost" not found'
    )
    check([Rule.of(["bind"], ["*"], ["*"])], CLUSTERROLEBINDINGS, binding("ClusterRole", "ghost"))
