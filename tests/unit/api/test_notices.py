"""Warnings raised in admission reach the request that caused them, once each, and no other."""

from __future__ import annotations

import asyncio

from nestlab.api import notices


def test_warnings_are_collected_per_request_and_deduplicated() -> None:
    async def request(name: str) -> list[str]:
        pending = notices.collect()
        notices.warn(f"{name} one")
        await asyncio.sleep(0)  # the other request runs in between
        notices.warn(f"{name} one")
        notices.warn(f"{name} two")
        return pending

    async def both() -> list[list[str]]:
        return list(await asyncio.gather(request("a"), request("b")))

    assert asyncio.run(both()) == [["a one", "a two"], ["b one", "b two"]]


def test_a_warning_outside_a_request_is_dropped() -> None:
    notices.warn("at bootstrap")  # no collection open: nothing to raise, nothing kept
    assert notices.collect() == []
