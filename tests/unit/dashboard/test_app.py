"""The web application over a fake API client: logins, redirects, pages, RBAC refusals, the live stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from nestlab.api import status
from nestlab.api.client import Credentials
from nestlab.api.kinds.base import Resource
from nestlab.dashboard import app as dashboard_app
from nestlab.dashboard.sessions import IDLE_S, Sessions
from tests.unit.dashboard.objects import snapshot

ALICE_TOKEN = "alice-token"  # noqa: S105 - a test credential
ADMIN = Credentials("https://api.test:6443", None, "admin-token")


class FakeClient:
    """Answers logins for alice/secret (token "alice-token") and lists from the fixed snapshot.

    With alice's token, lab-wide lists are refused (403) and only namespace team-a may be read, as
    a user with a RoleBinding in one namespace; watches wait forever.
    """

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> dict[str, Any]:
        if path == "/nestlab/v1/login":
            if body == {"username": "alice", "password": "secret"}:
                return {"token": ALICE_TOKEN, "expirationTimestamp": "2999-01-01T00:00:00Z"}
            raise status.ApiError(401, "Unauthorized", "wrong user name or password")
        raise status.ApiError(404, "NotFound", path)

    async def list(self, resource: Resource, namespace: str = "", **_: Any) -> dict[str, Any]:
        if self.credentials.token == ALICE_TOKEN and namespace != "team-a":
            raise status.ApiError(403, "Forbidden", f'User "alice" cannot list {resource.plural}')
        items = snapshot().get(resource.plural, [])
        if namespace:
            items = [i for i in items if i["metadata"].get("namespace") == namespace]
        return {"items": items, "metadata": {"resourceVersion": "5"}}

    async def watch(self, *_: Any, **__: Any) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        await asyncio.Event().wait()
        yield "ADDED", {}  # never reached

    async def close(self) -> None:
        pass


def run(scenario: Callable[[TestClient[Any, Any], Sessions], Awaitable[None]]) -> None:
    async def main() -> None:
        sessions = Sessions(ADMIN.server, ADMIN, client=FakeClient)  # type: ignore[arg-type]
        client = TestClient(TestServer(dashboard_app.build(sessions)))
        await client.start_server()
        try:
            await scenario(client, sessions)
        finally:
            await client.close()

    asyncio.run(main())


async def _until(client: TestClient[Any, Any], path: str, text: str) -> str:
    """The page once it holds ``text`` (the feed lists in the background)."""
    for _ in range(200):
        page = await (await client.get(path)).text()
        if text in page:
            return page
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} never showed {text!r}: {page[:2000]}")


def test_without_a_session_pages_redirect_to_login_and_the_live_parts_refuse() -> None:
    async def scenario(client: TestClient[Any, Any], _: Sessions) -> None:
        response = await client.get("/", allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (303, "/login")
        assert (await client.get("/?fragment=1")).status == 401
        assert (await client.get("/stream")).status == 401
        login = await client.get("/login")
        assert login.status == 200
        assert 'name="password"' in await login.text()

    run(scenario)


def test_wrong_password_and_wrong_admin_key_are_refused() -> None:
    async def scenario(client: TestClient[Any, Any], _: Sessions) -> None:
        response = await client.post("/login", data={"username": "alice", "password": "nope"})
        assert response.status == 401
        assert "login as alice failed: wrong user name or password" in await response.text()
        response = await client.post("/login", data={"username": "", "password": ""})
        assert response.status == 400
        response = await client.get("/login/admin?key=guess")
        assert response.status == 403
        assert (
            client.session.cookie_jar.filter_cookies(client.make_url("/")).get(dashboard_app.COOKIE) is None
        )

    run(scenario)


def test_admin_link_opens_a_session_that_sees_the_whole_lab() -> None:
    async def scenario(client: TestClient[Any, Any], sessions: Sessions) -> None:
        response = await client.get(f"/login/admin?key={sessions.admin_key}", allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (303, "/")
        cookie = response.cookies[dashboard_app.COOKIE]
        assert cookie["httponly"]
        assert cookie["samesite"] == "Strict"
        page = await _until(client, "/", 'data-host="esx-03"')
        assert "lab-admin" in page
        assert "team-a/web (pid 2222)" in page
        host = await client.get("/hosts/esx-01?fragment=1")
        assert host.status == 200
        assert host.headers["X-Dashboard-Version"].isdigit()
        assert (await client.get("/hosts/esx-99")).status == 404
        assert 'data-verdict="FAILED"' in await (await client.get("/attestation")).text()
        assert "nestlab-scheduler" in await (await client.get("/control-plane")).text()
        stream = await client.get("/stream")
        assert stream.headers["Content-Type"] == "text/event-stream"
        first = await stream.content.readuntil(b"\n\n")
        assert first.startswith(b"event: change\ndata: ")
        stream.close()
        await client.post("/logout")
        response = await client.get("/", allow_redirects=False)
        assert response.status == 303

    run(scenario)


def test_a_user_sees_what_rbac_lets_them_read() -> None:
    async def scenario(client: TestClient[Any, Any], _: Sessions) -> None:
        response = await client.post("/login", data={"username": "alice", "password": "secret"})
        assert response.status == 200  # followed the redirect to the inventory
        page = await _until(client, "/", "Not shown: nodes")
        assert "alice" in page
        assert 'data-host="esx-01"' not in page
        namespace = await _until(client, "/namespaces/team-a", 'data-pod="team-a/web"')
        assert 'data-quota="pods"' in namespace
        assert "Not shown: pods" not in namespace  # the namespace's own watch works
        assert "FailedScheduling" in namespace

    run(scenario)


def test_sessions_no_browser_used_for_a_day_are_swept_at_the_next_login() -> None:
    async def scenario(client: TestClient[Any, Any], sessions: Sessions) -> None:
        await client.get(f"/login/admin?key={sessions.admin_key}", allow_redirects=False)
        (old,) = sessions._sessions.values()
        old.last_seen -= IDLE_S + 1
        await client.post("/login", data={"username": "alice", "password": "secret"})
        assert old.id not in sessions._sessions
        assert [s.user for s in sessions._sessions.values()] == ["alice"]

    run(scenario)


def test_a_session_keeps_only_its_newest_live_streams() -> None:
    async def scenario(client: TestClient[Any, Any], sessions: Sessions) -> None:
        await client.get(f"/login/admin?key={sessions.admin_key}", allow_redirects=False)
        streams = []
        for _ in range(dashboard_app.MAX_STREAMS + 1):
            stream = await client.get("/stream")
            await stream.content.readuntil(b"\n\n")
            streams.append(stream)
        await asyncio.wait_for(streams[0].content.read(), 10)  # returns only at EOF: the server ended it
        assert streams[0].content.at_eof()
        (session,) = sessions._sessions.values()
        assert len(session.streams) == dashboard_app.MAX_STREAMS
        for stream in streams:
            stream.close()

    run(scenario)
