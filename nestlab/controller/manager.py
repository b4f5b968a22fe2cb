"""Run the controllers' passes, one after the other, only while this process holds the Lease.

Like kube-controller-manager: every control-plane node runs the same controllers, the Lease picks
the one that acts, and a pass that fails (API unreachable for a moment) is logged and retried on
the next tick instead of ending the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from nestlab.api import status
from nestlab.controller.leader import LeaderElector

log = logging.getLogger(__name__)
Pass = Callable[[], Awaitable[object]]


async def run_while_leading(
    elector: LeaderElector, passes: Sequence[Pass], interval: float, stop: asyncio.Event
) -> None:
    """Every ``interval`` seconds: renew or acquire the Lease, and if leading run each pass."""
    try:
        while not stop.is_set():
            if await elector.ensure():
                for one_pass in passes:
                    try:
                        await one_pass()
                    except status.ApiError as exc:
                        log.warning("%s failed: %s", getattr(one_pass, "__qualname__", one_pass), exc.message)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                continue
    finally:
        await elector.release()
