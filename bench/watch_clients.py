"""The watching clients of bench/pod_throughput.py ``--watchers N``, in a process of their own.

Why it exists: the watchers stand for clients that run elsewhere (controllers, agents, dashboards on
other machines). In the bench's own process they decoded every event N times on the same event loop
as the bench's creating clients and scheduler, so what they cost the writes was mostly their own
parsing, not the API server's work for them. Here they have a process of their own, started with a
lower CPU priority (``nice``) by the bench, so that on this two-core machine they take the cores the
control plane and the writers leave idle, as clients on other machines would; the bench reports
their CPU separately.

Line protocol on stdin/stdout, one child per run:
- the child opens ``--count`` watches of every pod labelled ``app=tput`` cluster-wide (each its own
  client and connection), then creates a marker pod (a scheduler nobody runs) until every watch has
  seen it, deletes it and prints ``ready``;
- on ``end`` from the bench (the run's writes are over) it creates a second marker and waits until
  every watch has seen it, that is until each has taken every event of the run, then prints
  ``events <fewest events one watch received since ready> <CPU seconds>`` and exits (``ready``
  carries the CPU seconds used until then too).

A watch the server ends (its timeout, or it fell too far behind) is opened again, as clients do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nestlab.api import status
from nestlab.api.client import ApiClient, Credentials
from nestlab.api.resources import PODS

NOBODY = "nestlab-bench-nobody"  # the markers' scheduler: nothing binds them
READY_S = 60.0  # every watch serving; generous for a loaded shared machine
CATCH_UP_S = 600.0  # every watch past the end marker (at a low priority it reads after the writes)
RETRY_S = 1.0


class Clients:
    """``count`` watching clients and what each received."""

    def __init__(self, credentials: Credentials, count: int) -> None:
        self.admin = ApiClient(credentials)
        self.clients = [ApiClient(credentials) for _ in range(count)]
        self.events = [0] * count
        self.seen: list[set[str]] = [set() for _ in range(count)]
        self.changed = asyncio.Event()

    async def watch(self, index: int) -> None:
        client = self.clients[index]
        while True:
            try:
                async for _kind, obj in client.watch(PODS, labels="app=tput", timeout=3600):
                    self.events[index] += 1
                    name = str(obj.get("metadata", {}).get("name", ""))
                    if name.startswith("tp-watch-marker-"):
                        self.seen[index].add(name)
                        self.changed.set()
            except status.ApiError as exc:  # a failing-over API: watch again
                if exc.code < 500:
                    raise
                await asyncio.sleep(RETRY_S)

    async def mark(self, timeout: float) -> None:
        """Create a marker pod until every watch has seen it (a watch connecting late misses the
        first), then delete it."""
        name = f"tp-watch-marker-{uuid.uuid4().hex[:6]}"
        marker = {
            "metadata": {"name": name, "labels": {"app": "tput"}},
            "spec": {"schedulerName": NOBODY, "containers": [{"name": "c", "image": "busybox:1.36"}]},
        }
        deadline = time.monotonic() + timeout
        while not all(name in seen for seen in self.seen):
            if time.monotonic() > deadline:
                late = sum(1 for seen in self.seen if name not in seen)
                raise SystemExit(
                    f"{late} of {len(self.seen)} watches did not see {name} within {timeout:g} s"
                )
            with contextlib.suppress(status.ApiError):
                await self.admin.delete(PODS, "default", name, grace=0)
            with contextlib.suppress(status.ApiError):
                await self.admin.create(PODS, "default", marker)
            retry_at = time.monotonic() + 5
            while time.monotonic() < retry_at and not all(name in seen for seen in self.seen):
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 1)
        with contextlib.suppress(status.ApiError):
            await self.admin.delete(PODS, "default", name, grace=0)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in [self.admin, *self.clients]))


async def serve(credentials: Credentials, count: int) -> None:
    clients = Clients(credentials, count)
    tasks = [asyncio.get_running_loop().create_task(clients.watch(i)) for i in range(count)]
    try:
        await clients.mark(READY_S)
        clients.events = [0] * count
        print(f"ready {time.process_time():.3f}", flush=True)
        command = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if command.strip() != "end":
            raise SystemExit(f"expected 'end' from the bench, got {command.strip()!r}")
        await clients.mark(CATCH_UP_S)
        print(f"events {min(clients.events, default=0)} {time.process_time():.3f}", flush=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await clients.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--ca", type=Path)
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    parser.add_argument("--token")
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    credentials = Credentials(args.server, ca=args.ca, token=args.token, cert=args.cert, key=args.key)
    asyncio.run(serve(credentials, args.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
