"""Users and login against the REAL nestlab-apiserver (3-member etcd): the Token Exchange Service.

Covers the routes (add, duplicate, weak password, unknown user, non-admin), login and the
verification of its tokens on ordinary API requests (expired, forged four ways, revoked, removed,
groups changed), and the outer side: ``nestlab user add`` / ``nestlab login`` through the lab
files, then kubectl 1.20 and a modern kubectl using the per-user kubeconfig's exec plugin.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nestlab import logins
from nestlab.commands.users import login, user
from nestlab.paths import LabFiles
from nestlab.runtime import proc
from tests.integration.api.conftest import (
    BOB_TOKEN,
    IDENTITY_KEY,
    NEW_KUBECTLS,
    ApiServer,
    kubectl_binaries,
)

pytestmark = pytest.mark.integration

PASSWORD = "idt-Secret-2026"  # noqa: S105 - a test credential
PODS = "/api/v1/namespaces/default/pods"
DEADLINE = 15.0  # seconds: revocation is seen within the 1 s user cache; expiry within the 5 s leeway


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def poll(check: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:g}s")


class Identity:
    """The identity routes of the test server."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        key = serialization.load_pem_private_key((server.log.parent / IDENTITY_KEY).read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.key = key

    def add(self, name: str, groups: list[str] | None = None, password: str = PASSWORD) -> tuple[int, Any]:
        body = {"name": name, "groups": groups or [], "password": password}
        return self.server.request("POST", "/nestlab/v1/users", body)

    def login(self, name: str, password: str = PASSWORD, ttl: int | None = None) -> tuple[int, Any]:
        body = None if ttl is None else {"expirationSeconds": ttl}
        return self.server.request(
            "POST", "/nestlab/v1/login", body, token=None, headers=basic(name, password)
        )

    def token(self, name: str, ttl: int | None = None) -> str:
        code, body = self.login(name, ttl=ttl)
        assert code == 200, body
        return str(body["token"])

    def as_token(self, token: str, path: str = PODS) -> tuple[int, Any]:
        return self.server.request("GET", path, token=token)


@pytest.fixture(scope="module")
def identity(apiserver: ApiServer) -> Identity:
    return Identity(apiserver)


def test_user_routes_and_their_refusals(identity: Identity, apiserver: ApiServer) -> None:
    code, body = identity.add("idt-ann", ["devs"])
    assert code == 201, body
    assert body["name"] == "idt-ann"
    assert body["groups"] == ["devs"]
    assert "passwordHash" not in body
    code, body = identity.add("idt-ann")
    assert (code, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'users.identity.nestlab.dev "idt-ann" already exists'
    for password, why in (
        ("", "is empty"),
        ("short", "at least 8"),
        ("idt-weak-one", "user name"),
        ("Passw0rd!", "well-known"),
    ):
        name = "idt-weak-one"
        code, body = identity.add(name, password=password)
        assert (code, body["reason"]) == (422, "Invalid"), body
        assert why in body["message"]
        assert body["details"]["causes"][0]["field"] == "password"
    code, body = identity.add("../etc")
    assert code == 422
    assert body["details"]["causes"][0]["field"] == "name"
    code, body = apiserver.request("DELETE", "/nestlab/v1/users/idt-nobody")
    assert (code, body["message"]) == (404, 'users.identity.nestlab.dev "idt-nobody" not found')
    code, body = apiserver.request("GET", "/nestlab/v1/users", token=BOB_TOKEN)
    assert code == 403
    assert (
        body["message"]
        == 'users.identity.nestlab.dev is forbidden: User "bob" cannot list resource "users" in API group "identity.nestlab.dev" at the cluster scope'
    )
    code, body = apiserver.request("GET", "/nestlab/v1/users", token=None)
    assert code == 401
    code, body = apiserver.request("GET", "/nestlab/v1/users")
    assert code == 200
    assert "idt-ann" in [u["name"] for u in body["items"]]
    assert all("passwordHash" not in u for u in body["items"])


def test_login_and_verification(identity: Identity) -> None:
    assert identity.add("idt-bea", ["devs"])[0] == 201
    code, body = identity.login("idt-bea")
    assert code == 200, body
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 10 * 3600  # vSphere's default
    assert body["expirationTimestamp"].endswith("Z")
    # Authenticated as idt-bea (who holds no role): the RBAC refusal names her.
    code, answer = identity.as_token(body["token"])
    assert code == 403, answer
    assert 'User "idt-bea" cannot list resource "pods"' in answer["message"]
    # Wrong password and unknown user: the same answer.
    wrong, unknown = identity.login("idt-bea", "not-her-password"), identity.login("idt-nobody", PASSWORD)
    assert wrong == unknown == (401, wrong[1])
    assert wrong[1]["message"] == "invalid user name or password"
    code, _ = identity.server.request("POST", "/nestlab/v1/login", token=None)
    assert code == 401
    code, answer = identity.server.request(
        "POST", "/nestlab/v1/login", {"expirationSeconds": 0}, token=None, headers=basic("idt-bea", PASSWORD)
    )
    assert code == 400
    assert "expirationSeconds" in answer["message"]


def test_expired_tokens(identity: Identity) -> None:
    assert identity.add("idt-cat")[0] == 201
    short = identity.token("idt-cat", ttl=1)
    assert identity.as_token(short)[0] == 403  # valid now: authenticated, not authorized
    poll(lambda: identity.as_token(short)[0] == 401, "a 1-second token expired")
    claims = jwt.decode(identity.token("idt-cat"), options={"verify_signature": False})
    long_ago = dict(claims, iat=claims["iat"] - 7200, nbf=claims["iat"] - 7200, exp=claims["iat"] - 3600)
    code, body = identity.as_token(jwt.encode(long_ago, identity.key, algorithm="ES256"))
    assert (code, body["message"]) == (401, "Unauthorized")


def test_forged_tokens(identity: Identity) -> None:
    assert identity.add("idt-dan")[0] == 201
    good = identity.token("idt-dan")
    claims = jwt.decode(good, options={"verify_signature": False})
    head, _, signature = good.split(".")
    public_pem = identity.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    )
    forged = {
        "other key": jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"),
        "altered claims": f"{head}.{b64(json.dumps(dict(claims, sub='admin', groups=['system:masters'])).encode())}.{signature}",
        "alg none": f"{b64(json.dumps({'alg': 'none'}).encode())}.{b64(json.dumps(claims).encode())}.",
        "HS256 with the public key": f"{hs_input}.{b64(hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest())}",
        "malformed": "not.a.jwt",
        "garbage": "%%%",
    }
    for what, token in forged.items():
        code, body = identity.as_token(token)
        assert (code, body.get("message")) == (401, "Unauthorized"), what
    assert identity.as_token(good)[0] == 403


