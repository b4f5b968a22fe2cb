"""The shared drill sequence on a fake lab: refuse an unhealthy lab, restore ALWAYS, report."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, cast

import pytest

from nestlab.api.client import Credentials
from nestlab.drills import base
from nestlab.drills.base import Drill, Session
from nestlab.drills.lab import DrillError, DrillLab
from nestlab.drills.report import DrillReport
from nestlab.errors import UsageError

Obj = dict[str, Any]


def closed_port() -> int:
    with socket.socket() as sock:  # nobody listens: the probe's requests fail at once
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeLab:
    """Objects in a dict keyed by path; ``lose`` names markers that vanish during the drill."""

    name = "t1"

    def __init__(self, problems: list[str] | None = None, lose: tuple[str, ...] = ()) -> None:
        self.problems = problems or []
        self.lose = lose
        self.credentials = Credentials(f"http://127.0.0.1:{closed_port()}")
        self.objects: dict[str, Obj] = {}
        self.log: list[str] = []

    def require_healthy(self, *, trust: bool = False) -> None:
        if self.problems:
            raise UsageError(f"lab t1 is not up and healthy: {'; '.join(self.problems)}")

    def wait_healthy(self, progress: Callable[[str], None], *, trust: bool = False) -> float:
        self.log.append("healthy")
        return 0.0

    def api(self, method: str, path: str, body: Any = None, timeout: float = 5.0) -> Obj:
        self.log.append(f"{method} {path}")
        if method == "POST":
            self.objects[f"{path}/{body['metadata']['name']}"] = body
        return {}

    def get(self, path: str) -> Obj | None:
        if any(path.endswith(f"/{name}") for name in self.lose):
            return None
        return self.objects.get(path)


def drill(act: Callable[[Session], None]) -> Drill:
    return Drill("test-drill", "a test", "breaks nothing", ("line",), act)


def run(lab: FakeLab, act: Callable[[Session], None]) -> DrillReport:
    return base.run(drill(act), cast(DrillLab, lab), lambda _line: None)


def checks(report: DrillReport) -> dict[str, bool]:
    return {c.what: c.ok for c in report.checks}


def test_a_drill_that_goes_well_reports_its_figures_and_the_common_ones() -> None:
    lab = FakeLab()

    def act(session: Session) -> None:
        session.undo("put it back", lambda: lab.log.append("undone"))
        session.figure("thing_s", "thing", 1.5, "s")

    report = run(lab, act)
    assert report.passed, report.checks
    assert report.value("thing_s") == 1.5
    assert report.value("objects_lost") == 0
    assert isinstance(report.value("api_longest_gap_s"), float)
    total, failed = report.value("requests_total"), report.value("requests_failed")
    assert isinstance(total, int)
    assert failed == total, "nothing answers on the closed port"
    assert lab.log.index("undone") < lab.log.index("healthy")
    namespace = next(e for e in lab.log if e.startswith("POST /api/v1/namespaces") and e.count("/") == 3)
    assert lab.log[-1].startswith("DELETE /api/v1/namespaces/drill-test-drill-"), lab.log[-1]
    assert namespace


def test_an_unhealthy_lab_is_refused_before_anything_is_touched() -> None:
    lab = FakeLab(problems=["node cp-3 is stopped"])
    ran: list[bool] = []
    with pytest.raises(UsageError, match="node cp-3 is stopped"):
        run(lab, lambda _s: ran.append(True))
    assert not ran
    assert lab.log == []


def test_a_failing_drill_still_restores_and_says_why() -> None:
    lab = FakeLab()

    def act(session: Session) -> None:
        session.undo("first", lambda: lab.log.append("first undone"))
        session.undo("second", lambda: lab.log.append("second undone"))
        raise DrillError("a new etcd leader: not seen within 120 s")

    report = run(lab, act)
    assert not report.passed
    assert lab.log.index("second undone") < lab.log.index("first undone") < lab.log.index("healthy")
    failed = next(c for c in report.checks if c.what == "the drill ran to the end")
    assert not failed.ok
    assert "a new etcd leader" in failed.detail


def test_an_interrupted_drill_restores_then_lets_the_interrupt_through() -> None:
    lab = FakeLab()

    def act(session: Session) -> None:
        session.undo("start cp-2", lambda: lab.log.append("cp-2 started"))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(lab, act)
    assert "cp-2 started" in lab.log
    assert "healthy" in lab.log


def test_a_failing_restore_step_does_not_stop_the_others() -> None:
    lab = FakeLab()

    def broken() -> None:
        raise DrillError("ssh: unreachable")

    def act(session: Session) -> None:
        session.undo("first", lambda: lab.log.append("first undone"))
        session.undo("broken", broken)

    report = run(lab, act)
    assert "first undone" in lab.log
    assert checks(report)["every restore step succeeded"] is False
    assert "broken: ssh: unreachable" in next(c.detail for c in report.checks if not c.ok)


def test_a_step_the_drill_restored_itself_is_not_run_again() -> None:
    lab = FakeLab()

    def act(session: Session) -> None:
        session.undo("start lb-1", lambda: lab.log.append("started again"))
        session.restored("start lb-1")

    run(lab, act)
    assert "started again" not in lab.log


def test_a_lost_marker_is_counted_and_fails_the_drill() -> None:
    lab = FakeLab(lose=("marker-3",))
    report = run(lab, lambda _s: None)
    assert report.value("objects_lost") == 1
    assert checks(report)["no object written before the drill was lost"] is False
