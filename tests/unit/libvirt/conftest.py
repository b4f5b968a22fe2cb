"""Every test here may run Pulumi's runtime: give each one its own event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.unit.libvirt.harness import event_loop


@pytest.fixture(autouse=True)
def pulumi_event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    with event_loop() as loop:
        yield loop
