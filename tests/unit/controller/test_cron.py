"""Cron parsing and next times, as robfig/cron (kube-controller-manager's parser) computes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nestlab.controller import cron


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("* * * * *", "2026-12-05T11:59:30", "2026-12-05T12:00:00"),
        ("* * * * *", "2026-12-05T12:00:00", "2026-12-05T12:01:00"),
        ("*/15 * * * *", "2026-12-05T12:01:00", "2026-12-05T12:15:00"),
        ("5/20 * * * *", "2026-12-05T12:30:00", "2026-12-05T12:45:00"),
        ("0 9-17/4 * * mon-fri", "2026-12-05T12:00:00", "2026-12-07T09:00:00"),  # a Saturday
        ("30 2 1 jan,JUL *", "2026-12-05T00:00:00", "2027-01-01T02:30:00"),
        ("@hourly", "2026-12-05T12:00:00", "2026-12-05T13:00:00"),
        ("@daily", "2026-12-05T12:00:00", "2026-12-06T00:00:00"),
        ("@weekly", "2026-12-05T12:00:00", "2026-12-06T00:00:00"),  # Sunday
        ("@monthly", "2026-12-05T12:00:00", "2027-01-01T00:00:00"),
        ("@yearly", "2026-12-05T12:00:00", "2027-01-01T00:00:00"),
        ("0 0 29 2 *", "2026-12-05T12:00:00", "2028-02-29T00:00:00"),
        # both day fields restricted: either matches (the 13th, or a Friday)
        ("0 0 13 * 5", "2026-12-05T12:00:00", "2026-12-11T00:00:00"),
        # day of week "*/2" is restricted too: still OR
        ("0 0 1 * */3", "2026-12-05T12:00:00", "2026-12-06T00:00:00"),
        # day of week "*": AND, so only the 1st
        ("0 0 1 * *", "2026-12-05T12:00:00", "2027-01-01T00:00:00"),
        ("0 0 ? * 1", "2026-12-05T12:00:00", "2026-12-07T00:00:00"),
    ],
)
def test_next_after(schedule: str, after: str, expected: str) -> None:
    assert cron.next_after(cron.parse(schedule), at(after)) == at(expected)


def test_every_minute_fires_at_the_next_minute_boundary() -> None:
    every = cron.parse("* * * * *")
    now = at("2026-12-05T12:00:00") + timedelta(seconds=59, microseconds=999)
    assert cron.next_after(every, now) == at("2026-12-05T12:01:00")


def test_time_zone_wall_clock() -> None:
    tz = cron.zone("Europe/Berlin")
    # 09:00 in Berlin (UTC+1 in December) is 08:00 UTC
    assert cron.next_after(cron.parse("0 9 * * *"), at("2026-12-05T12:00:00"), tz) == at(
        "2026-12-06T08:00:00"
    )
    # across the spring DST change (UTC+2 from 29 March 2026)
    assert cron.next_after(cron.parse("0 9 * * *"), at("2026-03-29T00:00:00"), tz) == at(
        "2026-03-29T07:00:00"
    )


def test_unknown_time_zone() -> None:
    with pytest.raises(cron.CronError, match="unknown time zone Mars/Olympus"):
        cron.zone("Mars/Olympus")


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("* * *", r"expected exactly 5 fields, found 3: \[\* \* \*\]"),
        ("60 * * * *", r"end of range \(60\) above maximum \(59\): 60"),
        ("* * 0 * *", r"beginning of range \(0\) below minimum \(1\): 0"),
        ("* * * * 7", r"end of range \(7\) above maximum \(6\): 7"),
        ("5-1 * * * *", r"beginning of range \(5\) beyond end of range \(1\): 5-1"),
        ("*/0 * * * *", "step of range should be a positive number"),
        ("x * * * *", "failed to parse int from x"),
        ("@fortnightly", "unrecognized descriptor: @fortnightly"),
        ("TZ=UTC * * * * *", "use spec.timeZone"),
    ],
)
def test_invalid_schedules(schedule: str, message: str) -> None:
    with pytest.raises(cron.CronError, match=message):
        cron.parse(schedule)


def test_missed_counts_and_latest() -> None:
    every = cron.parse("* * * * *")
    result = cron.missed(every, at("2026-12-05T12:00:00"), at("2026-12-05T12:03:30"))
    assert (result.latest, result.count) == (at("2026-12-05T12:03:00"), 3)
    assert cron.missed(every, at("2026-12-05T12:00:00"), at("2026-12-05T12:00:59")) == cron.Missed(None, 0)


def test_too_many_missed_still_finds_the_latest() -> None:
    every = cron.parse("*/5 * * * *")
    result = cron.missed(every, at("2026-01-01T00:00:00"), at("2026-12-05T12:07:00"))
    assert result.count == cron.MAX_MISSED + 1
    assert result.latest == at("2026-12-05T12:05:00")
