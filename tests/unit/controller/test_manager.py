"""Controllers run only while leading: started on gaining the Lease, stopped on losing it."""

from __future__ import annotations

import asyncio
from typing import Any

from nestlab.controller.informer import InformerFactory
from nestlab.controller.manager import run_while_leading
from nestlab.controller.workqueue import WorkQueue


class FakeElector:
    """Leads on the ticks listed in ``script`` (True/False per call); then stops the loop."""

    def __init__(self, script: list[bool], stop: asyncio.Event) -> None:
        self.script = script
        self.stop = stop
        self.client: Any = None
        self.released = False

    async def ensure(self) -> bool:
        if not self.script:
            self.stop.set()
            return False
        return self.script.pop(0)

    async def release(self) -> None:
        self.released = True


def test_controllers_follow_the_lease() -> None:
    built: list[Any] = []
    seen: list[tuple[int, str]] = []

    class Recorder:
        name = "recorder"
        workers = 1

        def __init__(self, client: Any, informers: InformerFactory) -> None:
            self.queue = WorkQueue(self.name)
            self.term = len(built)
            built.append(self)
            self.queue.add("ns/a")

        async def sync(self, key: str) -> None:
            seen.append((self.term, key))

    async def scenario() -> FakeElector:
        stop = asyncio.Event()
        elector = FakeElector([True, True, True, False, False, True, True, True], stop)
        await run_while_leading(elector, [], 0.01, stop, [Recorder])  # type: ignore[arg-type]
        return elector

    elector = asyncio.run(scenario())
    assert len(built) == 2  # one term per leadership, each on fresh informers and queues
    assert seen == [(0, "ns/a"), (1, "ns/a")]
    built[0].queue.add("ns/late")
    assert len(built[0].queue) == 0  # the first term's queue was shut down when the Lease was lost
    assert elector.released
