"""Log options, filtering and the per-instance store the console collector feeds (pure parts and files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nestlab.agent import logstore
from nestlab.agent.logstore import Collector, ContainerView, PodLogs, instance_to_read, split_console
from nestlab.api.logfilter import Limit, LogOptions, OptionError, cri_line, parse_options, select, stamp

T0 = 1_796_000_000_000_000_000  # 2026-11-30T...Z, in nanoseconds
SECOND = 1_000_000_000


def stored(*texts: str, start: int = T0) -> list[str]:
    return [cri_line(start + i * SECOND, text) for i, text in enumerate(texts)]


def test_stamp_is_fixed_width_rfc3339nano() -> None:
    assert stamp(T0 + 5) == "2026-11-30T00:53:20.000000005Z"
    assert len(stamp(T0)) == 30


def test_plain_log_is_the_texts() -> None:
    assert select(stored("a", "b", "c"), LogOptions()) == ["a\n", "b\n", "c\n"]


def test_tail_counts_from_the_end_and_zero_is_nothing() -> None:
    assert select(stored("a", "b", "c"), LogOptions(tail=2)) == ["b\n", "c\n"]
    assert select(stored("a", "b", "c"), LogOptions(tail=0)) == []
    assert select(stored("a"), LogOptions(tail=5)) == ["a\n"]


def test_timestamps_prefix_each_line() -> None:
    assert select(stored("a", "b"), LogOptions(timestamps=True)) == [
        f"{stamp(T0)} a\n",
        f"{stamp(T0 + SECOND)} b\n",
    ]


def test_since_keeps_lines_at_or_after() -> None:
    lines = stored("a", "b", "c")
    assert select(lines, LogOptions(since=stamp(T0 + SECOND))) == ["b\n", "c\n"]
    assert select(lines, LogOptions(since=stamp(T0 + 10 * SECOND))) == []


def test_tail_applies_before_since() -> None:
    lines = stored("a", "b", "c")
    assert select(lines, LogOptions(tail=2, since=stamp(T0))) == ["b\n", "c\n"]
    assert select(lines, LogOptions(tail=1, since=stamp(T0 + 5 * SECOND))) == []


def test_damaged_stored_lines_are_skipped() -> None:
    assert select(["garbage\n", *stored("a")], LogOptions()) == ["a\n"]


def test_limit_bytes_cuts_mid_line_and_then_stops() -> None:
    limit = Limit(5)
    assert limit.cut(b"abc\n") == b"abc\n"
    assert not limit.done
    assert limit.cut(b"defg\n") == b"d"
    assert limit.done
    assert Limit(None).cut(b"x" * 100) == b"x" * 100


def test_options_from_a_query() -> None:
    options = parse_options(
        {"follow": "true", "previous": "false", "timestamps": "true", "tailLines": "3", "limitBytes": "10"},
        T0,
    )
    assert options == LogOptions(follow=True, previous=False, timestamps=True, tail=3, limit_bytes=10)
    assert parse_options({"sinceSeconds": "2"}, T0).since == stamp(T0 - 2 * SECOND)
    assert parse_options({"sinceTime": "2026-11-30T00:53:20Z"}, 0).since == stamp(T0)
    assert parse_options({"sinceTime": "2026-11-30T01:53:20.5+01:00"}, 0).since == stamp(T0 + SECOND // 2)


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"tailLines": "-1"}, "tailLines", "Invalid value: -1: must be greater than or equal to 0"),
        ({"limitBytes": "0"}, "limitBytes", "Invalid value: 0: must be greater than 0"),
        ({"sinceSeconds": "0"}, "sinceSeconds", "Invalid value: 0: must be greater than 0"),
        ({"tailLines": "ten"}, "tailLines", 'Invalid value: "ten": must be a whole number'),
        ({"follow": "maybe"}, "follow", 'Invalid value: "maybe": must be true or false'),
        ({"sinceTime": "yesterday"}, "sinceTime", 'Invalid value: "yesterday": must be an RFC3339 time'),
        (
            {"sinceSeconds": "5", "sinceTime": "2026-11-30T00:53:20Z"},
            "",
            "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
        ),
    ],
)
def test_invalid_options_say_which_field_as_upstream(query: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(OptionError) as caught:
        parse_options(query, T0)
    assert (caught.value.field, caught.value.message) == (field, message)


# --- which instance ------------------------------------------------------------------------------


def view(state: str, restarts: int = 0, *, last: bool = False, reason: str = "") -> ContainerView:
    return ContainerView("web", state, reason, restarts, last)


def test_current_instance_by_state() -> None:
    assert instance_to_read(view("running", 2, last=True), "p", previous=False) == 2
    assert instance_to_read(view("terminated", 1, last=True), "p", previous=False) == 1
    # back-off after a crash: the kubelet shows the instance that just ended
    assert (
        instance_to_read(view("waiting", 3, last=True, reason="CrashLoopBackOff"), "p", previous=False) == 2
    )


def test_previous_instance() -> None:
    assert instance_to_read(view("running", 2, last=True), "p", previous=True) == 1
    assert instance_to_read(view("waiting", 3, last=True), "p", previous=True) == 2


def test_no_previous_instance_is_upstreams_error() -> None:
    with pytest.raises(
        logstore.LogUnavailableError, match=r'^previous terminated container "web" in pod "p" not found$'
    ):
        instance_to_read(view("running", 0), "p", previous=True)


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        ("ContainerCreating", "ContainerCreating"),
        ("ErrImagePull", "image can't be pulled"),
        ("ImagePullBackOff", "trying and failing to pull image"),
    ],
)
def test_waiting_container_has_no_log_yet(reason: str, said: str) -> None:
    with pytest.raises(logstore.LogUnavailableError) as caught:
        instance_to_read(view("waiting", reason=reason), "p", previous=False)
    assert str(caught.value) == f'container "web" in pod "p" is waiting to start: {said}'


def test_console_lines_split_by_container() -> None:
    data = b"[    0.1] kernel\npod-init: started\n[web] GET /\n[job] done\n[web]no space\n[web] partial"
    lines, used = split_console(data, final=False)
    assert lines == [("web", "GET /"), ("job", "done")]
    assert data[used:] == b"[web] partial"
    assert split_console(data, final=True)[0][-1] == ("web", "partial")


# --- the collector and the store ---------------------------------------------------------------


class FakePod:
    """A pod directory as the agent lays it out, with a console QEMU would write."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "pods" / "uid-1"
        (self.dir / "vm").mkdir(parents=True)
        self.views = {"web": view("running"), "side": ContainerView("side", "running", "", 0, False)}
        self.clock = T0

    @property
    def console(self) -> Path:
        return self.dir / "vm" / "console.log"

    def write(self, text: str) -> None:
        with self.console.open("a") as handle:
            handle.write(text)

    def logs(self) -> PodLogs:
        return PodLogs("ns", "p", self.dir, dict(self.views))

    def collector(self) -> Collector:
        def tick() -> int:
            self.clock += SECOND
            return self.clock

        return Collector(lambda: [self.logs()], clock_ns=tick)

    def texts(self, container: str, instance: int) -> list[str]:
        path = self.logs().log_file(container, instance)
        return [line.split(" ", 3)[3] for line in path.read_text().splitlines()]