def test_revoked_removed_and_regrouped(identity: Identity, apiserver: ApiServer) -> None:
    assert identity.add("idt-eve")[0] == 201
    old = identity.token("idt-eve")
    code, body = apiserver.request(
        "PATCH",
        "/nestlab/v1/users/idt-eve",
        {"revokeTokens": True},
        content_type="application/merge-patch+json",
    )
    assert code == 200, body
    poll(lambda: identity.as_token(old)[0] == 401, "a revoked token refused")
    fresh = identity.token("idt-eve")  # logging in again after a revocation works at once
    assert identity.as_token(fresh)[0] == 403
    # Groups come from the store: joining nestlab:admins works with the token already held.
    code, body = apiserver.request("PATCH", "/nestlab/v1/users/idt-eve", {"groups": ["nestlab:admins"]})
    assert code == 200
    assert body["groups"] == ["nestlab:admins"]
    poll(lambda: identity.as_token(fresh)[0] == 200, "a new group honoured")
    # A new password revokes the tokens issued before it.
    code, body = apiserver.request("PATCH", "/nestlab/v1/users/idt-eve", {"password": "short"})
    assert code == 422
    code, body = apiserver.request("PATCH", "/nestlab/v1/users/idt-eve", {"password": "idt-New-Secret-1"})
    assert code == 200
    poll(lambda: identity.as_token(fresh)[0] == 401, "tokens before a password change refused")
    assert identity.login("idt-eve")[0] == 401  # the old password no longer logs in
    code, body = identity.login("idt-eve", "idt-New-Secret-1")
    assert code == 200
    last = body["token"]
    assert identity.as_token(last)[0] == 200
    code, _ = apiserver.request("DELETE", "/nestlab/v1/users/idt-eve")
    assert code == 200
    poll(lambda: identity.as_token(last)[0] == 401, "a removed user's token refused")


