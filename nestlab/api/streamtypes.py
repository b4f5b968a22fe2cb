"""What the API server's client-facing stream protocols and its node-agent sessions agree on.

``kubectl exec/attach/cp/port-forward`` reach the API server over one of three protocols
(WebSocket ``v5.channel.k8s.io`` and its predecessors, SPDY/3.1, or SPDY tunneled in a WebSocket),
and the API server reaches the pod through one node-agent session. The protocol adapters and the
agent sessions meet at these two shapes, so each adapter works with any backend and each can be
tested with an in-process one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from nestlab.errors import NestlabError

STDIN: Final = 0
STDOUT: Final = 1
STDERR: Final = 2
ERROR: Final = 3
"""One JSON v1 Status when the command ends (Success, or Failure with NonZeroExitCode)."""
RESIZE: Final = 4
"""JSON ``{"Width": W, "Height": H}`` (terminal columns and rows)."""
CLOSE: Final = 255
"""v5.channel.k8s.io: payload one byte, the channel the sender will not write to again."""


class StreamError(NestlabError):
    """A stream session could not be opened or broke; the message says what to check."""


@dataclass(frozen=True)
class StreamOptions:
    """What the client asked for (the query of ``pods/exec`` and ``pods/attach``)."""

    container: str
    command: tuple[str, ...] = ()
    """Empty for attach."""
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False


class ChannelBackend(Protocol):
    """One exec or attach session towards the pod, in v5.channel.k8s.io channel terms."""

    async def send(self, channel: int, data: bytes) -> None:
        """Send stdin (0), a resize (4) or a close (255) to the pod."""
        ...

    async def receive(self) -> tuple[int, bytes] | None:
        """The next stdout (1), stderr (2) or final Status (3) message; None once the session ended."""
        ...

    async def close(self) -> None:
        """End the session (idempotent); the pod side stops the process if it still runs."""
        ...


class ByteBackend(Protocol):
    """One forwarded TCP connection to a port inside the pod."""

    async def send(self, data: bytes) -> None:
        """Bytes towards the pod's socket."""
        ...

    async def receive(self) -> bytes | None:
        """Bytes from the pod's socket; None once the pod side closed."""
        ...

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        ...
