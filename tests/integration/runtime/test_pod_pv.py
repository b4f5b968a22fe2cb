"""A PersistentVolume in a real pod microVM: a REAL qemu-storage-daemon exports a sparse raw file
formatted with ``mkfs.ext4 -F`` over NBD on 127.0.0.1 (``max-connections=1``, as the lab datastore
does), QEMU's own NBD client gives it to the pod VM as a virtio-blk disk, pod-init mounts it by serial
and binds it into the container.

The first VM writes a file on the volume and ends (pod-init syncs before it powers off); a second VM
of the same volume, mounted read-only, reads it back and cannot write. A third pod whose export is
not a file system shows the failure a user sees: the container does not start, its stderr says
which volume and why.
"""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nestlab.runtime import control, disks, proc
from nestlab.runtime.poddesc import Container, ContainerName, DiskSerial, Mount, PodDescription, Volume
from tests.integration.runtime.conftest import LaunchPod

pytestmark = pytest.mark.integration

BOOT_TIMEOUT_S = 300.0  # generous: two cores shared with every other job; never asserted on
DAEMON_START_S = 30.0  # qemu-storage-daemon writes its pidfile once the export is served
VOLUME_MIB = 64  # sparse: costs only what ext4 and the test write
IMAGE = DiskSerial("img-pv")
SERIAL = DiskSerial("pv-00000000000000a1")
APPLETS = ("sh", "echo", "cat", "grep", "touch", "sync", "ls", "true")
Export = Callable[[bool], str]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("pvimage")
    return disks.make_image(disks.busybox_root(base / "root", applets=APPLETS), base / "busybox.erofs")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def export(tmp_path: Path) -> Iterator[Export]:
    """Start one qemu-storage-daemon per call exporting a fresh volume (ext4 when asked); its URL.
    Every daemon is stopped by its PID when the test ends."""
    if shutil.which("qemu-storage-daemon") is None:
        pytest.fail("qemu-storage-daemon is missing: install qemu-system-x86 (scripts/bootstrap.sh)")
    daemons: list[proc.Process] = []

    def start(formatted: bool) -> str:
        work = tmp_path / f"datastore{len(daemons)}"
        work.mkdir()
        volume, pidfile = work / "volume.raw", work / "qsd.pid"
        with volume.open("wb") as handle:
            handle.truncate(VOLUME_MIB * 1024 * 1024)
        if formatted:
            proc.run(["mkfs.ext4", "-q", "-F", str(volume)], timeout=120.0)
        port, token = free_port(), secrets.token_urlsafe(16)
        daemon = proc.spawn(
            [
                "qemu-storage-daemon",
                "--blockdev", f"driver=file,node-name=file0,filename={volume}",
                "--blockdev", "driver=raw,node-name=vol0,file=file0",
                "--nbd-server", f"addr.type=inet,addr.host=127.0.0.1,addr.port={port},max-connections=1",
                "--export", f"type=nbd,id=exp0,node-name=vol0,name={token},writable=on",
                "--pidfile", str(pidfile),
            ],
            log=work / "qsd.log",
        )  # fmt: skip
        daemons.append(daemon)
        deadline = time.monotonic() + DAEMON_START_S
        while not pidfile.exists() or not pidfile.read_text().strip():
            log = (work / "qsd.log").read_text(errors="replace")
            assert daemon.poll() is None, f"qemu-storage-daemon ended: {log}"
            assert time.monotonic() < deadline, f"qemu-storage-daemon never served its export: {log}"
            time.sleep(0.05)
        return f"nbd://127.0.0.1:{port}/{token}"

    yield start
    for daemon in daemons:
        daemon.stop()


def pod(name: str, url: str, script: str, *, read_only: bool = False) -> PodDescription:
    app = Container(
        ContainerName("app"), IMAGE, ("sh", "-c", script), mounts=(Mount("data", "/data", read_only),)
    )
    volume = Volume("data", "block", serial=SERIAL, fs_type="ext4", read_only=read_only, source=url)
    return PodDescription(name, (app,), volumes=(volume,))


def finished(vm_log: Path, done: control.PodDone, phase: str) -> str:
    log = vm_log.read_text(errors="replace")
    assert done.phase == phase, log
    return log


def test_a_volume_written_by_one_vm_is_read_back_by_the_next(
    launch_pod: LaunchPod, image: Path, export: Export
) -> None:
    url = export(True)
    writer = launch_pod(
        pod(
            "pv-writer", url, "grep ' /data ' /proc/mounts; echo kept-across-vms > /data/msg; sync; ls /data"
        ),
        {IMAGE: image},
    )
    log = finished(writer.console_log, writer.wait_done(BOOT_TIMEOUT_S), "Succeeded")
    assert re.search(r"^\[app\] /dev/vd\w+ /data ext4 rw,", log, re.MULTILINE), log
    assert re.search(r"^\[app\] msg$", log, re.MULTILINE), log

    reader = launch_pod(
        pod(
            "pv-reader",
            url,
            "grep ' /data ' /proc/mounts; echo read $(cat /data/msg);"
            " touch /data/new 2>/dev/null && echo writable || echo read-only",
            read_only=True,
        ),
        {IMAGE: image},
    )
    log = finished(reader.console_log, reader.wait_done(BOOT_TIMEOUT_S), "Succeeded")
    assert re.search(r"^\[app\] read kept-across-vms$", log, re.MULTILINE), log
    assert re.search(r"^\[app\] read-only$", log, re.MULTILINE), log
    assert re.search(r"^\[app\] /dev/vd\w+ /data ext4 ro,", log, re.MULTILINE), log


def test_a_volume_that_does_not_mount_fails_the_container_saying_why(
    launch_pod: LaunchPod, image: Path, export: Export
) -> None:
    vm = launch_pod(pod("pv-broken", export(False), "echo started"), {IMAGE: image})
    log = finished(vm.console_log, vm.wait_done(BOOT_TIMEOUT_S), "Failed")
    assert "[app] started" not in log
    expected = rf"^\[app\] pod-init: volume data: its PersistentVolume is not mounted: mounting /dev/vd\w+ \(serial {SERIAL}\) as ext4: "
    assert re.search(expected, log, re.MULTILINE), log
