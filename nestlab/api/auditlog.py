"""The audit log file: one JSON Event per line, rotated by size like kube-apiserver's.

kube-apiserver writes ``--audit-log-path`` through lumberjack: when a write would take the file past
``--audit-log-maxsize`` megabytes, the file is renamed to ``audit-2026-12-05T23-10-00.000.log``
(its name, the UTC time of the rotation to the millisecond, its extension), a new file is opened
(mode 0600), and only the ``--audit-log-maxbackup`` newest backups are kept (0 keeps them all).
``-`` writes to standard output. The same names and rules here mean the administrator's tools
(``ls``, ``jq``, log shippers' globs) and ``nestlab audit`` find the files where they expect them.

Writes happen on one writer thread fed by a bounded queue: the event loop only enqueues a line, so
a slow or full disk never stalls the API. A full queue drops the event (counted, logged); a write
that fails is logged (once per distinct error) and never turns a request into a 500.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

MEGABYTE = 1024 * 1024
DEFAULT_MAX_SIZE_MB = 100.0  # lumberjack's default when --audit-log-maxsize is 0
QUEUE_LINES = 10_000  # events waiting for the disk before new ones are dropped (~10-20 MB)
CLOSE_TIMEOUT_S = 5.0  # at shutdown, time given to the writer thread to flush what is queued
_BACKUP_TIME = "%Y-%m-%dT%H-%M-%S"  # lumberjack's backupTimeFormat "2006-01-02T15-04-05.000"
_STOP = object()

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def backup_name(path: Path, when: datetime) -> Path:
    """``/var/log/nestlab/audit.log`` -> ``/var/log/nestlab/audit-2026-12-05T23-10-00.000.log``."""
    stamp = when.astimezone(UTC).strftime(_BACKUP_TIME) + f".{when.microsecond // 1000:03d}"
    return path.with_name(f"{path.stem}-{stamp}{path.suffix}")


def backups(path: Path) -> list[Path]:
    """The rotated files of ``path``, oldest first (their names sort by time)."""
    prefix, suffix = f"{path.stem}-", path.suffix
    found = [
        p
        for p in path.parent.glob(f"{prefix}*{suffix}")
        if p.name != path.name and _stamp(p.name[len(prefix) : len(p.name) - len(suffix)])
    ]
    return sorted(found)


def _stamp(text: str) -> bool:
    try:
        datetime.strptime(text, _BACKUP_TIME + ".%f")
    except ValueError:
        return False
    return True


@dataclass
class RotatingFile:
    """A lumberjack-like file: appends lines, rotates before a line would exceed ``max_bytes``.

    Not thread-safe: :class:`AuditLog` calls it from its one writer thread (tests call it directly).
    """

    path: Path
    max_bytes: int = int(DEFAULT_MAX_SIZE_MB * MEGABYTE)
    max_backups: int = 0
    """0 keeps every backup (upstream --audit-log-maxbackup)."""
    clock: Clock = _utcnow
    _file: BinaryIO | None = field(default=None, repr=False)
    _size: int = 0

    def write(self, line: bytes) -> None:
        """Append ``line``; OSError when the disk refuses."""
        if self._file is None:
            self._open()
        if self._size > 0 and self._size + len(line) > self.max_bytes:
            self.rotate()
        handle = self._handle()
        handle.write(line)
        handle.flush()
        self._size += len(line)

    def rotate(self) -> None:
        """Rename the current file to its timestamped backup, open a new one, prune old backups."""
        self.close()
        if self.path.exists():
            when = self.clock()
            target = backup_name(self.path, when)
            while target.exists():  # two rotations in one millisecond: keep both
                when += timedelta(milliseconds=1)
                target = backup_name(self.path, when)
            self.path.rename(target)
        self._open()
        if self.max_backups > 0:
            for old in backups(self.path)[: -self.max_backups]:
                old.unlink(missing_ok=True)

    def close(self) -> None:
        if self._file is not None:
            self._handle().close()
            self._file = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = os.fdopen(descriptor, "ab")
        self._size = os.fstat(descriptor).st_size

    def _handle(self) -> BinaryIO:
        if self._file is None:
            self._open()
        return self._file  # type: ignore[return-value]  # _open() set it


class _Stdout:
    """``--audit-log-path -``: lines to standard output, never rotated."""

    def write(self, line: bytes) -> None:
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()

    def close(self) -> None:
        """Standard output stays open."""


class AuditLog:
    """Queue lines from the event loop; one daemon thread writes them to the file."""

    def __init__(self, sink: RotatingFile | _Stdout, *, capacity: int = QUEUE_LINES) -> None:
        self.sink = sink
        self.dropped = 0
        """Events lost because the queue was full (the disk could not keep up)."""
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None
        self._last_error = ""

    @classmethod
    def open(cls, path: str, max_size_mb: float = 0, max_backups: int = 0) -> AuditLog:
        """The log for ``--audit-log-path`` (``-`` = standard output)."""
        if path == "-":
            return cls(_Stdout())
        size = max_size_mb if max_size_mb > 0 else DEFAULT_MAX_SIZE_MB
        return cls(RotatingFile(Path(path), max(1, int(size * MEGABYTE)), max_backups))

    def write(self, line: bytes) -> None:
        """Queue one line (never blocks); dropped with a warning when the writer is far behind."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-log", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("audit log: %d event(s) dropped, the disk is not keeping up", self.dropped)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Flush what is queued (within ``timeout``) and stop the writer thread."""
        if self._thread is None:
            self.sink.close()
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("audit log: writer stuck, %d queued event(s) lost", self._queue.qsize())
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self.sink.close()
                return
            if not isinstance(item, bytes):
                continue
            try:
                self.sink.write(item)
            except OSError as exc:
                text = f"{exc.strerror or exc} ({getattr(exc, 'filename', '') or ''})"
                if text != self._last_error:
                    log.error("audit log: cannot write an event: %s", text)  # noqa: TRY400 - no traceback for a full disk
                    self._last_error = text
            else:
                self._last_error = ""
