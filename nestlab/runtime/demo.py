"""Run one command in a throw-away vSphere-style pod: the smallest way to watch a pod boot.

Builds (or finds in the cache) the pod kernel and pod-init, makes a busybox container image,
boots a pod microVM around the command, and returns the pod's events and console. This is the
library side of a ``nestlab pod-demo -- CMD...`` command; it is also what docs/pods.md shows.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nestlab.runtime import accel, control, disks, initramfs, kernel, pod
from nestlab.runtime.poddesc import Container, ContainerName, DiskSerial, PodDescription, RestartPolicy

IMAGE = DiskSerial("img-busybox")
TIMEOUT_S = 300.0  # a TCG boot takes seconds; a loaded two-core machine may need far more


@dataclass(frozen=True)
class DemoResult:
    """What the pod did."""

    done: control.PodDone
    events: tuple[control.Event, ...]
    console: str
    accel: accel.Accel


def run(
    command: Sequence[str], restart_policy: RestartPolicy = "Never", chosen: accel.Accel | None = None
) -> DemoResult:
    """Boot a pod whose one container (Debian's busybox) runs ``command``; wait for it to finish."""
    boot = pod.BootFiles(kernel.build().vmlinux, initramfs.build().initramfs)
    if chosen is None:
        chosen = accel.probe(pod_kernel=(boot.kernel, boot.initrd))
    description = PodDescription(
        "demo", (Container(ContainerName("demo"), IMAGE, tuple(command)),), restart_policy=restart_policy
    )
    with tempfile.TemporaryDirectory(prefix="nestlab-pod-demo-") as tmp:
        work = Path(tmp)
        image = disks.make_image(disks.busybox_root(work / "root"), work / "busybox.erofs")
        vm = pod.launch(description, {IMAGE: image}, work / "pod", boot, chosen)
        try:
            done = vm.wait_done(TIMEOUT_S)
        finally:
            vm.stop()
        return DemoResult(done, tuple(vm.events), vm.console_log.read_text(errors="replace"), chosen)
