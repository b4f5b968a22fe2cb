"""Quorum loss against a REAL etcd cluster of this module's own and the REAL API server.

Two of three members stop: reads and writes are refused with 503 naming etcd quorum (never hung
until etcd's own request timeout, never 500), /readyz fails naming it, no refused write is stored,
and once the members return everything answers again without a restart of the API server. The
cluster runs etcd's default timing (heartbeat 100 ms, election 1000 ms), as the lab's role does.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from nestlab.api.etcd import EtcdClient, EtcdInDoubtError, EtcdQuorumError
from tests.integration.api.conftest import (
    ApiServer,
    EtcdMember,
    Pki,
    etcd_healthy,
    etcd_members,
    running,
    start_apiserver,
    wait_until,
)

pytestmark = pytest.mark.integration

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture(scope="module")
def quorum_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EtcdMember]]:
    """Three members of this module's own (others' tests share the session cluster)."""
    root = tmp_path_factory.mktemp("etcd-quorum")
    timing = ("--heartbeat-interval", "100", "--election-timeout", "1000")
    with running(lambda data: etcd_members(data, "q", *timing), root) as members:
        yield members


@pytest.fixture
def quorum_server(pki: Pki, quorum_cluster: list[EtcdMember], tmp_path: Path) -> Iterator[ApiServer]:
    url, process, log = start_apiserver(pki, [m.client_url for m in quorum_cluster], tmp_path)
    try:
        yield ApiServer(url, pki, log, process)
    finally:
        process.stop()


def _readyz(server: ApiServer) -> tuple[int, str]:
    context: ssl.SSLContext = server.context()
    try:
        with urllib.request.urlopen(f"{server.url}/readyz", context=context, timeout=10) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _cm(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}}


def _restart(members: list[EtcdMember]) -> None:
    for member in members:
        if member.process is None:
            member.start()
    for member in members:
        wait_until(lambda m=member: etcd_healthy(m.client_url), f"etcd {member.name} back", timeout=60)


def test_quorum_loss_is_refused_with_503_naming_it_and_recovers(
    quorum_server: ApiServer, quorum_cluster: list[EtcdMember]
) -> None:
    assert quorum_server.request("POST", CONFIGMAPS, _cm("q-before"))[0] == 201
    lost = quorum_cluster[1:]
    try:
        for member in lost:
            member.stop()
        refused: list[str] = []

        def write_refused() -> bool:
            name = f"q-during-{len(refused)}"
            code, body = quorum_server.request("POST", CONFIGMAPS, _cm(name))
            assert code in (201, 503), (code, body)  # never 500, never a hang past the client timeout
            if code == 503 and "etcd cluster has no quorum" in body["message"]:
                refused.append(name)
                return True
            return False

        wait_until(write_refused, "a write refused naming etcd quorum", timeout=30)
        code, body = quorum_server.request("GET", CONFIGMAPS + "/q-before")
        assert (code, body["reason"]) == (503, "ServiceUnavailable")
        assert "1 of 3 members answer" in body["message"]
        assert "writes are refused" in body["message"]
        code, text = _readyz(quorum_server)
        assert code == 500
        assert "etcd cluster has no quorum" in text
    finally:
        _restart(quorum_cluster)

    def written() -> bool:
        return quorum_server.request("POST", CONFIGMAPS, _cm("q-after"))[0] == 201

    wait_until(written, "writes accepted again once the quorum returned", timeout=60)
    assert _readyz(quorum_server)[0] == 200
    for name in refused:  # refused before anything was sent: nothing was stored
        assert quorum_server.request("GET", f"{CONFIGMAPS}/{name}")[0] == 404
    assert quorum_server.request("GET", CONFIGMAPS + "/q-before")[0] == 200
    for name in ("q-before", "q-after"):
        quorum_server.request("DELETE", f"{CONFIGMAPS}/{name}")


def test_client_refuses_without_quorum_and_answers_a_waiting_request(
    quorum_cluster: list[EtcdMember],
) -> None:
    """The client itself: a read waiting on the lone member is answered when the poll sees the
    quorum gone (not after etcd's request timeout); later requests are refused before sending."""

    async def scenario() -> tuple[BaseException | None, BaseException | None]:
        etcd = EtcdClient([m.client_url for m in quorum_cluster], timeout=30)
        try:
            await etcd.revision()
            assert (await etcd.cluster_view()).has_quorum
            for member in quorum_cluster[1:]:
                member.stop()
            waiting: BaseException | None = None
            try:
                await etcd.revision()
            except EtcdQuorumError as exc:
                waiting = exc
            refused: BaseException | None = None
            try:
                await etcd.create("/registry/quorum-test/never", b"x")
            except (EtcdQuorumError, EtcdInDoubtError) as exc:
                refused = exc
            return waiting, refused
        finally:
            await etcd.close()

    try:
        waiting, refused = asyncio.run(scenario())
    finally:
        _restart(quorum_cluster)
    assert isinstance(waiting, EtcdQuorumError), waiting
    assert isinstance(refused, EtcdQuorumError), refused
    assert "nothing was stored" in str(refused)
