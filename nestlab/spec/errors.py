"""Spec errors that name the field path and say what to do, collected rather than raised one by one.

A user fixing a spec wants every problem at once, each pointing at the field (``spec.hosts.count``)
with a fix, so parsing records :class:`SpecIssue` values and raises one :class:`SpecError` at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

from nestlab.errors import UsageError


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec."""

    path: str
    """Dotted field path, e.g. ``spec.networks.management`` or ``spec.hosts.nodes[1].name``."""
    message: str
    """What is wrong, naming the value that was given."""
    hint: str = ""
    """What to change; empty when the message already says it."""

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}"
        return f"{text}; {self.hint}" if self.hint else text


class SpecError(UsageError):
    """A spec was refused; ``issues`` lists every problem found, in document order."""

    def __init__(self, issues: list[SpecIssue], source: str = "") -> None:
        self.issues = tuple(issues)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(f"{prefix}{issue}" for issue in self.issues))
