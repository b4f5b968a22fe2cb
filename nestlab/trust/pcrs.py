"""Which PCR records what: the one table the measurer, the policy and the verifier share.

Assignment (sha256 bank):

- PCR 8: host boot components: the packages the node agent and pod kernel come from (type
  ``package``). Measured once per host boot, before the agent starts.
- PCR 9: host configuration: the agent's configuration file (type ``config``).
- PCR 11: pod launches: for every pod microVM, the kernel, the initramfs and the kernel command
  line (types ``pod-kernel``, ``pod-initramfs``, ``pod-cmdline``), each event naming the pod.

- PCRs 0-7: the firmware's own measurements (UEFI code, configuration, boot loader, Secure Boot
  state), explained by the firmware's binary event log (nestlab.trust.firmware); all zero on hosts
  that have no firmware (the nspawn lab's nodes and their swtpm).

Why these numbers: PCRs 0-7 belong to firmware; PCR 10 is where Linux IMA extends its boot
aggregate (Debian kernels enable IMA), so pod launches skip it; 16 and 23 are resettable by
software and 17-22 by locality 4 (DRTM), so none of those can prove anything about a boot. PCRs
8-15 are only reset by a TPM reset, i.e. a host reboot.
"""

from __future__ import annotations

from typing import Final

HASH: Final = "sha256"
DIGEST_SIZE: Final = 32  # bytes of a sha256 digest
ZERO: Final = bytes(DIGEST_SIZE)  # the value of PCRs 0-16 and 23 after a TPM reset

PCR_PACKAGES: Final = 8
PCR_CONFIG: Final = 9
PCR_PODS: Final = 11

#: event type -> the PCR it must be extended into
ASSIGNMENT: Final[dict[str, int]] = {
    "package": PCR_PACKAGES,
    "config": PCR_CONFIG,
    "pod-kernel": PCR_PODS,
    "pod-initramfs": PCR_PODS,
    "pod-cmdline": PCR_PODS,
}

#: the PCRs nestlab itself measures into (its event log explains them)
MEASURED: Final[tuple[int, ...]] = (PCR_PACKAGES, PCR_CONFIG, PCR_PODS)

#: the PCRs the firmware measures into (its own binary log explains them; zero on a host without
#: firmware, like a lab node in a container)
FIRMWARE: Final[tuple[int, ...]] = tuple(range(8))

#: the PCRs every quote covers, in ascending order (the order the TPM hashes them in)
QUOTED: Final[tuple[int, ...]] = FIRMWARE + MEASURED

#: highest PCR index of a PC-client TPM
MAX_PCR: Final = 23
