"""Who is looking: dashboard sessions, each reading the API with its own lab credentials.

Two ways in, both with the lab's own credentials (docs/dashboard.md says why):

- a lab user: name and password go to the lab's Token Exchange Service (``POST /nestlab/v1/login``,
  as ``nestlab login`` does); the session then reads the API with that user's token, so the API's
  RBAC decides what the pages show, and the session ends when the token expires;
- the lab administrator: whoever started ``nestlab dashboard`` holds the lab-admin certificate on
  this machine; the command prints a link with a random key (like Jupyter's token) that opens a
  session reading the API with that certificate.

The browser holds only a random session id (cookie, HttpOnly, SameSite=Strict); tokens stay here.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nestlab.api import status
from nestlab.api.client import ApiClient, Credentials
from nestlab.dashboard.feed import Feed
from nestlab.dashboard.store import Store

LOGIN_PATH = "/nestlab/v1/login"
IDLE_S = 8 * 3600.0  # a session no browser asked for in a working day ends (its watches stop)
ADMIN_USER = "lab-admin"


class LoginRefusedError(Exception):
    """The login failed; the message is for the login form."""


@dataclass
class Session:
    """One logged-in browser."""

    id: str
    user: str
    expires: datetime | None
    """When the user's token expires (None: the admin certificate's session, until the dashboard stops)."""
    store: Store
    feed: Feed
    last_seen: float = 0.0
    """time.monotonic() of the last request with this session."""
    streams: list[asyncio.Event] = field(default_factory=list)
    """One per open live stream, oldest first; set it to end that stream."""

    def expired(self, now: datetime) -> bool:
        """The token expired or the API stopped accepting it."""
        return self.feed.expired or (self.expires is not None and now >= self.expires)


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class Sessions:
    """The sessions of one dashboard, and the two ways to open one."""

    def __init__(
        self,
        server: str,
        admin: Credentials | None,
        *,
        client: Callable[[Credentials], ApiClient] = ApiClient,
    ) -> None:
        self.server = server
        """The API (``https://<vip>:6443``); its CA is the admin credentials' (or the system's)."""
        self.admin = admin
        self.admin_key = secrets.token_urlsafe(24)
        """The key in the admin link printed at start."""
        self._client = client
        self._ca = admin.ca if admin is not None else None
        self._sessions: dict[str, Session] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def get(self, session_id: str | None) -> Session | None:
        """The live session of that id (None when unknown or expired)."""
        session = self._sessions.get(session_id or "")
        if session is None or session.expired(datetime.now(UTC)):
            return None
        session.last_seen = time.monotonic()
        return session

    async def login(self, username: str, password: str) -> Session:
        """A session for a lab user; LoginRefusedError naming what to do when the API says no."""
        anonymous = self._client(Credentials(self.server, self._ca))
        try:
            answer = await anonymous.request("POST", LOGIN_PATH, {"username": username, "password": password})
        except status.ApiError as exc:
            if exc.code == 401:
                raise LoginRefusedError("wrong user name or password") from exc
            if exc.code == 503:
                raise LoginRefusedError(
                    f"the lab's API cannot be reached ({exc.message}): is the lab up?"
                ) from exc
            raise LoginRefusedError(f"the lab's API refused the login: {exc.message} ({exc.code})") from exc
        finally:
            await anonymous.close()
        token = answer.get("token")
        if not isinstance(token, str):
            raise LoginRefusedError("the lab's API answered the login with no token")
        expires = _parse_time(str(answer.get("expirationTimestamp") or ""))
        return self._open(username, Credentials(self.server, self._ca, token), expires)

    def admin_login(self, key: str) -> Session:
        """A session with the lab-admin certificate, for the key of the printed link."""
        if self.admin is None or not hmac.compare_digest(key.encode(), self.admin_key.encode()):
            raise LoginRefusedError(
                "that admin link is not this dashboard's: use the one it printed at start"
            )
        return self._open(ADMIN_USER, self.admin, None)

    def _open(self, user: str, credentials: Credentials, expires: datetime | None) -> Session:
        self._sweep()
        store = Store()
        feed = Feed(self._client(credentials), store)
        feed.start()
        session = Session(secrets.token_urlsafe(32), user, expires, store, feed, time.monotonic())
        self._sessions[session.id] = session
        return session

    def _sweep(self) -> None:
        """End the sessions that expired or that no browser used for IDLE_S (closed tabs)."""
        now, idle_since = datetime.now(UTC), time.monotonic() - IDLE_S
        for session in list(self._sessions.values()):
            if session.expired(now) or session.last_seen < idle_since:
                del self._sessions[session.id]
                self._closing.add(asyncio.create_task(session.feed.close()))
                self._closing = {task for task in self._closing if not task.done()}

    async def end(self, session_id: str) -> None:
        """Log out: stop the session's watches."""
        session = self._sessions.pop(session_id, None)
        if session is not None:
            await session.feed.close()

    async def close(self) -> None:
        """End every session."""
        for session_id in list(self._sessions):
            await self.end(session_id)
        for task in self._closing:
            await task
