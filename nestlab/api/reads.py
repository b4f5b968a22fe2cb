"""The read path: GET of one object or a list, and watches, in the form the client asked for.

``Accept`` chooses the form, as upstream: the object itself, a ``Table`` (kubectl get), or
``PartialObjectMetadata``/``PartialObjectMetadataList`` (metadata-only clients such as the
garbage collector and ``kubectl get --show-kind`` helpers). Watches resume from a
resourceVersion and, when the client sets ``allowWatchBookmarks``, carry a BOOKMARK every few
seconds, so a client that hears nothing for longer knows its connection is dead. A bookmark carries
how far the watch has seen etcd (its progress notifications, and changes the watch's selectors
filtered out), not only the last event sent: a client of a quiet kind resumes from a recent
revision, not from one compacted away (which would cost it a 410 and a full list).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web

from nestlab.api import jsoncodec, kinds, status
from nestlab.api.kinds.base import Resource
from nestlab.api.kinds.printing import table
from nestlab.api.store import Obj, WatchEvent

log = logging.getLogger(__name__)
BOOKMARK_EVERY_S = 2.0
"""How often a quiet watch (with allowWatchBookmarks) still says "alive, up to revision N". Clients
give a connection up after a few intervals of silence (nestlab.api.client.WATCH_IDLE_S, 8 s), so
this interval bounds how fast a half-open path through a moved VIP is found. Upstream sends them
about once a minute, for resumption only; here they are also the heartbeat. A bookmark is ~150
bytes: 100 quiet watchers cost 50 small writes a second."""
_META_GROUP = "meta.k8s.io"
_LINES: OrderedDict[tuple[int, str], tuple[Obj, bytes]] = OrderedDict()
"""Watch lines recently encoded, by (object identity, event type): see :func:`watch_line`."""
_LINES_KEPT = 1024  # the objects are mostly the store's shared ones: the lines add ~3 KiB each
FORMS = ("Table", "PartialObjectMetadata", "PartialObjectMetadataList")


def _params(media: str) -> tuple[str, dict[str, str]]:
    kind, *rest = (part.strip() for part in media.split(";"))
    params = {}
    for item in rest:
        key, _, value = item.partition("=")
        params[key.strip()] = value.strip()
    return kind.lower(), params


def form(accept: str, *, listing: bool) -> str:
    """The answer's form from ``Accept``: "" (the object), Table or PartialObjectMetadata[List].

    Alternatives are tried in order, as the client listed them; a protobuf-only alternative is
    skipped (this server answers JSON). Nothing acceptable is a 406, as upstream.
    """
    if not accept.strip():
        return ""
    for media in accept.split(","):
        kind, params = _params(media)
        if kind not in ("application/json", "*/*", "application/*", "application/yaml"):
            continue
        wanted = params.get("as", "")
        if not wanted:
            return ""
        if params.get("g", _META_GROUP) != _META_GROUP or wanted not in FORMS:
            continue
        if wanted == "Table":
            return wanted
        if listing == (wanted == "PartialObjectMetadataList"):
            return wanted
    raise status.ApiError(
        406,
        "NotAcceptable",
        f"only the following media types are accepted: application/json (asked for {accept!r})",
    )


def partial(obj: Obj) -> Obj:
    """An object reduced to its metadata."""
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def shaped_one(resource: Resource, obj: Obj, shape: str, include: str) -> Obj:
    if shape == "Table":
        return table(kinds.of(resource), [obj], obj["metadata"]["resourceVersion"], include)
    if shape.startswith("PartialObjectMetadata"):
        return partial(obj)
    return obj


def shaped_list(resource: Resource, listed: Obj, shape: str, include: str) -> Obj:
    if shape == "Table":
        printed = table(kinds.of(resource), listed["items"], listed["metadata"]["resourceVersion"], include)
        printed["metadata"] = listed["metadata"]
        return printed
    if shape == "PartialObjectMetadataList":
        return {
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": listed["metadata"],
            "items": [partial(item) for item in listed["items"]],
        }
    return listed


def watch_line(kind: str, obj: Obj) -> bytes:
    """One line of a watch stream, encoded once for every watch sent the same object.

    The store decodes each change once and hands the same object to every watch of its prefix
    (:meth:`nestlab.api.store.Store._watched`); encoding it once more per watch made 100 watchers
    cost the writes three quarters of their rate. Upstream's watch cache shares one serialisation
    per event the same way (its cachingObject). An entry keeps its object alive, so an identity in
    the memo is never reused by another object while the entry stands.
    """
    key = (id(obj), kind)
    found = _LINES.get(key)
    if found is not None and found[0] is obj:
        return found[1]
    line = jsoncodec.dumps({"type": kind, "object": obj}) + b"\n"
    _LINES[key] = (obj, line)
    if len(_LINES) > _LINES_KEPT:
        _LINES.popitem(last=False)
    return line


def flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true")


async def stream(
    request: web.Request,
    resource: Resource,
    chunks: AsyncIterator[list[WatchEvent]],
    *,
    seconds: int,
    since: str,
    shape: str,
    query: Mapping[str, str],
) -> web.StreamResponse:
    """Send ``chunks`` (:meth:`nestlab.api.store.Store.open_watch_chunks`) as a watch stream for
    ``seconds``, each list in one write, with BOOKMARKs when the client allows them.

    The request's own task takes the lists from the shared feed and writes them: no task or queue
    per watch in between, so a hundred watches of a busy kind cost a wake-up and a TLS write each
    per take of the feed. A watch whose client stops reading stops taking; its feed ends it when it
    falls too far behind (:mod:`nestlab.api.watchfeed`)."""
    bookmarks = flag(query.get("allowWatchBookmarks"))
    response = web.StreamResponse(
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    )
    line = _liner(resource, shape, query.get("includeObject", "Metadata"))
    loop = asyncio.get_running_loop()
    state = _Sent(last=since if since not in ("", "0") else "", at=loop.time())
    beat: asyncio.Task[None] | None = None
    try:
        # inside the try: a client that left before the headers went out ends the watch quietly
        await response.prepare(request)
        if bookmarks:
            beat = loop.create_task(_bookmarks(response, resource, line, state))
        async with asyncio.timeout(seconds):
            try:
                async for chunk in chunks:
                    data, state.last = _lines(chunk, line, state.last)
                    if data:  # (PROGRESS alone writes nothing, so it does not put the bookmark off)
                        state.at = loop.time()
                        await response.write(data)
            except status.ApiError as exc:
                await response.write(line("ERROR", exc.status()))
            except (TimeoutError, ConnectionResetError, asyncio.CancelledError):
                raise
            except Exception as exc:  # the watch must end, not go quiet behind its bookmarks
                log.exception("watch of %s failed", resource.plural)
                failed = status.unavailable(f"the watch of {resource.plural} failed: {exc!r}; watch again")
                await response.write(line("ERROR", failed.status()))
    except TimeoutError:
        pass
    except ConnectionResetError:
        return response
    finally:
        if beat is not None:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await beat
        await chunks.aclose()  # type: ignore[attr-defined]
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


@dataclass
class _Sent:
    """How far a watch has told its client (the resourceVersion its bookmarks carry), and when it
    last wrote (a bookmark is due BOOKMARK_EVERY_S after that)."""

    last: str
    at: float


async def _bookmarks(
    response: web.StreamResponse, resource: Resource, line: Callable[[str, Obj], bytes], state: _Sent
) -> None:
    """A watch's BOOKMARK when it has written nothing for BOOKMARK_EVERY_S (its heartbeat)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(max(0.0, state.at + BOOKMARK_EVERY_S - loop.time()))
        if loop.time() - state.at < BOOKMARK_EVERY_S:
            continue  # the stream wrote meanwhile
        state.at = loop.time()
        if state.last:
            try:
                await response.write(line("BOOKMARK", _bookmark(resource, state.last)))
            except ConnectionResetError:
                return


