"""What a drill measured, and how it is shown: the report model, its text and JSON forms.

Pure: no I/O. A drill fills a :class:`DrillReport` with figures (numbers with units, each under a
stable JSON key so scripts and tests can read them), verdicts (what a check said while the lab was
broken and after it was restored), checks (what the drill expects of a healthy platform: no
acknowledged write lost, the lab restored) and the lines explaining it in vSphere terms.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Value = float | int | str | None


@dataclass(frozen=True)
class Figure:
    """One measured quantity."""

    key: str
    """Stable JSON key, ``snake_case`` with the unit as suffix (``api_longest_gap_s``)."""
    label: str
    """What it is, for people ("longest time without an answer through the VIP")."""
    value: Value
    """The measurement; None when it could not be measured (the text form says so)."""
    unit: str = ""
    """``s``, ``requests``, ``objects``... ('' for names and counts that read well alone)."""


@dataclass(frozen=True)
class Verdict:
    """What one judge (attestation, the kernel check, etcd) said during the drill and after it."""

    subject: str
    """What was judged ("attestation of esx-02")."""
    during: str
    """The verdict while the lab was broken, starting with PASSED or FAILED."""
    after: str
    """The verdict once the lab was restored."""


@dataclass(frozen=True)
class Check:
    """One thing the drill expects of the platform; a failed check makes the command exit 1."""

    what: str
    ok: bool
    detail: str = ""


@dataclass
class DrillReport:
    """Everything ``nestlab drill NAME`` prints."""

    drill: str
    lab: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    explanation: tuple[str, ...] = ()
    seconds: float = 0.0
    """Wall time of the whole drill, restore included."""

    def figure(self, key: str, label: str, value: Value, unit: str = "") -> None:
        """Add (or replace) a figure."""
        self.figures = [f for f in self.figures if f.key != key]
        self.figures.append(Figure(key, label, _rounded(value), unit))

    def value(self, key: str) -> Value:
        """A figure's value; KeyError when the drill did not record it."""
        for item in self.figures:
            if item.key == key:
                return item.value
        raise KeyError(key)

    @property
    def passed(self) -> bool:
        """True when every check held."""
        return all(c.ok for c in self.checks)


def _rounded(value: Value) -> Value:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 2)
    return value


# --- measurements (pure) -------------------------------------------------------------------------


def longest_gap(successes: Sequence[float], start: float, end: float) -> float:
    """The longest stretch of ``[start, end]`` without a successful request (``successes`` are the
    times answers arrived): the API's unavailability as a client saw it. No success at all: the
    whole window."""
    inside = sorted(t for t in successes if start <= t <= end)
    points = [start, *inside, end]
    return max((b - a for a, b in itertools.pairwise(points)), default=0.0)


def lost_objects(expected: Mapping[str, str], found: Mapping[str, str | None]) -> list[str]:
    """Keys written (and acknowledged) before that are missing afterwards or hold another value,
    checked key by key; sorted."""
    return sorted(key for key, value in expected.items() if found.get(key) != value)


def first_after(times: Iterable[float], since: float) -> float | None:
    """Seconds from ``since`` to the first time at or after it; None when there is none."""
    later = [t for t in times if t >= since]
    return min(later) - since if later else None


# --- rendering -------------------------------------------------------------------------------------


def _text_value(item: Figure) -> str:
    if item.value is None:
        return "not measured"
    if isinstance(item.value, float):
        text = f"{item.value:.1f}" if abs(item.value) >= 10 else f"{item.value:.2f}"
    else:
        text = str(item.value)
    return f"{text} {item.unit}".rstrip() if item.unit not in ("", "objects", "requests") else text


def render_text(report: DrillReport) -> str:
    """The report for people: figures, verdicts, checks, the vSphere explanation."""
    lines = [f"drill {report.drill} on lab {report.lab}: {report.title}", ""]
    if report.figures:
        width = max(len(f.label) for f in report.figures)
        lines.append("Measured:")
        lines += [f"  {f.label:<{width}}  {_text_value(f)}" for f in report.figures]
        lines.append("")
    if report.verdicts:
        lines.append("Verdicts (during -> after):")
        lines += [f"  {v.subject}: {v.during} -> {v.after}" for v in report.verdicts]
        lines.append("")
    if report.checks:
        lines.append("Checks:")
        for check in report.checks:
            mark = "ok  " if check.ok else "FAIL"
            lines.append(f"  [{mark}] {check.what}" + (f": {check.detail}" if check.detail else ""))
        lines.append("")
    if report.explanation:
        lines.append("What happened, in vSphere terms:")
        lines += [f"  {line}" for line in report.explanation]
        lines.append("")
    outcome = "PASSED" if report.passed else "FAILED"
    lines.append(f"drill {report.drill}: {outcome} in {report.seconds:.0f} s")
    return "\n".join(lines)


def to_json(report: DrillReport) -> dict[str, Any]:
    """The report as one JSON document (``--json``)."""
    return {
        "drill": report.drill,
        "lab": report.lab,
        "title": report.title,
        "passed": report.passed,
        "seconds": round(report.seconds, 1),
        "figures": {f.key: f.value for f in report.figures},
        "labels": {f.key: {"label": f.label, "unit": f.unit} for f in report.figures},
        "verdicts": [{"subject": v.subject, "during": v.during, "after": v.after} for v in report.verdicts],
        "checks": [{"what": c.what, "ok": c.ok, "detail": c.detail} for c in report.checks],
        "explanation": list(report.explanation),
    }


def render_json(report: DrillReport) -> str:
    """:func:`to_json`, indented."""
    return json.dumps(to_json(report), indent=2)
