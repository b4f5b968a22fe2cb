"""`nestlab audit`'s library: --since, filters, merge of nodes' logs by time, the table, SSH reads."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from nestlab import auditread
from nestlab.auditread import Query, merge, parse_lines, parse_since, read_nodes, row, select, table
from nestlab.commands.audit import audit
from nestlab.errors import NestlabError, UsageError
from nestlab.runtime import proc

NOW = datetime(2026, 12, 5, 23, 30, tzinfo=UTC)


def _event(
    audit_id: str, minute: int, *, user: str = "alice", verb: str = "create", stage: str = "ResponseComplete",
    ns: str = "team-a", name: str = "web", code: int = 201, **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    when = (NOW - timedelta(minutes=60 - minute)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": audit_id,
        "stage": stage, "requestURI": f"/api/v1/namespaces/{ns}/pods", "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]}, "sourceIPs": ["198.18.0.10"],
        "objectRef": {"resource": "pods", "namespace": ns, "name": name, "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": when, "stageTimestamp": when, **extra,
    }  # fmt: skip


def _lines(*events: dict[str, Any]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", NOW - timedelta(minutes=10)),
        ("1h30m", NOW - timedelta(minutes=90)),
        ("45s", NOW - timedelta(seconds=45)),
        ("2d", NOW - timedelta(days=2)),
        ("2026-12-05T23:10:00Z", datetime(2026, 12, 5, 23, 10, tzinfo=UTC)),
        ("2026-12-05T23:10:00+01:00", datetime(2026, 12, 5, 22, 10, tzinfo=UTC)),
    ],
)
def test_parse_since(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["10", "yesterday", "10 minutes", "m10", ""])
def test_parse_since_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(UsageError, match="give a duration"):
        parse_since(text, NOW)


def test_parse_lines_skips_torn_and_foreign_lines() -> None:
    text = _lines(_event("a", 1)) + '{"kind":"Ev\n' + '{"kind":"Status"}\n\n'
    events, bad = parse_lines(text)
    assert [e["auditID"] for e in events] == ["a"]
    assert bad == 2


def test_merge_keeps_one_row_per_request_in_time_order_across_nodes() -> None:
    cp1 = [_event("w", 5, verb="watch", stage="ResponseStarted", code=200), _event("c", 9)]
    cp2 = [_event("b", 2), _event("w", 5, verb="watch", stage="ResponseComplete", code=200)]
    cp3 = [_event("x", 7, stage="RequestReceived"), _event("w", 5, verb="watch", stage="RequestReceived")]
    merged = merge([cp1, cp2, cp3])
    assert [(e["auditID"], e["stage"]) for e in merged] == [
        ("b", "ResponseComplete"), ("w", "ResponseComplete"), ("x", "RequestReceived"), ("c", "ResponseComplete"),
    ]  # fmt: skip


def test_filters() -> None:
    events = [
        _event("1", 1, user="alice"),
        _event("2", 2, user="bob", verb="get", code=403),
        _event("3", 3, user="bob", impersonatedUser={"username": "alice", "groups": []}),
        _event("4", 50, user="carol", ns="team-b"),
    ]

    def ids(query: Query) -> list[str]:
        return [e["auditID"] for e in select([events], query)]

    assert ids(Query(user="alice")) == ["1", "3"]
    assert ids(Query(user="bob", verb="get")) == ["2"]
    assert ids(Query(namespace="team-b")) == ["4"]
    assert ids(Query(since=parse_since("15m", NOW))) == ["4"]
    assert ids(Query()) == ["1", "2", "3", "4"]


def test_rows_and_table() -> None:
    impersonated = _event("3", 3, user="bob", impersonatedUser={"username": "alice"}, code=403)
    log = _event("4", 4, verb="get", code=200)
    log["objectRef"]["subresource"] = "log"
    rbac = _event("5", 5, ns="team-a")
    rbac["objectRef"] = {
        "resource": "rolebindings",
        "namespace": "team-a",
        "name": "edit",
        "apiGroup": "rbac.authorization.k8s.io",
    }
    health = _event("6", 6, verb="get", code=200)
    del health["objectRef"]
    health["requestURI"] = "/version?timeout=32s"
    assert row(impersonated) == (
        "2026-12-05T22:33:00Z",
        "bob (as alice)",
        "create",
        "pods",
        "team-a",
        "web",
        "403",
    )
    assert row(log)[3] == "pods/log"
    assert row(rbac)[3] == "rolebindings.rbac.authorization.k8s.io"
    assert row(health)[3:6] == ("/version", "-", "-")
    lines = table([impersonated, health]).splitlines()
    assert lines[0].split() == list(auditread.COLUMNS)
    assert lines[1].index("bob (as alice)") == lines[0].index("USER")
    assert lines[2].split()[-1] == "200"


@dataclass
class FakeRemote:
    """Each node's answer to the read command."""

    answers: dict[str, proc.Result]
    commands: list[tuple[str, list[str]]] = field(default_factory=list)

    def run(
        self, node: str, command: list[str], *, stdin: str | None = None, check: bool = True
    ) -> proc.Result:
        self.commands.append((node, command))
        return self.answers[node]


