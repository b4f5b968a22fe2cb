"""Errors of the local substrate, each saying what failed and what the user can do about it."""

from __future__ import annotations

from nestlab.errors import NestlabError, UsageError


class LocalSubstrateError(NestlabError):
    """Something on this machine stopped a local lab from being built or run."""


class ImageError(LocalSubstrateError):
    """The node image cannot be built (mirror unreachable, debootstrap or apt failed)."""


class LabClashError(UsageError):
    """The lab would collide with something already on this machine (bridge name, addresses)."""


class NodeUnreachableError(LocalSubstrateError):
    """A node booted but its sshd did not answer in time."""


class UnknownNodeError(UsageError):
    """A node name that is not in the lab's plan."""
