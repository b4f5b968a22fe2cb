"""The one place nestlab runs a process: argv lists, a timeout always, never a shell.

Callers receive :class:`Result` or a :class:`ProcessError` whose message names the command, its
exit code and the tail of its error output, which is what a user needs to act.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nestlab.errors import NestlabError

_TAIL = 2000  # characters of stderr kept in an error message: enough for the real cause
_TAIL_LINES = 20  # output lines a streamed command's error quotes: make's own error is in the last few


@dataclass(frozen=True)
class Result:
    """A finished process."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class ProcessError(NestlabError):
    """A command failed, timed out, or is not installed."""

    def __init__(self, message: str, result: Result | None = None) -> None:
        super().__init__(message)
        self.result = result


class Runner(Protocol):
    """The signature of :func:`run`, for code that takes a runner as a parameter."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        check: bool = True,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        capture: bool = True,
    ) -> Result: ...


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    check: bool = True,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    capture: bool = True,
) -> Result:
    """Run ``argv`` to completion and capture its output as text (or let it through to ours)."""
    args = tuple(str(arg) for arg in argv)
    try:
        done = subprocess.run(  # noqa: S603 - argv list, no shell
            args,
            input=stdin,
            capture_output=capture,
            text=True,
            errors="replace",
            timeout=timeout,
            env=None if env is None else dict(env),
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ProcessError(f"{args[0]} is not installed (run scripts/bootstrap.sh)") from exc
    except subprocess.TimeoutExpired as exc:
        raise ProcessError(f"{' '.join(args)} did not finish within {timeout:g}s") from exc
    result = Result(args, done.returncode, done.stdout or "", done.stderr or "")
    if check and done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-_TAIL:]
        raise ProcessError(f"{' '.join(args)} exited {done.returncode}: {tail}", result)
    return result


class Process:
    """A long-running child (QEMU, swtpm, etcd, nspawn) started by :func:`spawn`; stop it by PID."""

    def __init__(self, popen: subprocess.Popen[bytes], argv: tuple[str, ...]) -> None:
        self._popen = popen
        self.argv = argv
        self.pid = popen.pid

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""
        return self._popen.poll()

    def wait(self, timeout: float) -> int:
        """Wait for exit; ProcessError when it is still running after ``timeout`` seconds."""
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise ProcessError(f"{self.argv[0]} (pid {self.pid}) still running after {timeout:g}s") from exc

    def stop(self, grace: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
        if self._popen.poll() is None:
            self._popen.terminate()
            try:
                return self._popen.wait(grace)
            except subprocess.TimeoutExpired:
                self._popen.kill()
        return self._popen.wait()

    def stop_group(self, grace: float = 5.0) -> int:
        """Like :meth:`stop`, for the whole process group of a child spawned in a session of its own
        (``new_session``): a command that runs others (``nestlab up`` -> ansible-playbook and its
        workers) leaves none behind. Whatever of the group outlives ``grace`` gets SIGKILL."""
        code = self._popen.poll()
        if code is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._popen.wait(grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        return code if code is not None else self._popen.wait()


def spawn(
    argv: Sequence[str],
    *,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    new_session: bool = True,
) -> Process:
    """Start ``argv`` in the background, stdout and stderr appended to ``log`` (or discarded)."""
    args = tuple(str(arg) for arg in argv)
    sink = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        popen = subprocess.Popen(  # noqa: S603 - argv list, no shell
            args,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=new_session,
        )
    except FileNotFoundError as exc:
        raise ProcessError(f"{args[0]} is not installed (run scripts/bootstrap.sh)") from exc
    finally:
        if log is not None and not isinstance(sink, int):
            sink.close()
    return Process(popen, args)


def run_streamed(
    argv: Sequence[str],
    *,
    timeout: float,
    log: Path,
    on_line: Callable[[str], None],
    noise: Callable[[str], bool] = lambda _line: False,
    env: dict[str, str] | None = None,
) -> None:
    """Run ``argv`` (stderr merged into stdout); each line is appended to ``log`` and given to
    ``on_line`` as it arrives. ProcessError (naming the log) on a non-zero exit or the timeout: it
    quotes the last output lines that are not ``noise`` (progress lines say nothing about a failure)."""
    args = tuple(str(arg) for arg in argv)
    log.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    try:
        child = subprocess.Popen(  # noqa: S603 - argv list, no shell
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
            start_new_session=True,  # the watchdog kills make and every compiler it started
        )
    except FileNotFoundError as exc:
        raise ProcessError(f"{args[0]} is not installed (run scripts/bootstrap.sh)") from exc
    expired = threading.Event()

    def kill() -> None:
        expired.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)

    watchdog = threading.Timer(timeout, kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        assert child.stdout is not None  # noqa: S101 - stdout=PIPE above
        with log.open("a", encoding="utf-8", buffering=1) as out:  # line-buffered: `tail -f` works
            for raw in child.stdout:
                out.write(raw)
                line = raw.rstrip("\n")
                if not noise(line):
                    tail.append(line)
                on_line(line)
        code = child.wait()
    finally:
        watchdog.cancel()
        if child.poll() is None:  # on_line raised (Ctrl-C): do not leave make running
            kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    if expired.is_set():
        raise ProcessError(f"{' '.join(args)} did not finish within {timeout:g}s; full log: {log}")
    if code != 0:
        lines = " | ".join(t.strip() for t in tail if t.strip())[-1500:]
        raise ProcessError(f"{' '.join(args)} exited {code}: {lines}; full log: {log}")