def test_collector_stamps_lines_per_container(tmp_path: Path) -> None:
    pod = FakePod(tmp_path)
    collector = pod.collector()
    pod.write("boot noise\n[web] one\n[side] s1\n[web] tw")
    collector.ingest_all()
    assert pod.texts("web", 0) == ["one"]
    assert pod.texts("side", 0) == ["s1"]
    pod.write("o\n")
    collector.ingest_all()
    assert pod.texts("web", 0) == ["one", "two"]
    first, second = pod.logs().log_file("web", 0).read_text().splitlines()
    assert first < second  # later reads, later stamps


def test_restart_goes_to_a_new_instance_and_previous_stays(tmp_path: Path) -> None:
    pod = FakePod(tmp_path)
    collector = pod.collector()
    pod.write("[web] first run\n")
    collector.ingest_all()
    pod.views["web"] = view("waiting", 1, last=True, reason="CrashLoopBackOff")
    pod.write("[web] last words\n")  # flushed after the exit event: still the instance that ended
    collector.ingest_all()
    pod.views["web"] = view("running", 1, last=True)
    pod.write("[web] second run\n")
    collector.ingest_all()
    assert pod.texts("web", 0) == ["first run", "last words"]
    assert pod.texts("web", 1) == ["second run"]
    pod.views["web"] = view("running", 2, last=True)
    pod.write("[web] third run\n")
    collector.ingest_all()
    assert not pod.logs().log_file("web", 0).exists()  # only current and previous are kept
    assert pod.texts("web", 1) == ["second run"]


