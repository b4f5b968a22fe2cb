"""Attestation and measurement cost on this machine: `.venv/bin/python bench/trust_attest.py [N] [HOSTS]`.

Starts HOSTS swtpm instances (one per simulated host), enrolls and registers each, then prints:
- the median time of one full attestation per host (fresh nonce, quote, log read, tpm2_checkquote,
  replay, policy), over N rounds;
- the median extra time measure() adds to one pod launch (kernel + initramfs + cmdline events),
  over N launches, with a 15 MB kernel image (the size of Debian's cloud kernel);
- how much of that is hashing the files, to show where the time goes.
Every swtpm is stopped by PID at the end.
"""

from __future__ import annotations

import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

from nestlab.trust import attest, measure, swtpm
from nestlab.trust.policy import Policy
from nestlab.trust.verdict import HostName

KERNEL_SIZE = 15 * 1024 * 1024  # bytes: Debian's cloud vmlinuz is ~14 MB
INITRAMFS_SIZE = 2 * 1024 * 1024  # bytes: a small pod-init initramfs


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms"


def main(rounds: int, hosts: int) -> None:
    with tempfile.TemporaryDirectory(prefix="nestlab-bench-") as tmp:
        root = Path(tmp)
        kernel, initramfs = root / "vmlinuz", root / "initramfs"
        kernel.write_bytes(bytes(range(256)) * (KERNEL_SIZE // 256))
        initramfs.write_bytes(b"\x01" * INITRAMFS_SIZE)
        policy = Policy(
            "bench",
            {},
            frozenset({measure.file_digest(kernel)}),
            frozenset({measure.file_digest(initramfs)}),
            frozenset(),
        )
        started: list[swtpm.Swtpm] = []
        try:
            for index in range(hosts):
                started.append(swtpm.start_swtpm(root / f"tpm{index}"))
            for index, instance in enumerate(started):
                host = HostName(f"esx-{index + 1:02d}")
                tpm = instance.tpm()
                registration = attest.register(host, attest.enroll(tpm), tpm.activate_credential)
                measurer = measure.Measurer(tpm, root / f"events{index}.json")
                measurer.reset()
                launches, hashing = [], []
                for n in range(rounds):
                    launch = measure.PodLaunch(f"bench/pod-{n}", kernel, initramfs, "console=hvc0")
                    start = time.perf_counter()
                    measurer.measure_pod_launch(launch)
                    launches.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    measure.file_digest(kernel), measure.file_digest(initramfs)
                    hashing.append(time.perf_counter() - start)

                gather = functools.partial(attest.collect_evidence, tpm, measurer)
                attestations = []
                for _ in range(rounds):
                    start = time.perf_counter()
                    verdict = attest.attest_host(registration, policy, gather)
                    attestations.append(time.perf_counter() - start)
                    if not verdict.passed:
                        raise SystemExit(f"{host}: attestation failed: {verdict.reasons}")
                print(
                    f"{host}: attestation median {median_ms(attestations)} (N={rounds}, "
                    f"log of {3 * rounds} pod events); measure() per pod launch median "
                    f"{median_ms(launches)}, of which hashing {median_ms(hashing)}"
                )
        finally:
            for instance in started:
                instance.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
