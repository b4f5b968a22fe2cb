"""The e2e lab's ``nestlab up`` started while the last integration tests run, not after them.

The integration tests' tail (the agent and runtime tests, which boot pod VMs and wait on them)
keeps the machine only about 30% busy for about five minutes. The e2e lab's ``up`` (about 3 minutes)
is meant to fit beside it; where it starts today is in :data:`ALONGSIDE`'s note. When the first test of :data:`ALONGSIDE` starts, this plugin starts the real
``nestlab up`` in the background. The ``lab_up`` fixture then :meth:`EarlyUp.take`\\ s that run
(waits for it and checks it) instead of starting its own.

Nothing changes when no test of :data:`ALONGSIDE` runs before the first e2e test (``make e2e``, a
``-k`` selection): ``lab_up`` runs ``up`` itself as before. If the session ends before an e2e test
took the lab over (``-x``, Ctrl-C), :meth:`EarlyUp.pytest_sessionfinish` stops ``up`` (its whole
process group: Ansible too) and takes the lab down.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from nestlab.paths import LabFiles, repo_root
from nestlab.runtime import proc

ALONGSIDE = (
    "tests/integration/agent/test_agent.py",
    "tests/integration/runtime/",
)
"""Where ``up`` may start: the first of these tests to run. In the whole suite that is the first
test under runtime/ (it runs after proxy/, before substrate/ and the trust role tests), which is
earlier than meant: the pod-booting tail is what mostly waits. Measured this way in a full run
(66:18); starting with the first pod-booting test is the next step, not yet run through the suite.
Beside the Ansible role tests alone, ``up`` slowed them by half (pod-kernel role: 197 s, not 101 s)."""
STOP_GRACE_S = 30.0


def nestlab_command(*args: str) -> list[str]:
    """The real ``nestlab`` command of this venv."""
    return [str(Path(sys.executable).parent / "nestlab"), *args]


def write_spec(directory: Path) -> Path:
    """The teaching lab's spec, moved to networks of its own (198.18.100.0/24, VIP .5)."""
    text = (repo_root() / "stacks" / "default.lab.yaml").read_text()
    text = text.replace("198.18.0.0/24", "198.18.100.0/24").replace("198.18.0.5", "198.18.100.5")
    text = text.replace("198.19.0.0/16", "198.19.100.0/22")
    text = text.replace("198.18.32.0/20", "198.18.132.0/22").replace("198.18.8.0/24", "198.18.108.0/24")
    directory.mkdir(parents=True, exist_ok=True)
    spec = directory / "e2e.lab.yaml"
    spec.write_text(text)
    return spec


def own_up_allowed(name: str) -> bool:
    """Whether this session stands the lab up itself (root, and no lab reused as it is)."""
    reused = os.environ.get("NESTLAB_E2E_REUSE") == "1" and LabFiles.named(name).kubeconfig.is_file()
    return os.geteuid() == 0 and not reused


class EarlyUp:
    """The background ``nestlab up`` of one lab, from the trigger test until ``lab_up`` takes it."""

    def __init__(self, name: str, workdir: Path, timeout: float) -> None:
        self.name = name
        self.workdir = workdir
        self.timeout = timeout
        self.trigger: str | None = None
        """The node id of the test at whose start ``up`` begins; None: ``lab_up`` runs it itself."""
        self.spec: Path | None = None
        self.log = workdir / "up.log"
        self.process: proc.Process | None = None
        self.taken = False

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Pick the trigger: the first test of :data:`ALONGSIDE` that runs before the lab is needed."""
        root = repo_root()
        first_lab = next((i for i, item in enumerate(items) if "lab_up" in item.fixturenames), None)
        if first_lab is None or not own_up_allowed(self.name):
            return
        for item in items[:first_lab]:
            relative = item.path.resolve().relative_to(root).as_posix()
            if relative.startswith(ALONGSIDE):
                self.trigger = item.nodeid
                return

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        if nodeid == self.trigger and self.process is None:
            self.spec = write_spec(self.workdir)
            self.log.unlink(missing_ok=True)
            self.process = proc.spawn(
                nestlab_command("up", str(self.spec), "--name", self.name), log=self.log
            )

    def take(self) -> str | None:
        """What the background ``up`` printed, once it succeeded; None when none was started.

        ProcessError with its output when it failed or ran out of time: every e2e test then errors
        with it, as when ``lab_up`` runs ``up`` itself.
        """
        if self.process is None:
            return None
        self.taken = True
        try:
            code = self.process.wait(self.timeout)
        except BaseException:  # out of time, or Ctrl-C: lab_up's finalizer takes the lab down next
            self.process.stop_group(STOP_GRACE_S)
            raise
        output = self.log.read_text(errors="replace")
        if code != 0:
            raise proc.ProcessError(
                f"nestlab up (started early, log {self.log}) exited {code}:\n{output[-2000:]}"
            )
        return output

    def pytest_sessionfinish(self) -> None:
        """The session ended before any e2e test took the lab: stop ``up`` and remove the lab."""
        if self.process is None or self.taken:
            return
        self.process.stop_group(STOP_GRACE_S)
        proc.run(nestlab_command("down", "--name", self.name), timeout=600, check=False)
