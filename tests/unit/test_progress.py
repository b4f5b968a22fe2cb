"""The progress interface's renderers: plain lines (what CI logs show), the terminal view, fan-out,
the adapter for plain callbacks, and ``status --watch``'s print-on-change."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from nestlab import progress
from nestlab.progress import Fanout, PlainProgress, Progress, RichProgress, as_progress, stepping


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def plain(lines: list[str], clock: Clock | None = None, every_s: float = 30.0) -> PlainProgress:
    return PlainProgress(lines.append, stamp=None, clock=clock or Clock(), every_s=every_s)


def test_a_step_with_a_total_prints_a_line_per_ten_percent_and_one_at_the_end() -> None:
    lines: list[str] = []
    clock = Clock()
    step = plain(lines, clock).step("pod kernel: compiling", total=1000, unit="objects")
    for _ in range(1000):
        step.advance(detail="kernel/fork.o")
    clock.now += 65
    step.done("1,000 objects compiled")
    assert lines[0] == "pod kernel: compiling ..."
    assert lines[1] == "pod kernel: compiling: 10% of 1,000 objects (kernel/fork.o)"
    assert len(lines) == 1 + 10 + 1  # start, 10 % .. 100 %, done: no line per object
    assert lines[-2].startswith("pod kernel: compiling: 100% of 1,000 objects")
    assert lines[-1] == "pod kernel: compiling: done, 1,000 objects compiled (1m05s)"


def test_a_step_without_a_total_shows_a_count_at_most_every_interval() -> None:
    lines: list[str] = []
    clock = Clock()
    step = plain(lines, clock, every_s=30).step("pod kernel: compiling", unit="objects")
    for _ in range(50):
        step.advance()
    assert lines == ["pod kernel: compiling ..."]  # no percentage is made up, and no spam
    clock.now += 30
    step.advance()
    assert lines[-1] == "pod kernel: compiling: 51 objects so far"
    step.failed("make exited 2")
    assert lines[-1] == "pod kernel: compiling: FAILED: make exited 2 (30s)"


def test_an_estimate_below_the_real_count_stays_at_100_percent() -> None:
    lines: list[str] = []
    step = plain(lines).step("compile", total=10, unit="objects")
    for _ in range(15):
        step.advance()
    assert [line for line in lines if "%" in line][-1] == "compile: 100% of 10 objects"
    assert sum("100%" in line for line in lines) == 1


def test_done_twice_and_updates_after_done_print_nothing() -> None:
    lines: list[str] = []
    step = plain(lines).step("push web:1", total=2048, unit="bytes")
    step.update(completed=2048)
    step.done("1 of 1 blobs sent")
    step.done()
    step.advance(10)
    step.failed("late")
    assert lines == [
        "push web:1 ...",
        "push web:1: 100% of 2.0 kB",
        "push web:1: done, 1 of 1 blobs sent (0s)",
    ]


def test_a_plain_callback_becomes_plain_lines_and_a_progress_stays_itself() -> None:
    lines: list[str] = []
    adapted = as_progress(lines.append)
    assert isinstance(adapted, PlainProgress)
    adapted("hello")
    assert lines == ["hello"]  # no time stamp: the callback adds its own if it wants one
    assert as_progress(adapted) is adapted
    assert isinstance(adapted, Progress)


def test_stepping_fails_the_step_and_reraises() -> None:
    lines: list[str] = []
    with pytest.raises(RuntimeError), stepping(plain(lines), "wheelhouse"):
        raise RuntimeError("pip exited 1\nmore")
    assert lines[-1].startswith("wheelhouse: FAILED: pip exited 1 (")
    with stepping(plain(lines), "PKI"):
        pass
    assert lines[-1] == "PKI: done (0s)"


def test_a_failed_steps_reason_is_one_short_line() -> None:
    assert progress.reason(RuntimeError("make exited 2: x\ny")) == "make exited 2: x"
    long = progress.reason(RuntimeError("e" * 500))
    assert len(long) == progress.REASON_CHARS
    assert long.endswith("…")
    assert progress.reason(KeyboardInterrupt()) == "KeyboardInterrupt"


def test_fanout_sends_messages_and_steps_to_every_target() -> None:
    first: list[str] = []
    second: list[str] = []
    both = Fanout((plain(first), plain(second)))
    both("logs: /x/up.log")
    step = both.step("play 1/5: Configure every lab node", total=4, unit="tasks")
    step.update(completed=4, detail="Write the hostname (9/9 hosts)")
    step.done("4 tasks on 9 host(s), 36 changed")
    assert first == second
    assert first[-1] == "play 1/5: Configure every lab node: done, 4 tasks on 9 host(s), 36 changed (0s)"


def test_time_stamps_prefix_plain_lines() -> None:
    lines: list[str] = []
    PlainProgress(lines.append, stamp=lambda: "02:03:04")("hello")
    assert lines == ["02:03:04 hello"]


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (999, "bytes", "999 B"),
        (1500, "bytes", "1.5 kB"),
        (17_000_000, "bytes", "17.0 MB"),
        (1532, "objects", "1,532 objects"),
        (3, "", "3"),
    ],
)
def test_amounts(value: float, unit: str, text: str) -> None:
    assert progress.amount(value, unit) == text


def test_counts_and_durations() -> None:
    assert progress.count_text(812, 1532, "objects") == "812/1,532 objects"
    assert progress.count_text(812, None, "objects") == "812 objects"
    assert progress.count_text(0, None, "") == ""
    assert progress.count_text(4_100_000, 17_000_000, "bytes") == "4.1 MB/17.0 MB"
    assert progress.duration(42.4) == "42s"
    assert progress.duration(185) == "3m05s"


def test_the_terminal_view_turns_finished_steps_into_lines() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with RichProgress(console) as live:
        live("logs: /var/lib/nestlab/labs/x/logs/up.log [not markup]")
        step = live.step("pod kernel: compiling", total=3, unit="objects")
        for name in ("a.o", "b.o", "c.o"):
            step.advance(detail=name)
        step.done("3 objects compiled")
        other = live.step("demo pod images", unit="")
        other.failed("registry refused")
    text = out.getvalue()
    assert "logs: /var/lib/nestlab/labs/x/logs/up.log [not markup]" in text
    assert "✓ pod kernel: compiling: 3 objects compiled" in text
    assert "✗ demo pod images: FAILED: registry refused" in text


def test_changes_drops_repeats() -> None:
    assert list(progress.changes(["a", "a", "b", "b", "a"])) == ["a", "b", "a"]


def test_watch_off_a_terminal_prints_only_changes_until_interrupted() -> None:
    frames = iter(["nodes: 9 running", "nodes: 9 running", "nodes: 8 running"])
    sleeps: list[float] = []

    def render() -> str:
        try:
            return next(frames)
        except StopIteration:
            raise KeyboardInterrupt from None

    out = io.StringIO()
    progress.watch(render, Console(file=out, force_terminal=False), interval=2.5, sleep=sleeps.append)
    printed = out.getvalue()
    assert printed.count("---") == 2
    assert "nodes: 9 running" in printed
    assert "nodes: 8 running" in printed
    assert sleeps == [2.5, 2.5, 2.5]


def test_the_cli_choice_off_a_terminal_is_plain_lines_on_the_consoles_file() -> None:
    out = io.StringIO()
    with progress.for_console(Console(file=out, force_terminal=False)) as shown:
        assert isinstance(shown, PlainProgress)
        shown.step("node image", total=4, unit="stages").done()
    lines = out.getvalue().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["node image ...", "node image: done (0s)"]
    with progress.for_console(Console(file=io.StringIO(), force_terminal=True)) as live:
        assert isinstance(live, RichProgress)
