"""The registry token service's decisions and tokens, with a fake pod store and a fake authorizer."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path
from typing import Any

import jwt
import pytest

from nestlab.api import auth, registrytoken, status
from nestlab.api.registrytoken import ANONYMOUS, Scope, TokenConfig, TokenService
from nestlab.api.resources import Resource
from nestlab.errors import UsageError
from nestlab.provision.pki import ensure_signing_key

ALICE = auth.User("alice", frozenset({auth.AUTHENTICATED}))
ADMIN = auth.User("root", frozenset({"system:masters", auth.AUTHENTICATED}))
NODE = auth.User("system:node:esx-01", frozenset({auth.NODE_GROUP, auth.AUTHENTICATED}))
PODS = {("team-a", "web"): "esx-01", ("team-a", "far"): "esx-02", ("team-b", "db"): "esx-01"}


class FakeStore:
    async def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        node = PODS.get((namespace, name))
        if node is None:
            raise status.not_found("pods", "", name)
        return {"metadata": {"name": name, "namespace": namespace}, "spec": {"nodeName": node}}


async def alice_edits_team_a(user: auth.User, verb: str, project: str) -> bool:
    """alice: edit in team-a, view in team-v; admins everything."""
    if user.is_admin:
        return True
    if user.name != "alice":
        return False
    return (project == "team-a" and verb in ("get", "create")) or (project == "team-v" and verb == "get")


@pytest.fixture
def service(tmp_path: Path) -> TokenService:
    key = ensure_signing_key(tmp_path, "registry-token.key")
    return TokenService(TokenConfig(key), None, FakeStore(), alice_edits_team_a)  # type: ignore[arg-type]


def granted(service: TokenService, user: auth.User, scope: str, pod: str = "") -> tuple[str, ...]:
    return asyncio.run(service.granted(user, registrytoken.parse_scope(scope), pod))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repository:team-a/web:pull,push", Scope("repository", "team-a/web", ("pull", "push"))),
        ("repository:web:pull", Scope("repository", "web", ("pull",))),
        ("repository(plugin):team-a/x:pull", Scope("repository", "team-a/x", ("pull",))),
        ("registry:catalog:*", Scope("registry", "catalog", ("*",))),
        ("repository:localhost:5000/a:pull", Scope("repository", "localhost:5000/a", ("pull",))),
    ],
)
def test_scopes_parse_as_distribution_splits_them(text: str, expected: Scope) -> None:
    assert registrytoken.parse_scope(text) == expected


@pytest.mark.parametrize("text", ["repository", "repository:web", ":web:pull", "repository::pull"])
def test_a_malformed_scope_is_a_400(text: str) -> None:
    with pytest.raises(status.ApiError) as caught:
        registrytoken.parse_scope(text)
    assert caught.value.code == 400


def test_projects_are_the_first_component_and_short_names_are_library() -> None:
    assert registrytoken.project_of("team-a/web") == "team-a"
    assert registrytoken.project_of("team-a/tools/web") == "team-a"
    assert registrytoken.project_of("nginx") == "library"


def test_an_editor_pulls_and_pushes_a_viewer_only_pulls(service: TokenService) -> None:
    assert granted(service, ALICE, "repository:team-a/web:pull,push") == ("pull", "push")
    assert granted(service, ALICE, "repository:team-v/web:pull,push") == ("pull",)
    assert granted(service, ALICE, "repository:team-b/web:pull,push") == ()
    assert granted(service, ALICE, "repository:team-a/web:*") == ("pull", "push")
    assert granted(service, ADMIN, "repository:team-b/web:*") == ("pull", "push", "delete")


def test_public_projects_pull_for_anyone_push_for_whom_the_authorizer_allows(service: TokenService) -> None:
    assert granted(service, ANONYMOUS, "repository:nestlab/web:pull,push") == ("pull",)
    assert granted(service, ANONYMOUS, "repository:busybox:pull") == ("pull",)
    assert granted(service, ANONYMOUS, "repository:team-a/web:pull") == ()
    assert granted(service, ALICE, "repository:library/nginx:pull,push") == ("pull",)
    assert granted(service, ADMIN, "repository:library/nginx:pull,push") == ("pull", "push")


def test_a_node_pulls_a_private_project_only_for_its_own_pod_in_it(service: TokenService) -> None:
    assert granted(service, NODE, "repository:team-a/web:pull,push", "team-a/web") == ("pull",)
    assert granted(service, NODE, "repository:team-a/web:pull", "team-a/far") == ()  # another node's pod
    assert granted(service, NODE, "repository:team-a/web:pull", "team-b/db") == ()  # another project
    assert granted(service, NODE, "repository:team-a/web:pull", "team-a/gone") == ()
    assert granted(service, NODE, "repository:team-a/web:pull") == ()
    assert granted(service, NODE, "repository:nestlab/web:pull") == ("pull",)


def test_the_catalog_is_for_admins_and_unknown_types_get_nothing(service: TokenService) -> None:
    assert granted(service, ADMIN, "registry:catalog:*") == ("*",)
    assert granted(service, ALICE, "registry:catalog:*") == ()
    assert granted(service, ADMIN, "plugin:x:pull") == ()


def test_the_token_is_what_distribution_verifies(tmp_path: Path) -> None:
    key_path = ensure_signing_key(tmp_path, "k.key")
    key = registrytoken.load_key(key_path)
    access = [{"type": "repository", "name": "team-a/web", "actions": ["pull"]}]
    token = registrytoken.sign(key, TokenConfig(key_path), "alice", access, 1_000_000.0)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    assert header["kid"] == registrytoken.libtrust_key_id(key.public_key())
    claims = jwt.decode(
        token,
        key.public_key(),
        algorithms=["ES256"],
        audience="depot",
        issuer="nestlab-registry",
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    assert claims["sub"] == "alice"
    assert claims["access"] == access
    assert claims["exp"] - claims["iat"] == registrytoken.DEFAULT_TTL_S


def test_the_key_id_is_libtrusts_twelve_base32_groups(tmp_path: Path) -> None:
    key = registrytoken.load_key(ensure_signing_key(tmp_path, "k.key"))
    kid = registrytoken.libtrust_key_id(key.public_key())
    assert re.fullmatch(r"[A-Z2-7]{4}(:[A-Z2-7]{4}){11}", kid), kid
    assert kid == registrytoken.libtrust_key_id(key.public_key())


def test_a_key_that_is_not_ec_p256_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    with pytest.raises(UsageError, match=r"bad\.key"):
        registrytoken.load_key(bad)


def test_basic_credentials() -> None:
    pair = base64.b64encode(b"alice:s3cret:with:colons").decode()
    assert registrytoken.basic_credentials(f"Basic {pair}") == ("alice", "s3cret:with:colons")
    assert registrytoken.basic_credentials("Bearer abc") is None
    for bad in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()):
        with pytest.raises(status.ApiError) as caught:
            registrytoken.basic_credentials(bad)
        assert caught.value.code == 401
