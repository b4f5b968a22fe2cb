"""The verifier: judge a host's quote and event log against its registration and a policy.

Pure except for the signature check, which is passed in (tpm.check_quote_signature runs
tpm2_checkquote; unit tests pass a fake). Fail closed: every step that cannot be completed adds a
reason, and any unexpected exception becomes a failed verdict naming it, never a pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from nestlab.trust import eventlog, firmware, pcrs, tpmstruct
from nestlab.trust.errors import EventLogError, QuoteFormatError, SignatureError
from nestlab.trust.eventlog import Event
from nestlab.trust.firmware import FirmwareLogError
from nestlab.trust.policy import Policy, check_event, check_firmware
from nestlab.trust.verdict import EventVerdict, HostName, Verdict

#: (AK TPM2B_PUBLIC, quote message, signature, nonce in the quote) -> None, or raises SignatureError
SignatureChecker = Callable[[bytes, bytes, bytes, bytes], None]


@dataclass(frozen=True)
class Registration:
    """What the verifier recorded when the host enrolled (see attest.register)."""

    host: HostName
    ek_public: bytes
    """The host TPM's endorsement key, TPM2B_PUBLIC."""
    ak_public: bytes
    """Its restricted signing attestation key, TPM2B_PUBLIC."""
    ak_name: bytes
    """nameAlg || sha256(AK public area), as the TPM names it."""


@dataclass(frozen=True)
class Evidence:
    """What the host sends back for one challenge."""

    message: bytes
    """TPMS_ATTEST the TPM signed."""
    signature: bytes
    """TPMT_SIGNATURE over message."""
    pcr_values: Mapping[int, bytes]
    """The quoted PCR values as the host reports them (authenticated here against the signed digest)."""
    event_log: str
    """The event log text, taken under the same lock as the quote."""
    firmware_log: bytes = b""
    """The firmware's binary TCG event log (explains PCRs 0-7); empty on a host without firmware."""


def _short(value: bytes) -> str:
    return value.hex()[:16] + "…"


def verify(
    *,
    registration: Registration,
    policy: Policy,
    nonce: bytes,
    evidence: Evidence,
    check_signature: SignatureChecker,
    now: datetime,
) -> Verdict:
    """Judge ``evidence`` gathered for challenge ``nonce``; never raises."""
    try:
        return _verify(
            registration=registration,
            policy=policy,
            nonce=nonce,
            evidence=evidence,
            check_signature=check_signature,
            now=now,
        )
    except Exception as exc:  # fail closed: whatever broke, the host did not prove anything
        return Verdict(
            registration.host,
            now.isoformat(),
            {},
            (),
            "",
            False,
            (f"verification error: {type(exc).__name__}: {exc}",),
        )


