"""Recorded evidence (see record_fixtures.py) and builders the trust unit tests share."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from nestlab.trust.eventlog import parse
from nestlab.trust.policy import Policy
from nestlab.trust.verdict import HostName
from nestlab.trust.verify import Evidence, Registration

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def recorded_nonce() -> bytes:
    return bytes.fromhex((FIXTURES / "nonce.hex").read_text().strip())


def recorded_registration() -> Registration:
    from nestlab.trust.tpmstruct import parse_public

    ak_public = fixture_bytes("ak.pub")
    return Registration(HostName("esx-01"), fixture_bytes("ek.pub"), ak_public, parse_public(ak_public).name)


def recorded_evidence(event_log: str | None = None) -> Evidence:
    values = json.loads((FIXTURES / "pcrs.json").read_text())
    return Evidence(
        fixture_bytes("quote.msg"),
        fixture_bytes("quote.sig"),
        {int(index): bytes.fromhex(value) for index, value in values.items()},
        (FIXTURES / "events.json").read_text() if event_log is None else event_log,
    )


def recorded_policy(name: str = "lab-default") -> Policy:
    """A policy allowing exactly what the recorded host measured."""
    events = parse((FIXTURES / "events.json").read_text()).events
    by_type = {event.type: event.data.get("sha256", "") for event in events}
    return Policy(
        name=name,
        packages={"nestlab-agent": frozenset({by_type["package"]})},
        kernels=frozenset({by_type["pod-kernel"]}),
        initramfs=frozenset({by_type["pod-initramfs"]}),
        configs=frozenset({by_type["config"]}),
        forbidden_cmdline_args=("init=", "rdinit="),
    )


def accept_signature(ak: bytes, message: bytes, signature: bytes, nonce: bytes) -> None:
    """A signature checker that accepts: the unit tests check everything around the signature."""
