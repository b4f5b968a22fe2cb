"""Per-node summary at the end of a `nestlab verify` run."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

_HOST = re.compile(r"\[paramiko://([^\]-]+(?:-[^\]]+)?)\]")
_results: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        match = _HOST.search(report.nodeid)
        _results[match.group(1) if match else "?"][report.outcome] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.section("nestlab verify: per node")
    for node in sorted(_results):
        counts = _results[node]
        verdict = "OK" if not counts.get("failed") else "FAILED"
        terminalreporter.line(
            f"{node:10} {verdict:7} passed {counts.get('passed', 0)}, failed {counts.get('failed', 0)}"
        )
