"""The VM node image booted for real by libvirt: UEFI, vTPM, cloud-init, SSH, measured boot.

Slow-ish (a few minutes under TCG; the image build itself is cached): the test builds or reuses the
VM image, starts virtlogd and libvirtd by hand (no systemd on these machines; an already running
libvirtd is used as it is), makes a bridge on its own 198.18.247.0/24 range, defines a domain the way
LabNode does (q35, OVMF, tpm-crb backed by swtpm, the cloud-init disk on SATA) with a qcow2 overlay
on the image, and boots it. It then logs in over SSH with the lab key at the address cloud-init set
by MAC, and reads the firmware's event log and PCRs from the VM's TPM: the log must replay to the
PCR values the TPM reports. Then it attests the VM the way a libvirt host is attested
(vm_attestation.py: EK + AK in the vTPM, a nestlab measurement into PCR 9, a quote over PCRs 0-9 and
11, the firmware log) and verifies that on this machine: it passes, a flipped firmware log byte fails
replay, a policy with other PCR 0 values fails naming PCR 0. Boot time (start -> SSH answers) is printed. Domain, TPM state, NVRAM,
bridge, daemons (by PID) and temporary files are removed afterwards, also on failure.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from nestlab.runtime import proc
from nestlab.spec import NodeName, Role
from nestlab.spec.model import Size
from nestlab.spec.plan import PlannedNode
from nestlab.substrate.libvirt import cloudinit, image
from nestlab.substrate.libvirt.node import OVMF_CODE, OVMF_VARS, TPM_MODEL, TPM_VERSION
from nestlab.trust import firmware, pcrs, tpm
from nestlab.trust.policy import Policy
from nestlab.trust.verdict import HostName, Verdict
from nestlab.trust.verify import Evidence, verify
from tests.integration.libvirt.vm_attestation import VmAttestation, attest_vm

pytestmark = [
    pytest.mark.integration,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="libvirtd, bridges and image builds need root"),
]

URI = "qemu:///system"
NETWORK = IPv4Network("198.18.247.0/24")  # this test's own range; other tests use 241-245
GATEWAY = IPv4Address("198.18.247.1")
NODE = PlannedNode(
    name=NodeName("esx-01"),
    role=Role.HOST,
    address=IPv4Address("198.18.247.21"),
    placed_on=NodeName("esx-01"),
    hypervisor=0,
    size=Size(cpu=2, memory_mib=1024, disk_mib=4096),
)
STEP_TIMEOUT = 60.0  # virsh, ip, qemu-img and ssh steps; each takes seconds at most
BUILD_TIMEOUT = 3600.0  # a cold image build (node tree + VM packages) on a slow mirror
DAEMON_READY_S = 60.0  # libvirtd answering virsh after it was started
BOOT_DEADLINE_S = 600.0  # OVMF + kernel + cloud-init under TCG on two shared cores
SSH_OPTIONS = (
    "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
)  # fmt: skip
# Logs libvirt keeps per domain (QEMU's command line and errors, swtpm's): shown on failure, then removed.
LIBVIRT_LOGS = ("/var/log/libvirt/qemu/{name}.log", "/var/log/swtpm/libvirt/qemu/{name}-swtpm.log")
TCG_TB_CACHE_MIB = 64  # the default translation cache adds ~800 MB RSS per VM (ARCHITECTURE.md)


def virsh(*args: str, check: bool = True) -> proc.Result:
    return proc.run(["virsh", "-c", URI, *args], timeout=STEP_TIMEOUT, check=check)


@pytest.fixture(scope="module")
def vm_image() -> image.VmImage:
    """The VM image, built once (minutes) and then taken from the cache."""
    started = time.monotonic()
    built = image.ensure_vm_image(progress=lambda msg: print(f"vm-image: {msg}", flush=True))
    print(f"vm-image: {built.path} ({time.monotonic() - started:.1f} s to build or find)")
    return built


@pytest.fixture(scope="module")
def libvirt_daemons() -> Iterator[None]:
    """virtlogd + libvirtd started here (stopped by PID afterwards), or the ones already running."""
    if virsh("version", check=False).returncode == 0:
        yield
        return
    logs = Path(tempfile.mkdtemp(prefix="nestlab-libvirtd-"))
    started: list[proc.Process] = []
    try:
        started.append(proc.spawn(["virtlogd"], log=logs / "virtlogd.log"))
        started.append(proc.spawn(["libvirtd"], log=logs / "libvirtd.log"))
        deadline = time.monotonic() + DAEMON_READY_S
        while virsh("version", check=False).returncode != 0:
            if time.monotonic() > deadline or any(p.poll() is not None for p in started):
                text = (logs / "libvirtd.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"libvirtd did not answer on {URI}: {text}")
            time.sleep(0.5)
        yield
    finally:
        for daemon in reversed(started):
            daemon.stop(grace=15.0)
        shutil.rmtree(logs, ignore_errors=True)


@pytest.fixture(scope="module")
def bridge() -> Iterator[str]:
    """A bridge holding the gateway address of the test's lab range; nothing routes it anywhere."""
    taken = proc.run(["ip", "-4", "-o", "addr", "show"], timeout=STEP_TIMEOUT).stdout
    if f" {GATEWAY}/" in taken:
        pytest.fail(f"{GATEWAY} is already on an interface here: another run of this test?")
    name = f"nlvm-{secrets.token_hex(3)}"
    proc.run(["ip", "link", "add", name, "type", "bridge"], timeout=STEP_TIMEOUT)
    try:
        proc.run(["ip", "addr", "add", f"{GATEWAY}/{NETWORK.prefixlen}", "dev", name], timeout=STEP_TIMEOUT)
        proc.run(["ip", "link", "set", name, "up"], timeout=STEP_TIMEOUT)
        yield name
    finally:
        proc.run(["ip", "link", "del", name], timeout=STEP_TIMEOUT, check=False)


