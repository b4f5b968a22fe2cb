"""The audit log of the REAL nestlab-apiserver: Events with the right fields, rotation, `nestlab audit`.

A second API server on the session's etcd cluster, started with an audit policy, a log in tmp and
a 10 KB maxsize (fractions of a megabyte are accepted for this), so a few dozen requests rotate it.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nestlab import auditread
from nestlab.api.auditlog import backups
from nestlab.runtime import proc
from tests.integration.api.conftest import (
    ADMIN_TOKEN,
    BOB_TOKEN,
    ApiServer,
    EtcdMember,
    Pki,
    start_apiserver,
    wait_until,
)

pytestmark = pytest.mark.integration

NS = "audit-team"
MAX_SIZE_MB = 0.01  # ~10 KB: a few dozen Events per file
MAX_BACKUPS = 2
POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    nonResourceURLs: ["/readyz*", "/livez*", "/healthz*"]
  - level: Metadata
    resources: [{group: "", resources: ["secrets", "configmaps"]}]
  - level: Metadata
    verbs: ["get", "list", "watch"]
  - level: RequestResponse
"""


@pytest.fixture(scope="module")
def audited(
    pki: Pki, etcd_cluster: list[EtcdMember], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiServer, Path]]:
    directory = tmp_path_factory.mktemp("audited")
    policy = directory / "audit-policy.yaml"
    policy.write_text(POLICY)
    log_path = directory / "log" / "audit.log"
    url, process, log = start_apiserver(
        pki,
        [m.client_url for m in etcd_cluster],
        directory,
        "--audit-policy-file",
        str(policy),
        "--audit-log-path",
        str(log_path),
        "--audit-log-maxsize",
        str(MAX_SIZE_MB),
        "--audit-log-maxbackup",
        str(MAX_BACKUPS),
    )
    server = ApiServer(url, pki, log, process)
    try:
        yield server, log_path
    finally:
        server.request("DELETE", f"/api/v1/namespaces/{NS}")
        process.stop()
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]


