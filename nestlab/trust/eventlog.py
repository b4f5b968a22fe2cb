"""The measurement event log: its JSON format, a strict parser, and replay to expected PCR values.

A TPM only keeps the running hash of what was extended into each PCR; the log says what those
things were. A verifier replays the log (PCR := sha256(PCR || digest), from zero) and compares the
result with the PCR values the TPM signed: if they agree, every measurement is in the log, in
order, and nothing else was extended. Format (``nestlab-eventlog/1``)::

    {
      "format": "nestlab-eventlog/1",
      "hash": "sha256",
      "events": [
        {"seq": 0, "pcr": 11, "type": "pod-kernel", "digest": "<64 lowercase hex>",
         "description": "pod demo/web kernel",
         "data": {"pod": "demo/web", "path": "...", "sha256": "<sha256 of the kernel image>"}}
      ]
    }

``seq`` counts from 0 in log order. ``digest`` is what was extended into ``pcr``: the sha256 of the
event's canonical JSON ``{"data", "description", "type"}`` (sorted keys, no spaces, UTF-8), in the
way IMA's ima-ng template hash covers both a file's hash and its name. So the description (the
pod's name) is as bound by the TPM as the content hash in ``data.sha256``: renaming a pod in the
log, or swapping two pods that boot identical kernels, changes what replay gives. The parser
rejects an event whose digest does not match its own fields. See docs/trust.md for event types.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from nestlab.trust import pcrs
from nestlab.trust.errors import EventLogError

FORMAT: Final = "nestlab-eventlog/1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Event:
    """One measurement."""

    seq: int
    """Position in the log, from 0."""
    pcr: int
    """PCR index the digest was extended into."""
    type: str
    """What kind of thing was measured (see pcrs.ASSIGNMENT)."""
    digest: str
    """Template digest (see module doc), lowercase hex: exactly what was extended."""
    description: str
    """Human-readable: pod name, package name and version."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """Details for the policy: sha256 of the measured content, pod, path, cmdline, package version."""

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "pcr": self.pcr,
            "type": self.type,
            "digest": self.digest,
            "description": self.description,
            "data": dict(self.data),
        }


@dataclass(frozen=True)
class EventLog:
    """An ordered list of events since the TPM's last reset."""

    events: tuple[Event, ...] = ()

    def next_event(self, pcr: int, type_: str, description: str, data: Mapping[str, Any]) -> Event:
        """Not a mutation: returns the event the next log (see :meth:`with_event`) would end with."""
        digest = template_digest(type_, description, data)
        return Event(len(self.events), pcr, type_, digest, description, dict(data))

    def with_event(self, event: Event) -> EventLog:
        return EventLog((*self.events, event))

    def dumps(self) -> str:
        document = {"format": FORMAT, "hash": pcrs.HASH, "events": [e.to_json() for e in self.events]}
        return json.dumps(document, indent=1, sort_keys=True) + "\n"


def template_digest(type_: str, description: str, data: Mapping[str, Any]) -> str:
    """sha256 of the event's canonical JSON: what gets extended for it."""
    document = {"data": dict(data), "description": description, "type": type_}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def extend(value: bytes, digest: bytes) -> bytes:
    """What TPM2_PCR_Extend does in the sha256 bank."""
    return hashlib.sha256(value + digest).digest()


def replay(events: Iterable[Event], indexes: Iterable[int] = pcrs.MEASURED) -> dict[int, bytes]:
    """Expected values of PCRs ``indexes`` (plus any the log touches) after these events."""
    values = dict.fromkeys(indexes, pcrs.ZERO)
    for event in events:
        values[event.pcr] = extend(values.get(event.pcr, pcrs.ZERO), bytes.fromhex(event.digest))
    return values


def parse(text: str) -> EventLog:
    """Parse and validate a log; EventLogError names the first problem and where it is."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventLogError(
            f"event log is truncated or not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from exc
    if not isinstance(document, dict):
        raise EventLogError("event log must be a JSON object with format, hash and events")
    if document.get("format") != FORMAT:
        raise EventLogError(f"event log format is {document.get('format')!r}, expected {FORMAT!r}")
    if document.get("hash") != pcrs.HASH:
        raise EventLogError(f"event log hash is {document.get('hash')!r}, only {pcrs.HASH!r} is supported")
    raw_events = document.get("events")
    if not isinstance(raw_events, list):
        raise EventLogError("event log has no 'events' list")
    return EventLog(tuple(_event(position, raw) for position, raw in enumerate(raw_events)))


def _event(position: int, raw: object) -> Event:
    where = f"event log entry {position}"
    if not isinstance(raw, dict):
        raise EventLogError(f"{where} is not an object")
    missing = sorted({"seq", "pcr", "type", "digest", "description"} - raw.keys())
    if missing:
        raise EventLogError(f"{where} lacks {', '.join(missing)}")
    unknown = sorted(raw.keys() - {"seq", "pcr", "type", "digest", "description", "data"})
    if unknown:
        raise EventLogError(f"{where} has unknown fields {', '.join(unknown)}")
    seq, pcr, digest = raw["seq"], raw["pcr"], raw["digest"]
    if type(seq) is not int or seq != position:
        raise EventLogError(f"{where} has seq {seq!r}: events are missing or out of order")
    if type(pcr) is not int or not 0 <= pcr <= pcrs.MAX_PCR:
        raise EventLogError(f"{where} has pcr {pcr!r}, expected an integer 0-{pcrs.MAX_PCR}")
    if not isinstance(digest, str) or not _HEX64.match(digest):
        raise EventLogError(f"{where} digest must be 64 lowercase hex characters (sha256)")
    if not isinstance(raw["type"], str) or not isinstance(raw["description"], str):
        raise EventLogError(f"{where}: type and description must be strings")
    data = raw.get("data", {})
    if not isinstance(data, dict):
        raise EventLogError(f"{where}: data must be an object")
    if template_digest(raw["type"], raw["description"], data) != digest:
        raise EventLogError(f"{where} digest does not match its type, description and data: it was edited")
    return Event(seq, pcr, raw["type"], digest, raw["description"], data)
