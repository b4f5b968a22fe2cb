"""Warnings for the client, raised deep in admission and sent as ``Warning: 299`` headers.

Upstream answers some accepted-but-surprising requests with a warning kubectl prints (``Warning:
...``): a RoleBinding to a role that does not exist is stored, as upstream stores it, and grants
nothing until the role appears; a learner who typed the role's name wrong should hear that at once.
Admission hooks call :func:`warn`; the handlers open a collection per write and send what it holds.
"""

from __future__ import annotations

import contextvars

_PENDING: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("nestlab_notices", default=None)


def collect() -> list[str]:
    """Start collecting this request's warnings; the returned list fills as hooks warn."""
    pending: list[str] = []
    _PENDING.set(pending)
    return pending


def warn(text: str) -> None:
    """A warning for the current request's client (dropped outside a request, e.g. at bootstrap)."""
    pending = _PENDING.get()
    if pending is not None and text not in pending:
        pending.append(text)
