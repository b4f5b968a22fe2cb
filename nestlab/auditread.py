"""Who did what: the audit logs of every control-plane node, merged, filtered and shown as a table.

Each API server writes its own audit log (a request reaches one of them through the load balancer),
so an administrator asking "what did alice do" needs every node's current file and its rotated
backups, merged by time. The pure part (parsing Event lines, ``--since``, filters, one row per
request, the table) is separate from the one side effect: reading the files over the lab's SSH
(:class:`~nestlab.provision.remote.Remote`, as ``nestlab attest`` does). A node that does not answer
is reported, not fatal, while another one does.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from nestlab.errors import NestlabError, UsageError
from nestlab.labnodes import saved_plan
from nestlab.paths import LabFiles
from nestlab.provision.remote import SSH_UNREACHABLE, Remote
from nestlab.spec.model import Role

LOG_PATH = "/var/log/nestlab/audit.log"  # roles/control_plane's control_plane_audit_log
COLUMNS = ("TIME", "USER", "VERB", "RESOURCE", "NAMESPACE", "NAME", "CODE")
_STAGE_RANK = {"RequestReceived": 0, "ResponseStarted": 1, "ResponseComplete": 2, "Panic": 3}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATIONS = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")  # Go's time.ParseDuration, plus days
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

Event = dict[str, Any]


@dataclass(frozen=True)
class Query:
    """What ``nestlab audit`` was asked for; empty fields match everything."""

    user: str = ""
    """The user who acted, or whom they impersonated."""
    namespace: str = ""
    verb: str = ""
    since: datetime | None = None


@dataclass
class Report:
    """The matching Events (one per request, oldest first) and what could not be read."""

    events: list[Event] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# -- pure ---------------------------------------------------------------------------------------------
def parse_since(text: str, now: datetime) -> datetime:
    """``10m``, ``1h30m``, ``2d`` ago, or an RFC 3339 time; UsageError naming the accepted forms."""
    text = text.strip()
    if _DURATIONS.fullmatch(text):
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))
        return now - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since {text!r}: give a duration (30s, 10m, 1h30m, 2d) or an RFC 3339 time "
            "(2026-12-05T23:10:00Z)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse_lines(text: str) -> tuple[list[Event], int]:
    """The Events in a log's text, and how many lines were not Events (a torn last line...)."""
    events, bad = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(record, dict) and record.get("kind") == "Event":
            events.append(record)
        else:
            bad += 1
    return events, bad


def timestamp(event: Event) -> datetime:
    """When the request was received (the stage's time when that is missing)."""
    raw = str(event.get("requestReceivedTimestamp") or event.get("stageTimestamp") or "")
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def matches(event: Event, query: Query) -> bool:
    """Whether ``event`` answers ``query``."""
    if query.user and query.user not in (_name(event.get("user")), _name(event.get("impersonatedUser"))):
        return False
    if query.namespace and _ref(event).get("namespace") != query.namespace:
        return False
    if query.verb and event.get("verb") != query.verb:
        return False
    return query.since is None or timestamp(event) >= query.since


def merge(batches: Iterable[Iterable[Event]]) -> list[Event]:
    """One Event per request (its latest stage), oldest request first, across every node's files."""
    latest: dict[str, Event] = {}
    loose: list[Event] = []
    for batch in batches:
        for event in batch:
            audit_id = str(event.get("auditID") or "")
            if not audit_id:
                loose.append(event)
                continue
            known = latest.get(audit_id)
            if known is None or _rank(event) > _rank(known):
                latest[audit_id] = event
    return sorted([*latest.values(), *loose], key=lambda e: (timestamp(e), str(e.get("auditID", ""))))


def select(batches: Iterable[Iterable[Event]], query: Query) -> list[Event]:
    """The merged Events that answer ``query``."""
    return [event for event in merge(batches) if matches(event, query)]


def row(event: Event) -> tuple[str, ...]:
    """TIME USER VERB RESOURCE NAMESPACE NAME CODE; impersonation shown as ``bob (as alice)``."""
    user = _name(event.get("user")) or "(unauthenticated)"
    impersonated = _name(event.get("impersonatedUser"))
    if impersonated:
        user = f"{user} (as {impersonated})"
    ref = _ref(event)
    resource = str(ref.get("resource", ""))
    if resource and ref.get("apiGroup"):
        resource = f"{resource}.{ref['apiGroup']}"
    if resource and ref.get("subresource"):
        resource = f"{resource}/{ref['subresource']}"
    if not ref:
        resource = str(event.get("requestURI", "")).split("?")[0]
    code = (event.get("responseStatus") or {}).get("code", "")
    when = timestamp(event).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        when,
        user,
        str(event.get("verb", "")),
        resource or "-",
        str(ref.get("namespace", "")) or "-",
        str(ref.get("name", "")) or "-",
        str(code) or "-",
    )


def table(events: Sequence[Event]) -> str:
    """kubectl-style columns: left-aligned, three spaces apart."""
    rows = [COLUMNS, *(row(e) for e in events)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _name(user: Any) -> str:
    return str(user.get("username", "")) if isinstance(user, dict) else ""


def _ref(event: Event) -> dict[str, Any]:
    ref = event.get("objectRef")
    return ref if isinstance(ref, dict) else {}


def _rank(event: Event) -> int:
    return _STAGE_RANK.get(str(event.get("stage", "")), -1)


def read_command(log_path: str = LOG_PATH) -> list[str]:
    """The shell command printing a node's rotated audit logs, then the current one."""
    path = PurePosixPath(log_path)
    backups = (
        shlex.quote(str(path.parent)) + "/" + shlex.quote(f"{path.stem}-") + "*" + shlex.quote(path.suffix)
    )
    current = shlex.quote(str(path))
    return ["sh", "-c", f'for f in {backups} {current}; do [ -f "$f" ] && cat -- "$f"; done; true']


# -- side effect: every control-plane node over SSH --------------------------------------------------
def read_lab(name: str, query: Query, log_path: str = LOG_PATH) -> Report:
    """The Events of lab ``name`` that answer ``query``, from every control-plane node."""
    plan = saved_plan(name)
    nodes = [n.name for n in plan.nodes if n.role is Role.CONTROL_PLANE]
    return read_nodes(Remote(LabFiles.named(name)), nodes, query, log_path)


def read_nodes(remote: Remote, nodes: Sequence[str], query: Query, log_path: str = LOG_PATH) -> Report:
    """Read ``log_path`` (and its backups) on each node through ``remote.run`` and select."""
    report, batches, answered = Report(), [], 0
    for node in nodes:
        result = remote.run(node, read_command(log_path), check=False)
        if result.returncode == SSH_UNREACHABLE:
            report.warnings.append(f"{node}: unreachable over SSH, its audit log is not included")
            continue
        if result.returncode != 0:
            tail = (result.stderr or "").strip()[-200:]
            report.warnings.append(f"{node}: cannot read {log_path} (exit {result.returncode}): {tail}")
            continue
        answered += 1
        events, bad = parse_lines(result.stdout)
        if bad:
            report.warnings.append(f"{node}: {bad} line(s) of {log_path} are not audit Events (skipped)")
        batches.append(events)
    if nodes and not answered:
        raise NestlabError("no control-plane node's audit log could be read: " + "; ".join(report.warnings))
    report.events = select(batches, query)
    return report