def _verify(
    *,
    registration: Registration,
    policy: Policy,
    nonce: bytes,
    evidence: Evidence,
    check_signature: SignatureChecker,
    now: datetime,
) -> Verdict:
    reasons: list[str] = []
    quoted: dict[int, str] = {}
    quote_digest: bytes | None = None
    try:
        ak = tpmstruct.parse_public(registration.ak_public)
        if ak.name != registration.ak_name:
            reasons.append("registration is inconsistent: the AK name does not match the AK public area")
        expected_signer = tpmstruct.ak_qualified_name(registration.ek_public, registration.ak_public)
        quote = tpmstruct.parse_quote(evidence.message)
        if quote.nonce != nonce:
            reasons.append(
                f"nonce mismatch: the quote answers challenge {_short(quote.nonce)}, not {_short(nonce)} "
                "(a replayed old quote?)"
            )
        if quote.signer != expected_signer:
            reasons.append(
                f"quote signed by key {_short(quote.signer)}, not by the AK registered for "
                f"{registration.host} ({_short(expected_signer)})"
            )
        check_signature(registration.ak_public, evidence.message, evidence.signature, quote.nonce)
        quote_digest = quote.pcr_digest
        if quote.selection != ((tpmstruct.TPM_ALG_SHA256, pcrs.QUOTED),):
            reasons.append(f"quote covers {quote.selection}, expected sha256 PCRs {pcrs.QUOTED}")
        reported = b"".join(evidence.pcr_values.get(index, b"") for index in pcrs.QUOTED)
        if hashlib.sha256(reported).digest() == quote.pcr_digest:
            quoted = {index: evidence.pcr_values[index].hex() for index in pcrs.QUOTED}
    except (QuoteFormatError, SignatureError) as exc:
        reasons.append(str(exc))

    events, firmware_log, log_reasons = _parse_logs(evidence)
    reasons.extend(log_reasons)
    if not log_reasons:
        fw_events = firmware_log.events if firmware_log else ()
        replay_reasons, replayed = _replay(fw_events, events, quote_digest, quoted)
        reasons.extend(replay_reasons)
        quoted = replayed or quoted
    if quoted:  # authentic values only: judging forged ones would explain nothing
        firmware_reason = check_firmware(policy, {i: bytes.fromhex(quoted[i]) for i in pcrs.FIRMWARE})
        if firmware_reason:
            reasons.append(firmware_reason)

    judged = tuple(_judge(policy, event) for event in events)
    refused = [event for event in judged if not event.allowed]
    if refused:
        reasons.append(f"{len(refused)} event(s) not allowed by policy {policy.name}: {refused[0].reason}")
    if quote_digest is None and not reasons:
        reasons.append("quote was not verified")  # unreachable by construction; fail closed regardless
    summary = firmware_log.summary() if firmware_log else {}
    return Verdict(
        registration.host,
        now.isoformat(),
        quoted,
        judged,
        policy.digest(),
        not reasons,
        tuple(reasons),
        summary,
    )


def _parse_logs(evidence: Evidence) -> tuple[tuple[Event, ...], firmware.FirmwareLog | None, list[str]]:
    """nestlab's events, the firmware log (None when the host sent none) and why either was rejected."""
    events: tuple[Event, ...] = ()
    firmware_log = None
    reasons = []
    try:
        events = eventlog.parse(evidence.event_log).events
    except EventLogError as exc:
        reasons.append(f"event log rejected: {exc}")
    try:
        firmware_log = firmware.parse(evidence.firmware_log) if evidence.firmware_log else None
    except FirmwareLogError as exc:
        reasons.append(f"firmware event log rejected: {exc}")
    return events, firmware_log, reasons


def _replay(
    firmware_events: tuple[firmware.FirmwareEvent, ...],
    events: tuple[Event, ...],
    quote_digest: bytes | None,
    quoted: Mapping[int, str],
) -> tuple[list[str], dict[int, str]]:
    """Reasons the logs do not explain the quote, and the PCR values when they do (then authentic).

    The firmware's events come first (they happened before the OS ran), nestlab's on top of them.
    """
    reasons = [
        f"event {event.seq} ({event.description}) is in PCR {event.pcr}, which nestlab does not measure into"
        for event in events
        if event.pcr not in pcrs.MEASURED
    ]
    if quote_digest is None:
        return reasons, {}
    expected = firmware.replay(firmware_events, pcrs.QUOTED)
    for event in events:
        if event.pcr in expected:
            expected[event.pcr] = eventlog.extend(expected[event.pcr], bytes.fromhex(event.digest))
    if hashlib.sha256(b"".join(expected[index] for index in pcrs.QUOTED)).digest() == quote_digest:
        return reasons, {index: expected[index].hex() for index in pcrs.QUOTED}
    differing = [index for index in pcrs.QUOTED if quoted and quoted[index] != expected[index].hex()]
    where = ", ".join(
        f"PCR {index} replays to {_short(expected[index])} but the TPM quoted {quoted[index][:16]}…"
        for index in differing
    )
    only_firmware = bool(differing) and all(index in pcrs.FIRMWARE for index in differing)
    reasons.append(
        ("firmware event log" if only_firmware else "event log")
        + " does not replay to the quoted PCRs"
        + (f" ({where})" if where else "")
        + ": the log is incomplete or reordered, or something was measured without being logged"
    )
    return reasons, {}


def _judge(policy: Policy, event: Event) -> EventVerdict:
    reason = check_event(policy, event)
    return EventVerdict(
        event.seq, event.pcr, event.type, event.description, event.digest, reason is None, reason
    )
