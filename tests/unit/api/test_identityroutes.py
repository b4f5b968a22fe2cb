"""The identity routes in process: request parsing (pure) and the answers over a fake etcd."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric import ec

from nestlab.api import auth, status
from nestlab.api.authn import Authenticator
from nestlab.api.etcd import EtcdClient
from nestlab.api.identity import IdentityStore, Passwords
from nestlab.api.identityroutes import (
    IdentityRoutes,
    basic_credentials,
    build,
    login_request,
    new_user_fields,
)
from nestlab.api.main import parse_args
from nestlab.api.server import status_errors
from nestlab.api.usertokens import UserCache, UserTokens
from nestlab.errors import UsageError
from nestlab.provision.pki import ensure_signing_key
from tests.unit.api.fake_etcd import FakeEtcd

# auditfacts keeps its record under a str key (aiohttp recommends web.RequestKey): not this module's.
KEY = ec.generate_private_key(ec.SECP256R1())
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # unit tests: the format, not the cost
Client = TestClient[Any, Any]


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def test_basic_credentials() -> None:
    assert basic_credentials(basic("alice", "pa:ss word")["Authorization"]) == ("alice", "pa:ss word")
    assert basic_credentials("Bearer abc") is None
    for bad in (
        "Basic %%%",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff:x").decode(),
    ):
        with pytest.raises(status.ApiError) as caught:
            basic_credentials(bad)
        assert caught.value.code == 401


def test_login_request() -> None:
    assert login_request("", {"username": "a", "password": "p"}) == ("a", "p", 36000)
    assert login_request(basic("a", "p")["Authorization"], {"expirationSeconds": 60}) == ("a", "p", 60)
    with pytest.raises(status.ApiError, match="invalid user name or password"):
        login_request("", None)
    for ttl in (0, 86401, True, "60"):
        with pytest.raises(status.ApiError, match="expirationSeconds"):
            login_request(basic("a", "p")["Authorization"], {"expirationSeconds": ttl})


def test_new_user_fields() -> None:
    body = {"name": "alice", "groups": ["devs", "devs", "ops"], "password": "alice-2026!"}
    assert new_user_fields(body) == ("alice", ("devs", "ops"), "alice-2026!")
    with pytest.raises(status.ApiError) as caught:
        new_user_fields({"name": "a/b", "groups": ["ok", "not ok"], "password": ""})
    assert caught.value.code == 422
    assert caught.value.details is not None
    assert [c.field for c in caught.value.details.causes] == ["name", "groups[1]", "password"]
    assert caught.value.message.startswith('User.identity.nestlab.dev "a/b" is invalid: [')
    with pytest.raises(status.ApiError) as caught:
        new_user_fields(["not", "an", "object"])
    assert caught.value.code == 400


def run(scenario: Callable[[Client], Awaitable[None]], *, with_tokens: bool = True) -> None:
    async def authenticate(request: web.Request) -> auth.User:
        name, _, groups = request.headers.get("X-Test-User", "").partition(",")
        if not name:
            raise status.unauthorized()
        return auth.User(name, frozenset(filter(None, groups.split(","))))

    async def main() -> None:
        store = IdentityStore(FakeEtcd())  # type: ignore[arg-type]
        tokens = UserTokens(KEY, UserCache(store, max_age=0)) if with_tokens else None
        routes = IdentityRoutes(store, tokens, authenticate, passwords=Passwords(FAST))
        app = web.Application(middlewares=[status_errors])
        app.add_routes(routes.routes())
        async with TestClient(TestServer(app)) as client:
            await scenario(client)

    asyncio.run(main())


ADMIN = {"X-Test-User": "root,nestlab:admins"}


async def answer(client: Client, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with client.request(method, path, **kwargs) as response:
        return response.status, await response.json()


def test_users_and_login() -> None:
    async def scenario(client: Client) -> None:
        new = {"name": "alice", "groups": ["devs"], "password": "alice-2026!"}
        code, body = await answer(client, "POST", "/nestlab/v1/users", json=new, headers=ADMIN)
        assert code == 201, body
        assert body["groups"] == ["devs"]
        code, body = await answer(client, "POST", "/nestlab/v1/users", json=new, headers=ADMIN)
        assert (code, body["reason"]) == (409, "AlreadyExists")
        code, body = await answer(client, "POST", "/nestlab/v1/login", headers=basic("alice", "alice-2026!"))
        assert code == 200, body
        assert set(body) == {"token", "expirationTimestamp"}
        wrong = await answer(client, "POST", "/nestlab/v1/login", headers=basic("alice", "wrong-password"))
        unknown = await answer(client, "POST", "/nestlab/v1/login", headers=basic("zed", "alice-2026!"))
        bad_name = await answer(client, "POST", "/nestlab/v1/login", headers=basic("../x", "alice-2026!"))
        assert wrong == unknown == bad_name
        assert wrong[0] == 401
        code, body = await answer(client, "GET", "/nestlab/v1/users", headers=ADMIN)
        assert [u["name"] for u in body["items"]] == ["alice"]
        assert "passwordHash" not in body["items"][0]

    run(scenario)


def test_admin_only_and_refusals() -> None:
    async def scenario(client: Client) -> None:
        code, body = await answer(client, "GET", "/nestlab/v1/users", headers={"X-Test-User": "bob,devs"})
        assert code == 403
        assert (
            'User "bob" cannot list resource "users" in API group "identity.nestlab.dev"' in body["message"]
        )
        code, body = await answer(client, "DELETE", "/nestlab/v1/users/bob", headers={"X-Test-User": "bob"})
        assert code == 403
        assert body["message"].startswith('users.identity.nestlab.dev "bob" is forbidden')
        assert (await answer(client, "GET", "/nestlab/v1/users"))[0] == 401
        assert (await answer(client, "DELETE", "/nestlab/v1/users/nobody", headers=ADMIN))[0] == 404
        assert (await answer(client, "GET", "/nestlab/v1/users/nobody", headers=ADMIN))[0] == 404
        assert (
            await answer(client, "PATCH", "/nestlab/v1/users/nobody", json={"groups": []}, headers=ADMIN)
        )[0] == 404
        code, body = await answer(client, "PATCH", "/nestlab/v1/users/x", json={"name": "y"}, headers=ADMIN)
        assert code == 400
        code, body = await answer(client, "POST", "/nestlab/v1/users", data=b"{not json", headers=ADMIN)
        assert code == 400
        new = {"name": "carol", "password": "carol-2026!"}
        assert (await answer(client, "POST", "/nestlab/v1/users", json=new, headers=ADMIN))[0] == 201
        code, body = await answer(
            client, "PATCH", "/nestlab/v1/users/carol", json={"password": "carol"}, headers=ADMIN
        )
        assert code == 422
        assert body["details"]["causes"][0]["field"] == "password"

    run(scenario)


def test_login_without_a_signing_key_is_unavailable() -> None:
    async def scenario(client: Client) -> None:
        code, body = await answer(client, "POST", "/nestlab/v1/login", headers=basic("a", "b"))
        assert code == 503
        assert "--identity-signing-key" in body["message"]

    run(scenario, with_tokens=False)


def test_flag_and_wiring(tmp_path: Path) -> None:
    key = ensure_signing_key(tmp_path, "identity-signing.key")
    config = parse_args(["--etcd-servers", "http://127.0.0.1:1", "--identity-signing-key", str(key)])
    assert config.identity_signing_key == key
    assert parse_args(["--etcd-servers", "http://127.0.0.1:1"]).identity_signing_key is None

    async def nobody(_request: web.Request) -> auth.User:
        raise status.unauthorized()

    async def main() -> None:
        etcd = EtcdClient(["http://127.0.0.1:1"])
        with_key, without = Authenticator([]), Authenticator([])
        assert build(key, etcd, with_key, nobody).tokens is not None
        assert isinstance(with_key.verifiers[-1], UserTokens)
        assert build(None, etcd, without, nobody).tokens is None
        assert without.verifiers == []
        with pytest.raises(UsageError, match="cannot read --identity-signing-key"):
            build(tmp_path / "missing.key", etcd, without, nobody)
        await etcd.close()

    asyncio.run(main())
