"""Clients that keep talking to the lab's API through the VIP while a drill breaks it.

An administrator judges a failure by what clients saw, not by what the servers say about
themselves: :class:`ReadProbe` reads a namespace in a loop (the API's availability: the longest
gap between answers, failed/total requests) and :class:`WriteProbe` creates ConfigMaps in a loop
(which writes were acknowledged, which refused and how: the quorum drill's evidence). Both run in
a thread of their own, with the lab-admin certificate, and open a fresh connection per request
(through :class:`~nestlab.api.client.ApiClient`) so a moved VIP costs one failed request, never a
hung one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from nestlab.api.client import ApiClient, Credentials
from nestlab.api.status import ApiError
from nestlab.drills import report

READ_TIMEOUT_S = 2.0  # a read slower than this counts as failed: an admin would call it an outage
WRITE_TIMEOUT_S = 5.0  # a write may wait for an etcd commit; slower than this is "no answer"
PAUSE_S = 0.1  # between requests: ~10 a second, enough resolution, little load on two shared cores
MESSAGE_CHARS = 200  # of a refusal's message kept in the report


@dataclass(frozen=True)
class Sample:
    """One request: when its answer (or failure) came, and what it was."""

    at: float
    ok: bool
    code: int
    """HTTP status; 503 also for "no connection" (the client's convention)."""
    message: str = ""
    name: str = ""
    """For writes: the object the request created."""


@dataclass(frozen=True)
class Availability:
    """What clients of the API saw over a window."""

    longest_gap_s: float
    failed: int
    total: int


def availability(samples: list[Sample], start: float, end: float) -> Availability:
    """Gap and counts over ``[start, end]`` (pure)."""
    inside = [s for s in samples if start <= s.at <= end]
    gap = report.longest_gap([s.at for s in inside if s.ok], start, end)
    return Availability(gap, sum(1 for s in inside if not s.ok), len(inside))


class _Loop(threading.Thread):
    """A thread that runs one async request after another until stopped."""

    def __init__(self, credentials: Credentials, timeout: float, clock: Callable[[], float]) -> None:
        super().__init__(daemon=True)
        self.credentials, self.timeout, self.clock = credentials, timeout, clock
        self.samples: list[Sample] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._count = 0

    def run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        while not self._halt.is_set():
            client = ApiClient(self.credentials, timeout=self.timeout)
            try:
                sample = await self._once(client, self._count)
            finally:
                await client.close()
            self._count += 1
            with self._lock:
                self.samples.append(sample)
            await asyncio.sleep(PAUSE_S)

    async def _once(self, client: ApiClient, index: int) -> Sample:
        raise NotImplementedError

    def snapshot(self) -> list[Sample]:
        """The samples so far (a copy)."""
        with self._lock:
            return list(self.samples)

    def stop(self) -> list[Sample]:
        """Stop and wait for the thread; every sample."""
        self._halt.set()
        self.join(timeout=self.timeout + 5)
        return self.snapshot()

    def __enter__(self) -> _Loop:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _failed(exc: ApiError, clock: Callable[[], float], name: str = "") -> Sample:
    return Sample(clock(), False, exc.code, f"{exc.reason}: {exc.message}"[:MESSAGE_CHARS], name)


class ReadProbe(_Loop):
    """GET a namespace through the VIP in a loop."""

    def __init__(
        self,
        credentials: Credentials,
        path: str = "/api/v1/namespaces/default",
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(credentials, READ_TIMEOUT_S, clock)
        self.path = path

    async def _once(self, client: ApiClient, index: int) -> Sample:
        try:
            await client.request("GET", self.path)
        except ApiError as exc:
            return _failed(exc, self.clock)
        return Sample(self.clock(), True, 200)


class WriteProbe(_Loop):
    """Create ConfigMaps ``PREFIX-N`` in ``namespace`` in a loop; a 201 is an acknowledged write."""

    def __init__(
        self,
        credentials: Credentials,
        namespace: str,
        prefix: str = "write",
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(credentials, WRITE_TIMEOUT_S, clock)
        self.namespace, self.prefix = namespace, prefix

    async def _once(self, client: ApiClient, index: int) -> Sample:
        name = f"{self.prefix}-{index}"
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name},
            "data": {"n": str(index)},
        }
        try:
            await client.request("POST", f"/api/v1/namespaces/{self.namespace}/configmaps", body)
        except ApiError as exc:
            return _failed(exc, self.clock, name)
        return Sample(self.clock(), True, 201, name=name)


def acknowledged(samples: list[Sample]) -> dict[str, str]:
    """The writes the API acknowledged: ConfigMap name -> its ``data.n`` (pure)."""
    return {s.name: s.name.rsplit("-", 1)[-1] for s in samples if s.ok and s.name}
