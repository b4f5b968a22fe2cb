"""Serving the dashboard: bind, say where, run until stopped; a port in use is the user's to fix.

Separate from the command so tests and the bench run the same server in a thread of their own.
"""

from __future__ import annotations

import asyncio
import errno
import signal
from collections.abc import Callable

from aiohttp import web

from nestlab.errors import UsageError

SHUTDOWN_S = 2.0  # open live streams are cut after this at shutdown


async def serve(
    app: web.Application,
    host: str,
    port: int,
    ready: Callable[[str], None],
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set (or SIGINT/SIGTERM when it is None).

    ``ready`` gets the base URL once the socket listens. UsageError when the port is taken.
    """
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_S, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} on {host} is in use: choose another with --port") from exc
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UsageError(
                    f"{host} is not an address of this machine: choose another with --host"
                ) from exc
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        bound = port
        for address in runner.addresses:  # the port the kernel chose for --port 0
            bound = int(address[1])
        shown = f"[{host}]" if ":" in host else host
        ready(f"http://{shown}:{bound}")
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
