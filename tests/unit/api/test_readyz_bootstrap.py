"""/readyz waits for the server's start-up objects (upstream's poststarthook/rbac/bootstrap-roles).

A client that met a server before its bootstrap roles existed was refused what every authenticated
user may do (``kubectl auth can-i`` as bob: 403 on selfsubjectaccessreviews, seen in the suite).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import make_mocked_request

from nestlab.api.etcdquorum import ClusterView, MemberStatus
from nestlab.api.meta import MetaRoutes


class HealthyEtcd:
    """Three members that answer and agree on a leader."""

    async def cluster_view(self) -> ClusterView:
        members = tuple(MemberStatus(f"https://m{i}:2379", True, str(i), "1", 2) for i in (1, 2, 3))
        return ClusterView(members)


async def _never(_request: Any) -> Any:
    raise AssertionError("readyz needs no authentication")


def _readyz(meta: MetaRoutes) -> tuple[int, str]:
    response = asyncio.run(meta.readyz(make_mocked_request("GET", "/readyz")))
    return response.status, str(response.text)


def test_not_ready_until_bootstrapped_then_ready() -> None:
    meta = MetaRoutes(HealthyEtcd(), _never)  # type: ignore[arg-type]
    code, text = _readyz(meta)
    assert code == 500
    assert "[-]poststarthook/rbac/bootstrap-roles failed: not finished" in text
    meta.bootstrapped = True
    assert _readyz(meta) == (200, "ok")


def test_shutting_down_wins_over_everything() -> None:
    meta = MetaRoutes(HealthyEtcd(), _never)  # type: ignore[arg-type]
    meta.bootstrapped = True
    meta.shutting_down = True
    code, text = _readyz(meta)
    assert code == 500
    assert "shutting down" in text
