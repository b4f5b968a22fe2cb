"""The dashboard's web application: aiohttp routes over the sessions, the model and the templates.

Pages (GET, read-only): ``/`` inventory, ``/hosts/{name}``, ``/namespaces/{name}``,
``/attestation``, ``/control-plane``; each with ``?fragment=1`` answers only its main part, which
the page's script swaps in whenever ``/stream`` (server-sent events) says something changed: a
watch event in the session's store, or a change of the lab's facts. ``/login`` (form),
``/login/admin?key=`` (the printed admin link) and ``POST /logout`` manage sessions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from nestlab.dashboard import model, render
from nestlab.dashboard.feed import NAMESPACED
from nestlab.dashboard.labfacts import LabWatcher
from nestlab.dashboard.sessions import LoginRefusedError, Session, Sessions
from nestlab.dashboard.store import Signal

log = logging.getLogger(__name__)

COOKIE = "nestlab_dashboard"
MAX_STREAMS = 3  # per session: a few tabs; Chromium allows 6 connections per server in all
HEARTBEAT_S = 15.0  # an SSE comment this often keeps proxies and the browser from closing the stream
DEBOUNCE_S = 0.1  # changes closer than this become one "change": a burst of watch events, one fetch
CLOSE_GRACE_S = 0.25  # closed TLS connections finish closing in the loop's next rounds (aiohttp's advice)
SESSIONS = web.AppKey("sessions", Sessions)
WATCHER = web.AppKey("watcher", LabWatcher)
NO_FACTS = web.AppKey("no_facts", Signal)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _facts(request: web.Request) -> model.LabFacts:
    watcher = request.app.get(WATCHER)
    return watcher.facts if watcher is not None else model.LabFacts()


def _facts_signal(request: web.Request) -> Signal:
    watcher = request.app.get(WATCHER)
    return watcher.signal if watcher is not None else request.app[NO_FACTS]


async def _session(request: web.Request) -> Session | None:
    sessions = request.app[SESSIONS]
    session_id = request.cookies.get(COOKIE)
    session = sessions.get(session_id)
    if session is None and session_id:
        await sessions.end(session_id)  # expired: stop its watches
    return session


def _page(
    request: web.Request,
    session: Session,
    template: str,
    *,
    refused: dict[str, str] | None = None,
    **values: Any,
) -> web.Response:
    version = session.store.signal.version + _facts_signal(request).version
    html = render.page(
        template,
        fragment=request.query.get("fragment") == "1",
        user=session.user,
        lab=_facts(request).lab,
        version=version,
        refused=dict(session.store.refused) if refused is None else refused,
        **values,
    )
    return web.Response(text=html, content_type="text/html", headers={"X-Dashboard-Version": str(version)})


def page(build: Callable[[web.Request, Session], web.Response]) -> Handler:
    """A page handler that needs a session: to /login without one (401 for the live fragment)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        session = await _session(request)
        if session is None:
            if request.query.get("fragment") == "1":
                raise web.HTTPUnauthorized(text="log in again")
            raise web.HTTPSeeOther("/login")
        return build(request, session)

    return handler


def inventory(request: web.Request, session: Session) -> web.Response:
    inv = model.inventory(session.store.snapshot(), _facts(request))
    return _page(request, session, "inventory.html.j2", inv=inv)


def host(request: web.Request, session: Session) -> web.Response:
    name = request.match_info["name"]
    row = model.host(session.store.snapshot(), _facts(request), name)
    response = _page(request, session, "host.html.j2", h=row, name=name)
    if row is None:
        response.set_status(404)
    return response


def namespace(request: web.Request, session: Session) -> web.Response:
    name = request.match_info["name"]
    session.feed.follow_namespace(name)
    view = model.namespace(session.store.snapshot(), _facts(request), name)
    store = session.store
    # A lab-wide refusal does not matter here once this namespace's own watch of that kind works.
    refused = {
        scope: why
        for scope, why in store.refused.items()
        if scope not in NAMESPACED or f"{scope}@{name}" not in store.synced
    }
    return _page(request, session, "namespace.html.j2", ns=view, refused=refused)


