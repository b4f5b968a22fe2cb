"""Every exercise of docs/exercises/ run as a test on the lab, in catalog order (destructive last):
reset -> check says something is missing -> every command of its Markdown, output matched against
the patterns written under it -> check passes -> reset (also in a finalizer when the test fails).

A command or an output that changes fails here with the file and line, so the docs cannot rot.

The failure exercises (9, 10, 12, 13) also carry the checks of older e2e tests that made the same
disruption again (:mod:`tests.e2e.riders`): each host stop, maintenance cycle, failed attestation
and leader loss happens once per run, and the checks ride on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from nestlab.exercises import catalog, markdown
from nestlab.exercises.base import Exercise
from nestlab.exercises.lablink import LabLink
from nestlab.exercises.runner import Outcome, Runner, StepError, lab_environment
from nestlab.paths import repo_root
from tests.e2e import riders
from tests.e2e.conftest import LiveLab
from tests.e2e.rider import Rider, When

pytestmark = pytest.mark.e2e
ORDERED = sorted(catalog.EXERCISES, key=lambda e: (e.destructive, e.number))


@pytest.fixture
def link(agents: LiveLab) -> LabLink:
    return LabLink(agents.name)


@pytest.fixture
def clean(link: LabLink, request: pytest.FixtureRequest) -> Iterator[Exercise]:
    exercise: Exercise = request.param
    exercise.reset(link)
    yield exercise
    exercise.reset(link)


def run_with_rider(runner: Runner, exercise: Exercise, rider: Rider, timeline: list[str]) -> list[Outcome]:
    """Every command of the exercise's Markdown (as :meth:`Runner.run_file`), the rider's cues around
    them; StepError at the first command that does not do what the Markdown says. ``timeline`` gets
    one entry per command and per rider pass that took a second or more: where the minutes go."""
    path = catalog.markdown_path(exercise)
    source = str(path.relative_to(repo_root()))
    document = markdown.parse(path.read_text(encoding="utf-8"))
    if document.errors:
        raise StepError(f"{source}: " + "; ".join(document.errors))

    def riding(text: str, when: When, line: int) -> None:
        started = time.monotonic()
        rider.step(text, when)
        if (took := time.monotonic() - started) >= 1:
            timeline.append(f"rider {when} line {line}: {took:.0f}s")

    steps = []
    for command in document.commands():
        riding(command.text, "before", command.line)
        steps.append(outcome := runner.step(source, command))
        if outcome.seconds >= 1:
            timeline.append(f"line {command.line}: {outcome.seconds:.0f}s ({outcome.tries} tries)")
        riding(command.text, "after", command.line)
    return steps


@pytest.mark.parametrize("clean", ORDERED, ids=[f"ex{e.number:02d}_{e.slug}" for e in ORDERED], indirect=True)
def test_exercise(
    clean: Exercise,
    link: LabLink,
    agents: LiveLab,
    request: pytest.FixtureRequest,
    record_property: Callable[[str, object], None],
) -> None:
    exercise = clean
    started = time.monotonic()
    before = exercise.check(link)
    assert before, f"exercise {exercise.number}: check passes before any step (it must say what is missing)"
    runner = Runner(lab_environment(agents.name, agents.files.kubeconfig))
    rider = riders.for_exercise(exercise.number, agents, lambda: str(request.getfixturevalue("kubectl_120")))
    steps: list[Outcome] = []
    timeline: list[str] = []
    failure = ""
    try:
        prepared = time.monotonic()
        rider.prepare()
        timeline.append(f"rider prepare: {time.monotonic() - prepared:.0f}s")
        steps = run_with_rider(runner, exercise, rider, timeline)
    except StepError as exc:
        failure = str(exc)
    finally:
        rider.cleanup()
        record_property("timeline", "; ".join(timeline))
    if failure:
        pytest.fail(failure, pytrace=False)  # outside the except: no "during handling" chain
    assert rider.missed() == [], f"exercise {exercise.number}: checks riding on it never ran"
    after = exercise.check(link)
    assert after == [], f"exercise {exercise.number}: every step ran, but check says: {after}"
    seconds = time.monotonic() - started
    record_property("seconds", round(seconds, 1))
    slowest = max(steps, key=lambda o: o.seconds)
    print(f"\nexercise {exercise.number}: {len(steps)} commands in {seconds:.0f}s (slowest: line "
          f"{slowest.command.line}, {slowest.seconds:.0f}s)")  # fmt: skip
