"""qemu-storage-daemon's command line and the exporter's start/stop decisions (over a fake launcher)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nestlab.datastore.errors import DatastoreUnavailableError
from nestlab.datastore.exports import Exporter, PortInUseError, export_argv, runs
from tests.unit.datastore.fakes import FakeSpawn


def test_export_argv_serves_one_client_with_a_secret_name(tmp_path: Path) -> None:
    argv = export_argv(Path("/data/a,b/vol-1.raw"), "198.18.0.5", 10809, "tok", tmp_path / "p")
    assert argv == [
        "qemu-storage-daemon",
        "--blockdev",
        "driver=file,node-name=volume,filename=/data/a,,b/vol-1.raw,discard=unmap",
        "--nbd-server",
        "addr.type=inet,addr.host=198.18.0.5,addr.port=10809,max-connections=1",
        "--export",
        "type=nbd,id=export,node-name=volume,name=tok,writable=on",
        "--pidfile",
        str(tmp_path / "p"),
    ]


def test_start_waits_for_the_pidfile_and_stop_ends_the_child(tmp_path: Path) -> None:
    spawn = FakeSpawn()
    exporter = Exporter(tmp_path, "127.0.0.1", spawn=spawn, alive=spawn.alive)
    pid = exporter.start("vol-1", tmp_path / "vol-1.raw", 10809, "tok")
    assert exporter.running(pid, tmp_path / "vol-1.raw")
    exporter.stop(pid, tmp_path / "vol-1.raw")
    assert spawn.daemons[0].stopped


def test_a_busy_port_and_other_failures_are_told_apart(tmp_path: Path) -> None:
    exporter = Exporter(tmp_path, "127.0.0.1", spawn=FakeSpawn(busy={10809}))
    with pytest.raises(PortInUseError, match=r"127\.0\.0\.1:10809 is in use"):
        exporter.start("vol-1", tmp_path / "vol-1.raw", 10809, "tok")
    broken = Exporter(tmp_path, "127.0.0.1", spawn=FakeSpawn(broken=True))
    with pytest.raises(
        DatastoreUnavailableError, match="exited 1: qemu-storage-daemon: Could not open"
    ) as caught:
        broken.start("vol-2", tmp_path / "vol-2.raw", 10810, "tok")
    assert not isinstance(caught.value, PortInUseError)


def test_a_recycled_pid_is_not_a_daemon(tmp_path: Path) -> None:

    assert not runs(os.getpid(), tmp_path / "vol-1.raw")  # pytest itself: not qemu-storage-daemon
    assert not runs(0, tmp_path / "vol-1.raw")
    assert not runs(2**22 + 1, tmp_path / "vol-1.raw")  # above pid_max: no such process
