"""The identity store's pure rules (names, groups, password policy) and its etcd records."""

from __future__ import annotations

import asyncio

import pytest

from nestlab.api.identity import (
    IdentityStore,
    Passwords,
    StoredUser,
    group_problem,
    name_problem,
    password_problem,
    revocation_time,
)
from tests.unit.api.fake_etcd import FakeEtcd


@pytest.mark.parametrize(
    ("name", "password", "problem"),
    [
        ("alice", "", "is empty"),
        ("alice", "s3cr3t!", "must have at least 8 characters"),
        ("alice-in-wonderland", "Alice-In-Wonderland", "must not be the user name"),
        ("alice", "Password123", "is a well-known weak password; choose another"),
        ("alice", "VMware1!", "is a well-known weak password; choose another"),
        ("alice", "12345678", "is a well-known weak password; choose another"),
        ("alice", "correct horse battery", None),
        ("alice", "alice-2026!", None),
    ],
)
def test_password_policy(name: str, password: str, problem: str | None) -> None:
    assert password_problem(name, password) == problem


@pytest.mark.parametrize("name", ["alice", "administrator@vsphere.local", "dev_1.ops-x", "7up"])
def test_good_user_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["", "../etc", "a/b", "system:admin", " bob", ".hidden", "x" * 254, "é"])
def test_bad_user_names(name: str) -> None:
    assert name_problem(name) is not None


def test_groups() -> None:
    assert group_problem("nestlab:admins") is None
    assert group_problem("team-a") is None
    assert group_problem("system:authenticated") is not None
    assert group_problem("a b") is not None
    assert group_problem("") is not None


def test_record_round_trip_and_public_view_hides_the_hash() -> None:
    user = StoredUser(
        "alice", ("a", "b"), "$argon2id$v=19$m=1,t=1,p=1$x$y", "2026-12-05T23:00:00Z", 1_780_000_000
    )
    assert StoredUser.from_json(user.to_json()) == user
    public = user.public()
    assert "passwordHash" not in public
    assert user.password_hash not in str(public)
    assert public["groups"] == ["a", "b"]
    with pytest.raises(TypeError):
        StoredUser.from_json(b"[]")


def test_revocation_time_is_the_next_whole_second() -> None:
    assert revocation_time(100.0) == 101
    assert revocation_time(100.7) == 101


def test_passwords_hash_with_argon2id_and_unknown_users_never_match() -> None:
    async def scenario() -> None:
        passwords = Passwords()
        hashed = await passwords.hash("correct horse battery")
        assert hashed.startswith("$argon2id$")
        assert await passwords.check(hashed, "correct horse battery")
        assert not await passwords.check(hashed, "Correct horse battery")
        assert not await passwords.check("not a hash", "correct horse battery")
        assert not await passwords.check(None, "nestlab decoy password, never a user's")

    asyncio.run(scenario())


def test_store_create_get_list_revoke_delete() -> None:
    async def scenario() -> None:
        now = [1000.25]
        store = IdentityStore(FakeEtcd(), clock=lambda: now[0])  # type: ignore[arg-type]
        alice = store.new_user("alice", ("devs",), "$argon2id$fake")
        assert alice.not_before == 1001  # nothing issued before her creation counts
        assert await store.create(alice)
        assert not await store.create(store.new_user("alice", (), "$argon2id$other"))
        assert await store.create(store.new_user("bob", (), "$argon2id$fake"))
        assert await store.get("alice") == alice
        assert await store.get("carol") is None
        assert [u.name for u in await store.list()] == ["alice", "bob"]
        now[0] = 2000.5
        revoked = await store.revoke("alice")
        assert revoked is not None
        assert revoked.not_before == 2001
        assert await store.revoke("carol") is None
        removed = await store.delete("alice")
        assert removed is not None
        assert removed.name == "alice"
        assert await store.delete("alice") is None
        assert [u.name for u in await store.list()] == ["bob"]

    asyncio.run(scenario())
