"""Every exercise, in order: found by importing each ``nestlab/exercises/exNN_*.py`` module, so
adding an exercise is adding its module (with ``EXERCISE = Exercise(...)``) and its Markdown file.

The module's two digits must be the exercise's number and its slug the Markdown file's
(``ex05_rolling_update.py`` -> ``docs/exercises/05-rolling-update.md``); a slip fails at import
with a message naming the module, and the unit tests import the catalog.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

from nestlab.errors import UsageError
from nestlab.exercises.base import Exercise
from nestlab.paths import repo_root

_MODULE = re.compile(r"^ex(\d\d)_[a-z0-9_]+$")


class CatalogError(RuntimeError):
    """An exercise module that does not fit the catalog (a programming error, not the user's)."""


def _discover() -> tuple[Exercise, ...]:
    found: dict[int, Exercise] = {}
    package = Path(__file__).parent
    for info in sorted(pkgutil.iter_modules([str(package)]), key=lambda m: m.name):
        match = _MODULE.match(info.name)
        if match is None:
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        exercise = getattr(module, "EXERCISE", None)
        if not isinstance(exercise, Exercise):
            raise CatalogError(f"{module.__name__} has no EXERCISE = Exercise(...)")
        if exercise.number != int(match.group(1)):
            raise CatalogError(
                f"{module.__name__} defines exercise {exercise.number}, its name says {match.group(1)}"
            )
        if exercise.number in found:
            raise CatalogError(f"{module.__name__}: exercise {exercise.number} is defined twice")
        found[exercise.number] = exercise
    return tuple(found[number] for number in sorted(found))


EXERCISES: tuple[Exercise, ...] = _discover()
"""Every exercise, sorted by number (01-04 tour to image service; 05-08 workloads, network and
storage; 09-13 failures, maintenance and trust)."""


def markdown_path(exercise: Exercise) -> Path:
    """``docs/exercises/NN-slug.md`` of the exercise."""
    return repo_root() / "docs" / "exercises" / f"{exercise.number:02d}-{exercise.slug}.md"


def find(number: str | int) -> Exercise:
    """Exercise ``number`` (``3`` or ``03``); UsageError naming the ones there are."""
    try:
        wanted = int(number)
    except ValueError:
        wanted = -1
    for exercise in EXERCISES:
        if exercise.number == wanted:
            return exercise
    known = ", ".join(str(e.number) for e in EXERCISES) or "none yet"
    raise UsageError(f"no exercise {number!r} (exercises: {known}; `nestlab exercise list`)")
