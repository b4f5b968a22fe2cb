"""Work queue: dedupe, one worker per key, backoff numbers, retries through run_workers."""

from __future__ import annotations

import asyncio

from nestlab.api import status
from nestlab.controller.workqueue import RateLimiter, WorkQueue, run_workers


def test_keys_are_deduplicated_and_fifo() -> None:
    async def scenario() -> list[str | None]:
        queue = WorkQueue("t")
        for key in ("a", "b", "a", "c", "b"):
            queue.add(key)
        assert len(queue) == 3
        return [await queue.get() for _ in range(3)]

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_a_key_added_while_processing_comes_back_only_after_done() -> None:
    async def scenario() -> tuple[int, str | None]:
        queue = WorkQueue("t")
        queue.add("a")
        key = await queue.get()
        queue.add("a")  # changed again while a worker holds it
        waiting = len(queue)  # not handed to a second worker
        assert key is not None
        queue.done(key)
        return waiting, await queue.get()

    assert asyncio.run(scenario()) == (0, "a")


def test_shutdown_wakes_waiting_workers() -> None:
    async def scenario() -> str | None:
        queue = WorkQueue("t")
        waiter = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        queue.shutdown()
        return await waiter

    assert asyncio.run(scenario()) is None


def test_backoff_doubles_per_key_until_forgotten() -> None:
    limiter = RateLimiter(base=0.005, cap=1000.0, clock=lambda: 0.0)
    delays = [limiter.when("k") for _ in range(4)]
    assert delays == [0.005, 0.01, 0.02, 0.04]
    assert limiter.when("other") == 0.005
    limiter.forget("k")
    assert limiter.when("k") == 0.005


def test_backoff_is_capped() -> None:
    limiter = RateLimiter(base=1.0, cap=10.0, clock=lambda: 0.0)
    assert [limiter.when("k") for _ in range(6)][-1] == 10.0


def test_overall_bucket_slows_a_storm_of_retries() -> None:
    limiter = RateLimiter(base=0.0, qps=10.0, burst=2, clock=lambda: 0.0)
    delays = [limiter.when(f"k{i}") for i in range(4)]
    assert delays[:2] == [0.0, 0.0]
    assert delays[2] > 0
    assert delays[3] > delays[2]


def test_failed_syncs_are_retried_with_backoff_then_succeed() -> None:
    attempts: list[str] = []

    async def scenario() -> None:
        queue = WorkQueue("t", RateLimiter(base=0.001))

        async def sync(key: str) -> None:
            attempts.append(key)
            if len(attempts) < 3:
                raise status.unavailable("API down")
            queue.shutdown()

        queue.add("ns/x")
        await asyncio.wait_for(run_workers(queue, sync, workers=2), 10)
        assert queue.limiter.retries("ns/x") == 0  # forgotten after success

    asyncio.run(scenario())
    assert attempts == ["ns/x"] * 3


def test_one_key_is_never_synced_twice_at_once() -> None:
    running: set[str] = set()
    overlaps: list[str] = []
    done = 0

    async def scenario() -> None:
        nonlocal done
        queue = WorkQueue("t")

        async def sync(key: str) -> None:
            nonlocal done
            if key in running:
                overlaps.append(key)
            running.add(key)
            await asyncio.sleep(0.01)
            if done < 3:
                queue.add(key)  # changed again while being synced
            running.discard(key)
            done += 1
            if done == 4:
                queue.shutdown()

        queue.add("k")
        await asyncio.wait_for(run_workers(queue, sync, workers=4), 10)

    asyncio.run(scenario())
    assert overlaps == []
    assert done == 4
