"""A fake process runner for unit tests: records argv lists and answers from a script.

It has the signature of :func:`nestlab.runtime.proc.run`, so any code that takes a runner can be
handed one; real processes are for the integration tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from nestlab.runtime.proc import ProcessError, Result

Answer = Callable[[tuple[str, ...], Path | None], Result | None]
"""Given argv and cwd: a Result, None for success with no output, or raise."""


class FakeRunner:
    """Records every call; ``answer`` may return a Result, or None for success with empty output."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self._answer = answer

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
    ) -> Result:
        args = tuple(argv)
        self.calls.append(args)
        result = self._answer(args, cwd) if self._answer else None
        result = result or Result(args, 0, "", "")
        if check and result.returncode != 0:
            raise ProcessError(f"{args[0]} exited {result.returncode}: {result.stderr}", result)
        return result

    def tools(self) -> list[str]:
        """The program names called, in order."""
        return [call[0] for call in self.calls]


def answering(returncode: int, stdout: str = "", stderr: str = "") -> FakeRunner:
    """A runner that answers every call with the same exit code and output."""
    return FakeRunner(lambda args, _cwd: Result(args, returncode, stdout, stderr))