def attestation(request: web.Request, session: Session) -> web.Response:
    hosts = model.host_rows(session.store.snapshot(), _facts(request))
    return _page(request, session, "attestation.html.j2", hosts=hosts)


def control_plane(request: web.Request, session: Session) -> web.Response:
    inv = model.inventory(session.store.snapshot(), _facts(request))
    return _page(request, session, "control_plane.html.j2", inv=inv)


async def login_form(request: web.Request) -> web.Response:
    key = request.query.get("key")
    if request.path == "/login/admin" and key is not None:
        try:
            session = request.app[SESSIONS].admin_login(key)
        except LoginRefusedError as exc:
            return _login_page(request, str(exc), 403)
        return _logged_in(session)
    return _login_page(request, "", 200)


def _login_page(request: web.Request, error: str, code: int) -> web.Response:
    html = render.page("login.html.j2", error=error, lab=_facts(request).lab)
    return web.Response(text=html, content_type="text/html", status=code)


def _logged_in(session: Session) -> web.Response:
    response = web.Response(status=303, headers={"Location": "/"})
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="Strict", path="/")
    return response


async def login_submit(request: web.Request) -> web.Response:
    form = await request.post()
    username, password = str(form.get("username") or ""), str(form.get("password") or "")
    if not username or not password:
        return _login_page(request, "give a user name and a password", 400)
    try:
        session = await request.app[SESSIONS].login(username, password)
    except LoginRefusedError as exc:
        return _login_page(request, f"login as {username} failed: {exc}", 401)
    return _logged_in(session)


async def logout(request: web.Request) -> web.Response:
    await request.app[SESSIONS].end(request.cookies.get(COOKIE) or "")
    response = web.Response(status=303, headers={"Location": "/login"})
    response.del_cookie(COOKIE, path="/")
    return response


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``change`` with a version number whenever the session's view may differ."""
    session = await _session(request)
    if session is None:
        raise web.HTTPUnauthorized(text="log in again")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    # A browser holds at most 6 connections per server: streams of pages it left but did not close
    # would starve the page's own fetches. The newest streams win; the oldest is ended.
    superseded = asyncio.Event()
    session.streams.append(superseded)
    while len(session.streams) > MAX_STREAMS:
        session.streams.pop(0).set()
    facts, store = _facts_signal(request), session.store.signal
    seen = -1
    try:
        while request.app[SESSIONS].get(session.id) is session and not superseded.is_set():
            version = store.version + facts.version
            if version != seen:
                seen = version
                log.debug("session %s: change %d", session.user, version)
                await response.write(f"event: change\ndata: {version}\n\n".encode())
            waiters = [asyncio.ensure_future(s.wait(s.version, HEARTBEAT_S)) for s in (store, facts)]
            waiters.append(asyncio.ensure_future(superseded.wait()))
            _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if store.version + facts.version == seen:
                await response.write(b": heartbeat\n\n")
            else:
                await asyncio.sleep(DEBOUNCE_S)
    except ConnectionResetError:  # the browser went away
        pass
    finally:
        if superseded in session.streams:
            session.streams.remove(superseded)
    return response


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    watcher = app.get(WATCHER)
    if watcher is not None:
        watcher.start()
    yield
    await app[SESSIONS].close()
    if watcher is not None:
        await watcher.close()
    await asyncio.sleep(CLOSE_GRACE_S)


def build(sessions: Sessions, watcher: LabWatcher | None = None) -> web.Application:
    """The dashboard application (``watcher`` None: an API with no lab's facts around it)."""
    app = web.Application()
    app[SESSIONS] = sessions
    app[NO_FACTS] = Signal()
    if watcher is not None:
        app[WATCHER] = watcher
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_get("/", page(inventory))
    app.router.add_get("/hosts/{name}", page(host))
    app.router.add_get("/namespaces/{name}", page(namespace))
    app.router.add_get("/attestation", page(attestation))
    app.router.add_get("/control-plane", page(control_plane))
    app.router.add_get("/login", login_form)
    app.router.add_get("/login/admin", login_form)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/stream", stream)
    return app
