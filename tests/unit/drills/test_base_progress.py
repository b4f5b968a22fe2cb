"""A drill reports its phases as steps of nestlab.progress (as ``nestlab up`` does), on a fake lab."""

from __future__ import annotations

from typing import cast

from nestlab.drills import base
from nestlab.drills.base import Session
from nestlab.drills.lab import DrillError, DrillLab
from nestlab.progress import PlainProgress, Step
from tests.unit.drills.test_base import FakeLab, drill


class RecordingStep:
    def __init__(self, owner: Recording, title: str, total: float | None) -> None:
        self.owner, self.title, self.total = owner, title, total
        self.completed = 0.0
        self.details: list[str] = []

    def advance(self, amount: float = 1.0, *, detail: str | None = None) -> None:
        self.update(completed=self.completed + amount, detail=detail)

    def update(
        self, *, completed: float | None = None, total: float | None = None, detail: str | None = None
    ) -> None:
        if completed is not None:
            self.completed = completed
        if detail:
            self.details.append(detail)

    def done(self, summary: str = "") -> None:
        self.owner.ends.append((self.title, "done"))

    def failed(self, reason: str) -> None:
        self.owner.ends.append((self.title, f"failed: {reason}"))


class Recording:
    """A Progress that keeps what it was told."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.steps: list[RecordingStep] = []
        self.ends: list[tuple[str, str]] = []

    def __call__(self, message: str) -> None:
        self.lines.append(message)

    def step(self, title: str, *, total: float | None = None, unit: str = "") -> Step:
        self.steps.append(RecordingStep(self, title, total))
        return self.steps[-1]


def titles(recording: Recording) -> list[str]:
    return [s.title.split(":")[0].split(" (")[0] for s in recording.steps]


def test_every_phase_of_a_drill_is_a_step_that_ends() -> None:
    lab, shown = FakeLab(), Recording()

    def act(session: Session) -> None:
        session.undo("start esx-02 again", lambda: None)
        session.undo("uncordon esx-03", lambda: None)

    report = base.run(drill(act), cast(DrillLab, lab), shown)
    assert report.passed, report.checks
    assert titles(shown) == [
        "precheck",
        "markers",
        "drill test-drill",
        "restore what the drill broke",
        "waiting until the lab is whole",
    ]
    assert [outcome for _title, outcome in shown.ends] == ["done"] * 5
    restore = shown.steps[3]
    assert (restore.total, restore.completed) == (2, 2)
    assert restore.details == ["uncordon esx-03", "start esx-02 again"]


def test_a_failing_phase_ends_its_step_failed_and_the_rest_still_run() -> None:
    lab, shown = FakeLab(), Recording()

    def act(session: Session) -> None:
        raise DrillError("esx-02 never came back")

    report = base.run(drill(act), cast(DrillLab, lab), shown)
    assert not report.passed
    assert ("drill test-drill: break the lab and measure", "failed: esx-02 never came back") in shown.ends
    assert shown.ends[-1][1] == "done"  # the lab was still waited for until whole


def test_a_plain_callback_gets_step_lines_with_their_durations() -> None:
    lines: list[str] = []
    base.run(drill(lambda _session: None), cast(DrillLab, FakeLab()), PlainProgress(lines.append, stamp=None))
    assert "precheck: lab t1 is up and healthy ..." in lines
    assert any(line.startswith("drill test-drill: break the lab and measure: done (") for line in lines)
