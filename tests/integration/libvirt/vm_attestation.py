"""Attestation of the libvirt test's VM: the firmware's measurements (OVMF + vTPM) with nestlab's own.

Inside the booted VM, over SSH: EK + AK made in its vTPM with tpm2-tools (the VM image has them),
one nestlab measurement (an agent configuration, through Measurer, whose TPM here extends the vTPM
over SSH) on top of what Linux's EFI stub put into PCR 9, a quote over PCRs 0-9 and 11, and the
firmware log. The files come back base64-encoded on SSH's stdout (proc.run returns text). The
outer machine then has what a verifier gets from a libvirt host: registration, evidence and a policy
holding the PCR 0-7 values the registrar saw.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nestlab.runtime import proc
from nestlab.trust import attest, firmware, pcrs, tpmstruct
from nestlab.trust.measure import Measurer, file_digest
from nestlab.trust.policy import Policy, with_firmware
from nestlab.trust.verdict import HostName
from nestlab.trust.verify import Evidence, Registration

VTPM = "device:/dev/tpmrm0"  # what inventory.HOST_TPM_TCTI gives libvirt hosts
QUOTE_SCRIPT = """set -e
work=$(mktemp -d); cd "$work"; T={tcti}
tpm2_createek -T $T -c ek.ctx -G rsa >/dev/null
tpm2_readpublic -T $T -c ek.ctx -o ek.pub >/dev/null
tpm2_createak -T $T -C ek.ctx -c ak.ctx -G rsa -g sha256 -s rsassa >/dev/null
tpm2_readpublic -T $T -c ak.ctx -o ak.pub >/dev/null
tpm2_quote -T $T -c ak.ctx -l sha256:{pcrs} -q {nonce} -m quote.msg -s quote.sig -o pcrs.bin -g sha256 \
  > quote.out
cat {log} > firmware.log
for f in ek.pub ak.pub quote.msg quote.sig quote.out firmware.log; do echo "$f $(base64 -w0 $f)"; done
cd /; rm -rf "$work"
"""
PCR_LINE = re.compile(r"^\s*(\d+)\s*:\s*0x([0-9A-Fa-f]{64})\s*$", re.MULTILINE)  # tpm2_quote's sha256 bank
Ssh = Callable[[str], proc.Result]


@dataclass(frozen=True)
class VmExtender:
    """Measurer's TPM: extends the VM's vTPM over SSH, as nestlab-trust does on a libvirt host."""

    ssh: Ssh

    def pcr_extend(self, index: int, digest: bytes) -> None:
        self.ssh(f"tpm2_pcrextend -T {VTPM} {index}:sha256={digest.hex()}")


@dataclass(frozen=True)
class VmAttestation:
    registration: Registration
    nonce: bytes
    evidence: Evidence
    policy: Policy
    """Allows the measured config and exactly the PCR 0-7 values the vTPM quoted."""


def attest_vm(ssh: Ssh, host: HostName, work: Path) -> VmAttestation:
    config = work / "nestlab-agent.service"
    config.write_text(f"[Service]\nExecStart=/opt/nestlab/bin/nestlab-agent --tpm={VTPM}\n")
    measurer = Measurer(VmExtender(ssh), work / "measurements.json")
    measurer.measure_config(config)
    nonce = secrets.token_bytes(attest.NONCE_SIZE)
    script = QUOTE_SCRIPT.format(
        tcti=VTPM, pcrs=",".join(map(str, pcrs.QUOTED)), nonce=nonce.hex(), log=firmware.SYSFS_LOG
    )
    lines = ssh(script).stdout.splitlines()
    files = {
        name: base64.b64decode(data) for name, _, data in (line.partition(" ") for line in lines if line)
    }
    quoted = {int(i): bytes.fromhex(v) for i, v in PCR_LINE.findall(files["quote.out"].decode())}
    ak = tpmstruct.parse_public(files["ak.pub"])
    registration = Registration(host, files["ek.pub"], files["ak.pub"], ak.name)
    log = measurer.read().dumps()
    evidence = Evidence(files["quote.msg"], files["quote.sig"], quoted, log, files["firmware.log"])
    allowed = {index: quoted[index].hex() for index in pcrs.FIRMWARE}  # what the registrar records
    policy = Policy("lab-vmtest", {}, frozenset(), frozenset(), frozenset({file_digest(config)}))
    return VmAttestation(registration, nonce, evidence, with_firmware(policy, allowed))