def _result(code: int, out: str = "", err: str = "") -> proc.Result:
    return proc.Result((), code, out, err)


def test_read_nodes_merges_every_node_and_reports_the_silent_ones() -> None:
    remote = FakeRemote(
        {
            "cp-1": _result(0, _lines(_event("b", 2), _event("a", 1))),
            "cp-2": _result(255, err="ssh: connect to host cp-2: No route to host"),
            "cp-3": _result(0, _lines(_event("c", 3)) + "garbage\n"),
        }
    )
    report = read_nodes(remote, ["cp-1", "cp-2", "cp-3"], Query())  # type: ignore[arg-type]
    assert [e["auditID"] for e in report.events] == ["a", "b", "c"]
    assert report.warnings == [
        "cp-2: unreachable over SSH, its audit log is not included",
        "cp-3: 1 line(s) of /var/log/nestlab/audit.log are not audit Events (skipped)",
    ]
    script = remote.commands[0][1][-1]
    assert "/var/log/nestlab/audit-*.log /var/log/nestlab/audit.log" in script


def test_read_nodes_fails_when_no_node_answers() -> None:
    remote = FakeRemote(
        {"cp-1": _result(255, err="unreachable"), "cp-2": _result(1, err="Permission denied")}
    )
    with pytest.raises(
        NestlabError, match=r"cp-2: cannot read /var/log/nestlab/audit\.log .*Permission denied"
    ):
        read_nodes(remote, ["cp-1", "cp-2"], Query())  # type: ignore[arg-type]


def test_the_read_command_reads_backups_then_the_current_file(tmp_path: Any) -> None:
    (tmp_path / "audit-2026-12-05T23-00-00.000.log").write_text(_lines(_event("old", 1)))
    (tmp_path / "audit.log").write_text(_lines(_event("new", 2)))
    out = proc.run(auditread.read_command(str(tmp_path / "audit.log")), timeout=10)
    assert [e["auditID"] for e in parse_lines(out.stdout)[0]] == ["old", "new"]
    empty = proc.run(auditread.read_command(str(tmp_path / "none" / "audit.log")), timeout=10)
    assert empty.returncode == 0
    assert empty.stdout == ""


def test_the_command_prints_the_table_json_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, Query]] = []

    def fake(name: str, query: Query) -> auditread.Report:
        asked.append((name, query))
        return auditread.Report(
            [_event("1", 1)], ["cp-2: unreachable over SSH, its audit log is not included"]
        )

    monkeypatch.setattr(auditread, "read_lab", fake)
    result = CliRunner().invoke(
        audit, ["--user", "alice", "--since", "10m", "--verb", "create", "--name", "lab1"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split() == list(auditread.COLUMNS)
    assert "alice" in result.stdout
    assert "warning: cp-2" in result.stderr
    assert asked[0][0] == "lab1"
    assert asked[0][1].user == "alice"
    assert asked[0][1].since is not None
    as_json = CliRunner().invoke(audit, ["--json"])
    assert json.loads(as_json.stdout)[0]["auditID"] == "1"
    bad = CliRunner().invoke(audit, ["--since", "yesterday"])
    assert bad.exit_code == 2
    assert "error: --since 'yesterday'" in bad.stderr
    assert "Traceback" not in bad.output
