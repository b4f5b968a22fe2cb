"""Boot-to-init of the just-enough pod kernel against Debian's cloud kernel, same accelerator.

Both kernels boot the same tiny initramfs (Debian's static busybox as /init) in the same QEMU
microvm; the cloud kernel's initramfs also carries the virtio modules it needs (they are built in
ours) and gets ACPI, since it cannot find virtio-mmio devices on the command line. Times run from
spawning QEMU to two console markers: ``init`` (the kernel ran /init) and ``ready`` (virtio
modules loaded and the virtio disk visible, the point where a pod could start its containers).
QEMU's RSS is sampled at ``ready``. Prints medians over N runs and the ratios, then the whole
nestlab pod path with the just-enough kernel: launch to pod-init's ``init`` event, to the busybox
container's ``started`` event, and to QEMU's exit after the container finished.

    .venv/bin/python bench/pods_boot.py --runs 5 [--accel tcg|kvm|probe]
"""

from __future__ import annotations

import argparse
import shutil
import stat
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from nestlab import paths
from nestlab.runtime import accel, control, disks, initramfs, kernel, pod, proc, qemu
from nestlab.runtime.poddesc import Container, ContainerName, DiskSerial, PodDescription

CLOUD_META = "linux-image-cloud-amd64"
CLOUD_MODULES = ("virtio_ring", "virtio", "virtio_mmio", "virtio_blk", "virtio_console")  # dependency order
GUEST_MIB = 128
TIMEOUT_S = 120.0
HANG_S = 45.0  # no /init by then = hung (seen with the cloud kernel after a failed TSC calibration)
INIT_SCRIPT = """#!/bin/busybox sh
/bin/busybox echo NESTLAB-BENCH-INIT
/bin/busybox mount -t sysfs sysfs /sys
for m in {modules}; do /bin/busybox insmod /lib/modules/$m.ko; done
n=0
while [ ! -e /sys/block/vda ] && [ $n -lt 5000 ]; do /bin/busybox usleep 2000; n=$((n+1)); done
[ -e /sys/block/vda ] && /bin/busybox echo NESTLAB-BENCH-READY || /bin/busybox echo NESTLAB-BENCH-FAILED
/bin/busybox sleep 1
/bin/busybox reboot -f
"""


@dataclass(frozen=True)
class Boot:
    init_s: float
    ready_s: float
    rss_mib: float


def cloud_kernel() -> tuple[Path, Path]:
    """Debian's cloud kernel (vmlinuz, module dir), fetched with apt-get download once."""
    depends = proc.run(["apt-cache", "depends", CLOUD_META], timeout=60).stdout
    package = next(line.split(":", 1)[1].strip() for line in depends.splitlines() if "Depends:" in line)
    root = paths.cache_dir() / "bench" / package
    if not (root / "boot").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        with tempfile.TemporaryDirectory() as tmp:
            proc.run(["apt-get", "download", package], timeout=600, cwd=Path(tmp))
            (deb,) = Path(tmp).glob("*.deb")
            proc.run(["dpkg-deb", "-x", str(deb), str(root)], timeout=600)
    (vmlinuz,) = (root / "boot").glob("vmlinuz-*")
    (moddir,) = (root / "lib" / "modules").iterdir()
    return vmlinuz, moddir


def bench_initramfs(path: Path, modules: dict[str, bytes]) -> Path:
    """A busybox /init that loads ``modules`` and prints the markers."""
    script = INIT_SCRIPT.format(modules=" ".join(modules) or "")
    entries = [
        initramfs.Entry(name, stat.S_IFDIR | 0o755)
        for name in ("bin", "dev", "sys", "proc", "lib", "lib/modules")
    ]
    entries += [
        initramfs.Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
        initramfs.Entry("bin/busybox", stat.S_IFREG | 0o755, Path("/bin/busybox").read_bytes()),
        initramfs.Entry("init", stat.S_IFREG | 0o755, script.encode()),
    ]
    entries += [
        initramfs.Entry(f"lib/modules/{n}.ko", stat.S_IFREG | 0o644, data) for n, data in modules.items()
    ]
    path.write_bytes(initramfs.newc(entries))
    return path


