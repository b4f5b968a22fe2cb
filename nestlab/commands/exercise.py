"""``nestlab exercise list|show|check|reset N``: the guided exercises of docs/exercises/.

``check`` is Killercoda's verify script: it reads the learner's lab and prints one line per thing
still missing, then ``exercise N: not done yet`` (exit 1), or ``exercise N: passed`` (exit 0).
``reset`` puts the lab back where the exercise starts. An unknown exercise or a lab that does not
answer is one line and exit 2. Thin: the checks are the exercise modules', the lab is
:class:`~nestlab.exercises.lablink.LabLink`.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from nestlab.errors import NestlabError
from nestlab.exercises import catalog, markdown
from nestlab.exercises.base import Exercise
from nestlab.exercises.lablink import LabLink

_LAB = click.option(
    "--name", "--lab", "lab", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab."
)


def _fail(error: NestlabError) -> NoReturn:
    for line in str(error).splitlines() or [type(error).__name__]:
        click.echo(f"error: {line}", err=True)
    sys.exit(error.exit_code)


def _console() -> Console:
    return Console(highlight=False, width=None if sys.stdout.isatty() else 100)


def _ready(lab: str, number: str) -> tuple[Exercise, LabLink]:
    """The exercise and its lab, answering; UsageError (exit 2) for an unknown one or a lab not up."""
    exercise = catalog.find(number)
    link = LabLink(lab)
    link.require_up()
    return exercise, link


@click.group("exercise")
def exercise() -> None:
    """Guided exercises (docs/exercises/): read one, do it on your lab, check your work."""


@exercise.command("list")
@_LAB
@click.option("--check", "run_checks", is_flag=True, help="Check each one on the lab (takes a while).")
def list_(lab: str, run_checks: bool) -> None:
    """Every exercise: number, title, minutes, and (with --check) whether your lab shows it done."""
    link: LabLink | None = None
    if run_checks:
        try:
            link = LabLink(lab)
            link.require_up()
        except NestlabError as exc:
            _fail(exc)
    table = Table(title="Exercises (docs/exercises/)", title_justify="left")
    for column in ("#", "title", "minutes", "done?"):
        table.add_column(column)
    for item in catalog.EXERCISES:
        state = "not checked"
        if link is not None:
            try:
                state = "done" if not item.check(link) else "not done"
            except NestlabError as exc:
                state = f"check failed: {exc}"
        table.add_row(str(item.number), item.title, str(item.minutes), state)
    _console().print(table)


@exercise.command("show")
@click.argument("number")
def show(number: str) -> None:
    """Print exercise NUMBER (what docs/exercises/NN-*.md says)."""
    try:
        item = catalog.find(number)
    except NestlabError as exc:
        _fail(exc)
    path = catalog.markdown_path(item)
    text = markdown.shown_text(path.read_text(encoding="utf-8"))
    console = _console()
    console.print(f"[dim]{path}[/]")
    console.print(Markdown(text, code_theme="ansi_dark"))


@exercise.command("check")
@click.argument("number")
@_LAB
def check(number: str, lab: str) -> None:
    """Check your lab: what exercise NUMBER still misses (exit 1), or that it passed (exit 0)."""
    try:
        item, link = _ready(lab, number)
        missing = item.check(link)
    except NestlabError as exc:
        _fail(exc)
    for line in missing:
        click.echo(f"- {line}")
    if missing:
        click.echo(f"exercise {item.number}: not done yet")
        sys.exit(1)
    click.echo(f"exercise {item.number}: passed")


@exercise.command("reset")
@click.argument("number")
@_LAB
def reset(number: str, lab: str) -> None:
    """Put the lab back where exercise NUMBER starts (deletes what its steps made)."""
    try:
        item, link = _ready(lab, number)
        item.reset(link)
    except NestlabError as exc:
        _fail(exc)
    click.echo(f"exercise {item.number}: reset")


if __name__ == "__main__":  # `python -m nestlab.commands.exercise` until the lead registers the group
    exercise()