def test_new_vm_finishes_the_old_console_first(tmp_path: Path) -> None:
    pod = FakePod(tmp_path)
    collector = pod.collector()
    pod.write("[web] old vm\n")
    collector.ingest_all()
    pod.write("[web] unread when the vm ended\n[web] no newline")
    pod.console.replace(pod.console.with_name("console.previous.log"))  # what the agent does
    pod.views["web"] = view("waiting", 1, last=True, reason="ContainerCreating")
    collector.ingest_all()
    pod.views["web"] = view("running", 1, last=True)
    pod.write("[web] new vm\n")
    collector.ingest_all()
    assert pod.texts("web", 0) == ["old vm", "unread when the vm ended", "no newline"]
    assert pod.texts("web", 1) == ["new vm"]


def test_a_restarted_agent_resumes_where_it_stopped(tmp_path: Path) -> None:
    pod = FakePod(tmp_path)
    pod.write("[web] before\n")
    pod.collector().ingest_all()
    cursor = json.loads((pod.dir / "logs" / "cursor.json").read_text())
    assert cursor["offset"] == len("[web] before\n")
    pod.write("[web] while away\n")
    pod.collector().ingest_all()  # a new collector: a new agent process
    assert pod.texts("web", 0) == ["before", "while away"]


def test_big_log_rotates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logstore, "MAX_FILE_BYTES", 100)
    pod = FakePod(tmp_path)
    collector = pod.collector()
    for i in range(6):
        pod.write(f"[web] line {i} {'x' * 40}\n")
        collector.ingest_all()
    current = pod.logs().log_file("web", 0)
    rotated = current.with_name("0.log.1")
    assert rotated.exists()
    assert current.stat().st_size <= 100 + 80
    assert rotated.stat().st_size <= 100 + 80


def test_a_deleted_pod_is_not_recreated(tmp_path: Path) -> None:
    pod = FakePod(tmp_path)
    logs = pod.logs()
    pod.write("[web] x\n")
    (pod.dir / "vm" / "console.log").unlink()
    (pod.dir / "vm").rmdir()
    pod.dir.rmdir()
    Collector(lambda: [logs]).ingest_all()
    assert not pod.dir.exists()


def test_read_from_follows_a_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text("a\nb\npart")
    lines, position, inode = logstore.read_from(path, 0, None)
    assert (lines, position) == (["a\n", "b\n"], 4)
    path.replace(tmp_path / "0.log.1")
    path.write_text("c\n")
    lines, position, _ = logstore.read_from(path, position, inode)
    assert (lines, position) == (["c\n"], 2)


def test_a_truncated_console_is_read_from_its_start(tmp_path: Path) -> None:
    pod = FakePod(tmp_path)
    collector = pod.collector()
    pod.write("[web] a long first line\n")
    collector.ingest_all()
    pod.console.write_text("[web] b\n")  # same inode, shorter
    collector.ingest_all()
    assert pod.texts("web", 0) == ["a long first line", "b"]
