"""The domain XML the program asks for, through the real xsltproc and libvirt's own schema.

pulumi-libvirt turns a Domain's inputs into libvirt XML, attaching the cloud-init disk as an IDE
CD-ROM, then runs the domain's XSLT with xsltproc. This test renders the program's declared domains
the way the provider does, applies nestlab's stylesheet with the real xsltproc, and validates the
result with virt-xml-validate against libvirt's domain schema: OVMF loader and NVRAM, the CRB TPM on
the emulator backend, the host-passthrough CPU, the MAC-addressed NIC must all be valid libvirt.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from nestlab.runtime import proc
from nestlab.substrate.libvirt.domain_xml import CDROM_ON_SATA
from tests.unit.libvirt.harness import TEST_KEY, event_loop, run_program, stack_config

pytestmark = pytest.mark.integration

TOOL_TIMEOUT = 60.0  # both tools take milliseconds on a domain document; a minute means stuck


def _provider_xml(domain: dict[str, Any], pool: str) -> str:
    """Domain inputs -> XML shaped like the libvirt provider's (legacy provider, v0.7/v0.8)."""
    root = ET.Element("domain", type=domain["type"])
    ET.SubElement(root, "name").text = domain["name"]
    ET.SubElement(root, "description").text = domain["description"]
    ET.SubElement(root, "memory", unit="MiB").text = str(int(domain["memory"]))
    ET.SubElement(root, "vcpu").text = str(int(domain["vcpu"]))
    os_ = ET.SubElement(root, "os")
    ET.SubElement(os_, "type", arch="x86_64", machine=domain["machine"]).text = "hvm"
    ET.SubElement(os_, "loader", readonly="yes", type="pflash").text = domain["firmware"]
    ET.SubElement(os_, "nvram", template=domain["nvram"]["template"]).text = domain["nvram"]["file"]
    features = ET.SubElement(root, "features")
    for feature in ("pae", "acpi", "apic"):
        ET.SubElement(features, feature)
    if domain.get("cpu"):
        ET.SubElement(root, "cpu", mode=domain["cpu"]["mode"])
    devices = ET.SubElement(root, "devices")
    disk = ET.SubElement(devices, "disk", type="volume", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="qcow2")
    ET.SubElement(disk, "source", pool=pool, volume=f"{domain['name']}.qcow2")
    ET.SubElement(disk, "target", dev="vda", bus="virtio")
    cdrom = ET.SubElement(devices, "disk", type="file", device="cdrom")
    ET.SubElement(cdrom, "driver", name="qemu", type="raw")
    ET.SubElement(cdrom, "source", file=f"/var/lib/libvirt/images/{domain['name']}-cloudinit.iso")
    ET.SubElement(cdrom, "target", dev="hdd", bus="ide")  # what the provider hard-codes
    (nic,) = domain["networkInterfaces"]
    interface = ET.SubElement(devices, "interface", type="network")
    ET.SubElement(interface, "mac", address=nic["mac"])
    ET.SubElement(interface, "source", network="default-mgmt")
    ET.SubElement(interface, "model", type="virtio")
    (console,) = domain["consoles"]
    pty = ET.SubElement(devices, "console", type=console["type"])
    ET.SubElement(pty, "target", type=console["targetType"], port=console["targetPort"])
    tpm = ET.SubElement(devices, "tpm", model=domain["tpm"]["model"])
    ET.SubElement(tpm, "backend", type=domain["tpm"]["backendType"], version=domain["tpm"]["backendVersion"])
    return ET.tostring(root, encoding="unicode")


def _parse(text: str) -> ET.Element:
    """Parse XML we wrote or xsltproc wrote from it, dropping indentation-only text."""
    root = ET.fromstring(text)  # noqa: S314 - our own documents, not untrusted input
    for element in root.iter():
        if element.text is not None and not element.text.strip():
            element.text = None
        if element.tail is not None and not element.tail.strip():
            element.tail = None
    return root


@pytest.fixture(scope="module")
def declared_domains(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    state = tmp_path_factory.mktemp("state")
    with event_loop():
        run = run_program(stack_config("dev", sshPublicKey=TEST_KEY, stateDir=str(state)))
    return [r.inputs for r in run.monitor.of_type("libvirt:index/domain:Domain")]


@pytest.mark.skipif(shutil.which("xsltproc") is None, reason="xsltproc: run scripts/bootstrap.sh")
def test_xsltproc_moves_the_cloud_init_cd_to_sata_and_keeps_the_rest(
    declared_domains: list[dict[str, Any]], tmp_path: Path
) -> None:
    assert len(declared_domains) == 9
    for domain in declared_domains:
        assert domain["xml"]["xslt"] == CDROM_ON_SATA
        original = tmp_path / f"{domain['name']}.xml"
        original.write_text(_provider_xml(domain, "default"))
        stylesheet = tmp_path / "cdrom.xsl"
        stylesheet.write_text(domain["xml"]["xslt"])
        result = proc.run(["xsltproc", str(stylesheet), str(original)], timeout=TOOL_TIMEOUT)
        before, after = _parse(original.read_text()), _parse(result.stdout)
        buses = {d.get("device"): d.find("target").get("bus") for d in after.iter("disk")}  # type: ignore[union-attr]
        assert buses == {"disk": "virtio", "cdrom": "sata"}
        for element in before.iter("target"):
            if element.get("bus") == "ide":
                element.set("bus", "sata")
        assert ET.tostring(before) == ET.tostring(after)  # nothing else changed


@pytest.mark.skipif(
    shutil.which("virt-xml-validate") is None, reason="libvirt-clients: run scripts/bootstrap.sh"
)
def test_every_declared_domain_is_valid_libvirt_domain_xml(
    declared_domains: list[dict[str, Any]], tmp_path: Path
) -> None:
    stylesheet = tmp_path / "cdrom.xsl"
    stylesheet.write_text(CDROM_ON_SATA)
    for domain in declared_domains:
        original = tmp_path / f"{domain['name']}.xml"
        original.write_text(_provider_xml(domain, "default"))
        transformed = tmp_path / f"{domain['name']}.sata.xml"
        xslt = proc.run(["xsltproc", str(stylesheet), str(original)], timeout=TOOL_TIMEOUT)
        transformed.write_text(xslt.stdout)
        result = proc.run(
            ["virt-xml-validate", str(transformed), "domain"], timeout=TOOL_TIMEOUT, check=False
        )
        assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.skipif(
    shutil.which("virt-xml-validate") is None, reason="libvirt-clients: run scripts/bootstrap.sh"
)
def test_the_schema_check_rejects_a_tpm_without_a_valid_backend(
    declared_domains: list[dict[str, Any]], tmp_path: Path
) -> None:
    broken = dict(declared_domains[0])
    broken["tpm"] = {**broken["tpm"], "backendType": "swtpm"}  # not a libvirt backend type
    path = tmp_path / "broken.xml"
    path.write_text(_provider_xml(broken, "default"))
    result = proc.run(["virt-xml-validate", str(path), "domain"], timeout=TOOL_TIMEOUT, check=False)
    assert result.returncode != 0
    assert "fails to validate" in result.stderr + result.stdout
