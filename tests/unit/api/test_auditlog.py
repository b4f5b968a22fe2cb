"""The audit log writer: lumberjack's backup names, rotation by size, pruning, failures logged."""

from __future__ import annotations

import logging
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nestlab.api.auditlog import AuditLog, RotatingFile, backup_name, backups

T0 = datetime(2026, 12, 5, 23, 10, 0, 123456, tzinfo=UTC)


class Ticks:
    """A clock that moves one second per call."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def test_backup_name_is_lumberjacks() -> None:
    assert backup_name(Path("/var/log/nestlab/audit.log"), T0) == Path(
        "/var/log/nestlab/audit-2026-12-05T23-10-00.123.log"
    )


def test_rotates_before_a_line_would_exceed_the_size_and_keeps_n_backups(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = RotatingFile(path, max_bytes=25, max_backups=2, clock=Ticks())
    for number in range(7):
        log.write(f"line-{number}-xxxxxx\n".encode())  # 15 bytes: one line per file
    log.close()
    assert path.read_text() == "line-6-xxxxxx\n"
    kept = backups(path)
    assert [p.name for p in kept] == [
        "audit-2026-12-05T23-10-05.123.log",
        "audit-2026-12-05T23-10-06.123.log",
    ]
    assert [p.read_text() for p in kept] == ["line-4-xxxxxx\n", "line-5-xxxxxx\n"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_zero_backups_keeps_all_and_a_reopened_file_counts_its_size(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(b"x" * 20)
    log = RotatingFile(path, max_bytes=25, max_backups=0, clock=Ticks())
    log.write(b"0123456789\n")  # 20 + 11 > 25: the existing content is rotated first
    for _ in range(5):
        log.write(b"0123456789abcdefghij\n")
    log.close()
    assert len(backups(path)) == 6
    assert path.read_bytes() == b"0123456789abcdefghij\n"


def test_two_rotations_in_one_millisecond_keep_both(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = RotatingFile(path, max_bytes=5, clock=lambda: T0)
    for _ in range(3):
        log.write(b"abcdef\n")
    log.close()
    assert len(backups(path)) == 2


def test_backups_ignores_other_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    for name in (
        "audit-old.log",
        "audit-2026-12-05T23-10-00.000.log.gz",
        "other-2026-12-05T23-10-00.000.log",
    ):
        (tmp_path / name).write_text("")
    (tmp_path / "audit-2026-12-05T23-10-00.000.log").write_text("")
    assert [p.name for p in backups(path)] == ["audit-2026-12-05T23-10-00.000.log"]


def test_the_queue_writes_in_order_and_close_flushes(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "audit.log"
    log = AuditLog.open(str(path), max_size_mb=1, max_backups=1)
    for number in range(500):
        log.write(f"{number}\n".encode())
    log.close()
    assert path.read_text().splitlines() == [str(n) for n in range(500)]


def test_a_full_queue_drops_instead_of_blocking(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Stuck:
        def __init__(self) -> None:
            import threading

            self.release = threading.Event()
            self.lines: list[bytes] = []

        def write(self, line: bytes) -> None:
            self.release.wait(30)
            self.lines.append(line)

        def close(self) -> None:
            """Nothing to close."""

    sink = Stuck()
    log = AuditLog(sink, capacity=2)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="nestlab.api.auditlog"):
        for number in range(10):
            log.write(f"{number}\n".encode())
    assert log.dropped >= 7  # 1 taken by the writer thread (or not yet), 2 queued
    assert "dropped" in caplog.text
    sink.release.set()
    log.close()
    assert 1 <= len(sink.lines) <= 3


def test_a_write_failure_is_logged_once_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    log = AuditLog.open(str(blocker / "audit.log"))
    with caplog.at_level(logging.ERROR, logger="nestlab.api.auditlog"):
        log.write(b"a\n")
        log.write(b"b\n")
        log.close()
    errors = [r for r in caplog.records if "cannot write an event" in r.getMessage()]
    assert len(errors) == 1
    assert "not-a-dir" in errors[0].getMessage()
