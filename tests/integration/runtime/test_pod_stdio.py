"""A container's own stdin and tty (`stdin`, `stdinOnce`, `tty`) in a REAL pod VM, through attach.

pod-init gives a container whose description has `stdio STDIN ONCE TTY` (from the Container's
`stdin`, `stdin_once` and `tty`) a stdin pipe it holds open (attach -i writes to it) or a pty
(attach -t). Also checked here: an exec with a TTY has a named terminal, since containers see the
pod's /dev/pts, and exec finds its command in the container's PATH.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nestlab.runtime import disks, pod
from nestlab.runtime.poddesc import Container, ContainerName, DiskSerial, PodDescription
from nestlab.runtime.streams import Exit, Output, PodStreams, Session
from tests.integration.runtime.conftest import LaunchPod

pytestmark = pytest.mark.integration

TIMEOUT_S = 240.0  # generous: two cores shared with every other job; never asserted on
IMAGE = DiskSerial("img-stdio")
APPLETS = ("sh", "echo", "sleep", "stty", "tty", "true")
READER = "while read l; do echo got:$l; done; echo stdin-closed; sleep 600"
TERMINAL = "read l; stty size; echo got:$l; sleep 600"


@pytest.fixture
def vm(launch_pod: LaunchPod, tmp_path: Path) -> pod.PodVm:
    root = disks.busybox_root(tmp_path / "root", applets=APPLETS)
    (root / "opt" / "tools").mkdir(parents=True)
    (root / "opt" / "tools" / "greet").write_text("#!/bin/sh\necho greeted\n")
    (root / "opt" / "tools" / "greet").chmod(0o755)
    image = disks.make_image(root, tmp_path / "stdio.erofs")
    containers = (
        Container(ContainerName("once"), IMAGE, ("sh", "-c", READER), stdin=True, stdin_once=True),
        Container(ContainerName("kept"), IMAGE, ("sh", "-c", READER), stdin=True),
        Container(ContainerName("term"), IMAGE, ("sh", "-c", TERMINAL), stdin=True, tty=True),
        Container(ContainerName("plain"), IMAGE, ("sleep", "600"), env=(("PATH", "/opt/tools:/bin"),)),
    )
    return launch_pod(PodDescription("stdio", containers, grace_s=2), {IMAGE: image})


def streams_of(vm: pod.PodVm) -> PodStreams:
    assert vm.streams is not None
    return vm.streams


async def until(session: Session, wanted: bytes) -> bytes:
    """Output of an attach session until ``wanted`` appeared in it."""
    seen = b""
    while wanted not in seen:
        event = await session.receive()
        assert isinstance(event, Output), f"{event} before {wanted!r}; output so far {seen!r}"
        seen += event.data
    return seen


async def scenario(vm: pod.PodVm) -> None:
    streams = streams_of(vm)
    once = await streams.open_attach("once", stdin=True)
    await once.send(b"first\n")
    await until(once, b"got:first\n")
    await once.send_eof()  # stdinOnce: the first client's EOF closes the container's stdin
    await until(once, b"stdin-closed\n")
    await once.close()

    kept = await streams.open_attach("kept", stdin=True)
    await kept.send(b"one\n")
    await until(kept, b"got:one\n")
    await kept.send_eof()  # without stdinOnce the container's stdin stays open for the next client
    await kept.close()
    again = await streams.open_attach("kept", stdin=True)
    await again.send(b"two\n")
    seen = await until(again, b"got:two\n")
    assert b"stdin-closed" not in seen
    await again.close()

    term = await streams.open_attach("term", stdin=True, tty=True)
    await term.resize(100, 30)
    await term.send(b"go\n")
    seen = await until(term, b"got:go")
    assert b"30 100" in seen  # stty size of the container's own terminal: rows columns
    await term.close()

    named = await streams.open_exec("plain", ["tty"], tty=True)
    events = []
    while (event := await named.receive()) is not None:
        events.append(event)
    assert b"".join(e.data for e in events if isinstance(e, Output)).startswith(b"/dev/pts/")
    assert events[-1] == Exit(0, 0)

    greet = await streams.open_exec("plain", ["greet"])
    assert [await greet.receive(), await greet.receive()] == [Output(b"greeted\n"), Exit(0, 0)]
    assert streams.open_sessions == 0


def test_attach_writes_to_a_containers_own_stdin_and_tty(vm: pod.PodVm) -> None:
    asyncio.run(asyncio.wait_for(scenario(vm), TIMEOUT_S))
