"""Make sense of ansible-runner's event stream: progress lines, failures, and changed counts.

Pure: it consumes event dictionaries (as ansible-runner emits them) and keeps a tally, so the
reporting logic is unit-tested with recorded events and the runner module stays a thin wrapper.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nestlab.errors import NestlabError


@dataclass(frozen=True)
class TaskFailure:
    """One task that failed on one node."""

    host: str
    task: str
    message: str
    unreachable: bool = False

    def __str__(self) -> str:
        what = "unreachable" if self.unreachable else "failed"
        return f'{self.host}: task "{self.task}" {what}: {self.message}'


class ProvisionError(NestlabError):
    """The playbook failed; ``failures`` names every failing node, task and message."""

    def __init__(self, failures: list[TaskFailure], log: str, output: str = "") -> None:
        self.failures = tuple(failures)
        early = "ansible-playbook failed before running any task" + (f": {output}" if output else "")
        lines = [str(f) for f in failures] or [early]
        super().__init__("\n".join([*lines, f"full log: {log}"]))


def _message(result: dict[str, Any]) -> str:
    """The most useful single line of a failed task's result: a command's own error output rather
    than Ansible's "non-zero return code"."""
    for key in ("msg", "stderr", "reason", "module_stderr", "stdout"):
        value = result.get(key)
        if value:
            text = " ".join(str(value).split())
            if key == "msg" and text == "non-zero return code" and result.get("stderr"):
                text = f"exit {result.get('rc')}: " + " ".join(str(result["stderr"]).split())
            return text[:500]
    return "no message (see the full log)"


@dataclass
class Tally:
    """What happened so far in one playbook run."""

    changed: Counter[str] = field(default_factory=Counter)
    ok: Counter[str] = field(default_factory=Counter)
    failures: list[TaskFailure] = field(default_factory=list)

    def feed(self, event: dict[str, Any]) -> str | None:  # noqa: PLR0911 - one return per event kind
        """Account for one event; return a progress line to show, or None."""
        kind = event.get("event", "")
        data = event.get("event_data", {})
        host = str(data.get("host", ""))
        task = str(data.get("task", "")).strip()
        result = data.get("res", {}) or {}
        if kind == "playbook_on_play_start":
            return f"play: {data.get('play', '')}"
        if kind == "playbook_on_task_start":
            return f"  task: {task}"
        if kind == "runner_on_ok":
            self.ok[host] += 1
            if result.get("changed"):
                self.changed[host] += 1
                return f"    changed: {host}"
            return None
        if kind == "runner_on_failed" and not data.get("ignore_errors"):
            failure = TaskFailure(host, task, _message(result))
            self.failures.append(failure)
            return f"    FAILED {failure}"
        if kind == "runner_on_unreachable":
            failure = TaskFailure(host, task, _message(result), unreachable=True)
            self.failures.append(failure)
            return f"    UNREACHABLE {failure}"
        return None

    @property
    def total_changed(self) -> int:
        """Tasks that changed something, over all nodes (0 on an idempotent re-run)."""
        return sum(self.changed.values())
