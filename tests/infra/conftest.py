"""Strict host keys for testinfra's paramiko backend, and a per-node summary of a `nestlab verify` run.

testinfra's paramiko backend ignores UserKnownHostsFile and only warns on unknown keys; a lab has its
own known_hosts (written when its nodes were created), so every connection here checks against it
and refuses a node whose key does not match.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import paramiko
import pytest

_results: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))


class LabSSHClient(paramiko.SSHClient):
    """An SSHClient that knows the lab's host keys and rejects any other."""

    def __init__(self) -> None:
        super().__init__()
        self.load_host_keys(str(Path(os.environ["NESTLAB_LAB_DIR"]) / "ssh" / "known_hosts"))
        super().set_missing_host_key_policy(paramiko.RejectPolicy())

    def set_missing_host_key_policy(self, policy: Any) -> None:
        """Keep rejecting unknown keys whatever the backend asks for."""


def pytest_configure(config: pytest.Config) -> None:
    paramiko.SSHClient = LabSSHClient  # type: ignore[misc]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    callspec = getattr(item, "callspec", None)
    host = callspec.params.get("_testinfra_host") if callspec else None
    node = host.backend.hostname if host is not None else "?"
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _results[node][report.outcome] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.section("nestlab verify: per node")
    for node in sorted(_results):
        counts = _results[node]
        verdict = "OK" if not counts.get("failed") else "FAILED"
        terminalreporter.line(
            f"{node:10} {verdict:7} passed {counts.get('passed', 0)}, failed {counts.get('failed', 0)}"
        )
