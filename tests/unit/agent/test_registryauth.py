"""Registry bearer tokens on the client side: challenges, scope merging, caching until near expiry,
and the pull errors a pod's status shows (missing image names the push command; a refusal says why)."""

from __future__ import annotations

import email.message
import io
import urllib.error

import pytest

from nestlab.agent.registry import ImageNotFoundError, RegistryAccessDeniedError, RegistryClient
from nestlab.agent.registryauth import (
    Challenge,
    RegistryAuthError,
    TokenAuth,
    merge_scope,
    parse_challenge,
)

REALM = "https://198.18.0.100:6443/nestlab/v1/registry/token"


def test_a_distribution_challenge_parses() -> None:
    header = f'Bearer realm="{REALM}",service="depot",scope="repository:team-a/web:pull,push"'
    assert parse_challenge(header) == Challenge(REALM, "depot", "repository:team-a/web:pull,push")
    insufficient = f'Bearer realm="{REALM}",service="depot",error="insufficient_scope"'
    assert parse_challenge(insufficient) == Challenge(REALM, "depot", "", "insufficient_scope")
    assert parse_challenge('Basic realm="x"') is None
    assert parse_challenge("Bearer service=depot") is None


def test_scopes_of_one_repository_merge() -> None:
    assert merge_scope("", "repository:a/b:pull") == "repository:a/b:pull"
    assert merge_scope("repository:a/b:pull", "repository:a/b:pull,push") == "repository:a/b:pull,push"
    assert merge_scope("repository:a/b:push", "repository:a/b:pull") == "repository:a/b:push,pull"
    assert merge_scope("repository:a/b:pull", "repository:a/c:pull") == "repository:a/c:pull"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_tokens_are_cached_per_repository_and_pod_until_shortly_before_expiry() -> None:
    clock = Clock()
    auth = TokenAuth(bearer="login-token", clock=clock)
    asked: list[str] = []

    def answer(url: str, realm: str) -> dict[str, object]:
        asked.append(url)
        return {"token": f"t{len(asked)}", "expires_in": 300}

    auth._get = answer  # type: ignore[method-assign]
    challenge = Challenge(REALM, "depot", "repository:team-a/web:pull")
    assert auth.cached("depot:5000", "team-a/web", "team-a/p") is None
    assert auth.fetch("depot:5000", "team-a/web", challenge, "team-a/p") == "t1"
    assert asked[0] == REALM + "?service=depot&scope=repository%3Ateam-a%2Fweb%3Apull&pod=team-a%2Fp"
    assert auth.cached("depot:5000", "team-a/web", "team-a/p") == "t1"
    assert auth.cached("depot:5000", "team-a/web", "team-a/q") is None  # another pod, another token
    clock.now += 300 - 31
    assert auth.cached("depot:5000", "team-a/web", "team-a/p") == "t1"
    clock.now += 2
    assert auth.cached("depot:5000", "team-a/web", "team-a/p") is None  # renewed 30 s before expiry
    push = Challenge(REALM, "depot", "repository:team-a/web:push")
    auth.fetch("depot:5000", "team-a/web", push, "team-a/p")
    assert "scope=repository%3Ateam-a%2Fweb%3Apull%2Cpush" in asked[-1]  # what it held, plus push


def test_credentials_never_travel_in_clear_text_off_loopback() -> None:
    auth = TokenAuth(bearer="secret")
    with pytest.raises(RegistryAuthError, match="not https"):
        auth.fetch("r:5000", "a/b", Challenge("http://198.18.0.100/token", "depot", "x:y:pull"), "")


def _http_error(code: int) -> urllib.error.HTTPError:
    return urllib.error.HTTPError(
        "http://depot:5000/v2/x", code, "nope", email.message.Message(), io.BytesIO(b"{}")
    )


def test_a_missing_image_names_the_push_command_with_the_pods_namespace() -> None:
    client = RegistryClient("depot:5000").for_pod("team-a/web")
    error = client._fail(_http_error(404), "image depot:5000/team-a/web:1")
    assert isinstance(error, ImageNotFoundError)
    assert "push it with: nestlab image push SOURCE --namespace team-a" in str(error)


def test_a_refused_pull_says_whose_project_it_is_not() -> None:
    client = RegistryClient("depot:5000", auth=TokenAuth(bearer="x")).for_pod("team-b/web")
    error = client._fail(_http_error(401), "image depot:5000/team-a/web:1")
    assert isinstance(error, RegistryAccessDeniedError)
    assert "refused pod team-b/web" in str(error)
    assert "no access to" in str(error)
