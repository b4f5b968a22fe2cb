"""A fake qemu-storage-daemon launcher for unit tests: it "serves" by writing the pidfile, or fails
the way the real one does (an exit code and a line in its log)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from nestlab.runtime import proc

_PIDS = itertools.count(4000)


class FakeDaemon:
    """What the exporter needs of a :class:`~nestlab.runtime.proc.Process`."""

    def __init__(self, argv: tuple[str, ...], code: int | None) -> None:
        self.argv = argv
        self.pid = next(_PIDS)
        self.code = code
        self.stopped = False

    def poll(self) -> int | None:
        return self.code

    def stop(self, grace: float = 5.0) -> int:
        self.stopped = True
        return 0


class FakeSpawn:
    """Records each daemon; ``busy`` ports fail with "Address already in use", ``broken`` with another error."""

    def __init__(self, busy: set[int] | None = None, broken: bool = False) -> None:
        self.busy = busy or set()
        self.broken = broken
        self.daemons: list[FakeDaemon] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        new_session: bool = True,
    ) -> proc.Process:
        args = tuple(argv)
        port = int(next(a for a in args if "addr.port=" in a).split("addr.port=")[1].split(",")[0])
        pidfile = Path(args[args.index("--pidfile") + 1])
        code = None
        if port in self.busy or self.broken:
            code = 1
            message = (
                "Failed to bind socket: Address already in use" if port in self.busy else "Could not open"
            )
            assert log is not None
            with log.open("a") as out:
                out.write(f"qemu-storage-daemon: {message}\n")
        else:
            pidfile.write_text("1\n")
        daemon = FakeDaemon(args, code)
        self.daemons.append(daemon)
        return cast(Any, daemon)

    def running(self) -> list[FakeDaemon]:
        return [d for d in self.daemons if d.code is None and not d.stopped]

    def alive(self, pid: int, _volume_file: Path) -> bool:
        return any(d.pid == pid for d in self.running())
