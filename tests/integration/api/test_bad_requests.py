"""Bad requests get the upstream status code, reason and message, and never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.api.bad_cases import CASES, NS, PODS, pod
from tests.integration.api.conftest import ApiServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seeded(apiserver: ApiServer) -> Iterator[dict[str, Any]]:
    """Namespace ``bad`` with pod ``web`` (bound to a node) and a quota of 1 cpu."""
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
    quota = {"metadata": {"name": "compute"}, "spec": {"hard": {"cpu": "1"}}}
    assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/resourcequotas", quota)[0] == 201
    code, web = apiserver.request("POST", PODS, pod())
    assert code == 201, web
    code, body = apiserver.request(
        "POST", f"{PODS}/web/binding", {"target": {"kind": "Node", "name": "esx-09"}}
    )
    assert code == 201, body
    yield web
    # The pod is bound to a node without an agent: confirm its deletion as the agent would.
    apiserver.request("DELETE", f"{PODS}/web?gracePeriodSeconds=0")
    apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")


@pytest.mark.parametrize("case", [pytest.param(case, id=case[0]) for case in CASES])
def test_bad_request(apiserver: ApiServer, seeded: dict[str, Any], case: tuple[Any, ...]) -> None:
    _name, method, path, body, options, code, reason, message = case
    got, status = apiserver.request(method, path, body, **options)
    assert (got, status.get("kind"), status.get("reason"), status.get("code")) == (
        code,
        "Status",
        reason,
        code,
    ), status
    assert message in status["message"]
    assert status["status"] == "Failure"


def test_server_never_answered_500(apiserver: ApiServer, seeded: dict[str, Any]) -> None:
    log = apiserver.log.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert "Warning" not in log, log[-3000:]  # deprecations would break on the next aiohttp
