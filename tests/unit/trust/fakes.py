"""A fake process runner that records argv lists and answers from a script."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from nestlab.runtime.proc import ProcessError, Result

Answer = Callable[[tuple[str, ...], Path | None], Result | None]


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
    ) -> Result:
        args = tuple(argv)
        self.calls.append(args)
        result = self._answer(args, cwd) if self._answer else None
        result = result or Result(args, 0, "", "")
        if check and result.returncode != 0:
            raise ProcessError(f"{args[0]} exited {result.returncode}: {result.stderr}", result)
        return result

    def tools(self) -> list[str]:
        return [call[0] for call in self.calls]
