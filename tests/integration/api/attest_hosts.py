"""Attested hosts for the verifier's tests and benchmark: a REAL swtpm each, the REAL agent endpoint.

Each :class:`Host` has its own swtpm (EK + AK enrolled and registered by real credential
activation), its own event log with the host components measured, and an AK certificate issued by
the lab attestation CA, in an attestation directory laid out as on a host (registration.json,
ak.crt). :class:`AgentEndpoints` serves nestlab-agent's own HTTPS application (``POST /attestation``
from nestlab.agent.logs/attestation) for each host from a background event loop, with lab-CA client
certificates required. Drills make a host lie by rewriting its attestation directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from nestlab.agent import logs
from nestlab.agent.attestation import AK_CERT, REGISTRATION, Attestation
from nestlab.trust import akcert, attest, keys, measure, swtpm
from nestlab.trust.policy import Policy
from nestlab.trust.verdict import HostName
from nestlab.trust.verify import Registration

KNOWN_KERNEL = b"known kernel"


@dataclass
class Host:
    name: str
    swtpm: swtpm.Swtpm
    measurer: measure.Measurer
    registration: Registration
    certificate: str
    files: Path

    @property
    def attestation_dir(self) -> Path:
        return self.files / "attestation"

    def present(self, registration: Registration | None = None, certificate: str | None = None) -> None:
        """Write the host's registration files: its own, or what a drill makes it claim."""
        self.attestation_dir.mkdir(exist_ok=True)
        chosen = registration or self.registration
        (self.attestation_dir / REGISTRATION).write_text(json.dumps(attest.registration_to_json(chosen)))
        (self.attestation_dir / AK_CERT).write_text(certificate or self.certificate)

    def unregister(self) -> None:
        """The registration files are gone: the agent answers 503."""
        (self.attestation_dir / REGISTRATION).unlink()

    def boot_clean(self) -> None:
        """A reboot: PCRs to zero, a fresh log, the host's package and config measured."""
        self.swtpm.reboot()
        self.measurer.reset()
        self.measurer.measure_package("nestlab-agent", "0.1.0", self.files / "agent.deb")
        self.measurer.measure_config(self.files / "agent.yaml")

    def launch(self, pod: str, kernel: bytes) -> None:
        """Measure a pod launch as the agent does (kernel, initramfs, cmdline)."""
        image = self.files / f"{pod.replace('/', '_')}.vmlinux"
        image.write_bytes(kernel)
        self.measurer.measure_pod_launch(
            measure.PodLaunch(pod, image, self.files / "initramfs", "console=hvc0")
        )


def write_host_files(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "agent.deb").write_bytes(b"nestlab-agent 0.1.0")
    (directory / "agent.yaml").write_text("node: esx\n")
    (directory / "initramfs").write_bytes(b"known initramfs")


def start_host(name: str, root: Path, lab_keys: keys.LabKeys) -> Host:
    """A host with a running swtpm (stop it with host.swtpm.stop()), registered and certified."""
    files = root / name
    write_host_files(files)
    instance = swtpm.start_swtpm(files / "tpm", log=files / "swtpm.log")
    try:
        host_tpm = instance.tpm()
        registration = attest.register(HostName(name), attest.enroll(host_tpm), host_tpm.activate_credential)
        certificate = akcert.issue_ak_certificate(lab_keys, registration, files / "ak.crt").read_text()
        host = Host(name, instance, measure.Measurer(host_tpm, files / "events.json"), registration,
                    certificate, files)  # fmt: skip
        host.present()
        host.boot_clean()
    except BaseException:
        instance.stop()
        raise
    return host


def policy_for(files: Path, name: str = "integration") -> Policy:
    """The policy every clean host satisfies (its files are identical across hosts)."""
    return Policy(
        name=name,
        packages={"nestlab-agent": frozenset({measure.file_digest(files / "agent.deb")})},
        kernels=frozenset({hashlib.sha256(KNOWN_KERNEL).hexdigest()}),
        initramfs=frozenset({measure.file_digest(files / "initramfs")}),
        configs=frozenset({measure.file_digest(files / "agent.yaml")}),
        forbidden_cmdline_args=("init=", "rdinit="),
    )


def server_tls(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    context.load_verify_locations(str(client_ca))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class AgentEndpoints:
    """``POST /attestation`` for several hosts, served from one background event loop."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="attest-agents", daemon=True)
        self.thread.start()
        self.runners: list[web.AppRunner] = []

    def serve(self, host: Host) -> int:
        """Serve ``host`` on a free loopback port; the port."""

        async def start() -> int:
            agent = Attestation(host.swtpm.tpm(), host.measurer, host.attestation_dir)
            runner = web.AppRunner(logs.app(lambda _namespace, _pod: None, agent), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.context)
            await site.start()
            self.runners.append(runner)
            return int(runner.addresses[0][1])

        return asyncio.run_coroutine_threadsafe(start(), self.loop).result(timeout=30)

    def close(self) -> None:
        async def cleanup() -> None:
            for runner in self.runners:
                await runner.cleanup()

        try:
            asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
            self.loop.close()


def stop_hosts(hosts: list[Host], root: Path) -> None:
    for host in hosts:
        host.swtpm.stop()
    shutil.rmtree(root, ignore_errors=True)
