"""The exception hierarchy every nestlab layer raises, so callers catch meaning, not library types.

Each error carries the process exit code the CLI should use: 2 for input the user can correct
(a bad spec, an unknown node name), 1 for a failure of the machine or of a component.
"""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


class NestlabError(Exception):
    """Base of every error nestlab raises on purpose; its message is written for the user."""

    exit_code = EXIT_FAILURE


class UsageError(NestlabError):
    """The user's input (arguments, files) is wrong; the message says what to change."""

    exit_code = EXIT_BAD_INPUT
