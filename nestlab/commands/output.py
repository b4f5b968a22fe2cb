"""What the lab's commands print: errors as one red line each, tables, time-stamped progress.

Shared by :mod:`nestlab.commands.lab` and :mod:`nestlab.commands.nodes`; cheap to import (rich's
console only), so a command that loads nothing else starts fast.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import NoReturn

from rich.console import Console

from nestlab.errors import NestlabError

NAME_HELP = "The lab's name (default: the spec's metadata.name, else 'default')."


def fail(error: NestlabError) -> NoReturn:
    """Print ``error`` as one ``error:`` line per line of its message; exit with its code."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for line in str(error).splitlines() or [type(error).__name__]:
        err.print(f"[bold red]error:[/] {line}", markup=True)
    sys.exit(error.exit_code)


def console() -> Console:
    """Standard output; 120 columns when it is not a terminal, so piped tables stay readable."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def printer() -> Callable[[str], None]:
    """A progress callback that prints each message on its own time-stamped line."""
    shown_on = console()

    def show(message: str) -> None:
        shown_on.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", markup=True, highlight=False)

    return show
