"""Provisioning progress from ansible-runner's events: plays done of all, tasks and hosts per play.

A cold provisioning runs hundreds of tasks on nine nodes for minutes; one line per task and host
buries what matters. This turns the event stream into one progress step per play ("play 3/5"),
advanced per task, whose detail names the running task and how many of the play's hosts have
answered it. Totals are honest: the number of plays comes from the playbook file, the hosts of a
play from the inventory, and a play's task count only from the previous run of the same playbook
(recorded by :meth:`PlayProgress.task_counts`); without one the step shows a count.

Pure: it consumes event dictionaries and drives a :class:`~nestlab.progress.Progress`, so it is
unit-tested with recorded events and a plain renderer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from nestlab.progress import Progress, Step

RESULT_EVENTS = frozenset({"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"})
TASK_EVENTS = frozenset({"playbook_on_task_start", "playbook_on_handler_task_start"})


def count_plays(playbook_text: str) -> int | None:
    """How many plays a playbook has, or None when it imports others (unknown without loading them)."""
    try:
        plays = yaml.safe_load(playbook_text)
    except yaml.YAMLError:
        return None
    if not isinstance(plays, list) or any(not isinstance(p, dict) or "hosts" not in p for p in plays):
        return None
    return len(plays)


def _group_hosts(group: Mapping[str, Any]) -> set[str]:
    names = set((group.get("hosts") or {}).keys())
    for child in (group.get("children") or {}).values():
        names |= _group_hosts(child or {})
    return names


def play_hosts(pattern: str, inventory: Mapping[str, Any]) -> int | None:
    """How many hosts a play's pattern names: ``all`` or one group of ``inventory`` (the YAML
    mapping); None for anything fancier (``a:&b``, lists, limits)."""
    root = inventory.get("all") or {}
    if not root:
        return None  # no inventory given (a limited run): unknown
    if pattern in ("all", "*"):
        return len(_group_hosts(root))
    groups: dict[str, Any] = {}
    stack = [root]
    while stack:
        for name, child in (stack.pop().get("children") or {}).items():
            groups[name] = child or {}
            stack.append(child or {})
    if pattern in groups:
        return len(_group_hosts(groups[pattern]))
    if pattern in _group_hosts(root):
        return 1
    return None


@dataclass
class _Play:
    name: str
    step: Step
    hosts: int | None
    tasks: int = 0
    task: str = ""
    answered: set[str] = field(default_factory=set)
    changed: int = 0


class PlayProgress:
    """Feed it every ansible-runner event; it keeps ``progress`` up to date."""

    def __init__(
        self,
        progress: Progress,
        *,
        plays: int | None,
        inventory: Mapping[str, Any],
        estimates: Mapping[str, int] | None = None,
    ) -> None:
        self._progress, self._plays, self._inventory = progress, plays, inventory
        self._estimates = dict(estimates or {})
        self._current: _Play | None = None
        self._number = 0
        self._counts: Counter[str] = Counter()

    def feed(self, event: Mapping[str, Any]) -> None:
        """Account for one event."""
        kind = str(event.get("event", ""))
        data = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self._start_play(str(data.get("play", "")), str(data.get("play_pattern", "")))
        elif kind in TASK_EVENTS and self._current is not None:
            self._task(self._current, str(data.get("task", "")).strip())
        elif kind in RESULT_EVENTS and self._current is not None:
            self._result(self._current, kind, data)

    def _start_play(self, name: str, pattern: str) -> None:
        self._end_play(failed=False)
        self._number += 1
        of = f"/{self._plays}" if self._plays else ""
        hosts = play_hosts(pattern, self._inventory)
        title = f"play {self._number}{of}: {name}"
        step = self._progress.step(title, total=self._estimates.get(name), unit="tasks")
        self._current = _Play(name, step, hosts)

    def _task(self, play: _Play, task: str) -> None:
        play.tasks += 1
        play.task, play.answered = task, set()
        play.step.update(completed=play.tasks - 1, detail=self._detail(play))

    def _result(self, play: _Play, kind: str, data: Mapping[str, Any]) -> None:
        play.answered.add(str(data.get("host", "")))
        if kind == "runner_on_ok" and (data.get("res") or {}).get("changed"):
            play.changed += 1
        finished = play.hosts is not None and len(play.answered) >= play.hosts
        play.step.update(completed=play.tasks if finished else play.tasks - 1, detail=self._detail(play))

    @staticmethod
    def _detail(play: _Play) -> str:
        of = f"/{play.hosts}" if play.hosts is not None else ""
        return f"{play.task} ({len(play.answered)}{of} hosts)"

    def _end_play(self, *, failed: bool) -> None:
        play, self._current = self._current, None
        if play is None:
            return
        self._counts[play.name] = play.tasks
        hosts = f" on {play.hosts} host(s)" if play.hosts is not None else ""
        if failed:
            play.step.failed(f"at task {play.task!r}")
        else:
            play.step.update(completed=play.tasks)
            play.step.done(f"{play.tasks} tasks{hosts}, {play.changed} changed")

    def finish(self, *, failed: bool = False) -> None:
        """The run ended: close the last play's step."""
        self._end_play(failed=failed)

    def task_counts(self) -> dict[str, int]:
        """Tasks each play ran: the next run's totals."""
        return dict(self._counts)
