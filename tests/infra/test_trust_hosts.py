"""The trust chain on every host: the signed pod kernel from the lab repository, the TPM keys the
verifier registered, and the boot measurements."""

from __future__ import annotations

import json

import lab
from testinfra.host import Host

testinfra_hosts = lab.hosts("host")

POD_KERNEL = "/usr/lib/nestlab/pod-kernel"
EVENT_LOG = "/run/nestlab/measurements.json"
TCTI = "swtpm:host=127.0.0.1,port=2321"


def test_pod_kernel_package_comes_from_the_signed_lab_repository(host: Host) -> None:
    package = host.package("nestlab-pod-kernel")
    assert package.is_installed
    policy = host.check_output("apt-cache policy nestlab-pod-kernel")
    assert "http://depot/apt" in policy, policy
    sources = host.check_output("grep -rh depot /etc/apt/sources.list.d/")
    assert "signed-by=/etc/nestlab/trust/apt-signing.asc" in sources, sources


def test_installed_pod_kernel_is_signed_by_the_lab_and_matches_its_manifest(host: Host) -> None:
    verified = host.run(f"sbverify --cert /etc/nestlab/trust/db.crt {POD_KERNEL}/vmlinux.efi")
    assert verified.rc == 0, verified.stderr
    manifest = json.loads(host.file(f"{POD_KERNEL}/MANIFEST.json").content_string)
    assert set(manifest["files"]) == {"vmlinux.efi", "initramfs.cpio"}, manifest["files"]
    for name, digest in manifest["files"].items():
        assert host.file(f"{POD_KERNEL}/{name}").sha256sum == digest, name


def test_host_tpm_holds_its_endorsement_and_attestation_keys(host: Host) -> None:
    handles = host.check_output(f"tpm2_getcap -T {TCTI} handles-persistent")
    assert "0x81010001" in handles, "EK"
    assert "0x81010002" in handles, "AK"
    assert host.file("/etc/nestlab/attestation/ak.crt").exists
    assert host.file("/etc/nestlab/attestation/registration.json").exists


def test_measured_boot_ran_and_logged_the_boot_components(host: Host) -> None:
    assert host.service("nestlab-measured-boot").is_enabled
    result = host.run("systemctl show -p ActiveState,Result nestlab-measured-boot")
    assert "ActiveState=active" in result.stdout, result.stdout
    assert "Result=success" in result.stdout, result.stdout
    log = json.loads(host.file(EVENT_LOG).content_string)
    boot = {(e["type"], e["data"].get("name")) for e in log["events"] if e["pcr"] in (8, 9)}
    assert ("package", "nestlab") in boot
    assert ("package", "nestlab-pod-kernel") in boot
    assert any(kind == "config" for kind, _ in boot)
