"""PodNetwork.release under concurrency: pod tasks free their addresses in threads at the same time
(after a host restart, every pod at once), so a lease may vanish between listing and reading it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from nestlab.agent.network import PodNetwork, tap_name
from nestlab.runtime import proc


class FakeIp:
    """``ip`` with taps in ``existing``; ``link del`` of a name in ``stuck`` fails."""

    def __init__(self, existing: set[str] | None = None, stuck: set[str] | None = None) -> None:
        self.existing = existing or set()
        self.stuck = stuck or set()
        self.lock = threading.Lock()

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        check: bool = True,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        capture: bool = True,
    ) -> proc.Result:
        args = tuple(argv)
        code, err = 0, ""
        with self.lock:
            if args[1:3] == ("link", "show"):
                code = 0 if args[-1] in self.existing else 1
            elif args[1:3] == ("link", "del"):
                if args[-1] in self.stuck:
                    code, err = 2, "RTNETLINK answers: Operation not permitted"
                elif args[-1] in self.existing:
                    self.existing.discard(args[-1])
                else:
                    code, err = 1, f'Cannot find device "{args[-1]}"'
        if check and code:
            raise proc.ProcessError(err, proc.Result(args, code, "", err))
        return proc.Result(args, code, "", err)


@pytest.fixture
def net(tmp_path: Path) -> PodNetwork:
    network = PodNetwork("nlpods", "198.19.0.0/24", tmp_path, run=FakeIp())
    network.leases.mkdir(parents=True)
    return network


def test_a_lease_freed_between_listing_and_reading_is_skipped(
    net: PodNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = net.allocate("uid-b").ip
    listed = [net.leases / "198.19.0.4", net.leases / mine]  # .4: freed by another task meanwhile
    monkeypatch.setattr(Path, "iterdir", lambda self: iter(listed))
    assert net._lease_of("uid-b") == mine
    net.release("uid-b")  # the FileNotFoundError seen on the lab
    assert not (net.leases / mine).exists()


def test_release_is_idempotent_and_fine_for_a_pod_that_never_had_an_address(net: PodNetwork) -> None:
    net.allocate("uid-a")
    net.release("uid-a")
    net.release("uid-a")
    net.release("uid-never-seen")
    assert list(net.leases.iterdir()) == []


def test_release_without_a_leases_directory_does_nothing(tmp_path: Path) -> None:
    PodNetwork("nlpods", "198.19.0.0/24", tmp_path / "gone", run=FakeIp()).release("uid-a")


def test_a_tap_that_cannot_be_deleted_is_logged_and_its_address_freed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tap = tap_name("uid-a")
    network = PodNetwork("nlpods", "198.19.0.0/24", tmp_path, run=FakeIp({tap}, stuck={tap}))
    network.allocate("uid-a")
    with caplog.at_level(logging.WARNING, logger="nestlab.agent"):
        network.release("uid-a")
    assert "Operation not permitted" in caplog.text
    assert list(network.leases.iterdir()) == []


def test_a_tap_deleted_by_someone_else_meanwhile_is_not_an_error(tmp_path: Path) -> None:
    tap = tap_name("uid-a")
    ip = FakeIp({tap})
    network = PodNetwork("nlpods", "198.19.0.0/24", tmp_path, run=ip)
    network.allocate("uid-a")
    real_exists = network._exists

    def exists_then_vanishes(ifname: str) -> bool:
        seen = real_exists(ifname)
        ip.existing.discard(ifname)  # another task deletes it right after we looked
        return seen

    network._exists = exists_then_vanishes  # type: ignore[method-assign]
    network.release("uid-a")
    assert list(network.leases.iterdir()) == []


def test_many_pods_releasing_and_allocating_at_once_raise_nothing(net: PodNetwork) -> None:
    uids = [f"uid-{i}" for i in range(60)]
    for uid in uids[:40]:
        net.allocate(uid)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(chunk: list[str]) -> None:
        start.wait()
        try:
            for uid in chunk:
                if uid in uids[:40]:
                    net.release(uid)
                    net.release(uid)
                else:
                    net.allocate(uid)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(uids[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    holders = sorted(p.read_text() for p in net.leases.iterdir())
    assert holders == sorted(uids[40:]), "exactly the pods still running hold an address, one each"
