"""What the launch gate costs: pod launches with the trust gate on against the same launches with it off.

Gate on is what the agent does with ``--kernel-cert``: copy the signed ``vmlinux.efi`` into the
pod's work dir, ``sbverify`` the copy, extract ``.linux``, copy and hash the initramfs against
``.irdsha``, measure kernel + initramfs + command line into a real swtpm's PCR 11
(:class:`nestlab.agent.kernelgate.LaunchGate`), then launch. Gate off launches the unsigned
vmlinux and initramfs directly. Time: from the agent's gate call (on) or launcher call (off) to
pod-init's first event (``init``: the kernel booted pod-init), and the gate step alone. Runs are
interleaved (on, off, on, off...) so load drifts hit both alike; prints medians and the ratio.

    .venv/bin/python bench/pod_launch_trust.py --runs 10 [--accel tcg|kvm]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nestlab.agent import kernelgate
from nestlab.runtime import accel, control, disks, initramfs, kernel, pod
from nestlab.runtime.poddesc import Container, ContainerName, DiskSerial, PodDescription
from nestlab.trust import swtpm
from nestlab.trust.measure import Measurer
from tests.integration.agent import signed_kernel

TIMEOUT_S = 240.0


def launch_once(
    boot: pod.BootFiles | None,
    gate: kernelgate.LaunchGate | None,
    image: Path,
    chosen: accel.Accel,
    work: Path,
) -> tuple[float, float]:
    """(seconds spent in the gate, seconds from the first call to pod-init's init event)."""
    shutil.rmtree(work, ignore_errors=True)
    serial = DiskSerial("img-busybox")
    description = PodDescription("bench", (Container(ContainerName("c"), serial, ("true",)),))
    start = time.monotonic()
    if gate is not None:
        gate("bench/pod", work, ())
    gated = time.monotonic() - start
    vm = pod.launch(description, {serial: image}, work, boot or kernelgate.work_boot(work), chosen)
    try:
        while not isinstance(vm.next_event(TIMEOUT_S), control.Init):
            pass
        return gated, time.monotonic() - start
    finally:
        vm.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--accel", choices=["tcg", "kvm"], default="tcg")
    options = parser.parse_args()
    chosen = accel.Accel("kvm" if options.accel == "kvm" else "tcg", "--accel")
    vmlinux, initrd = kernel.build().vmlinux, initramfs.build().initramfs
    with tempfile.TemporaryDirectory(prefix="nestlab-bench-") as tmp:
        base = Path(tmp)
        (base / "signed").mkdir()
        signed = signed_kernel.build(vmlinux, initrd, base / "signed")
        image = disks.make_image(disks.busybox_root(base / "root"), base / "busybox.erofs")
        tpm = swtpm.start_swtpm(base / "tpm", log=base / "swtpm.log")
        try:
            measurer = Measurer(tpm.tpm(), base / "run" / "measurements.json")
            measurer.reset()
            gate = kernelgate.LaunchGate(
                kernelgate.SignedKernel(signed.image, signed.initrd, signed.cert), measurer, chosen
            )
            plain = pod.BootFiles(vmlinux, initrd)
            on: list[tuple[float, float]] = []
            off: list[tuple[float, float]] = []
            for run in range(options.runs):  # interleaved
                on.append(launch_once(None, gate, image, chosen, base / "on"))
                off.append(launch_once(plain, None, image, chosen, base / "off"))
                (gate_s, on_s), (_, off_s) = on[-1], off[-1]
                print(
                    f"run {run + 1}: on {on_s:.2f}s (gate {gate_s:.2f}s), off {off_s:.2f}s", file=sys.stderr
                )
            events = len(measurer.read().events)
        finally:
            tpm.stop()
    gate_s = statistics.median(g for g, _ in on)
    on_s = statistics.median(t for _, t in on)
    off_s = statistics.median(t for _, t in off)
    print(f"accelerator {chosen.name}; {options.runs} launches each, interleaved; {events} events measured")
    print("time: gate call (on) / launcher call (off) -> pod-init's init event")
    print(f"  gate on : median {on_s:.2f}s  (the gate alone: {gate_s:.3f}s)")
    print("            gate = copy, sbverify, extract .linux, copy+hash initramfs, 3 PCR extends + log")
    print(f"  gate off: median {off_s:.2f}s")
    print(f"  ratio on/off: {on_s / off_s:.2f}x; gate overhead {on_s - off_s:+.2f}s median")
    return 0


if __name__ == "__main__":
    sys.exit(main())
