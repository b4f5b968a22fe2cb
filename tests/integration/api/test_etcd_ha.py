"""The API server rides out the loss of an etcd member, reports etcd loss on /readyz, and drains."""

from __future__ import annotations

import os
import signal
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from nestlab.runtime import proc
from tests.integration.api.conftest import (
    ApiServer,
    EtcdMember,
    Pki,
    etcd_healthy,
    free_port,
    start_apiserver,
    wait_until,
)

pytestmark = pytest.mark.integration


def _get(url: str, context: ssl.SSLContext) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, context=context, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def own_server(pki: Pki, etcd_cluster: list[EtcdMember], tmp_path: Path) -> Iterator[ApiServer]:
    """A server of this test's own, so stopping etcd members or the server disturbs nobody else."""
    url, process, log = start_apiserver(
        pki, [m.client_url for m in etcd_cluster], tmp_path, "--shutdown-delay-duration", "5"
    )
    try:
        yield ApiServer(url, pki, log, process)
    finally:
        process.stop()


def test_survives_loss_of_the_member_it_talks_to(
    own_server: ApiServer, etcd_cluster: list[EtcdMember]
) -> None:
    first = etcd_cluster[0]  # --etcd-servers lists it first, so the server is talking to it
    assert own_server.request("POST", "/api/v1/namespaces", {"metadata": {"name": "ha-before"}})[0] == 201
    first.stop()
    try:
        # Losing the leader costs an election; the server answers 503 (retryable) meanwhile, never 500.
        codes: list[int] = []

        def created() -> bool:
            code, _body = own_server.request("POST", "/api/v1/namespaces", {"metadata": {"name": "ha-after"}})
            codes.append(code)
            return code in (201, 409)

        wait_until(created, "a write with one etcd member down", timeout=60)
        assert set(codes) <= {201, 409, 503}, codes
        code, listed = own_server.request("GET", "/api/v1/namespaces")
        assert code == 200
        names = {item["metadata"]["name"] for item in listed["items"]}
        assert {"ha-before", "ha-after"} <= names
        assert _get(f"{own_server.url}/readyz", own_server.context())[0] == 200
    finally:
        first.start()
        wait_until(lambda: etcd_healthy(first.client_url), "etcd member restart", timeout=60)
        for name in ("ha-before", "ha-after"):
            own_server.request("DELETE", f"/api/v1/namespaces/{name}")


def test_readyz_fails_while_etcd_is_unreachable(pki: Pki, tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    url, process, _log = start_apiserver(pki, [nowhere], tmp_path, wait_ready=False)
    try:
        context = ssl.create_default_context(cafile=str(pki.ca))
        assert _get(f"{url}/livez", context) == (200, "ok")
        code, text = _get(f"{url}/readyz", context)
        assert code == 500
        assert "etcd failed" in text
        server = ApiServer(url, pki, _log, process)
        code, body = server.request("GET", "/api/v1/pods")
        assert (code, body["reason"]) == (503, "ServiceUnavailable")
        assert "no etcd endpoint answered" in body["message"]
    finally:
        process.stop()


def test_sigterm_fails_readyz_before_the_server_exits(own_server: ApiServer) -> None:
    context = own_server.context()
    assert _get(f"{own_server.url}/readyz", context)[0] == 200
    os.kill(own_server.process.pid, signal.SIGTERM)
    code, text = _get(f"{own_server.url}/readyz", context)
    assert code == 500
    assert "shutting down" in text
    assert _get(f"{own_server.url}/livez", context)[0] == 200  # still serving while it drains
    assert own_server.process.wait(timeout=30) == 0
    with pytest.raises(urllib.error.URLError):
        _get(f"{own_server.url}/livez", context)


def test_apiserver_refuses_inconsistent_flags() -> None:
    result = proc.run(
        ["nestlab-apiserver", "--etcd-servers", "http://127.0.0.1:1", "--client-ca-file", "/x"],
        timeout=60,
        check=False,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "--client-ca-file needs TLS" in result.stderr
