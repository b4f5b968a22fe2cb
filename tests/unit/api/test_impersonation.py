"""Impersonation headers: what they ask, what the caller must hold, whom the request runs as."""

from __future__ import annotations

import asyncio

import pytest

from nestlab.api import auth, impersonation
from nestlab.api import resources as r
from nestlab.api.access import Authorizer
from nestlab.api.rbacrules import Attributes
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd

BOB = auth.User("bob", frozenset({"system:authenticated"}))


def test_parse_and_checks() -> None:
    assert impersonation.parse({}) is None
    asked = impersonation.parse(
        {
            "impersonate-user": ["alice"],
            "impersonate-group": ["devs", "ops"],
            "impersonate-extra-scopes%2fone": ["view"],
        }
    )
    assert asked is not None
    assert asked.extra == {"scopes/one": ("view",)}
    assert impersonation.checks(asked) == [
        Attributes("impersonate", "", "users", name="alice"),
        Attributes("impersonate", "", "groups", name="devs"),
        Attributes("impersonate", "", "groups", name="ops"),
        Attributes(
            "impersonate", "authentication.k8s.io", "userextras", subresource="scopes/one", name="view"
        ),
    ]
    assert impersonation.impersonated(asked).groups == {"devs", "ops", "system:authenticated"}
    with pytest.raises(ApiError) as no_user:
        impersonation.parse({"impersonate-group": ["system:masters"]})
    assert no_user.value.code == 400
    assert "without impersonating a user" in no_user.value.message


def test_the_uid_and_extras_asked_for_are_carried_to_the_impersonated_user() -> None:
    asked = impersonation.parse(
        {
            "impersonate-user": ["alice"],
            "impersonate-uid": ["1234"],
            "impersonate-extra-scopes": ["view", "edit"],
            "impersonate-extra-example.com%2freason": ["audit"],
        }
    )
    assert asked is not None
    user = impersonation.impersonated(asked)
    assert user.uid == "1234"
    assert user.extra == {"scopes": ("view", "edit"), "example.com/reason": ("audit",)}
    assert Attributes("impersonate", "authentication.k8s.io", "uids", name="1234") in (
        impersonation.checks(asked)
    )
    plain = impersonation.impersonated(impersonation.Asked("alice"))
    assert (plain.uid, plain.extra) == ("", {})


def test_service_accounts_are_checked_in_their_namespace() -> None:
    asked = impersonation.Asked("system:serviceaccount:team-a:bot")
    assert impersonation.checks(asked) == [
        Attributes("impersonate", "", "serviceaccounts", name="bot", namespace="team-a")
    ]
    assert impersonation.impersonated(asked).groups == {
        "system:serviceaccounts",
        "system:serviceaccounts:team-a",
        "system:authenticated",
    }


def test_only_holders_of_impersonate_may() -> None:
    async def scenario() -> None:
        store = Store(FakeEtcd())  # type: ignore[arg-type]
        authorizer = Authorizer(store)
        alice = impersonation.Asked("alice")
        with pytest.raises(ApiError) as refused:
            await impersonation.effective_user(authorizer, BOB, alice)
        assert refused.value.code == 403
        assert refused.value.message == (
            'users "alice" is forbidden: User "bob" cannot impersonate resource "users" '
            'in API group "" at the cluster scope'
        )
        role = {
            "metadata": {"name": "impersonator"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["users"],
                    "verbs": ["impersonate"],
                    "resourceNames": ["alice"],
                }
            ],
        }
        await store.create(r.CLUSTERROLES, "", role)
        await store.create(
            r.CLUSTERROLEBINDINGS,
            "",
            {
                "metadata": {"name": "bob-impersonates"},
                "roleRef": {"kind": "ClusterRole", "name": "impersonator"},
                "subjects": [{"kind": "User", "name": "bob"}],
            },
        )
        assert await impersonation.effective_user(authorizer, BOB, alice) == auth.User(
            "alice", frozenset({"system:authenticated"})
        )
        with pytest.raises(ApiError) as group:
            await impersonation.effective_user(
                authorizer, BOB, impersonation.Asked("alice", ("system:masters",))
            )
        assert group.value.message.startswith(
            'groups "system:masters" is forbidden: User "bob" cannot impersonate'
        )

    asyncio.run(scenario())