@dataclass(frozen=True)
class BootedVm:
    """A running domain that answered SSH."""

    name: str
    key: Path
    boot_seconds: float

    def ssh(self, command: str) -> proc.Result:
        argv = ["ssh", *SSH_OPTIONS, "-i", str(self.key), f"root@{NODE.address}", command]
        return proc.run(argv, timeout=STEP_TIMEOUT)


def domain_xml(name: str, work: Path, bridge: str) -> str:
    """The domain as LabNode declares it, with TCG, a file console, and qemu as root (no relabeling
    of the shared cached image)."""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{NODE.size.memory_mib}</memory>
  <vcpu>{NODE.size.cpu}</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>{OVMF_CODE}</loader>
    <nvram template='{OVMF_VARS}'>{work}/VARS.fd</nvram>
  </os>
  <features><acpi/><apic/><tcg><tb-cache unit='MiB'>{TCG_TB_CACHE_MIB}</tb-cache></tcg></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/><source file='{work}/disk.qcow2'/><target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/><source file='{work}/seed.iso'/><target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='bridge'>
      <source bridge='{bridge}'/><mac address='{cloudinit.mac_for(NODE.address)}'/><model type='virtio'/>
    </interface>
    <serial type='file'><source path='{work}/console.log'/><target port='0'/></serial>
    <tpm model='{TPM_MODEL}'><backend type='emulator' version='{TPM_VERSION}'/></tpm>
    <memballoon model='none'/>
  </devices>
  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>