def boot_once(kernel_path: Path, initrd: Path, acpi: bool, chosen: accel.Accel, work: Path) -> Boot | None:
    """One boot; seconds from spawn to each marker, RSS at the second; None when the kernel hung."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    disk = work / "disk.raw"
    disk.write_bytes(b"\0" * 1024 * 1024)
    config = qemu.VmConfig(
        name="bench", kernel=kernel_path, initrd=initrd, vcpus=1, memory_mib=GUEST_MIB,
        disks=(qemu.Disk(disk, DiskSerial("bench")),), console_log=work / "console.log",
        control_socket=None, qmp_socket=work / "qmp.sock", accel=chosen, acpi=acpi,
        runas=qemu.default_runas(), tsc_khz=qemu.default_tsc_khz(chosen),
    )  # fmt: skip
    start = time.monotonic()
    vm = qemu.QemuVmm().launch(config)
    marks: dict[str, float] = {}
    rss = 0.0
    try:
        while len(marks) < 2:
            text = config.console_log.read_text(errors="replace") if config.console_log.exists() else ""
            if "INIT" not in marks and time.monotonic() - start > HANG_S:
                return None
            failed = "NESTLAB-BENCH-FAILED" in text or vm.process.poll() is not None
            if failed or time.monotonic() - start > TIMEOUT_S:
                qemu_log = config.console_log.with_suffix(".qemu.log").read_text(errors="replace")
                raise qemu.VmError(
                    f"QEMU exit {vm.process.poll()}, no virtio disk or markers:\n{text[-2000:]}\n{qemu_log}"
                )
            for mark in ("INIT", "READY"):
                if mark not in marks and f"NESTLAB-BENCH-{mark}" in text:
                    marks[mark] = time.monotonic() - start
                    if mark == "READY":
                        rss = vm.rss_kib() / 1024
            time.sleep(0.005)
        vm.wait(TIMEOUT_S)
    finally:
        vm.stop(grace=1.0)
    return Boot(marks["INIT"], marks["READY"], rss)


def pod_once(boot: pod.BootFiles, image: Path, chosen: accel.Accel, work: Path) -> tuple[float, float, float]:
    """Seconds from launch to pod-init's init event, the container's start, and QEMU's exit."""
    shutil.rmtree(work, ignore_errors=True)
    serial = DiskSerial("img-busybox")
    description = PodDescription("bench", (Container(ContainerName("c"), serial, ("true",)),))
    start = time.monotonic()
    vm = pod.launch(description, {serial: image}, work, boot, chosen)
    marks: list[float] = []
    try:
        while len(marks) < 2:
            event = vm.next_event(TIMEOUT_S)
            if isinstance(event, control.Init | control.Started):
                marks.append(time.monotonic() - start)
        vm.wait_done(TIMEOUT_S)
        marks.append(time.monotonic() - start)
    finally:
        vm.stop()
    return marks[0], marks[1], marks[2]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--accel", choices=["tcg", "kvm", "probe"], default="tcg")
    options = parser.parse_args()
    chosen = accel.probe() if options.accel == "probe" else accel.Accel(options.accel, "--accel")
    pod_kernel = kernel.build().vmlinux
    vmlinuz, moddir = cloud_kernel()
    found = {p.stem: p for p in moddir.rglob("*.ko")}
    with tempfile.TemporaryDirectory(prefix="nestlab-bench-") as tmp:
        base = Path(tmp)
        ours_initrd = bench_initramfs(base / "ours.cpio", {})
        cloud_initrd = bench_initramfs(base / "cloud.cpio", {m: found[m].read_bytes() for m in CLOUD_MODULES})
        results: dict[str, list[Boot | None]] = {"just-enough": [], "debian-cloud": []}
        for run in range(options.runs):  # interleaved, so machine load drifts hit both alike
            results["just-enough"].append(boot_once(pod_kernel, ours_initrd, False, chosen, base / "a"))
            results["debian-cloud"].append(boot_once(vmlinuz, cloud_initrd, True, chosen, base / "b"))
            print(f"run {run + 1}/{options.runs} done", file=sys.stderr)
    print(f"accelerator: {chosen.name} ({chosen.reason}); guest RAM {GUEST_MIB} MiB; {options.runs} runs")
    print("medians over the boots that did not hang")
    print(f"{'kernel':14} {'init s':>8} {'ready s':>8} {'RSS MiB':>8} {'RSS-RAM':>8}  hung")
    medians = {}
    for name, outcomes in results.items():
        boots = [b for b in outcomes if b is not None]
        if not boots:
            print(f"{name:14} hung in every run")
            return 1
        init = statistics.median(b.init_s for b in boots)
        ready = statistics.median(b.ready_s for b in boots)
        rss = statistics.median(b.rss_mib for b in boots)
        medians[name] = (init, ready, rss)
        hung = len(outcomes) - len(boots)
        print(f"{name:14} {init:8.2f} {ready:8.2f} {rss:8.1f} {rss - GUEST_MIB:8.1f}  {hung}/{len(outcomes)}")
    ours, cloud = medians["just-enough"], medians["debian-cloud"]
    print(f"ratio cloud/just-enough: init {cloud[0] / ours[0]:.2f}x, ready {cloud[1] / ours[1]:.2f}x")
    boot = pod.BootFiles(pod_kernel, initramfs.build().initramfs)
    with tempfile.TemporaryDirectory(prefix="nestlab-bench-") as tmp:
        image = disks.make_image(disks.busybox_root(Path(tmp) / "root"), Path(tmp) / "busybox.erofs")
        pods = [pod_once(boot, image, chosen, Path(tmp) / "pod") for _ in range(options.runs)]
    init, started, ended = (statistics.median(p[i] for p in pods) for i in range(3))
    print(f"nestlab pod (just-enough kernel, pod-init, busybox 'true'): init event {init:.2f}s,")
    print(f"  container started {started:.2f}s, QEMU exited after the pod finished {ended:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
