"""The pod-demo entry point end to end: one command in a throw-away busybox pod under TCG."""

from __future__ import annotations

import pytest

from nestlab.runtime import demo
from nestlab.runtime.accel import Accel
from nestlab.runtime.control import Exited, PodDone

pytestmark = pytest.mark.integration


def test_demo_runs_a_command_and_returns_its_output_and_exit() -> None:
    result = demo.run(["sh", "-c", "echo demo says hi; exit 4"], chosen=Accel("tcg", "test"))
    assert result.done == PodDone("demo", "Failed")
    assert Exited("demo", 4, 0, 0) in result.events
    assert "[demo] demo says hi" in result.console
