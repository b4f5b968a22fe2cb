"""The disruption controller and a host's "agent" in a background thread, for tests that block on a
subprocess (kubectl) or on a CLI command that runs its own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from nestlab.api.client import ApiClient, Credentials
from nestlab.api.resources import PODS
from nestlab.api.status import ApiError
from nestlab.controller.disruption import DisruptionController
from nestlab.controller.manager import Term
from tests.integration.api.conftest import ADMIN_TOKEN, ApiServer


@contextlib.contextmanager
def control_plane(server: ApiServer, host: str) -> Iterator[None]:
    """The disruption controller and ``host``'s agent (confirming deletions), in a thread."""
    started = threading.Event()
    running: dict[str, Any] = {}

    async def agent(client: ApiClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(ApiError):
                for pod in (await client.list(PODS, fields=f"spec.nodeName={host}"))["items"]:
                    if pod["metadata"].get("deletionTimestamp"):
                        meta = pod["metadata"]
                        with contextlib.suppress(ApiError):
                            await client.delete(PODS, meta["namespace"], meta["name"], grace=0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)

    async def main() -> None:
        stop = asyncio.Event()
        running.update(loop=asyncio.get_running_loop(), stop=stop)
        started.set()
        client = ApiClient(Credentials(server.url, server.pki.ca, ADMIN_TOKEN))
        term = Term(client, [DisruptionController])
        term.start()
        try:
            await agent(client, stop)
        finally:
            await term.stop()
            await client.close()
            await asyncio.sleep(0.25)  # aiohttp's advice: let TLS connections finish closing

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(timeout=30), "the control-plane thread did not start"
    try:
        yield
    finally:
        running["loop"].call_soon_threadsafe(running["stop"].set)
        thread.join(timeout=30)
        assert not thread.is_alive(), "the control-plane thread did not stop"