</domain>
"""


def seed_iso(work: Path, public_key: str) -> Path:
    """The NoCloud disk (label cidata) with the documents the Pulumi program puts on its own."""
    docs = cloudinit.documents("vmtest", NODE, NETWORK, public_key)
    seed = work / "seed"
    seed.mkdir()
    (seed / "meta-data").write_text(docs.meta_data, encoding="utf-8")
    (seed / "user-data").write_text(docs.user_data, encoding="utf-8")
    (seed / "network-config").write_text(docs.network_config, encoding="utf-8")
    iso = work / "seed.iso"
    argv = ["genisoimage", "-quiet", "-output", str(iso), "-volid", "cidata", "-joliet", "-rock", str(seed)]
    proc.run(argv, timeout=STEP_TIMEOUT)
    return iso


@pytest.fixture(scope="module")
def booted_vm(vm_image: image.VmImage, libvirt_daemons: None, bridge: str) -> Iterator[BootedVm]:
    """The domain defined, started and answering SSH; destroyed and undefined afterwards."""
    work = Path(tempfile.mkdtemp(prefix="nestlab-vmboot-"))
    name = f"nestlab-vmtest-{secrets.token_hex(3)}"
    defined = False
    passed = False
    try:
        key = work / "id_ed25519"
        proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], timeout=STEP_TIMEOUT)
        seed_iso(work, key.with_suffix(".pub").read_text(encoding="ascii").strip())
        overlay = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(vm_image.path)]
        proc.run([*overlay, str(work / "disk.qcow2"), f"{NODE.size.disk_mib}M"], timeout=STEP_TIMEOUT)
        (work / "domain.xml").write_text(domain_xml(name, work, bridge), encoding="utf-8")
        virsh("define", str(work / "domain.xml"))
        defined = True
        started = time.monotonic()
        virsh("start", name)
        probe = ["ssh", *SSH_OPTIONS, "-i", str(key), f"root@{NODE.address}", "true"]
        while proc.run(probe, timeout=STEP_TIMEOUT, check=False).returncode != 0:
            if time.monotonic() - started > BOOT_DEADLINE_S:
                pytest.fail(f"{name} did not answer SSH at {NODE.address} within {BOOT_DEADLINE_S:g}s")
            time.sleep(2.0)
        vm = BootedVm(name, key, time.monotonic() - started)
        # cloud-init's config stage restarts sshd (ssh_pwauth); wait for its last stage to be done.
        wait = ["ssh", *SSH_OPTIONS, "-i", str(key), f"root@{NODE.address}", "cloud-init", "status", "--wait"]
        status = proc.run(wait, timeout=BOOT_DEADLINE_S, check=False)
        settled = time.monotonic() - started
        if status.returncode != 0:
            why = vm.ssh(
                "cloud-init status --long; grep -E 'WARNING|ERROR|Traceback' /var/log/cloud-init.log"
            )
            pytest.fail(f"cloud-init did not finish cleanly:\n{why.stdout[-4000:]}")
        analyze = vm.ssh("systemd-analyze; systemd-analyze blame | head -n 8").stdout.strip()
        print(
            f"vm boot under TCG: {vm.boot_seconds:.1f} s from virsh start to SSH, {settled:.1f} s to cloud-init done"
        )
        print(f"vm boot: {analyze}")
        yield vm
        passed = True
    finally:
        logs = [work / "console.log", *(Path(pattern.format(name=name)) for pattern in LIBVIRT_LOGS)]
        if not passed:
            for log in logs:
                text = log.read_text(errors="replace")[-6000:] if log.is_file() else "(missing)"
                print(f"--- {log} (last lines) ---\n{text}")
        if defined:
            virsh("destroy", name, check=False)
            virsh("undefine", name, "--nvram", "--tpm", check=False)
        for log in logs[1:]:
            log.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


SECTION = re.compile(r"^\s*(sha1|sha256|sha384|sha512|sm3_256)\s*:\s*$")
VALUE = re.compile(r"^\s*(\d+)\s*:\s*0x([0-9A-Fa-f]+)\s*$")


def sha256_pcrs(text: str) -> dict[int, str]:
    """PCR index -> hex value from the ``sha256:`` section of tpm2_pcrread or tpm2_eventlog output."""
    values: dict[int, str] = {}
    bank = ""
    for line in text.splitlines():
        if section := SECTION.match(line):
            bank = section.group(1)
        elif (value := VALUE.match(line)) and bank == "sha256":
            values[int(value.group(1))] = value.group(2).lower()
    return values


def test_cloud_init_named_the_node(booted_vm: BootedVm) -> None:
    assert booted_vm.ssh("hostname").stdout.strip() == NODE.name
    addresses = booted_vm.ssh("ip -4 -o addr show dev mgmt0").stdout
    assert f"{NODE.address}/{NETWORK.prefixlen}" in addresses


def test_root_grew_to_the_node_disk(booted_vm: BootedVm) -> None:
    size_kib = int(booted_vm.ssh("df --output=size -k / | tail -1").stdout.strip())
    assert size_kib > (NODE.size.disk_mib * 1024) * 3 // 4  # growpart + resize2fs took the overlay's size


def test_firmware_event_log_replays_to_the_tpm_pcrs(booted_vm: BootedVm) -> None:
    log = "/sys/kernel/security/tpm0/binary_bios_measurements"
    assert int(booted_vm.ssh(f"wc -c < {log}").stdout.strip()) > 0
    replay = booted_vm.ssh(f"tpm2_eventlog {log}").stdout
    assert "EV_EFI_BOOT_SERVICES_APPLICATION" in replay  # OVMF measured the boot loader it started
    live = sha256_pcrs(booted_vm.ssh("tpm2_pcrread -T device:/dev/tpmrm0 sha256:0,1,2,3,4,5,6,7").stdout)
    assert sorted(live) == list(range(8))
    assert live[0] != "0" * 64  # the firmware measured itself
    expected = sha256_pcrs(replay[replay.rindex("pcrs:") :])
    for index in range(8):
        if index in expected:
            assert expected[index] == live[index], f"PCR {index}: event log and TPM disagree"
    assert 0 in expected
    assert 4 in expected


@pytest.fixture(scope="module")
def vm_attestation(booted_vm: BootedVm, tmp_path_factory: pytest.TempPathFactory) -> VmAttestation:
    """The VM measured one config into PCR 9, then quoted (see vm_attestation.py)."""
    return attest_vm(booted_vm.ssh, HostName(NODE.name), tmp_path_factory.mktemp("vm-attestation"))


def judge(
    attestation: VmAttestation, evidence: Evidence | None = None, policy: Policy | None = None
) -> Verdict:
    return verify(
        registration=attestation.registration,
        policy=policy or attestation.policy,
        nonce=attestation.nonce,
        evidence=evidence or attestation.evidence,
        check_signature=tpm.check_quote_signature,  # the real tpm2_checkquote
        now=datetime.now(UTC),
    )


def test_nestlab_replays_the_live_firmware_log_to_the_vtpm_pcrs(vm_attestation: VmAttestation) -> None:
    evidence = vm_attestation.evidence
    log = firmware.parse(evidence.firmware_log)
    assert log.summary()["4"]["EV_EFI_BOOT_SERVICES_APPLICATION"] >= 1
    replayed = firmware.replay(log.events)
    assert replayed == {index: evidence.pcr_values[index] for index in pcrs.FIRMWARE}
    assert evidence.pcr_values[0] != pcrs.ZERO


def test_vm_quote_over_firmware_and_nestlab_pcrs_verifies(vm_attestation: VmAttestation) -> None:
    verdict = judge(vm_attestation)
    assert verdict.passed, verdict.reasons
    assert sorted(verdict.pcrs) == list(pcrs.QUOTED)
    assert verdict.pcrs[pcrs.PCR_CONFIG] != pcrs.ZERO.hex()  # firmware's initrd event + nestlab's config
    assert [event.type for event in verdict.events] == ["config"]
    assert "EV_EFI_VARIABLE_DRIVER_CONFIG" in verdict.firmware_events["7"]


def test_vm_quote_with_a_flipped_firmware_log_byte_fails_replay(vm_attestation: VmAttestation) -> None:
    data = bytearray(vm_attestation.evidence.firmware_log)
    first = firmware.parse(bytes(data)).events[0]
    data[first.offset + 14] ^= 0x01  # a byte of its sha256 digest (pcr, type, count, algorithm before it)
    verdict = judge(vm_attestation, replace(vm_attestation.evidence, firmware_log=bytes(data)))
    assert not verdict.passed
    assert any(
        "firmware event log does not replay" in reason and f"PCR {first.pcr} replays to" in reason
        for reason in verdict.reasons
    ), verdict.reasons


def test_vm_quote_against_other_pcr0_values_fails_naming_pcr0(vm_attestation: VmAttestation) -> None:
    values = dict(vm_attestation.policy.firmware[0])
    values[0] = "00" * 31 + "01"
    verdict = judge(vm_attestation, policy=replace(vm_attestation.policy, firmware=(values,)))
    assert not verdict.passed
    assert len(verdict.reasons) == 1
    assert verdict.reasons[0].startswith("PCR 0 value "), verdict.reasons