def call(
    server: ApiServer, method: str, path: str, body: Any = None, token: str = ADMIN_TOKEN
) -> tuple[int, str]:
    """One request; (status code, Audit-Id header)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method=method)  # noqa: S310 - test URL
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, context=server.context(), timeout=20) as response:  # noqa: S310
            return response.status, response.headers.get("Audit-Id", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Audit-Id", "")


def logged(log_path: Path) -> dict[str, dict[str, Any]]:
    """Every Event in the current file and its backups, by audit ID (ResponseComplete wins)."""
    text = "".join(p.read_text() for p in [*backups(log_path), log_path] if p.exists())
    return {e["auditID"]: e for e in auditread.merge([auditread.parse_lines(text)[0]])}


def event_of(log_path: Path, audit_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def written() -> bool:
        found.update(logged(log_path).get(audit_id) or {})
        return bool(found)

    wait_until(written, f"audit Event {audit_id}", timeout=20)
    return found


def test_create_get_and_403_are_logged_with_upstream_fields(audited: tuple[ApiServer, Path]) -> None:
    server, log_path = audited
    code, created = call(server, "POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
    assert code == 201
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", created)
    code, read = call(server, "GET", f"/api/v1/namespaces/{NS}")
    assert code == 200
    code, refused = call(
        server, "POST", f"/api/v1/namespaces/{NS}/configmaps", {"metadata": {"name": "x"}}, BOB_TOKEN
    )
    assert code == 403
    secret = {"metadata": {"name": "db"}, "stringData": {"password": "hunter2-do-not-log"}}
    code, _secret_id = call(server, "POST", f"/api/v1/namespaces/{NS}/secrets", secret)
    assert code == 201
    code, anonymous = call(server, "GET", f"/api/v1/namespaces/{NS}/pods", token="not-a-token")  # noqa: S106 - a forged token
    assert code == 401
    code, health = call(server, "GET", "/readyz")
    assert code == 200
    assert health  # every answer has an Audit-Id, logged or not

    create = event_of(log_path, created)
    assert create["kind"] == "Event"
    assert create["apiVersion"] == "audit.k8s.io/v1"
    assert create["level"] == "RequestResponse"
    assert create["stage"] == "ResponseComplete"
    assert create["verb"] == "create"
    assert create["requestURI"] == "/api/v1/namespaces"
    assert create["user"]["username"] == "admin"
    assert "system:authenticated" in create["user"]["groups"]
    assert create["sourceIPs"] == ["127.0.0.1"]
    assert create["userAgent"].startswith("Python-urllib")
    assert create["objectRef"]["resource"] == "namespaces"
    assert create["objectRef"]["name"] == NS
    assert create["responseStatus"]["code"] == 201
    assert create["requestObject"] == {"metadata": {"name": NS}}
    assert create["responseObject"]["metadata"]["name"] == NS
    assert create["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert create["requestReceivedTimestamp"] <= create["stageTimestamp"]

    get = event_of(log_path, read)
    assert get["level"] == "Metadata"
    assert get["verb"] == "get"
    assert get["objectRef"]["name"] == NS
    assert "requestObject" not in get
    assert "responseObject" not in get

    forbidden = event_of(log_path, refused)
    assert forbidden["user"]["username"] == "bob"
    assert forbidden["verb"] == "create"
    assert forbidden["objectRef"]["resource"] == "configmaps"
    assert forbidden["objectRef"]["namespace"] == NS
    assert forbidden["responseStatus"]["code"] == 403
    assert forbidden["responseStatus"]["reason"] == "Forbidden"
    assert forbidden["responseStatus"]["message"].startswith(
        f'configmaps is forbidden: User "bob" cannot create resource "configmaps" in API group "" in the namespace "{NS}"'
    )
    assert forbidden["annotations"]["authorization.k8s.io/decision"] == "forbid"

    refused_login = event_of(log_path, anonymous)
    assert refused_login["stage"] == "ResponseStarted"  # upstream's failed-authentication event
    assert refused_login["user"] == {}
    assert refused_login["responseStatus"]["code"] == 401
    assert refused_login["responseStatus"]["message"] == "Authentication failed, attempted: bearer"

    everything = "".join(p.read_text() for p in [*backups(log_path), log_path] if p.exists())
    assert "hunter2-do-not-log" not in everything
    assert health not in logged(log_path)
    assert not [e for e in logged(log_path).values() if e["requestURI"].startswith("/readyz")]

    # `nestlab audit --user bob`: the same reading and filtering over the files as on a node.
    out = proc.run(auditread.read_command(str(log_path)), timeout=30).stdout
    bobs = auditread.select([auditread.parse_lines(out)[0]], auditread.Query(user="bob"))
    assert [e["auditID"] for e in bobs] == [refused]
    row = auditread.table(bobs).splitlines()[1].split()
    assert row[1:] == ["bob", "create", "configmaps", NS, "x", "403"]


def test_the_log_rotates_under_a_small_maxsize(audited: tuple[ApiServer, Path]) -> None:
    server, log_path = audited
    ids = []
    for _ in range(60):  # ~700 bytes each: ~40 KB through 10 KB files
        code, audit_id = call(server, "GET", "/api/v1/namespaces/default")
        assert code == 200
        ids.append(audit_id)
    wait_until(lambda: ids[-1] in log_path.read_text(), "the last Event written", timeout=20)
    kept = backups(log_path)
    assert len(kept) == MAX_BACKUPS  # older ones were pruned
    for path in [*kept, log_path]:
        assert re.fullmatch(r"audit(-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3})?\.log", path.name)
        assert path.stat().st_size <= MAX_SIZE_MB * 1024 * 1024
        assert path.stat().st_mode & 0o777 == 0o600
        events, bad = auditread.parse_lines(path.read_text())
        assert events
        assert bad == 0
    remaining = logged(log_path)
    assert ids[-1] in remaining
    assert ids[0] not in remaining  # in a pruned backup


def test_a_watch_is_logged_when_it_starts_and_when_it_ends(audited: tuple[ApiServer, Path]) -> None:
    server, log_path = audited
    code, watch = call(server, "GET", "/api/v1/namespaces?watch=true&timeoutSeconds=1")
    assert code == 200

    def both_stages() -> bool:
        text = "".join(p.read_text() for p in [*backups(log_path), log_path] if p.exists())
        stages = [e["stage"] for e in auditread.parse_lines(text)[0] if e["auditID"] == watch]
        return stages == ["ResponseStarted", "ResponseComplete"]

    wait_until(both_stages, "ResponseStarted and ResponseComplete of the watch", timeout=20)
    assert event_of(log_path, watch)["verb"] == "watch"


def test_the_impersonated_users_uid_and_extras_are_logged(audited: tuple[ApiServer, Path]) -> None:
    server, log_path = audited
    request = urllib.request.Request(server.url + "/api/v1/namespaces/default/pods")  # noqa: S310 - test URL
    request.add_header("Authorization", f"Bearer {ADMIN_TOKEN}")
    request.add_header("Impersonate-User", "alice")
    request.add_header("Impersonate-Group", "devs")
    request.add_header("Impersonate-Uid", "alice-uid-1")
    request.add_header("Impersonate-Extra-Reason", "audit check")
    request.add_header("Impersonate-Extra-Example.com%2fticket", "T-1")
    try:
        with urllib.request.urlopen(request, context=server.context(), timeout=20) as response:  # noqa: S310
            audit_id = response.headers.get("Audit-Id", "")
    except urllib.error.HTTPError as exc:  # alice may not list pods: logged all the same
        audit_id = exc.headers.get("Audit-Id", "")
    found = event_of(log_path, audit_id)
    assert found["user"]["username"] == "admin"
    assert found["user"]["uid"] == "1"  # the static token file's uid column
    assert found["impersonatedUser"] == {
        "username": "alice",
        "uid": "alice-uid-1",
        "groups": ["devs", "system:authenticated"],
        "extra": {"example.com/ticket": ["T-1"], "reason": ["audit check"]},
    }
