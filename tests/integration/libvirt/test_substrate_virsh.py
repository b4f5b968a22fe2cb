"""The libvirt substrate's node commands against a real libvirtd: the states `virsh domstate` really
prints, its message for a missing domain, and stop/start of a host's failure domain.

Cheap: two bare domains (32 MiB, no disk: SeaBIOS finds nothing to boot and idles) instead of lab
VMs, so nothing here proves a node's OS shuts down cleanly or that sshd answers; SSH is faked, and
a clean stop runs into its deadline (no OS answers ACPI) and pulls the power, which is that path's
test. The lab VM itself is booted for real in test_vm_boot.py. libvirtd is the one test_vm_boot.py
starts (or the one already running); domains are removed afterwards, also on failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from nestlab.paths import LabFiles
from nestlab.runtime import proc
from nestlab.spec import NodeName, Role
from nestlab.substrate.libvirt.substrate import LibvirtNode, LibvirtRecord, LibvirtSubstrate
from tests.integration.libvirt.test_vm_boot import URI, libvirt_daemons, virsh

pytestmark = [
    pytest.mark.integration,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="libvirtd needs root"),
]

__all__ = ["libvirt_daemons"]  # the fixture, used by name

DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
</domain>
"""


@pytest.fixture
def lab(libvirt_daemons: None, tmp_path: Path) -> Iterator[LibvirtSubstrate]:
    prefix = f"nlsub{secrets.token_hex(3)}"
    record = LibvirtRecord(
        spec=tmp_path / "unused.lab.yaml",
        image="/unused.qcow2",
        domain_type="qemu",
        nodes=(
            LibvirtNode(NodeName("esx-01"), Role.HOST, NodeName("esx-01"), IPv4Address("198.18.248.31"), URI,
                        f"{prefix}-esx-01"),
            LibvirtNode(NodeName("cp-1"), Role.CONTROL_PLANE, NodeName("esx-01"), IPv4Address("198.18.248.21"),
                        URI, f"{prefix}-cp-1"),
        ),
    )  # fmt: skip
    clock = iter(range(0, 10_000, 100))

    def run(argv: Sequence[str], **kwargs: Any) -> proc.Result:
        if argv[0] == "ssh":  # no OS in these domains: sshd "answers" as soon as the domain runs
            return proc.Result(tuple(argv), 0, "", "")
        return proc.run(argv, **kwargs)

    substrate = LibvirtSubstrate("nlsub", LabFiles(tmp_path), record, run=run, clock=lambda: float(next(clock)),
                                 sleep=lambda _s: None)  # fmt: skip
    try:
        yield substrate
    finally:
        for node in record.nodes:
            virsh("destroy", node.domain, check=False)
            virsh("undefine", node.domain, check=False)


def states(lab: LibvirtSubstrate) -> dict[str, str]:
    return {str(n.name): n.state for n in lab.status(check_ssh=False)}


def test_status_stop_and_start_of_a_failure_domain_on_real_libvirt(
    lab: LibvirtSubstrate, tmp_path: Path
) -> None:
    assert states(lab) == {"esx-01": "absent", "cp-1": "absent"}  # real libvirt's "failed to get domain"
    for node in lab.record.nodes:
        xml = tmp_path / f"{node.domain}.xml"
        xml.write_text(DOMAIN_XML.format(name=node.domain))
        virsh("define", str(xml))
    assert states(lab) == {"esx-01": "stopped", "cp-1": "stopped"}  # "shut off"

    said: list[str] = []
    assert lab.start_node("esx-01", said.append) == ["esx-01", "cp-1"]
    assert states(lab) == {"esx-01": "running", "cp-1": "running"}
    assert said[:2] == ["esx-01: started", "cp-1: started"]

    assert lab.stop_node("esx-01", hard=True) == ["esx-01", "cp-1"]
    assert states(lab) == {"esx-01": "stopped", "cp-1": "stopped"}

    lab.start_node("cp-1", said.append)
    assert lab.stop_node("cp-1") == ["cp-1"]  # no OS answers ACPI: the deadline pulls the power
    assert states(lab) == {"esx-01": "stopped", "cp-1": "stopped"}
