"""``nestlab drill NAME [--json]`` and ``nestlab drill --list``: the failure drills of nestlab.drills.

Thin: finds the drill, runs it on the lab with progress lines on stderr (stdout stays the report,
so ``--json`` output can be piped), prints the report. Exit 0 when every check of the drill held,
1 when one did not (the lab is restored either way), 2 for an unknown drill or a lab that is not
up and healthy (one line).
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import NoReturn

import click
from rich.console import Console

from nestlab import progress
from nestlab.drills import catalog
from nestlab.drills.base import run
from nestlab.drills.lab import DrillLab
from nestlab.drills.report import render_json, render_text
from nestlab.errors import EXIT_BAD_INPUT, NestlabError


def _fail(error: NestlabError) -> NoReturn:
    for line in str(error).splitlines() or [type(error).__name__]:
        click.echo(f"error: {line}", err=True)
    sys.exit(error.exit_code)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _restore_on_signals() -> None:
    """SIGTERM and SIGHUP (and SIGINT, even when a non-interactive shell started us with it
    ignored) interrupt the drill like Ctrl-C: its restore steps run before the process ends."""
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


@click.command("drill")
@click.argument("drill_name", metavar="NAME", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (progress stays on stderr).")
@click.option("--list", "list_only", is_flag=True, help="List the drills and what each measures.")
@click.option(
    "--name", "--lab", "lab", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab."
)
def drill(drill_name: str | None, as_json: bool, list_only: bool, lab: str) -> None:
    """Break the lab on purpose, measure the outcome, restore it, explain it in vSphere terms.

    NAME is one of the drills `nestlab drill --list` shows. The lab must be up and healthy; the
    drill always restores what it broke and waits until the lab is whole before it reports.
    """
    if list_only:
        for item in catalog.DRILLS:
            click.echo(f"{item.name:27} {item.summary}")
        return
    if drill_name is None:
        click.echo(f"error: name a drill ({', '.join(catalog.names())}) or pass --list", err=True)
        sys.exit(EXIT_BAD_INPUT)
    _restore_on_signals()
    try:
        chosen = catalog.find(drill_name)
        with progress.for_console(Console(stderr=True, highlight=False)) as shown:
            report = run(chosen, DrillLab(lab), shown)
    except NestlabError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.echo(f"drill {drill_name}: interrupted; its restore steps ran (see above)", err=True)
        sys.exit(130)
    click.echo(render_json(report) if as_json else render_text(report))
    sys.exit(0 if report.passed else 1)


if __name__ == "__main__":  # `python -m nestlab.commands.drill` until the lead registers the command
    drill()
