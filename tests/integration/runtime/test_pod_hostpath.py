"""hostPath /var/log/pods in a real pod microVM: a read-only virtio-9p export of a host directory.

A temporary directory stands in for the node's /var/log/pods (the agent's ``--log-pods-dir``; the
runtime's ``host_dirs``). The container reads a log file the host wrote before the boot, sees a
line the host appends while it runs (no caching between host and pod), finds the mount read-only
in /proc/mounts, and its writes fail with EROFS, leaving the host directory unchanged.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from nestlab.runtime import disks
from nestlab.runtime.poddesc import Container, ContainerName, DiskSerial, Mount, PodDescription, Volume
from tests.integration.runtime.conftest import LaunchPod

pytestmark = pytest.mark.integration

BOOT_TIMEOUT_S = 240.0  # generous: two cores shared with every other job; never asserted on
IMAGE = DiskSerial("img-hostpath")
APPLETS = ("sh", "echo", "cat", "sleep", "grep", "touch", "true", "tail")
LOG = "ns_web_0000-uid/app/0.log"  # the kubelet's layout under /var/log/pods

READER = (
    "grep ' /host/logs ' /proc/mounts; cat /host/logs/" + LOG + ";"
    " touch /host/logs/new 2>&1 || echo touch-failed;"
    " echo overwrite 2>&1 > /host/logs/" + LOG + " || echo write-failed;"
    " until grep -q appended /host/logs/"
    + LOG
    + "; do sleep 0.2; done; echo seen-$(tail -n 1 /host/logs/"
    + LOG
    + ");"
    " sleep 600"
)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("hostpathimage")
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


def test_var_log_pods_is_mounted_read_only_and_follows_the_host(
    launch_pod: LaunchPod, image: Path, tmp_path: Path
) -> None:
    node_logs = tmp_path / "var-log-pods"
    log_file = node_logs / LOG
    log_file.parent.mkdir(parents=True)
    for directory in (node_logs, log_file.parent.parent, log_file.parent):
        directory.chmod(0o755)  # QEMU reads it as its unprivileged user, as the agent's files are
    log_file.write_text("2026-01-01T00:00:00.000000000Z stdout F hello-from-host\n")
    log_file.chmod(0o644)
    description = PodDescription(
        "hostpath",
        (
            Container(
                ContainerName("reader"),
                IMAGE,
                ("sh", "-c", READER),
                mounts=(Mount("logs", "/host/logs", read_only=True),),
            ),
        ),
        volumes=(Volume("logs", "hostpath", source="/var/log/pods"),),
    )
    vm = launch_pod(description, {IMAGE: image}, host_dirs={"/var/log/pods": node_logs})
    console = vm.console_log

    wait_for(console, r"^\[reader\] nestlab\.hp0 /host/logs 9p ro[, ]")
    wait_for(console, r"^\[reader\] \S+ stdout F hello-from-host$")
    wait_for(console, r"^\[reader\] touch: /host/logs/new: Read-only file system$")
    wait_for(console, r"^\[reader\] sh: can't create /host/logs/\S+: Read-only file system$")
    wait_for(console, r"^\[reader\] write-failed$")
    with log_file.open("a") as handle:
        handle.write("2026-01-01T00:00:01.000000000Z stdout F appended\n")
    wait_for(console, r"^\[reader\] seen-\S+ stdout F appended$")
    assert sorted(p.name for p in node_logs.iterdir()) == ["ns_web_0000-uid"]
    assert log_file.read_text().splitlines()[0].endswith("hello-from-host")  # not overwritten
