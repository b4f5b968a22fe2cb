"""What can go wrong with the datastore, as NestlabErrors a caller can branch on and a user can act on.

The service raises these and answers each with its HTTP status (:data:`STATUS`); the client turns
an answer back into the same class, so the controller catches ``VolumeNotFoundError`` whether the
datastore said so over HTTPS or a unit test's fake raised it directly.
"""

from __future__ import annotations

from nestlab.errors import EXIT_BAD_INPUT, NestlabError


class DatastoreError(NestlabError):
    """Base of every datastore failure; the message says what failed and what to do."""


class DatastoreRequestError(DatastoreError):
    """The request itself is wrong (a size, a name, a filesystem the datastore cannot make)."""

    exit_code = EXIT_BAD_INPUT


class VolumeNotFoundError(DatastoreError):
    """No volume has this id (deleted already, or never created here)."""


class VolumeConflictError(DatastoreError):
    """The volume exists in another shape, or is attached where the request needs it detached."""


class DatastoreFullError(DatastoreError):
    """No room: the volumes' filesystem or the NBD port range is exhausted."""


class DatastoreForbiddenError(DatastoreError):
    """The client's certificate is from the lab CA but is not one the datastore serves."""


class DatastoreUnavailableError(DatastoreError):
    """The datastore could not be reached, or failed inside (its message and log say why)."""


STATUS: dict[type[DatastoreError], int] = {
    DatastoreRequestError: 400,
    DatastoreForbiddenError: 403,
    VolumeNotFoundError: 404,
    VolumeConflictError: 409,
    DatastoreFullError: 507,
    DatastoreUnavailableError: 503,
}
"""The HTTP status of each error (anything else is a 500)."""


def status_of(error: DatastoreError) -> int:
    """The HTTP status the service answers ``error`` with."""
    for kind, code in STATUS.items():
        if isinstance(error, kind):
            return code
    return 500


def from_status(code: int, message: str) -> DatastoreError:
    """The error an answer with HTTP status ``code`` stands for."""
    for kind, known in STATUS.items():
        if known == code:
            return kind(message)
    return DatastoreUnavailableError(message)
