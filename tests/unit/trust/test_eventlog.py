"""Event log: replay against values a real TPM produced, and the parser's refusals."""

from __future__ import annotations

import hashlib
import json

import pytest

from nestlab.trust import eventlog, pcrs
from nestlab.trust.errors import EventLogError
from nestlab.trust.eventlog import EventLog

from .helpers import FIXTURES


def recorded_text() -> str:
    return (FIXTURES / "events.json").read_text()


def test_one_extend_matches_a_real_tpm() -> None:
    # swtpm: tpm2_pcrextend 11:sha256=sha256("hello") on a fresh PCR 11 gave this value
    digest = hashlib.sha256(b"hello").digest()
    expected = "9851312028952521510e8eaab5be94e7dc24b5fc292b2e9781173cf11ffa9878"
    assert eventlog.extend(bytes(32), digest).hex() == expected


def test_replay_of_recorded_log_gives_the_recorded_pcr_values() -> None:
    values = json.loads((FIXTURES / "pcrs.json").read_text())
    replayed = eventlog.replay(eventlog.parse(recorded_text()).events)
    assert {str(index): value.hex() for index, value in replayed.items()} == {
        index: value for index, value in values.items() if int(index) in pcrs.MEASURED
    }
    assert all(values[str(index)] == pcrs.ZERO.hex() for index in pcrs.FIRMWARE)  # a swtpm saw no firmware


def test_replay_depends_on_order() -> None:
    events = eventlog.parse(recorded_text()).events
    swapped = (*events[:2], events[3], events[2], events[4])
    assert eventlog.replay(swapped)[11] != eventlog.replay(events)[11]
    assert eventlog.replay(swapped)[8] == eventlog.replay(events)[8]


def test_untouched_quoted_pcrs_replay_to_zero() -> None:
    assert eventlog.replay(()) == {8: bytes(32), 9: bytes(32), 11: bytes(32)}


def test_dump_and_parse_round_trip() -> None:
    log = EventLog()
    first = log.next_event(11, "pod-kernel", "pod a/b kernel", {"pod": "a/b", "sha256": "ab" * 32})
    log = log.with_event(first)
    log = log.with_event(log.next_event(11, "pod-cmdline", "pod a/b cmdline", {"cmdline": "x"}))
    assert eventlog.parse(log.dumps()) == log
    assert [event.seq for event in log.events] == [0, 1]


def test_event_digest_covers_type_description_and_data() -> None:
    canonical = '{"data":{"pod":"a/b","sha256":"%s"},"description":"pod a/b kernel","type":"pod-kernel"}' % (
        "ab" * 32
    )
    event = EventLog().next_event(11, "pod-kernel", "pod a/b kernel", {"sha256": "ab" * 32, "pod": "a/b"})
    assert event.digest == hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize(
    "change",
    [
        {"description": "pod kube-system/dns kernel"},
        {"data": {"pod": "kube-system/dns", "path": "/x", "sha256": "00" * 32}},
        {"type": "pod-initramfs"},
    ],
)
def test_edited_event_is_rejected(change: dict[str, object]) -> None:
    with pytest.raises(EventLogError, match="entry 2 digest does not match its type, description and data"):
        eventlog.parse(_mutate(change))


@pytest.mark.parametrize("cut", [1, 100, 700, -3])
def test_truncated_log_is_rejected_as_truncated(cut: int) -> None:
    text = recorded_text()
    with pytest.raises(EventLogError, match="truncated or not JSON"):
        eventlog.parse(text[:cut])


def _mutate(change: dict[str, object], position: int = 2) -> str:
    document = json.loads(recorded_text())
    document["events"][position].update(change)
    return json.dumps(document)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seq": 7}, "entry 2 has seq 7: events are missing or out of order"),
        ({"pcr": 24}, "entry 2 has pcr 24"),
        ({"pcr": "11"}, "entry 2 has pcr '11'"),
        ({"digest": "AB" * 32}, "entry 2 digest must be 64 lowercase hex"),
        ({"digest": "ab" * 20}, "entry 2 digest must be 64 lowercase hex"),
        ({"data": []}, "entry 2: data must be an object"),
        ({"extra": 1}, "entry 2 has unknown fields extra"),
        ({"type": None}, "entry 2: type and description must be strings"),
    ],
)
def test_malformed_event_is_rejected_naming_it(change: dict[str, object], message: str) -> None:
    with pytest.raises(EventLogError, match=message):
        eventlog.parse(_mutate(change))


def test_missing_field_is_named() -> None:
    document = json.loads(recorded_text())
    del document["events"][1]["digest"]
    with pytest.raises(EventLogError, match="entry 1 lacks digest"):
        eventlog.parse(json.dumps(document))


def test_reordered_events_with_their_seq_are_rejected() -> None:
    document = json.loads(recorded_text())
    events = document["events"]
    events[2], events[3] = events[3], events[2]
    with pytest.raises(EventLogError, match="entry 2 has seq 3"):
        eventlog.parse(json.dumps(document))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "must be a JSON object"),
        ({"format": "tcg", "hash": "sha256", "events": []}, "format is 'tcg'"),
        ({"format": eventlog.FORMAT, "hash": "sha1", "events": []}, "hash is 'sha1'"),
        ({"format": eventlog.FORMAT, "hash": "sha256"}, "no 'events' list"),
        ({"format": eventlog.FORMAT, "hash": "sha256", "events": [3]}, "entry 0 is not an object"),
    ],
)
def test_malformed_document_is_rejected(document: object, message: str) -> None:
    with pytest.raises(EventLogError, match=message):
        eventlog.parse(json.dumps(document))
