"""What an exercise is, as code: the check that says whether the learner got there, and the reset
that puts the lab back to the exercise's starting point (Killercoda's verify and setup scripts).

The text of exercise N lives in ``docs/exercises/NN-slug.md`` (its commands run as tests, see
:mod:`nestlab.exercises.markdown`); its :class:`Exercise` lives in ``nestlab/exercises/exNN_slug.py``
and is listed once in :data:`nestlab.exercises.catalog.EXERCISES`. Checks and resets talk to the lab
only through :class:`Lab`, so unit tests hand them a fake and ``nestlab exercise`` the real lab.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

Obj = dict[str, Any]


class Lab(Protocol):
    """The lab as a check or reset sees it (lab-admin credentials; read with the API, act by commands)."""

    name: str
    """The lab's name (``default`` for ``make up``; ``e2e`` in the test suite)."""

    def get(self, path: str) -> Obj | None:
        """GET an API path (``/api/v1/namespaces/ex03/pods/web``); None when it answers 404."""
        ...

    def items(self, path: str) -> list[Obj]:
        """The ``items`` of a list path (``/apis/apps/v1/namespaces/ex05/deployments``)."""
        ...

    def kubectl(self, *args: str, check: bool = True) -> str:
        """Run the machine's kubectl against the lab (admin kubeconfig); its stdout."""
        ...

    def nestlab(self, *args: str, check: bool = True) -> str:
        """Run this venv's ``nestlab`` against the lab (``NESTLAB_LAB`` set); its stdout."""
        ...

    def ssh(self, node: str, command: str, check: bool = True) -> str:
        """Run a shell command on a lab node (``nestlab ssh``); its stdout."""
        ...

    def node_running(self, node: str) -> bool:
        """Whether the lab node's machine runs (``nestlab status``)."""
        ...


@dataclass(frozen=True)
class Exercise:
    """One exercise: its number and slug name the Markdown file ``docs/exercises/NN-slug.md``."""

    number: int
    slug: str
    title: str
    minutes: int
    """How long it takes a person (the docs' front door lists it)."""
    check: Callable[[Lab], list[str]]
    """What is still missing, one plain sentence each; empty when the exercise is done."""
    reset: Callable[[Lab], None]
    """Undo the learner's steps (delete the exercise's namespace, start stopped nodes, ...); idempotent."""
    destructive: bool = False
    """It stops nodes or services on purpose (the suite runs these last)."""
