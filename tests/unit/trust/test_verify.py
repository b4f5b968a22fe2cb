"""Verifier: judge recorded real evidence, and every way it can be wrong, failing closed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace

import pytest

from nestlab.trust import eventlog
from nestlab.trust.errors import SignatureError
from nestlab.trust.verdict import Verdict
from nestlab.trust.verify import Evidence, SignatureChecker, verify

from .helpers import (
    FIXTURES,
    NOW,
    accept_signature,
    recorded_evidence,
    recorded_nonce,
    recorded_policy,
    recorded_registration,
)


def judge(
    evidence: Evidence | None = None, nonce: bytes | None = None, check: SignatureChecker = accept_signature
) -> Verdict:
    return verify(
        registration=recorded_registration(),
        policy=recorded_policy(),
        nonce=recorded_nonce() if nonce is None else nonce,
        evidence=recorded_evidence() if evidence is None else evidence,
        check_signature=check,
        now=NOW,
    )


def log_with(change: Callable[[list[dict[str, object]]], None]) -> str:
    document = json.loads((FIXTURES / "events.json").read_text())
    change(document["events"])
    return json.dumps(document)


def test_clean_evidence_passes_with_everything_recorded() -> None:
    verdict = judge()
    assert verdict.passed, verdict.reasons
    assert verdict.reasons == ()
    assert verdict.policy_digest == recorded_policy().digest()
    assert [event.allowed for event in verdict.events] == [True] * 5
    assert verdict.pcrs[11] == json.loads((FIXTURES / "pcrs.json").read_text())["11"]
    document = json.loads(json.dumps(verdict.to_json()))
    assert document["passed"] is True
    assert document["host"] == "esx-01"
    assert document["time"] == "2026-11-21T12:00:00+00:00"
    assert document["events"][2]["description"] == "pod demo/web kernel"


def test_replayed_quote_fails_on_nonce() -> None:
    verdict = judge(nonce=b"\x01" * 32)
    assert not verdict.passed
    assert any(reason.startswith("nonce mismatch") for reason in verdict.reasons)


def test_bad_signature_fails() -> None:
    def refuse(ak: bytes, message: bytes, signature: bytes, nonce: bytes) -> None:
        raise SignatureError("quote signature does not verify with the registered AK")

    verdict = judge(check=refuse)
    assert not verdict.passed
    assert "quote signature does not verify with the registered AK" in verdict.reasons
    assert verdict.pcrs == {}


def test_quote_by_another_key_fails_on_signer() -> None:
    registration = recorded_registration()
    other = replace(registration, ek_public=registration.ak_public)  # same AK under another parent
    verdict = verify(
        registration=other,
        policy=recorded_policy(),
        nonce=recorded_nonce(),
        evidence=recorded_evidence(),
        check_signature=accept_signature,
        now=NOW,
    )
    assert not verdict.passed
    assert any("not by the AK registered for esx-01" in reason for reason in verdict.reasons)


def test_unexpected_exception_in_a_check_fails_closed() -> None:
    def explode(ak: bytes, message: bytes, signature: bytes, nonce: bytes) -> None:
        raise RuntimeError("checker crashed")

    verdict = judge(check=explode)
    assert not verdict.passed
    assert verdict.reasons == ("verification error: RuntimeError: checker crashed",)


def test_garbage_quote_fails() -> None:
    verdict = judge(replace(recorded_evidence(), message=b"\xffTCG"))
    assert not verdict.passed
    assert any("truncated" in reason for reason in verdict.reasons)


def test_truncated_log_fails() -> None:
    text = (FIXTURES / "events.json").read_text()
    verdict = judge(recorded_evidence(text[: len(text) // 2]))
    assert not verdict.passed
    assert any(reason.startswith("event log rejected: event log is truncated") for reason in verdict.reasons)


def test_log_missing_its_last_events_fails_replay() -> None:
    verdict = judge(recorded_evidence(log_with(lambda events: events.pop())))
    assert not verdict.passed
    assert any("PCR 11 replays to" in reason and "does not replay" in reason for reason in verdict.reasons)


def test_reordered_and_renumbered_log_fails_replay() -> None:
    def reorder(events: list[dict[str, object]]) -> None:
        events[2], events[3] = events[3], events[2]
        events[2]["seq"], events[3]["seq"] = 2, 3

    verdict = judge(recorded_evidence(log_with(reorder)))
    assert not verdict.passed
    assert any("PCR 11 replays to" in reason for reason in verdict.reasons)
    assert not any("PCR 8 " in reason for reason in verdict.reasons)


def test_event_renamed_in_the_log_is_rejected() -> None:
    def disguise(events: list[dict[str, object]]) -> None:
        events[2]["description"] = "pod kube-system/dns kernel"

    verdict = judge(recorded_evidence(log_with(disguise)))
    assert not verdict.passed
    assert any("entry 2 digest does not match" in reason for reason in verdict.reasons)


def test_event_rewritten_with_a_matching_digest_fails_replay() -> None:
    def disguise(events: list[dict[str, object]]) -> None:
        data = {**events[2]["data"], "sha256": hashlib.sha256(b"a kernel the policy knows").hexdigest()}  # type: ignore[dict-item]
        events[2]["data"] = data
        events[2]["digest"] = eventlog.template_digest("pod-kernel", "pod demo/web kernel", data)

    verdict = judge(recorded_evidence(log_with(disguise)))
    assert not verdict.passed
    assert any("PCR 11 replays to" in reason for reason in verdict.reasons)


def test_unknown_measurement_fails_policy_naming_the_event() -> None:
    policy = replace(recorded_policy(), kernels=frozenset())
    verdict = verify(
        registration=recorded_registration(),
        policy=policy,
        nonce=recorded_nonce(),
        evidence=recorded_evidence(),
        check_signature=accept_signature,
        now=NOW,
    )
    assert not verdict.passed
    assert verdict.reasons == (
        "1 event(s) not allowed by policy lab-default: pod demo/web kernel: pod-kernel digest "
        "304e178aa731e743… is not known to policy lab-default",
    )
    assert [event.allowed for event in verdict.events] == [True, True, False, True, True]


def test_pcr_values_that_do_not_match_the_signed_digest_are_not_reported() -> None:
    evidence = recorded_evidence()
    forged = replace(evidence, pcr_values={**evidence.pcr_values, 11: bytes(32)})
    verdict = judge(forged)
    # the signed digest still matches the log: the host's claim is ignored, the replayed values reported
    assert verdict.passed
    assert verdict.pcrs[11] == evidence.pcr_values[11].hex()


def test_inconsistent_registration_fails() -> None:
    registration = replace(recorded_registration(), ak_name=b"\x00\x0b" + bytes(32))
    verdict = verify(
        registration=registration,
        policy=recorded_policy(),
        nonce=recorded_nonce(),
        evidence=recorded_evidence(),
        check_signature=accept_signature,
        now=NOW,
    )
    assert not verdict.passed
    assert "registration is inconsistent" in verdict.reasons[0]


@pytest.mark.parametrize("pcr", [8, 9, 11])
def test_event_dropped_from_any_pcr_names_that_pcr(pcr: int) -> None:
    def drop(events: list[dict[str, object]]) -> None:
        index = next(i for i, event in enumerate(events) if event["pcr"] == pcr)
        del events[index]
        for seq, event in enumerate(events):
            event["seq"] = seq

    verdict = judge(recorded_evidence(log_with(drop)))
    assert not verdict.passed
    assert any(f"PCR {pcr} replays to" in reason for reason in verdict.reasons)
