"""Progress on long steps: one small interface the library calls, a live terminal view, plain lines.

`nestlab up` runs steps that take minutes (the pod-kernel build, the node image, provisioning, image
pushes). Library code reports through :class:`Progress` only (it never imports rich): plain messages
by calling it, and steps through :meth:`Progress.step`, with counts when it knows them. The CLI picks
the renderer: :class:`RichProgress` on a terminal (spinner, bar, elapsed time, redrawn in place) or
:class:`PlainProgress` elsewhere, so a CI log stays readable: one line when a step starts or ends, a
line per 10 % when its total is known (else one every ``every_s`` seconds), never a carriage return.

A plain ``Callable[[str], None]`` is still accepted wherever progress is (:func:`as_progress` turns it
into plain lines), so code written against the older callback keeps working.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # rich is the terminal renderer's business only
    from rich.console import Console
    from rich.progress import TaskID

Report = Callable[[str], None]
"""The older progress callback: one message per call."""

PLAIN_EVERY_PERCENT = 10  # plain lines per step when the total is known: ten at most
PLAIN_EVERY_S = 30.0  # without a total: a "so far" line at most this often (a CI log, not a ticker)


@runtime_checkable
class Step(Protocol):
    """One long step in progress; finish it with :meth:`done` or :meth:`failed` (once)."""

    def advance(self, amount: float = 1.0, *, detail: str | None = None) -> None:
        """``amount`` more units done; ``detail`` says what is happening now."""

    def update(
        self, *, completed: float | None = None, total: float | None = None, detail: str | None = None
    ) -> None:
        """Set the count, the total (once it becomes known) or the detail."""

    def done(self, summary: str = "") -> None:
        """The step finished; ``summary`` says what it did."""

    def failed(self, reason: str) -> None:
        """The step failed (the error itself is raised by the caller)."""


@runtime_checkable
class Progress(Protocol):
    """What library code reports to: messages and steps."""

    def __call__(self, message: str) -> None:
        """A plain message (a line of the run's story)."""

    def step(self, title: str, *, total: float | None = None, unit: str = "") -> Step:
        """Start a step; ``total`` units in ``unit`` (``"bytes"`` shows sizes) when known."""


REASON_CHARS = 160  # a failed step's line stays one readable line; the error itself says the rest


def reason(error: BaseException) -> str:
    """A short reason for a failed step: the error's first line, cut to :data:`REASON_CHARS`."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def as_progress(report: Report) -> Progress:
    """``report`` itself when it is a :class:`Progress`, else plain lines through it."""
    if isinstance(report, Progress):
        return report
    return PlainProgress(report, stamp=None)


@contextmanager
def stepping(progress: Report, title: str, *, total: float | None = None, unit: str = "") -> Iterator[Step]:
    """A step that is done when the block ends, or failed (and re-raised) when it raises."""
    step = as_progress(progress).step(title, total=total, unit=unit)
    try:
        yield step
    except BaseException as exc:
        step.failed(reason(exc))
        raise
    step.done()


# -- pure text --------------------------------------------------------------------------------------
def amount(value: float, unit: str) -> str:
    """``1.5 MB`` for bytes, ``1,532 objects`` otherwise."""
    if unit == "bytes":
        for size, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
            if value >= size:
                return f"{value / size:.1f} {suffix}"
        return f"{value:.0f} B"
    return f"{value:,.0f} {unit}".rstrip()


def count_text(completed: float, total: float | None, unit: str) -> str:
    """``812/1,532 objects``, ``4.1 MB/17.0 MB``, ``812 objects`` with no total; "" for a step that
    counts nothing (no unit, no total: only its elapsed time means something)."""
    if total is None and not unit:
        return ""
    if total is None:
        return amount(completed, unit)
    if unit == "bytes":
        return f"{amount(completed, unit)}/{amount(total, unit)}"
    return f"{completed:,.0f}/{amount(total, unit)}"


def duration(seconds: float) -> str:
    """``42s`` or ``3m05s``."""
    whole = round(seconds)
    return f"{whole}s" if whole < 60 else f"{whole // 60}m{whole % 60:02d}s"


@dataclass
class StepState:
    """What a renderer knows about one step."""

    title: str
    total: float | None
    unit: str
    started: float
    completed: float = 0.0
    detail: str = ""
    finished: bool = False

    def apply(self, completed: float | None, total: float | None, detail: str | None) -> bool:
        """Take an update; False (nothing to show) once the step finished."""
        if self.finished:
            return False
        self.completed = self.completed if completed is None else completed
        self.total = self.total if total is None else total
        self.detail = self.detail if detail is None else detail
        return True

    def percent(self) -> int | None:
        """Whole percent done, when the total is known (capped at 100: estimates can be low)."""
        if not self.total:
            return None
        return min(100, int(self.completed * 100 // self.total))


# -- plain lines ------------------------------------------------------------------------------------
def _clock_stamp() -> str:
    return time.strftime("%H:%M:%S")


class PlainProgress:
    """Progress as whole lines through ``write``: for logs, pipes and CI."""

    def __init__(
        self,
        write: Report,
        *,
        stamp: Callable[[], str] | None = _clock_stamp,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = PLAIN_EVERY_S,
    ) -> None:
        self._write, self._stamp, self._clock, self._every_s = write, stamp, clock, every_s

    def __call__(self, message: str) -> None:
        self._write(f"{self._stamp()} {message}" if self._stamp else message)

    def step(self, title: str, *, total: float | None = None, unit: str = "") -> Step:
        self(f"{title} ...")
        return _PlainStep(self, StepState(title, total, unit, self._clock()))


class _PlainStep:
    def __init__(self, owner: PlainProgress, state: StepState) -> None:
        self._owner, self.state = owner, state
        self._shown_percent = 0
        self._shown_at = state.started

    def advance(self, amount: float = 1.0, *, detail: str | None = None) -> None:
        self.update(completed=self.state.completed + amount, detail=detail)

    def update(
        self, *, completed: float | None = None, total: float | None = None, detail: str | None = None
    ) -> None:
        state = self.state
        if not state.apply(completed, total, detail):
            return
        percent = state.percent()
        now = self._owner._clock()
        text = f" ({state.detail})" if state.detail else ""
        if percent is not None and state.total is not None:
            if percent >= self._shown_percent + PLAIN_EVERY_PERCENT:
                self._shown_percent = percent - percent % PLAIN_EVERY_PERCENT
                self._owner(f"{state.title}: {percent}% of {amount(state.total, state.unit)}{text}")
        elif now - self._shown_at >= self._owner._every_s:
            self._shown_at = now
            self._owner(f"{state.title}: {amount(state.completed, state.unit)} so far{text}")

    def _finish(self, outcome: str) -> None:
        if self.state.finished:
            return
        self.state.finished = True
        elapsed = duration(self._owner._clock() - self.state.started)
        self._owner(f"{self.state.title}: {outcome} ({elapsed})")

    def done(self, summary: str = "") -> None:
        self._finish(f"done, {summary}" if summary else "done")

    def failed(self, reason: str) -> None:
        self._finish(f"FAILED: {reason}")


# -- several at once (the terminal and the run's log file) --------------------------------------------
@dataclass
class Fanout:
    """Every message and step goes to each of ``targets``."""

    targets: tuple[Progress, ...] = field(default_factory=tuple)

    def __call__(self, message: str) -> None:
        for target in self.targets:
            target(message)

    def step(self, title: str, *, total: float | None = None, unit: str = "") -> Step:
        return _FanoutStep(tuple(t.step(title, total=total, unit=unit) for t in self.targets))


@dataclass(frozen=True)
class _FanoutStep:
    steps: tuple[Step, ...]

    def advance(self, amount: float = 1.0, *, detail: str | None = None) -> None:
        for step in self.steps:
            step.advance(amount, detail=detail)

    def update(
        self, *, completed: float | None = None, total: float | None = None, detail: str | None = None
    ) -> None:
        for step in self.steps:
            step.update(completed=completed, total=total, detail=detail)

    def done(self, summary: str = "") -> None:
        for step in self.steps:
            step.done(summary)

    def failed(self, reason: str) -> None:
        for step in self.steps:
            step.failed(reason)


def changes(snapshots: Iterable[str]) -> Iterator[str]:
    """The snapshots that differ from the one before (``status --watch`` off a terminal)."""
    last: str | None = None
    for snapshot in snapshots:
        if snapshot != last:
            last = snapshot
            yield snapshot


# -- the terminal -----------------------------------------------------------------------------------
class RichProgress:
    """Live steps on a terminal (spinner, bar or count, elapsed time); finished steps become lines.

    Use as a context manager: the live display runs between enter and exit.
    """

    def __init__(self, console: Console) -> None:
        from rich.progress import (  # noqa: PLC0415 - rich only where a terminal is drawn
            BarColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as Live  # noqa: PLC0415

        self.console = console
        self._live = Live(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[detail]}"),
            console=console,
            transient=True,
        )

    def __enter__(self) -> RichProgress:
        self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.stop()

    def __call__(self, message: str) -> None:
        from rich.markup import escape  # noqa: PLC0415

        self.print(escape(message))

    def print(self, markup: str) -> None:
        """A time-stamped line above the live steps (rich markup)."""
        self._live.console.print(f"[dim]{_clock_stamp()}[/] {markup}", markup=True, highlight=False)

    def step(self, title: str, *, total: float | None = None, unit: str = "") -> Step:
        state = StepState(title, total, unit, time.monotonic())
        task = self._live.add_task(title, total=total, count=count_text(0, total, unit), detail="")
        return _RichStep(self, task, state)


class _RichStep:
    def __init__(self, owner: RichProgress, task: TaskID, state: StepState) -> None:
        self._owner, self._task, self.state = owner, task, state

    def advance(self, amount: float = 1.0, *, detail: str | None = None) -> None:
        self.update(completed=self.state.completed + amount, detail=detail)

    def update(
        self, *, completed: float | None = None, total: float | None = None, detail: str | None = None
    ) -> None:
        state = self.state
        if not state.apply(completed, total, detail):
            return
        shown_total = None if state.total is None else max(state.total, state.completed)
        self._owner._live.update(
            self._task,
            completed=state.completed,
            total=shown_total,
            count=count_text(state.completed, state.total, state.unit),
            detail=state.detail[:60],
        )

    def _finish(self, mark: str, outcome: str) -> None:
        if self.state.finished:
            return
        self.state.finished = True
        from rich.markup import escape  # noqa: PLC0415

        self._owner._live.remove_task(self._task)
        elapsed = duration(time.monotonic() - self.state.started)
        self._owner.print(f"{mark} {escape(self.state.title + outcome)} [dim]({elapsed})[/]")

    def done(self, summary: str = "") -> None:
        self._finish("[green]✓[/]", f": {summary}" if summary else "")

    def failed(self, reason: str) -> None:
        self._finish("[red]✗[/]", f": FAILED: {reason}")


# -- the CLI's choice -------------------------------------------------------------------------------
def _lines_to(console: Console) -> Report:
    def write(line: str) -> None:
        out = console.file
        out.write(line + "\n")
        out.flush()  # a CI log shows each line as it happens

    return write


@contextmanager
def for_console(console: Console) -> Iterator[Progress]:
    """Live steps when ``console`` is a terminal, else plain time-stamped lines on its file."""
    if console.is_terminal:
        with RichProgress(console) as live:
            yield live
    else:
        yield PlainProgress(_lines_to(console))


def repeat(render: Callable[[], str], interval: float, sleep: Callable[[float], None]) -> Iterator[str]:
    """``render()`` now and every ``interval`` seconds after, forever."""
    while True:
        yield render()
        sleep(interval)


def watch(
    render: Callable[[], str],
    console: Console,
    *,
    interval: float,
    sleep: Callable[[float], None] | None = None,
) -> None:
    """Re-render ``render()`` (text, ANSI colours allowed) every ``interval`` s until Ctrl-C: in
    place on a terminal, else printed (time-stamped) only when it changed."""
    sleep = sleep or time.sleep
    try:
        if console.is_terminal:
            from rich.live import Live  # noqa: PLC0415
            from rich.text import Text  # noqa: PLC0415

            with Live(console=console, auto_refresh=False) as live:
                for text in repeat(render, interval, sleep):
                    header = f"{_clock_stamp()} every {interval:g}s; Ctrl-C to stop\n"
                    live.update(Text.from_ansi(header + text), refresh=True)
        else:
            write = _lines_to(console)
            for text in changes(repeat(render, interval, sleep)):
                write(f"--- {_clock_stamp()}\n{text.rstrip()}")
    except KeyboardInterrupt:
        return
