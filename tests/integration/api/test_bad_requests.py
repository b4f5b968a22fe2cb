"""Bad requests get the upstream status code, reason and message, and never a 500.

Three sets: the Kubernetes refusals of bad_cases.py (reason and message as upstream words
them), the hostile requests of hostile_cases.py (oversized, deep, malformed, wrong encodings,
huge numbers, unicode tricks, duplicate keys, wrong types, unknown fields, bad query parameters,
content types and paths: each a 4xx Status with one clear line), and bad lab specs through
``nestlab plan`` (exit 2, one line per problem, never a traceback).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nestlab.runtime import proc
from tests.integration.api import hostile_cases
from tests.integration.api.bad_cases import CASES, NS, PODS, pod
from tests.integration.api.conftest import ADMIN_TOKEN, ApiServer, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seeded(apiserver: ApiServer) -> Iterator[dict[str, Any]]:
    """Namespace ``bad`` with pod ``web`` (bound to a node) and a quota of 1 cpu."""
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
    quota = {"metadata": {"name": "compute"}, "spec": {"hard": {"cpu": "1"}}}
    assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/resourcequotas", quota)[0] == 201
    code, web = apiserver.request("POST", PODS, pod())
    assert code == 201, web
    code, body = apiserver.request(
        "POST", f"{PODS}/web/binding", {"target": {"kind": "Node", "name": "esx-09"}}
    )
    assert code == 201, body
    yield web
    # The pod is bound to a node without an agent: confirm its deletion as the agent would.
    apiserver.request("DELETE", f"{PODS}/web?gracePeriodSeconds=0")
    apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")


@pytest.mark.parametrize("case", [pytest.param(case, id=case[0]) for case in CASES])
def test_bad_request(apiserver: ApiServer, seeded: dict[str, Any], case: tuple[Any, ...]) -> None:
    _name, method, path, body, options, code, reason, message = case
    got, status = apiserver.request(method, path, body, **options)
    assert (got, status.get("kind"), status.get("reason"), status.get("code")) == (
        code,
        "Status",
        reason,
        code,
    ), status
    assert message in status["message"]
    assert status["status"] == "Failure"


def test_server_never_answered_500(apiserver: ApiServer, seeded: dict[str, Any]) -> None:
    log = apiserver.log.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert "Warning" not in log, log[-3000:]  # deprecations would break on the next aiohttp


# -- hostile requests (issue 16): oversized, deep, malformed, encodings, numbers, unicode... --------


@pytest.fixture(scope="module")
def hostile(apiserver: ApiServer) -> Iterator[None]:
    """Namespace ``hostile`` with pod ``web`` (never scheduled) and ConfigMap ``cm``; removed after."""
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": hostile_cases.NS}})[0] == 201
    try:
        assert apiserver.request("POST", hostile_cases.PODS, hostile_cases.pod("web"))[0] == 201
        assert apiserver.request("POST", hostile_cases.CMS, {"metadata": {"name": "cm"}})[0] == 201
        yield
    finally:
        apiserver.request("DELETE", f"{hostile_cases.WEB}?gracePeriodSeconds=0")
        apiserver.request("DELETE", f"{hostile_cases.CMS}/cm")
        apiserver.request("DELETE", f"/api/v1/namespaces/{hostile_cases.NS}")


def send(apiserver: ApiServer, case: hostile_cases.Case) -> tuple[int, bytes]:
    """One raw request (paths, bodies and headers exactly as written); (status, body)."""
    url = urllib.parse.urlsplit(apiserver.url)
    connection = http.client.HTTPSConnection(
        url.hostname or "", url.port, context=apiserver.context(), timeout=60
    )
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", **case.headers}
    if case.body is not None:
        headers["Content-Type"] = case.content_type
    try:
        body: Any = case.body
        if case.chunked and case.body is not None:
            raw = case.body
            body = (raw[at : at + 65536] for at in range(0, len(raw), 65536))
        # The server may answer (413) and stop reading before the body is all sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request(
                case.method, case.path, body=body, headers=headers, encode_chunked=case.chunked
            )
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in hostile_cases.CASES])
def test_hostile_request(apiserver: ApiServer, hostile: None, case: hostile_cases.Case) -> None:
    code, raw = send(apiserver, case)
    assert b"Traceback" not in raw
    answer = json.loads(raw)
    summary = (code, answer.get("kind"), answer.get("code"), answer.get("status"))
    assert summary == (case.code, "Status", case.code, "Failure"), answer
    message = answer["message"]
    assert message, answer
    assert "\n" not in message, message
    assert case.fragment in message, message


def test_hostile_requests_left_no_500(apiserver: ApiServer, hostile: None) -> None:
    """After every case above ran, the server logged no failure: nothing reached the last resort."""
    log = apiserver.log.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert " failed\n" not in log, log[-3000:]


# -- bad lab specs through `nestlab plan` (exit 2, one line per problem) -----------------------------

NESTLAB = Path(sys.executable).with_name("nestlab")
GOOD = "apiVersion: nestlab.dev/v1alpha1\nkind: Lab\nmetadata:\n  name: t\nspec:\n"
SPECS: list[tuple[str, bytes, str]] = [
    ("not utf-8", (GOOD + "  hosts: {count: 3}  # caf\xe9\n").encode("latin-1"), "is not UTF-8"),
    ("utf-16", GOOD.encode("utf-16"), "is not UTF-8"),
    ("duplicate key", (GOOD + "  hosts:\n    count: 3\n    count: 4\n").encode(), "appears twice"),
    ("duplicate top key", (GOOD + "spec:\n  hosts: {}\n").encode(), "appears twice"),
    ("deep flow", (GOOD + "  hosts: " + "[" * 100_000 + "\n").encode(), "nests deeper than 20 levels"),
    ("deep block", (GOOD + "".join(f"{'  ' * (i + 1)}a{i}:\n" for i in range(40))).encode(), "nests deeper"),
    ("5000-digit count", (GOOD + "  hosts: {count: " + "9" * 5000 + "}\n").encode(), "too long to read"),
    ("30-digit count", (GOOD + "  hosts: {count: " + "9" * 30 + "}\n").encode(), "must be between 1 and 32"),
    ("huge memory", (GOOD + "  hosts: {memory: " + "9" * 40 + "GiB}\n").encode(), "is not a size"),
    ("memory nan", (GOOD + "  hosts: {memory: .nan}\n").encode(), "is not a size"),
    ("count a float", (GOOD + "  hosts: {count: 2.5}\n").encode(), "must be an integer"),
    ("count infinite", (GOOD + "  hosts: {count: .inf}\n").encode(), "must be an integer"),
    (
        "python tag",
        (GOOD + "  hosts: !!python/object/apply:os.system ['true']\n").encode(),
        "is not valid YAML",
    ),
    ("binary tag", (GOOD + "  hosts: {count: !!binary aGk=}\n").encode(), "must be an integer"),
    (
        "billion laughs",
        (GOOD.replace("spec:\n", "") + hostile_cases.LAUGHS.decode()).encode(),
        "unknown field",
    ),
    ("self reference", (GOOD + "  hosts: &a {nodes: [*a]}\n").encode(), "spec.hosts.nodes"),
    ("complex key", (GOOD + "  ? [a, b]\n  : 1\n").encode(), "is not valid YAML"),
    ("NUL byte", (GOOD + "  hosts: {count: 3}\x00\n").encode(), "is not valid YAML"),
    ("a list document", b"- a\n- b\n", "must be a mapping"),
    ("empty file", b"", "must be 'nestlab.dev/v1alpha1'"),
    ("two documents", (GOOD + "---\n" + GOOD).encode(), "is not valid YAML"),
    ("tab indentation", (GOOD + "\thosts: {}\n").encode(), "is not valid YAML"),
    ("newline in a key", (GOOD + '  "ho\\nsts": {}\n').encode(), "unknown field"),
    ("unknown field", (GOOD + "  hostz: {}\n").encode(), "did you mean 'hosts'"),
    ("bad network", (GOOD + "  networks: {management: 198.18.0.1/33}\n").encode(), "is not an IPv4 network"),
    ("64 TiB of memory", (GOOD + "  hosts: {memory: 64TiB}\n").encode(), "fail"),
    ("unclosed quote", (GOOD + '  hosts: {count: "3}\n').encode(), "is not valid YAML"),
]


@pytest.mark.parametrize(("spec", "fragment"), [pytest.param(s, f, id=i) for i, s, f in SPECS])
def test_bad_spec_plan(tmp_path: Path, spec: bytes, fragment: str) -> None:
    path = tmp_path / "lab.yaml"
    path.write_bytes(spec)
    result = proc.run([str(NESTLAB), "plan", str(path)], timeout=60, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert fragment in output, output
    problems = [line for line in result.stderr.splitlines() if line.strip()]
    assert problems, output
    for line in problems:  # one line per problem, each naming the file
        assert str(path) in line or line.startswith("error:"), output


def test_pod_field_tree_is_built_at_start_not_by_the_first_pod_write(apiserver: ApiServer) -> None:
    """The Pod's known-field tree (1-2 s of CPU) is built by a thread the server starts with, so
    the first pod create does not hold every other request of the event loop behind it."""
    wait_until(
        lambda: "field tree of V1Pod built in" in apiserver.log.read_text(),
        "the start-up build of the Pod's field tree",
        timeout=60,
    )
