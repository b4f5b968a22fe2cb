"""An adopted VM (agent restart) listens again on its control and stream sockets, reachable by QEMU."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nestlab.agent import vms
from nestlab.runtime import pod, qemu


@pytest.fixture
def workdir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="nlv-"))  # short: sun_path holds 108 bytes
    yield directory
    shutil.rmtree(directory)


def test_adopted_vm_listens_on_both_sockets_and_closes_them(workdir: Path) -> None:
    (workdir / pod.STREAM_SOCKET).write_text("stale file of the previous agent")
    adopted = vms.AdoptedVm(os.getpid(), workdir, grace_s=1)  # not a QEMU: never alive
    assert adopted.streams is not None
    for name in ("control.sock", pod.STREAM_SOCKET):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(str(workdir / name))  # listening already, as QEMU's reconnect needs
        probe.close()
        if os.geteuid() == 0:  # QEMU runs as the pod uid: it must be allowed to connect
            assert (workdir / name).stat().st_uid == qemu.POD_UID
    adopted.stop()  # QEMU is gone: nothing to ask, the sockets go
    assert not (workdir / "control.sock").exists()
    assert not (workdir / pod.STREAM_SOCKET).exists()
