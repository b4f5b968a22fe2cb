"""Every exercise of docs/exercises/ run as a test on the lab, in catalog order (destructive last):
reset -> check says something is missing -> every command of its Markdown, output matched against
the patterns written under it -> check passes -> reset (also in a finalizer when the test fails).

A command or an output that changes fails here with the file and line, so the docs cannot rot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from nestlab.cli import cli
from nestlab.exercises import catalog
from nestlab.exercises.base import Exercise
from nestlab.exercises.lablink import LabLink
from nestlab.exercises.runner import Outcome, Runner, StepError, lab_environment
from tests.e2e.conftest import LiveLab

pytestmark = pytest.mark.e2e
ORDERED = sorted(catalog.EXERCISES, key=lambda e: (e.destructive, e.number))
NESTLAB = ".venv/bin/nestlab exercise "
STANDIN = ".venv/bin/python -m nestlab.commands.exercise "


def _rewrite(text: str) -> str:
    """Until the lead registers ``exercise`` in nestlab/cli.py, run the group as a module instead."""
    return text if "exercise" in cli.commands else text.replace(NESTLAB, STANDIN)


@pytest.fixture
def link(agents: LiveLab) -> LabLink:
    return LabLink(agents.name)


@pytest.fixture
def clean(link: LabLink, request: pytest.FixtureRequest) -> Iterator[Exercise]:
    exercise: Exercise = request.param
    exercise.reset(link)
    yield exercise
    exercise.reset(link)


@pytest.mark.parametrize("clean", ORDERED, ids=[f"ex{e.number:02d}_{e.slug}" for e in ORDERED], indirect=True)
def test_exercise(
    clean: Exercise, link: LabLink, agents: LiveLab, record_property: Callable[[str, object], None]
) -> None:
    exercise = clean
    started = time.monotonic()
    before = exercise.check(link)
    assert before, f"exercise {exercise.number}: check passes before any step (it must say what is missing)"
    runner = Runner(lab_environment(agents.name, agents.files.kubeconfig), rewrite=_rewrite)
    steps: list[Outcome] = []
    failure = ""
    try:
        runner.run_file(catalog.markdown_path(exercise), on_step=steps.append)
    except StepError as exc:
        failure = str(exc)
    if failure:
        pytest.fail(failure, pytrace=False)  # outside the except: no "during handling" chain
    after = exercise.check(link)
    assert after == [], f"exercise {exercise.number}: every step ran, but check says: {after}"
    seconds = time.monotonic() - started
    record_property("seconds", round(seconds, 1))
    slowest = max(steps, key=lambda o: o.seconds)
    print(f"\nexercise {exercise.number}: {len(steps)} commands in {seconds:.0f}s (slowest: line "
          f"{slowest.command.line}, {slowest.seconds:.0f}s)")  # fmt: skip
