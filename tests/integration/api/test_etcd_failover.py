"""Failover of the etcd leader (SIGKILL: no leadership handed over) under a REAL API server.

While the two other members elect a new leader, the API server stays ready (/readyz: a majority
answers, so it waits for the election instead of leaving the load balancer) and every read it
serves meanwhile is answered 200: a read interrupted by the election ("leader changed") is sent
again, never turned into an error. The cluster runs the lab role's timing (heartbeat 100 ms,
election 1000 ms, pre-vote).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

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
from tests.integration.api.test_etcd_quorum import _readyz

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def failover_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EtcdMember]]:
    """Three members of this module's own, with the lab's timing and pre-vote."""
    root = tmp_path_factory.mktemp("etcd-failover")
    timing = ("--heartbeat-interval", "100", "--election-timeout", "1000", "--pre-vote")
    with running(lambda data: etcd_members(data, "f", *timing), root) as members:
        yield members


def _status(member: EtcdMember) -> dict[str, object]:
    url = f"{member.client_url}/v3/maintenance/status"
    request = urllib.request.Request(url, data=b"{}", method="POST")  # noqa: S310 - loopback test URL
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback test URL
        payload: dict[str, object] = json.loads(response.read())
        return payload


def _leader(members: list[EtcdMember]) -> EtcdMember:
    def leads(member: EtcdMember) -> bool:
        status = _status(member)
        header = status["header"]
        assert isinstance(header, dict)
        return status.get("leader") == header.get("member_id")

    wait_until(lambda: any(leads(m) for m in members), "an etcd leader", timeout=30)
    return next(m for m in members if leads(m))


@pytest.fixture
def failover_server(pki: Pki, failover_cluster: list[EtcdMember], tmp_path: Path) -> Iterator[ApiServer]:
    url, process, log = start_apiserver(pki, [m.client_url for m in failover_cluster], tmp_path)
    try:
        yield ApiServer(url, pki, log, process)
    finally:
        process.stop()


def test_killing_the_leader_costs_no_failed_read_and_no_readiness(
    failover_server: ApiServer, failover_cluster: list[EtcdMember]
) -> None:
    leader = _leader(failover_cluster)
    others = [m for m in failover_cluster if m is not leader]
    reads: list[int] = []
    ready: list[int] = []
    stop = threading.Event()

    def keep_reading() -> None:
        while not stop.is_set():
            reads.append(failover_server.request("GET", "/api/v1/namespaces/default")[0])
            ready.append(_readyz(failover_server)[0])

    reader = threading.Thread(target=keep_reading, daemon=True)
    reader.start()
    try:
        wait_until(lambda: len(reads) >= 3, "reads before the kill", timeout=30)
        assert leader.process is not None
        os.kill(leader.process.pid, signal.SIGKILL)  # no leadership transfer, no goodbye
        leader.process.wait(timeout=30)
        leader.process = None
        wait_until(lambda: _leader(others) is not None, "a new leader among the two others", timeout=30)
        after = len(reads)
        wait_until(lambda: len(reads) >= after + 3, "reads after the election", timeout=30)
    finally:
        stop.set()
        reader.join(timeout=30)
        leader.start()
        wait_until(lambda: etcd_healthy(leader.client_url), "the killed member back", timeout=60)
    assert set(reads) == {200}, reads
    assert set(ready) == {200}, ready
    code, _body = failover_server.request("POST", "/api/v1/namespaces", {"metadata": {"name": "after-kill"}})
    assert code == 201
    failover_server.request("DELETE", "/api/v1/namespaces/after-kill")
