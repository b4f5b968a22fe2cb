"""The shape every drill shares: check, break, measure, restore ALWAYS, wait until whole, report.

A drill module only says how it breaks the lab and what it watches (:attr:`Drill.act`); this
module does the rest the same way for all of them: refuses a lab that is not up and healthy
(exit 2), writes marker objects and reads them back key by key afterwards (objects lost), keeps a
:class:`~nestlab.drills.probe.ReadProbe` running through the VIP for the whole drill (API gap,
failed requests), runs every restore step the drill registered even when the drill failed or was
interrupted, and waits until the lab is whole again before it reports.

Each phase is a step of :mod:`nestlab.progress` (precheck, markers, break and measure, restore,
waiting until whole), so ``nestlab drill`` shows where it is and for how long as ``up`` does:
live on a terminal, one line per change in a log. A plain ``Callable[[str], None]`` still works
(plain lines).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nestlab import progress as shown
from nestlab.api.status import ApiError
from nestlab.drills import probe, report
from nestlab.drills.lab import DrillError, DrillLab, wait_until
from nestlab.drills.report import DrillReport
from nestlab.drills.timeline import pod_ready
from nestlab.errors import NestlabError

Obj = dict[str, Any]
MARKERS = 5  # ConfigMaps written before the break and read back after it, one by one
WEB_IMAGE = "depot:5000/nestlab/web:1"  # the demo web server every lab's depot serves
POD_TIMEOUT_S = 600.0  # TCG pods on nine nodes sharing two cores


@dataclass(frozen=True)
class Drill:
    """One failure drill."""

    name: str
    title: str
    summary: str
    """What it breaks and what it measures (``drill --list``)."""
    explanation: tuple[str, ...]
    """3-6 lines: what happened, in vSphere terms."""
    act: Callable[[Session], None]
    """Break the lab and measure; register restore steps with :meth:`Session.undo` *before* breaking."""
    trust: bool = False
    """The lab must attest before, and after the restore."""


class Session:
    """One run of a drill: the lab, the report being filled, the restore steps registered."""

    def __init__(self, lab: DrillLab, drill: Drill, progress: shown.Report) -> None:
        self.lab, self.drill = lab, drill
        self.progress = shown.as_progress(progress)
        self.say: shown.Report = self.progress
        self.report = DrillReport(drill.name, lab.name, drill.title, explanation=drill.explanation)
        self.namespace = f"drill-{drill.name[:20]}-{secrets.token_hex(3)}"
        self._undo: list[tuple[str, Callable[[], object]]] = []

    def undo(self, what: str, step: Callable[[], object]) -> None:
        """Register a restore step (run last-in first-out, whatever happens)."""
        self._undo.append((what, step))

    def restored(self, what: str) -> None:
        """Drop the restore step ``what``: the drill did it itself (to measure the recovery)."""
        self._undo = [(w, step) for w, step in self._undo if w != what]

    def restore(self) -> list[str]:
        """Run every restore step; the errors (each step runs even when an earlier one failed)."""
        errors = []
        step = self.progress.step("restore what the drill broke", total=len(self._undo), unit="steps")
        while self._undo:
            what, undo = self._undo.pop()
            self.say(f"restore: {what}")
            step.update(detail=what)
            try:
                undo()
            except (NestlabError, ApiError, OSError) as exc:
                errors.append(f"{what}: {exc}")
            step.advance()
        if errors:
            step.failed("; ".join(errors))
        else:
            step.done()
        return errors

    # --- objects in the drill's namespace ----------------------------------------------------------

    def create(self, path: str, obj: Obj) -> None:
        self.lab.api("POST", path, obj)

    def deploy(self, name: str, replicas: int = 3) -> list[Obj]:
        """A Deployment of the demo web server; its pods once ``replicas`` are Ready."""
        container = {
            "name": "web",
            "image": WEB_IMAGE,
            "command": ["httpd", "-f", "-p", "80", "-h", "/www"],
            "resources": {"limits": {"memory": "64Mi"}},
        }
        self.create(
            f"/apis/apps/v1/namespaces/{self.namespace}/deployments",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
                },
            },
        )
        title = f"deployment {self.namespace}/{name}: {replicas} Ready replicas"
        with shown.stepping(self.progress, title, total=replicas, unit="replicas") as step:

            def ready() -> bool:
                count = len(self.ready_pods(name))
                step.update(completed=min(count, replicas))
                return count >= replicas

            wait_until(ready, f"{replicas} Ready replicas of {name}", POD_TIMEOUT_S)
        return self.ready_pods(name)

    def pods(self, app: str) -> list[Obj] | None:
        """The pods labelled ``app`` (None when the API does not answer)."""
        return self.lab.items(f"/api/v1/namespaces/{self.namespace}/pods?labelSelector=app%3D{app}")

    def ready_pods(self, app: str) -> list[Obj]:
        return [p for p in self.pods(app) or [] if pod_ready(p)]

    def figure(self, key: str, label: str, value: report.Value, unit: str = "") -> None:
        self.report.figure(key, label, value, unit)

    def verdict(self, subject: str, during: str, after: str) -> None:
        self.report.verdicts.append(report.Verdict(subject, during, after))

    def check(self, what: str, ok: bool, detail: str = "") -> None:
        self.report.checks.append(report.Check(what, ok, detail))


def _markers(session: Session) -> dict[str, str]:
    expected = {f"marker-{i}": secrets.token_hex(8) for i in range(MARKERS)}
    for name, value in expected.items():
        session.create(
            f"/api/v1/namespaces/{session.namespace}/configmaps",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"value": value}},
        )
    return expected


def _read_markers(session: Session, expected: dict[str, str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in expected:
        obj = session.lab.get(f"/api/v1/namespaces/{session.namespace}/configmaps/{name}")
        found[name] = None if obj is None else (obj.get("data") or {}).get("value")
    return found


def _begin(drill: Drill, lab: DrillLab, steps: shown.Progress) -> tuple[Session, dict[str, str]]:
    """Precheck the lab, then write the markers: the session and the markers expected back."""
    attests = ", every host attests" if drill.trust else ""
    # before any step is shown: a lab that is not up and healthy is one line (exit 2), nothing else
    lab.require_healthy(trust=drill.trust)
    with shown.stepping(steps, f"precheck: lab {lab.name} is up and healthy{attests}"):
        pass
    session = Session(lab, drill, steps)
    with shown.stepping(steps, f"markers: {MARKERS} ConfigMaps in namespace {session.namespace}"):
        session.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": session.namespace}},
        )
        try:
            return session, _markers(session)
        except ApiError:
            lab.api("DELETE", f"/api/v1/namespaces/{session.namespace}")
            raise


def _act(session: Session, steps: shown.Progress) -> None:
    """Break the lab and measure; a failure is a failed check (an interrupt goes on up)."""
    acting = steps.step(f"drill {session.drill.name}: break the lab and measure")
    try:
        session.drill.act(session)
    except (NestlabError, ApiError) as exc:
        session.check("the drill ran to the end", False, str(exc))
        acting.failed(shown.reason(exc))
        return
    except BaseException as exc:  # Ctrl-C, SIGTERM: the caller's restore still runs
        acting.failed(shown.reason(exc))
        raise
    session.check("the drill ran to the end", True)
    acting.done()


def _recover(session: Session, steps: shown.Progress) -> None:
    """Run the restore steps, then wait until the lab is whole; both outcomes are checks."""
    errors = session.restore()
    session.check("every restore step succeeded", not errors, "; ".join(errors))
    attests = ", every host attests" if session.drill.trust else ""
    whole = steps.step(
        f"waiting until the lab is whole (Nodes Ready, API through the VIP, etcd healthy{attests})"
    )

    def waiting(message: str) -> None:
        steps(message)
        whole.update(detail=message.removeprefix("waiting for the lab to be whole: "))

    try:
        healthy = session.lab.wait_healthy(waiting, trust=session.drill.trust)
    except DrillError as exc:
        session.check("the lab is whole again", False, str(exc))
        whole.failed(shown.reason(exc))
        return
    session.check("the lab is whole again", True, f"after {healthy:.0f} s")
    whole.done()


def run(
    drill: Drill, lab: DrillLab, progress: shown.Report, *, clock: Callable[[], float] = time.monotonic
) -> DrillReport:
    """Run ``drill`` on ``lab``: UsageError (exit 2) when the lab is not up and healthy; otherwise
    a report, the lab restored (a failed restore is a failed check in it)."""
    started = clock()
    steps = shown.as_progress(progress)
    session, expected = _begin(drill, lab, steps)
    reads = probe.ReadProbe(lab.credentials, clock=clock)
    reads.start()
    window = clock()
    try:
        _act(session, steps)
    finally:
        _recover(session, steps)
        seen = probe.availability(reads.stop(), window, clock())
    session.figure(
        "api_longest_gap_s", "longest time without an answer through the VIP", seen.longest_gap_s, "s"
    )
    session.figure("requests_failed", "reads through the VIP that failed", seen.failed, "requests")
    session.figure("requests_total", "reads through the VIP in all", seen.total, "requests")
    lost = report.lost_objects(expected, _read_markers(session, expected))
    session.figure("objects_lost", f"marker objects lost (of {MARKERS} written before)", len(lost), "objects")
    session.check("no object written before the drill was lost", not lost, ", ".join(lost))
    try:
        lab.api("DELETE", f"/api/v1/namespaces/{session.namespace}")
    except ApiError as exc:
        steps(f"could not delete namespace {session.namespace}: {exc.message} (delete it by hand)")
    session.report.seconds = clock() - started
    return session.report
