"""A TCP relay that plays the API VIP for watch tests, and an ApiClient that counts its lists.

``cut()`` makes every connection open at that moment half-open (it swallows their bytes; no FIN,
no RST, as when the VIP moved to the other load balancer) and, given a port, sends new connections
to that API server instead. A resumed watch must not list again: :class:`CountingClient` counts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

from nestlab.api.client import ApiClient, Obj
from nestlab.api.resources import Resource


class Relay:
    """TCP relay on loopback to the API server at ``port``."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.accepted: Counter[int] = Counter()  # connections per API server port
        self._silenced: list[dict[str, bool]] = []
        self._writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; the relay's port."""
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = self.target
        self.accepted[target] += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        state = {"dead": False}
        self._silenced.append(state)
        self._writers += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    if not state["dead"]:  # a dead path swallows bytes; both ends stay open
                        dst.write(data)
                        await dst.drain()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def cut(self, port: int | None = None) -> None:
        """The VIP moved: every path open now is half-open from here on; new connections go to
        the API server at ``port`` (the same one when None)."""
        for state in self._silenced:
            state["dead"] = True
        if port is not None:
            self.target = port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.sleep(0)


class CountingClient(ApiClient):
    """An ApiClient that counts its lists: a resumed watch must not list again."""

    lists = 0

    async def list(
        self, resource: Resource, namespace: str = "", *, labels: str = "", fields: str = ""
    ) -> Obj:
        self.lists += 1
        return await super().list(resource, namespace, labels=labels, fields=fields)
