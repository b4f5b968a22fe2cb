"""Cron schedules as CronJobs read them: parsing, and the times a schedule fires.

Kubernetes parses ``spec.schedule`` with robfig/cron's standard parser, so this module follows
it rather than a Python cron library (croniter, the usual choice, accepts a seconds field and ``7``
for Sunday, which kube-apiserver refuses; and it is no longer maintained):

- five fields, minute hour day-of-month month day-of-week; ``*``, ``?``, lists, ranges, steps
  (``N/step`` means ``N-max/step``) and the names ``jan``..``dec``, ``sun``..``sat``;
- the descriptors ``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight``
  and ``@hourly``;
- day-of-month and day-of-week: when both are restricted a day matching either one fires
  (classic cron), otherwise both must match; a ``*`` with a step counts as restricted.

Times are computed on the wall clock of the CronJob's ``spec.timeZone`` (UTC when unset).
Pure: no clock is read here; callers pass ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_NAMES)}
DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
MAX_MISSED = 100
"""Upstream's limit of missed start times before it warns (TooManyMissedTimes) instead of counting."""
_SEARCH_YEARS = 5  # robfig gives up after five years without a match (e.g. "0 0 30 2 *")


class CronError(ValueError):
    """A schedule or time zone that cannot be used; the message is robfig/cron's wording."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, MONTHS),
    _Field("day of week", 0, 6, DAYS),
)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: the values each field allows."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 = Sunday."""
    any_day: bool
    """Day of month was ``*``/``?`` (unrestricted)."""
    any_weekday: bool
    """Day of week was ``*``/``?`` (unrestricted)."""

    def day_matches(self, day: datetime) -> bool:
        """Whether the calendar day of ``day`` (a wall-clock time) is one the schedule fires on."""
        dom = day.day in self.days
        dow = (day.weekday() + 1) % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow


def _number(text: str, spec: _Field) -> int:
    if text.lower() in spec.names:
        return spec.names[text.lower()]
    if not text.isdigit():
        raise CronError(f"failed to parse int from {text}: strconv.Atoi: parsing {text!r}: invalid syntax")
    return int(text)


def _bounds(expr: str, spec: _Field) -> tuple[int, int, bool]:
    """Start, end and star-ness of the part before any ``/step``."""
    low_high = expr.split("-")
    if len(low_high) > 2:
        raise CronError(f"too many hyphens: {expr}")
    if low_high[0] in ("*", "?"):
        if len(low_high) > 1:
            raise CronError(f"too many hyphens: {expr}")
        return spec.low, spec.high, True
    start = _number(low_high[0], spec)
    return start, start if len(low_high) == 1 else _number(low_high[1], spec), False


def _range(expr: str, spec: _Field) -> tuple[set[int], bool]:
    """The values of one comma-separated part, and whether it was an unrestricted ``*``."""
    range_and_step = expr.split("/")
    if len(range_and_step) > 2:
        raise CronError(f"too many slashes: {expr}")
    start, end, star = _bounds(range_and_step[0], spec)
    step = 1
    if len(range_and_step) == 2:
        if not range_and_step[1].isdigit():
            raise CronError(f"failed to parse int from {range_and_step[1]}: invalid syntax")
        step = int(range_and_step[1])
        if "-" not in range_and_step[0] and not star:
            end = spec.high  # "N/step" means "N-max/step"
        star = star and step <= 1
    if start < spec.low:
        raise CronError(f"beginning of range ({start}) below minimum ({spec.low}): {expr}")
    if end > spec.high:
        raise CronError(f"end of range ({end}) above maximum ({spec.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return set(range(start, end + 1, step)), star


def _field(text: str, spec: _Field) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    star = False
    for part in text.split(","):
        found, is_star = _range(part, spec)
        values |= found
        star = star or is_star
    return frozenset(values), star


def parse(schedule: str) -> Schedule:
    """Parse a CronJob ``spec.schedule``; CronError with robfig/cron's message when it is invalid."""
    text = schedule.strip()
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise CronError("TZ and CRON_TZ are not supported in schedule: use spec.timeZone")
    if text.startswith("@"):
        if text.startswith("@every"):
            raise CronError(f"@every schedules are not supported by nestlab: {text}")
        if text not in DESCRIPTORS:
            raise CronError(f"unrecognized descriptor: {text}")
        text = DESCRIPTORS[text]
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    (minutes, _), (hours, _), (days, any_day), (months, _), (weekdays, any_weekday) = (
        _field(f, spec) for f, spec in zip(fields, _FIELDS, strict=True)
    )
    return Schedule(minutes, hours, days, months, weekdays, any_day, any_weekday)


def zone(name: str | None) -> tzinfo:
    """The time zone of ``spec.timeZone`` (UTC when unset); CronError naming it when unknown."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown time zone {name}") from exc


def next_after(schedule: Schedule, after: datetime, tz: tzinfo = UTC) -> datetime:
    """The first time strictly after ``after`` (aware) the schedule fires, in UTC."""
    wall = after.astimezone(tz).replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=1)
    limit = wall.year + _SEARCH_YEARS
    while wall.year <= limit:
        if wall.month not in schedule.months:
            year, month = (wall.year + 1, 1) if wall.month == 12 else (wall.year, wall.month + 1)
            wall = datetime(year, month, 1)  # wall clock, zoned below
        elif not schedule.day_matches(wall):
            wall = wall.replace(hour=0, minute=0) + timedelta(days=1)
        elif wall.hour not in schedule.hours:
            wall = wall.replace(minute=0) + timedelta(hours=1)
        elif wall.minute not in schedule.minutes:
            wall += timedelta(minutes=1)
        else:
            found = wall.replace(tzinfo=tz).astimezone(UTC)
            if found > after:
                return found
            wall += timedelta(minutes=1)  # the repeated hour of a DST fall-back
    raise CronError(f"the schedule never fires within {_SEARCH_YEARS} years after {after.isoformat()}")


@dataclass(frozen=True)
class Missed:
    """The schedule times between the last run and now."""

    latest: datetime | None
    """The most recent time in ``(earliest, now]``; None when there is none."""
    count: int
    """How many times there were (capped at ``MAX_MISSED + 1``: "too many")."""


def missed(schedule: Schedule, earliest: datetime, now: datetime, tz: tzinfo = UTC) -> Missed:
    """The schedule times in ``(earliest, now]``: the latest one and how many (capped)."""
    latest: datetime | None = None
    count = 0
    when = next_after(schedule, earliest, tz)
    while when <= now:
        latest, count = when, count + 1
        if count > MAX_MISSED:
            break
        when = next_after(schedule, when, tz)
    if count <= MAX_MISSED:
        return Missed(latest, count)
    # Too many to walk one by one: search back from now in growing windows for the latest.
    for window in (timedelta(hours=1), timedelta(days=1), timedelta(days=32), timedelta(days=400)):
        start = max(earliest, now - window)
        last: datetime | None = None
        when = next_after(schedule, start, tz)
        while when <= now:
            last, when = when, next_after(schedule, when, tz)
        if last is not None:
            return Missed(last, count)
    return Missed(latest, count)