# -- the outer side: nestlab user/login and kubectl's exec plugin ----------------------------------
@pytest.fixture(scope="module")
def lab_home(apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A lab directory like ``nestlab up`` leaves, pointing at the test server; the lab-admin
    certificate is the fixture's alice (O=nestlab:admins)."""
    home = tmp_path_factory.mktemp("nestlab-home")
    files = LabFiles(home / "labs" / "itest")
    files.pki.mkdir(parents=True)
    shutil.copy(apiserver.pki.ca, files.pki / "ca.crt")
    shutil.copy(apiserver.pki.alice_cert, files.pki / "admin.crt")
    shutil.copy(apiserver.pki.alice_key, files.pki / "admin.key")
    cluster = {
        "server": apiserver.url,
        "certificate-authority-data": base64.b64encode(apiserver.pki.ca.read_bytes()).decode(),
    }
    files.kubeconfig.write_text(yaml.safe_dump({"clusters": [{"name": "itest", "cluster": cluster}]}))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("version", kubectl_binaries())
def test_login_and_kubectl_exec_plugin(
    version: str, lab_home: Path, kubectl_120: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NESTLAB_HOME", str(lab_home))
    runner = CliRunner()
    name, admin = f"idt-kc-{version.replace('.', '-')}", f"idt-kca-{version.replace('.', '-')}"
    for who, groups in ((name, []), (admin, ["-g", "nestlab:admins"])):
        added = runner.invoke(
            user, ["add", who, *groups, "--password-stdin", "--lab", "itest"], input=PASSWORD + "\n"
        )
        assert added.exit_code == 0, added.output
        again = runner.invoke(user, ["add", who, "--password-stdin", "--lab", "itest"], input=PASSWORD)
        assert again.exit_code == 2
        assert f"user {who} exists" in again.output
        logged = runner.invoke(login, [who, "--password-stdin", "--lab", "itest"], input=PASSWORD + "\n")
        assert logged.exit_code == 0, logged.output
    bad = runner.invoke(login, [name, "--password-stdin", "--lab", "itest"], input="wrong-password")
    assert bad.exit_code == 2
    assert "wrong user name or password" in bad.output
    files = LabFiles(lab_home / "labs" / "itest")
    assert "token" not in yaml.safe_load(logins.kubeconfig_path(files, name).read_text())["users"][0]["user"]

    binary = kubectl_120 if version == "1.20" else NEW_KUBECTLS[version]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def kubectl(who: str, *args: str) -> proc.Result:
        config = logins.kubeconfig_path(files, who)
        return proc.run([str(binary), "--kubeconfig", str(config), *args], timeout=60, check=False, env=env)

    refused = kubectl(name, "get", "pods", "-n", "default")
    assert refused.returncode != 0
    assert f'User "{name}" cannot list resource "pods"' in refused.stderr, refused.stderr
    assert kubectl(admin, "get", "namespaces").returncode == 0
    # An expired cache: the plugin says what to run and kubectl does not reach the API.
    cache = logins.token_path(files, name)
    cached = json.loads(cache.read_text())
    cache.write_text(json.dumps(dict(cached, expirationTimestamp="2020-01-01T00:00:00Z")))
    expired = kubectl(name, "get", "pods")
    assert expired.returncode != 0
    # the command as it can be typed from kubectl's directory: nestlab on PATH, or its path
    said = f"the token of {name} expired at 2020-01-01T00:00:00Z: run (nestlab|\\S+/nestlab) login {name} --lab itest"
    assert re.search(said, expired.stderr), expired.stderr
    # Revoked with `nestlab user revoke`: kubectl's cached token is refused (401), a new login works.
    revoked = runner.invoke(user, ["revoke", admin, "--lab", "itest"])
    assert revoked.exit_code == 0, revoked.output
    poll(
        lambda: "Unauthorized" in kubectl(admin, "get", "namespaces").stderr,
        "a revoked token refused by kubectl",
    )
    again = runner.invoke(login, [admin, "--password-stdin", "--lab", "itest"], input=PASSWORD)
    assert again.exit_code == 0, again.output
    assert kubectl(admin, "get", "namespaces").returncode == 0
    removed = runner.invoke(user, ["remove", admin, "--lab", "itest"])
    assert removed.exit_code == 0, removed.output
    assert not logins.kubeconfig_path(files, admin).exists()
    assert os.stat(cache).st_mode & 0o077 == 0


def test_user_set_replaces_the_groups_a_held_token_carries(
    identity: Identity, lab_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NESTLAB_HOME", str(lab_home))
    runner = CliRunner()
    assert identity.add("idt-grp")[0] == 201
    token = identity.token("idt-grp")
    assert identity.as_token(token)[0] == 403
    promoted = runner.invoke(user, ["set", "idt-grp", "-g", "nestlab:admins", "-g", "devs", "--lab", "itest"])
    assert promoted.exit_code == 0, promoted.output
    assert promoted.output == "groups of user idt-grp: nestlab:admins, devs\n"
    poll(lambda: identity.as_token(token)[0] == 200, "the new group honoured on the token held")
    again = runner.invoke(user, ["set", "idt-grp", "-g", "devs", "-g", "nestlab:admins", "--lab", "itest"])
    assert again.output == "user idt-grp unchanged (nestlab:admins, devs)\n"
    demoted = runner.invoke(user, ["set", "idt-grp", "--no-groups", "--lab", "itest"])
    assert demoted.exit_code == 0, demoted.output
    poll(lambda: identity.as_token(token)[0] == 403, "the group taken away")
    unknown = runner.invoke(user, ["set", "idt-nobody", "-g", "devs", "--lab", "itest"])
    assert unknown.exit_code == 2
    assert "user idt-nobody does not exist" in unknown.output
    bad = runner.invoke(user, ["set", "idt-grp", "-g", "system:authenticated", "--lab", "itest"])
    assert bad.exit_code == 2
    assert "error: user idt-grp: groups[0]: system:authenticated is given to every user" in bad.output
    assert apiserver_users(identity) == {"idt-grp": []}


def apiserver_users(identity: Identity) -> dict[str, list[str]]:
    code, body = identity.server.request("GET", "/nestlab/v1/users")
    assert code == 200
    return {u["name"]: u["groups"] for u in body["items"] if u["name"] == "idt-grp"}
