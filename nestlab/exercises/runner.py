"""Run an exercise's Markdown against a lab, as a learner would type it, and compare what it prints.

Each ``$ `` command goes to ``bash -o pipefail -c`` from the repository root with ``NESTLAB_LAB``
and ``KUBECONFIG`` set to the lab, through the project's one process runner
(:func:`nestlab.runtime.proc.run`). A command whose output or exit status is not what the file
says raises :class:`StepError`, whose message names the file and line, the command, the pattern
that found no line, and the output: what an author needs to fix the doc or the code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from nestlab.errors import NestlabError
from nestlab.exercises import markdown
from nestlab.exercises.markdown import Command
from nestlab.paths import repo_root
from nestlab.runtime import proc

COMMAND_TIMEOUT_S = 300.0  # one command of an exercise; the slowest (a namespace delete) takes < 2 min
POLL_S = 2.0  # between the tries of a `retry=` command, as the format says
_OUTPUT_KEPT = 4000  # characters of output in a failure message: a kubectl table or a traceback


class StepError(NestlabError):
    """A command of an exercise did not do what its Markdown says."""


@dataclass(frozen=True)
class Outcome:
    """One command's last run."""

    command: Command
    returncode: int
    output: str
    """stdout then stderr."""
    tries: int
    seconds: float


def lab_environment(lab: str, kubeconfig: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a learner's shell on lab ``lab``."""
    env = dict(os.environ if base is None else base)
    env["NESTLAB_LAB"] = lab
    env["KUBECONFIG"] = str(kubeconfig)
    return env


def mismatch(source: str, outcome: Outcome) -> str | None:
    """Why ``outcome`` is not what the command's Markdown expects (None: it is)."""
    command = outcome.command
    wanted = command.directive.exit
    if outcome.returncode != wanted:
        return f"exit status {outcome.returncode}, expected {wanted}"
    missing = markdown.first_unmatched(command.patterns, outcome.output)
    if missing is not None:
        return f"no output line matches the pattern of {source}:{missing.line}: {missing.text!r}"
    return None


def failure_message(source: str, outcome: Outcome, why: str) -> str:
    """The whole story of a failed step, for a test report."""
    tail = outcome.output[-_OUTPUT_KEPT:]
    tried = f" (tried {outcome.tries} times over {outcome.seconds:.0f}s)" if outcome.tries > 1 else ""
    return (
        f"{source}:{outcome.command.line}: `{outcome.command.text}`{tried}\n"
        f"{why}\n--- output ---\n{tail}{'' if tail.endswith(chr(10)) else chr(10)}--- end ---"
    )


class Runner:
    """Runs commands of exercise files on one lab."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        cwd: Path | None = None,
        run: proc.Runner = proc.run,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rewrite: Callable[[str], str] = lambda text: text,
    ) -> None:
        self._env = dict(env)
        self._cwd = cwd or repo_root()
        self._run = run
        self._clock = clock
        self._sleep = sleep
        self._rewrite = rewrite

    def _once(self, command: Command, timeout: float) -> tuple[int, str]:
        argv = ["bash", "-o", "pipefail", "-c", self._rewrite(command.text)]
        try:
            result = self._run(argv, timeout=timeout, check=False, env=self._env, cwd=self._cwd)
        except proc.ProcessError as exc:  # timed out: report it as a failed try
            return 124, str(exc)
        return result.returncode, result.stdout + result.stderr

    def step(self, source: str, command: Command) -> Outcome:
        """Run one command (again and again within its ``retry=`` time); StepError if it never fits."""
        started = self._clock()
        deadline = started + command.directive.retry
        tries = 0
        while True:
            tries += 1
            left = deadline - self._clock()
            timeout = (
                COMMAND_TIMEOUT_S if command.directive.retry == 0 else max(min(left, COMMAND_TIMEOUT_S), 10.0)
            )
            code, output = self._once(command, timeout)
            outcome = Outcome(command, code, output, tries, self._clock() - started)
            why = mismatch(source, outcome)
            if why is None:
                return outcome
            if self._clock() + POLL_S > deadline:
                raise StepError(failure_message(source, outcome, why))
            self._sleep(POLL_S)

    def run_text(
        self, source: str, text: str, *, on_step: Callable[[Outcome], None] | None = None
    ) -> list[Outcome]:
        """Every command of an exercise's text in order (skipped ones aside); stops at the first failure."""
        document = markdown.parse(text)
        if document.errors:
            raise StepError(f"{source}: " + "; ".join(document.errors))
        outcomes = []
        for command in document.commands():
            outcome = self.step(source, command)
            outcomes.append(outcome)
            if on_step is not None:
                on_step(outcome)
        return outcomes

    def run_file(self, path: Path, *, on_step: Callable[[Outcome], None] | None = None) -> list[Outcome]:
        """:meth:`run_text` of a file, named relative to the repository in messages."""
        try:
            source = str(path.resolve().relative_to(repo_root()))
        except ValueError:
            source = str(path)
        return self.run_text(source, path.read_text(encoding="utf-8"), on_step=on_step)
