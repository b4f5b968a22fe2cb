"""Token files, client certificates and the hard-wired groups (admins, nodes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nestlab.api import auth, authn
from nestlab.api.access import NODE_RULES
from nestlab.api.rbacrules import Attributes, allows


def test_tokens_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('# comment\nt1,alice,1,"nestlab:admins,devs"\nt2,bob,2\n')
    tokens = auth.load_tokens(path)
    assert tokens["t1"].is_admin
    assert tokens["t1"].groups >= {"devs", "system:authenticated"}
    assert not tokens["t2"].is_admin
    static = authn.StaticTokens(tokens)
    assert asyncio.run(static.verify("t2")) == tokens["t2"]
    assert asyncio.run(static.verify("nope")) is None
    assert authn.bearer_token("Bearer t2") == "t2"
    assert authn.bearer_token("Basic t2") is None


def test_bad_tokens_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text("t1,alice,1\nbroken\n")
    with pytest.raises(auth.AuthConfigError, match=r"tokens.csv:2"):
        auth.load_tokens(path)
    with pytest.raises(auth.AuthConfigError, match="cannot read"):
        auth.load_tokens(tmp_path / "missing")


def test_peercert_subject() -> None:
    cert = {
        "subject": (
            (("organizationName", "devs"),),
            (("organizationName", "ops"),),
            (("commonName", "carol"),),
        )
    }
    user = auth.user_from_peercert(cert)
    assert user is not None
    assert user.name == "carol"
    assert user.groups == {"devs", "ops", "system:authenticated"}
    assert auth.user_from_peercert({}) is None


def test_node_rules_come_from_the_kind_units() -> None:
    """A node agent's rights (upstream's Node authorizer, not RBAC) are each unit's ``roles["node"]``."""
    assert allows(NODE_RULES, Attributes("update", "", "pods", "status", "web", "team"))
    assert allows(NODE_RULES, Attributes("watch", "", "configmaps", namespace="team"))
    assert not allows(NODE_RULES, Attributes("create", "", "pods", namespace="team"))
    assert not allows(NODE_RULES, Attributes("delete", "", "secrets", name="s", namespace="team"))
    assert auth.User("x", frozenset({"system:masters"})).is_admin
    assert not auth.User("x", frozenset({"system:nodes"})).is_admin
