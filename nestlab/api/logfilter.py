"""What ``kubectl logs`` options select from a stored container log: pure, no files, no clock.

The agent stores each container instance's log in the CRI format the kubelet reads
(``<RFC3339Nano time> stdout F <line>``), the time being when the agent read the line from the
pod's console. This module parses ``PodLogOptions`` from a query (with upstream's validation
messages), and picks and formats lines as the kubelet does: ``tailLines`` counts from the end of
the instance's log, ``sinceTime``/``sinceSeconds`` keep lines stamped at or after that moment,
``timestamps`` prefixes each line with its fixed-width RFC3339Nano time, and ``limitBytes`` cuts
the output (possibly mid-line, as upstream).

It lives with the API because both sides read ``PodLogOptions``: the API server checks them before
it proxies ``pods/log`` to the node, and the agent (which may import the API's modules, not the
reverse: an import-linter contract) selects the lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

STREAM = "stdout"  # pod-init forwards stdout and stderr through one pipe: the console cannot tell them apart


class OptionError(ValueError):
    """One invalid ``PodLogOptions`` field: ``field`` and upstream's message for it.

    ``unreadable``: the value is not even of the field's type (upstream: 400 BadRequest when the
    query is decoded); otherwise it is read but out of range (upstream: 422 Invalid).
    """

    def __init__(self, field: str, message: str, *, unreadable: bool = False) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.unreadable = unreadable


@dataclass(frozen=True)
class LogOptions:
    """``PodLogOptions`` as the agent applies them."""

    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail: int | None = None
    """The last N lines; None for all."""
    since: str | None = None
    """Keep lines stamped at or after this time (fixed-width RFC3339Nano, so strings compare as times)."""
    limit_bytes: int | None = None


def stamp(moment_ns: int) -> str:
    """Nanoseconds since the epoch as the kubelet writes them: RFC3339 with nine fraction digits, UTC."""
    seconds, nanos = divmod(moment_ns, 1_000_000_000)
    whole = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{nanos:09d}Z"


def cri_line(moment_ns: int, text: str) -> str:
    """One stored line: time, stream, ``F`` (a full line), text."""
    return f"{stamp(moment_ns)} {STREAM} F {text}\n"


def parse_cri(line: str) -> tuple[str, str] | None:
    """(time, text) of one stored line (without its newline); None for a damaged line."""
    parts = line.split(" ", 3)
    if len(parts) < 3 or len(parts[0]) != 30 or not parts[0].endswith("Z"):
        return None
    return parts[0], parts[3] if len(parts) == 4 else ""


def _bool(query: Mapping[str, str], name: str) -> bool:
    raw = query.get(name)
    if raw is None or raw == "":
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise OptionError(name, f'Invalid value: "{raw}": must be true or false', unreadable=True)


def _int(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise OptionError(name, f'Invalid value: "{raw}": must be a whole number', unreadable=True) from None


def _time(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise OptionError(
            "sinceTime", f'Invalid value: "{raw}": must be an RFC3339 time', unreadable=True
        ) from None
    if moment.tzinfo is None:
        raise OptionError(
            "sinceTime", f'Invalid value: "{raw}": must give a time zone (Z or +hh:mm)', unreadable=True
        )
    return moment


def parse_options(query: Mapping[str, str], now_ns: int) -> LogOptions:
    """The options in a ``pods/log`` (or agent ``containerLogs``) query; OptionError as upstream's
    ``ValidatePodLogOptions`` words it."""
    tail, limit = _int(query, "tailLines"), _int(query, "limitBytes")
    seconds, since_time = _int(query, "sinceSeconds"), query.get("sinceTime") or None
    if tail is not None and tail < 0:
        raise OptionError("tailLines", f"Invalid value: {tail}: must be greater than or equal to 0")
    if limit is not None and limit < 1:
        raise OptionError("limitBytes", f"Invalid value: {limit}: must be greater than 0")
    if seconds is not None and since_time is not None:
        raise OptionError("", "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified")
    since = None
    if seconds is not None:
        if seconds < 1:
            raise OptionError("sinceSeconds", f"Invalid value: {seconds}: must be greater than 0")
        since = stamp(now_ns - seconds * 1_000_000_000)
    elif since_time is not None:
        moment = _time(since_time).astimezone(UTC)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        since = stamp((moment - epoch) // timedelta(microseconds=1) * 1000)
    return LogOptions(
        follow=_bool(query, "follow"),
        previous=_bool(query, "previous"),
        timestamps=_bool(query, "timestamps"),
        tail=tail,
        since=since,
        limit_bytes=limit,
    )


def render(line: str, options: LogOptions) -> str | None:
    """The output for one stored line (with its newline), or None when ``since`` leaves it out."""
    parsed = parse_cri(line.rstrip("\n"))
    if parsed is None:
        return None
    moment, text = parsed
    if options.since is not None and moment < options.since:
        return None
    return f"{moment} {text}\n" if options.timestamps else f"{text}\n"


def select(lines: Iterable[str], options: LogOptions) -> list[str]:
    """The output lines for a stored log, ``tail`` first (from the end), then ``since``."""
    stored = [line for line in lines if line.strip()]
    if options.tail is not None:
        stored = stored[len(stored) - options.tail :] if options.tail > 0 else []
    return [out for out in (render(line, options) for line in stored) if out is not None]


class Limit:
    """``limitBytes`` across a whole answer (a followed log too): how much more may be written."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit

    def cut(self, data: bytes) -> bytes:
        """``data``, shortened to what is left; afterwards :attr:`done` says whether to stop."""
        if self.left is None:
            return data
        data = data[: self.left]
        self.left -= len(data)
        return data

    @property
    def done(self) -> bool:
        return self.left is not None and self.left <= 0
