"""The host end of the control channel over a real unix socket, with this test as the VM side."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from nestlab.runtime.control import Channel, ControlProtocolError, Exited, Init


@pytest.fixture
def channel(tmp_path: Path) -> Iterator[Channel]:
    chan = Channel(tmp_path / "control.sock")
    try:
        yield chan
    finally:
        chan.close()


def connect(chan: Channel) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(chan.path))
    return client


def test_events_written_before_the_host_reads_are_not_lost(channel: Channel) -> None:
    client = connect(channel)  # QEMU connects at start-up; pod-init writes before anyone reads
    client.sendall(b'{"event":"init","version":1}\n{"event":"exited","container":"a",')
    client.sendall(b'"code":3,"signal":0,"restarts":0}\n')
    assert channel.next_event(5) == Init(1)
    assert channel.next_event(5) == Exited("a", 3, 0, 0)
    client.close()
    assert channel.next_event(5) is None
    assert channel.closed


def test_stop_reaches_the_vm_side(channel: Channel) -> None:
    client = connect(channel)
    client.sendall(b'{"event":"init","version":1}\n')
    channel.next_event(5)
    channel.send_stop()
    assert client.recv(16) == b"stop\n"
    client.close()


def test_silence_is_an_error_not_a_hang(channel: Channel) -> None:
    client = connect(channel)
    with pytest.raises(ControlProtocolError, match="no event from the pod within"):
        channel.next_event(0.2)
    client.close()


def test_no_connection_is_reported(channel: Channel) -> None:
    with pytest.raises(ControlProtocolError, match="QEMU did not connect"):
        channel.next_event(0.2)


def test_close_removes_the_socket_file(tmp_path: Path) -> None:
    chan = Channel(tmp_path / "c.sock")
    chan.close()
    assert not (tmp_path / "c.sock").exists()
