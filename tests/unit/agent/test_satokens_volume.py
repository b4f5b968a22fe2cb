"""Projected service-account tokens on the agent side: requested bound to the pod, written with the
other projected files, reused until 80 % of their life, refused requests are FailedMount."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nestlab.agent import podsources, podvolumes
from nestlab.agent.podvolumes import MissingVolumeSource, VolumeSources
from nestlab.api import status
from nestlab.api.satokens import rfc3339

Obj = dict[str, Any]
PROJECTED = {
    "name": "kube-api-access-abcde",
    "projected": {
        "defaultMode": 0o644,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"serviceAccountToken": {"audience": "vault", "path": "vault/token"}},
            {
                "downwardAPI": {
                    "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                }
            },
        ],
    },
}


def pod() -> Obj:
    return {
        "metadata": {"name": "web", "namespace": "team-a", "uid": "pod-uid"},
        "spec": {"serviceAccountName": "builder", "containers": [{"name": "c"}], "volumes": [PROJECTED]},
    }


class FakeClient:
    """Answers TokenRequests with numbered tokens valid for what was asked (from ``now``)."""

    def __init__(self, clock: list[float], fail: status.ApiError | None = None) -> None:
        self.clock = clock
        self.fail = fail
        self.asked: list[tuple[str, Obj]] = []

    async def request(self, method: str, path: str, body: Obj) -> Obj:
        assert method == "POST"
        self.asked.append((path, body))
        if self.fail is not None:
            raise self.fail
        seconds = body["spec"]["expirationSeconds"]
        expires = rfc3339(int(self.clock[0]) + seconds)
        return {
            "spec": body["spec"],
            "status": {"token": f"token-{len(self.asked)}", "expirationTimestamp": expires},
        }


def test_tokens_are_requested_bound_to_the_pod_and_written_as_files() -> None:
    clock = [1_000_000.0]
    client = FakeClient(clock)
    cache = podsources.TokenCache(lambda: clock[0])
    tokens, refused = asyncio.run(cache.tokens(client, pod()))  # type: ignore[arg-type]
    assert refused == {}
    assert sorted(tokens) == [("", 3607), ("vault", 3600)]
    path, body = client.asked[0]
    assert path == "/api/v1/namespaces/team-a/serviceaccounts/builder/token"
    assert body["spec"]["boundObjectRef"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "web",
        "uid": "pod-uid",
    }
    assert [b["spec"]["audiences"] for _, b in client.asked] == [[], ["vault"]]
    files = podvolumes.generation(pod(), PROJECTED, VolumeSources(tokens=tokens))
    assert [(f.path, f.mode) for f in files] == [
        ("namespace", 0o644),
        ("token", 0o644),
        ("vault/token", 0o644),
    ]
    assert files[1].content == tokens[("", 3607)].encode()


def test_a_token_is_reused_until_80_percent_of_its_life() -> None:
    clock = [1_000_000.0]
    client = FakeClient(clock)
    cache = podsources.TokenCache(lambda: clock[0])
    first, _ = asyncio.run(cache.tokens(client, pod()))  # type: ignore[arg-type]
    clock[0] += 0.79 * 3600
    again, _ = asyncio.run(cache.tokens(client, pod()))  # type: ignore[arg-type]
    assert again == first
    assert len(client.asked) == 2
    clock[0] += 0.02 * 3600  # past 80 % of the 3600 s token, not yet of the 3607 s one
    later, _ = asyncio.run(cache.tokens(client, pod()))  # type: ignore[arg-type]
    assert later[("vault", 3600)] != first[("vault", 3600)]
    assert len(client.asked) == 4  # both renewed: 0.81 * 3600 > 0.8 * 3607 too
    issued = podsources.Issued("t", 0, 10 * 24 * 3600)
    assert not issued.stale(podsources.MAX_TOKEN_AGE_S - 1)
    assert issued.stale(podsources.MAX_TOKEN_AGE_S)  # a day old: renewed even with life left


def test_a_refused_request_is_a_failed_mount_and_an_unreachable_api_is_retried() -> None:
    clock = [1_000_000.0]
    forbidden = status.ApiError(403, "Forbidden", "node requested token bound to a pod scheduled elsewhere")
    cache = podsources.TokenCache(lambda: clock[0])
    tokens, refused = asyncio.run(cache.tokens(FakeClient(clock, forbidden), pod()))  # type: ignore[arg-type]
    assert tokens == {}
    with pytest.raises(MissingVolumeSource, match="failed to fetch token: node requested token bound"):
        podvolumes.generation(pod(), PROJECTED, VolumeSources(token_errors=refused))
    with pytest.raises(status.ApiError):
        asyncio.run(cache.tokens(FakeClient(clock, status.unavailable("down")), pod()))  # type: ignore[arg-type]


def test_a_failed_refresh_keeps_the_token_until_it_expires() -> None:
    clock = [1_000_000.0]
    cache = podsources.TokenCache(lambda: clock[0])
    first, _ = asyncio.run(cache.tokens(FakeClient(clock), pod()))  # type: ignore[arg-type]
    clock[0] += 0.9 * 3600
    down = FakeClient(clock, status.unavailable("down"))
    kept, _ = asyncio.run(cache.tokens(down, pod()))  # type: ignore[arg-type]
    assert kept == first
    assert len(down.asked) == 2
