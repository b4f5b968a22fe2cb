"""Pod volumes in a real pod microVM (pod kernel, pod-init, QEMU microvm under TCG, busybox).

One boot checks what containers see: a files volume (ConfigMap-like) read-only with its modes
(0400 shows as -r--------), a subPath file, an emptyDir shared by two containers, a sized tmpfs;
then the host sends a new generation over the control channel and the container sees the new
content through a new ``..data`` target, while its subPath file keeps the old content (upstream).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from nestlab.runtime import control, disks
from nestlab.runtime.poddesc import (
    Container,
    ContainerName,
    DiskSerial,
    Mount,
    PodDescription,
    Volume,
    VolumeFile,
)
from tests.integration.runtime.conftest import LaunchPod

pytestmark = pytest.mark.integration

BOOT_TIMEOUT_S = 240.0  # generous: two cores shared with every other job; never asserted on
IMAGE = DiskSerial("img-volumes")
APPLETS = ("sh", "echo", "cat", "sleep", "ls", "stat", "readlink", "grep", "touch", "test", "[", "true")

WATCH = (
    "ls -lL /etc/secret/pass; stat -L -c 'mode %a %n' /etc/cfg/k /etc/secret/pass;"
    " touch /etc/cfg/new 2>/dev/null && echo cfg-writable || echo cfg-readonly;"
    " grep ' /fast ' /proc/mounts; last=;"
    ' while true; do cur="k=$(cat /etc/cfg/k) data=$(readlink /etc/cfg/..data) sub=$(cat /etc/subk)";'
    ' [ "$cur" != "$last" ] && echo "$cur"; last=$cur; sleep 0.2; done'
)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("volimage")
    return disks.make_image(disks.busybox_root(base / "root", applets=APPLETS), base / "busybox.erofs")


def wait_for(log: Path, pattern: str) -> re.Match[str]:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while True:
        text = log.read_text(errors="replace") if log.exists() else ""  # QEMU creates it as it starts
        found = re.search(pattern, text, re.MULTILINE)
        if found:
            return found
        assert time.monotonic() < deadline, f"{pattern!r} never appeared in {log}"
        time.sleep(0.1)


def test_volumes_modes_sharing_and_a_live_update(launch_pod: LaunchPod, image: Path) -> None:
    cfg = Volume("cfg", "files", files=(VolumeFile("k", 0o644, b"one"),))
    secret = Volume("secret", "files", files=(VolumeFile("pass", 0o400, b"s3cret"),))
    description = PodDescription(
        "volumes",
        (
            Container(
                ContainerName("watch"),
                IMAGE,
                ("sh", "-c", WATCH),
                mounts=(
                    Mount("cfg", "/etc/cfg"),
                    Mount("secret", "/etc/secret"),
                    Mount("cfg", "/etc/subk", sub_path="k"),
                    Mount("fast", "/fast"),
                ),
            ),
            Container(
                ContainerName("writer"),
                IMAGE,
                # Written under another name and renamed: the reader waits for the name, and
                # `echo > msg` would show it an empty file between the create and the write.
                (
                    "sh",
                    "-c",
                    "echo hello-from-writer > /shared/.msg && mv /shared/.msg /shared/msg; sleep 600",
                ),
                mounts=(Mount("shared", "/shared"),),
            ),
            Container(
                ContainerName("reader"),
                IMAGE,
                (
                    "sh",
                    "-c",
                    'while [ ! -f /shared/msg ]; do sleep 0.1; done; echo "sees $(cat /shared/msg)"; sleep 600',
                ),
                mounts=(Mount("shared", "/shared", read_only=True),),
            ),
        ),
        volumes=(cfg, secret, Volume("shared", "dir"), Volume("fast", "tmpfs", 16)),
    )
    vm = launch_pod(description, {IMAGE: image})
    log = vm.console_log

    first = wait_for(log, r"^\[watch\] k=one data=(\.\.gen_\d+) sub=one$")
    wait_for(log, r"^\[watch\] -r-------- .* /etc/secret/pass$")
    wait_for(log, r"^\[watch\] mode 644 /etc/cfg/k$")
    wait_for(log, r"^\[watch\] mode 400 /etc/secret/pass$")
    wait_for(log, r"^\[watch\] cfg-readonly$")
    wait_for(log, r"^\[watch\] tmpfs /fast tmpfs .*size=16384k")
    wait_for(log, r"^\[reader\] sees hello-from-writer$")

    vm.channel.send_update("cfg", (VolumeFile("k", 0o644, b"two"),))
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while True:
        event = vm.next_event(max(deadline - time.monotonic(), 0.1))
        assert event is not None, "the pod closed the control channel before acknowledging the update"
        if isinstance(event, control.VolumeUpdated):
            break
    assert event == control.VolumeUpdated("cfg", True)
    second = wait_for(log, r"^\[watch\] k=two data=(\.\.gen_\d+) sub=one$")  # subPath keeps the old file
    assert second.group(1) != first.group(1)
