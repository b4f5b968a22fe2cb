"""The result of an attestation: what was checked, what passed, and every reason it did not.

JSON-serializable so the API server can store it and a user can read it; ``passed`` is only ever
True when the verifier ran every check and found no reason to fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NewType

HostName = NewType("HostName", str)


@dataclass(frozen=True)
class EventVerdict:
    """One event of the log, judged against the policy."""

    seq: int
    pcr: int
    type: str
    description: str
    digest: str
    allowed: bool
    reason: str | None
    """Why the policy refuses it; None when allowed."""

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "pcr": self.pcr,
            "type": self.type,
            "description": self.description,
            "digest": self.digest,
            "allowed": self.allowed,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Verdict:
    """Whether a host proved it booted and launched only known-good things."""

    host: HostName
    time: str
    """When the verifier judged, ISO 8601 UTC."""
    pcrs: Mapping[int, str]
    """The quoted sha256 PCR values (hex) the TPM signed, empty when the quote was not authentic."""
    events: tuple[EventVerdict, ...]
    policy_digest: str
    """sha256 of the policy's canonical JSON: which policy judged."""
    passed: bool
    reasons: tuple[str, ...]
    """Every reason the attestation failed; empty exactly when passed."""
    firmware_events: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """The firmware log, summarized: PCR -> TCG event type (EV_EFI_...) -> count; empty without one."""

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "time": self.time,
            "pcrs": {str(index): value for index, value in sorted(self.pcrs.items())},
            "events": [event.to_json() for event in self.events],
            "policyDigest": self.policy_digest,
            "passed": self.passed,
            "reasons": list(self.reasons),
            "firmwareEvents": {pcr: dict(kinds) for pcr, kinds in self.firmware_events.items()},
        }
