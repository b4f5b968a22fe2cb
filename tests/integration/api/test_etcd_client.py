"""The etcd chokepoint against a real etcd over TLS with client-certificate authentication."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from nestlab.api.etcd import EtcdClient, EtcdCompactedError, EtcdError, EtcdUnavailableError, TLSFiles
from nestlab.runtime import proc
from tests.integration.api.conftest import Pki, free_port, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_etcd(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One etcd member that only talks TLS and only to clients with a lab-CA certificate."""
    root = tmp_path_factory.mktemp("etcd-tls")
    client, peer = f"https://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    argv = [
        "etcd", "--name", "tls", "--data-dir", root / "data",
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"tls={peer}",
        "--cert-file", pki.server_cert, "--key-file", pki.server_key,
        "--client-cert-auth", "--trusted-ca-file", pki.ca,
    ]  # fmt: skip
    process = proc.spawn(argv, log=root / "etcd.log")
    try:
        tls = TLSFiles(pki.ca, pki.alice_cert, pki.alice_key)
        wait_until(lambda: asyncio.run(_revision([client], tls)) > 0, "TLS etcd", timeout=60)
        yield client
    finally:
        process.stop()


async def _revision(endpoints: list[str], tls: TLSFiles | None) -> int:
    etcd = EtcdClient(endpoints, tls, timeout=3)
    try:
        return await etcd.revision()
    finally:
        await etcd.close()


def test_compare_and_swap_watch_and_compaction(tls_etcd: str, pki: Pki) -> None:
    async def scenario() -> None:
        etcd = EtcdClient([tls_etcd], TLSFiles(pki.ca, pki.alice_cert, pki.alice_key))
        try:
            first = await etcd.create("/t/a", b"1")
            assert first is not None
            assert await etcd.create("/t/a", b"again") is None
            second = await etcd.update("/t/a", b"2", first)
            assert second is not None
            assert await etcd.update("/t/a", b"stale", first) is None
            kv = await etcd.get("/t/a")
            assert kv is not None
            assert (kv.value, kv.create_revision, kv.mod_revision) == (b"2", first, second)
            await etcd.create("/t/b", b"x")
            await etcd.create("/tz", b"outside the prefix")
            listed = await etcd.range("/t/")
            assert [k.key for k in listed.kvs] == ["/t/a", "/t/b"]
            assert listed.revision >= second

            stream = etcd.watch("/t/", first)
            batches = []
            async for revision, events in stream:
                batches.append((revision, [(e.kind, e.kv.key) for e in events]))
                if sum(len(b[1]) for b in batches) >= 3:
                    break
            await stream.aclose()
            assert [pair for _r, events in batches for pair in events] == [
                ("PUT", "/t/a"), ("PUT", "/t/a"), ("PUT", "/t/b"),
            ]  # fmt: skip

            deleted = await etcd.delete("/t/a", second)
            assert deleted is not None
            assert await etcd.get("/t/a") is None
            await etcd.compact(deleted)
            with pytest.raises(EtcdCompactedError):
                async for _batch in etcd.watch("/t/", first):
                    pass
        finally:
            await etcd.close()

    asyncio.run(scenario())


def test_fails_over_to_the_next_endpoint(tls_etcd: str, pki: Pki) -> None:
    dead = f"https://127.0.0.1:{free_port()}"
    tls = TLSFiles(pki.ca, pki.alice_cert, pki.alice_key)
    assert asyncio.run(_revision([dead, tls_etcd], tls)) > 0


def test_without_a_client_certificate_etcd_is_unavailable(tls_etcd: str, pki: Pki) -> None:
    with pytest.raises(EtcdUnavailableError, match="no etcd endpoint answered"):
        asyncio.run(_revision([tls_etcd], TLSFiles(pki.ca)))


@pytest.mark.parametrize("certificate", [True, False], ids=["with-certificate", "without"])
def test_requests_cancelled_at_any_moment_leave_no_socket_open(
    tls_etcd: str, pki: Pki, certificate: bool
) -> None:
    """A timeout or the poll stopping can cancel a request in the middle of its TLS handshake or just
    after it; ``close()`` must still leave no socket open when the event loop ends (the test suite
    turns the ResourceWarning of a leaked one into an error). Stop 22's CI failed on this."""
    tls = TLSFiles(pki.ca, pki.alice_cert, pki.alice_key) if certificate else TLSFiles(pki.ca)
    rng = random.Random(1)  # noqa: S311 - moments to cancel at, not secrets

    async def once(cancel_after: float, poll_timeout: float) -> None:
        etcd = EtcdClient([tls_etcd], tls, timeout=3, poll_timeout=poll_timeout)
        try:
            await asyncio.wait_for(etcd.revision(), cancel_after)
        except (TimeoutError, EtcdError):
            pass  # cancelled or refused: either way the request ends here
        finally:
            await etcd.close()

    for _ in range(120):
        asyncio.run(once(rng.uniform(0.0, 0.03), rng.uniform(0.001, 0.02)))


def test_untrusted_server_is_refused(tls_etcd: str, tmp_path: Path) -> None:
    other_ca = tmp_path / "other.crt"
    proc.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", tmp_path / "other.key", "-out", other_ca, "-days", "1", "-subj", "/CN=other"],
        timeout=30,
    )  # fmt: skip
    with pytest.raises(EtcdUnavailableError):
        asyncio.run(_revision([tls_etcd], TLSFiles(other_ca)))


def test_a_watch_catching_up_reads_messages_of_megabytes(tls_etcd: str, pki: Pki) -> None:
    """A watch from an old revision gets up to 1000 revisions' events (with previous values) in one
    message. Over the JSON gateway, aiohttp's line reader refused any over 512 KiB and the watch then
    delivered nothing; over gRPC, the default limit is 4 MiB a message, which the client lifts."""
    value = b"v" * 16384

    async def scenario() -> None:
        etcd = EtcdClient([tls_etcd], TLSFiles(pki.ca, pki.alice_cert, pki.alice_key))
        try:
            first = await etcd.create("/big/0", value)
            assert first is not None
            revision = first
            for index in range(1, 200):  # 200 revisions of 16 KiB, each with its previous value
                written = await etcd.update("/big/0", value + str(index).encode(), revision)
                assert written is not None
                revision = written
            seen, largest = 0, 0
            stream = etcd.watch("/big/", first)
            async for _revision, events in stream:
                seen += len(events)
                largest = max(largest, len(events))
                if seen >= 200:
                    break
            await stream.aclose()
            assert seen == 200
            assert largest * 2 * len(value) > 4 * 2**20  # one message was over gRPC's default limit
        finally:
            await etcd.close()

    asyncio.run(scenario())