def _liner(resource: Resource, shape: str, include: str) -> Callable[[str, Obj], bytes]:
    """How one watch writes an event: the shared line of a stored object, or one made for it."""

    def line(kind: str, obj: Obj) -> bytes:
        if kind in ("ERROR", "BOOKMARK"):
            return jsoncodec.dumps({"type": kind, "object": obj}) + b"\n"
        shaped = shaped_one(resource, obj, shape, include)
        if shaped is obj:  # the stored object itself, shared with the other watches
            return watch_line(kind, obj)
        return jsoncodec.dumps({"type": kind, "object": shaped}) + b"\n"  # made for this watch

    return line


def _lines(batch: Sequence[WatchEvent], line: Callable[[str, Obj], bytes], last: str) -> tuple[bytes, str]:
    """What to write for a list of events: their lines, and the last resourceVersion sent (a
    PROGRESS event moves it forward and writes nothing). The end of the events and an error come
    as the end of ``chunks`` and an exception, never in a list."""
    lines: list[bytes] = []
    for event in batch:
        revision = str(event.object.get("metadata", {}).get("resourceVersion") or last)
        if event.type == "PROGRESS":  # nothing to send; the next bookmark says how far it got
            if not last or int(revision) > int(last):
                last = revision
            continue
        last = revision
        lines.append(line(event.type, event.object))
    return b"".join(lines), last


def _bookmark(resource: Resource, revision: str) -> Obj:
    return {
        "kind": resource.kind,
        "apiVersion": resource.group_version,
        "metadata": {"resourceVersion": revision},
    }


def watch_seconds(query: Mapping[str, str], longest: int) -> int:
    raw = query.get("timeoutSeconds", str(longest))
    try:
        seconds = int(raw)
    except ValueError as exc:
        raise status.bad_request(f"timeoutSeconds must be an integer, got {raw!r}") from exc
    if seconds < 0:
        raise status.bad_request("timeoutSeconds must not be negative")
    return min(seconds, longest)


__all__ = ["form", "shaped_list", "shaped_one", "stream", "watch_seconds"]
