"""The prebuild runs its builds side by side, reports each, and a failed one fails only itself."""

from __future__ import annotations

import threading

import pytest

from nestlab import prebuild


def test_builds_run_side_by_side_and_a_failure_is_reported_not_raised(
    capsys: pytest.CaptureFixture[str],
) -> None:
    both_running = threading.Barrier(2, timeout=10)  # each build waits for the other: side by side

    def image() -> None:
        both_running.wait()

    def broken_kernel() -> None:
        both_running.wait()
        raise RuntimeError("make: no rule")

    failed = prebuild.prebuild([("node image", image), ("pod kernel", broken_kernel)])
    assert failed == ["pod kernel"]
    out = capsys.readouterr().out
    assert "prebuild: node image ready after" in out
    assert "prebuild: pod kernel failed after" in out
    assert "make: no rule" in out
