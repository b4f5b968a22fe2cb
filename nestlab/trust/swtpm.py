"""A software TPM (swtpm) for one host: started on loopback ports, reset like a reboot, stopped by PID.

Each lab host has its own TPM. On the local substrate, and in tests, that TPM is a swtpm process
serving the TPM command protocol on one TCP port and its control channel (power, reset) on
another. ``reboot()`` is a TPM reset through the control channel followed by TPM2_Startup: PCRs
return to zero, persistent keys (EK, AK) survive, exactly as when a real host restarts.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from nestlab.runtime import proc
from nestlab.trust.errors import TpmError
from nestlab.trust.tpm import Tpm, swtpm_tcti

LOOPBACK: Final = "127.0.0.1"
_PORT_ATTEMPTS: Final = 50  # kernel-chosen ports are random; a neighbour is almost always free
_READY_TIMEOUT: Final = 10.0  # seconds; swtpm listens within milliseconds, more means it failed


def free_port_pair(host: str = LOOPBACK) -> int:
    """A TCP port P such that P and P+1 are both free right now.

    The swtpm TCTI of tpm2-tools always looks for the control channel at the server port + 1.
    """
    for _ in range(_PORT_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind((host, 0))
            port = int(first.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second:
                try:
                    second.bind((host, port + 1))
                except OSError:
                    continue
                return port
    raise TpmError(f"found no two consecutive free TCP ports on {host} for a swtpm")


@dataclass
class Swtpm:
    """A running swtpm; stop() it (tests do so in a finalizer)."""

    process: proc.Process
    host: str
    port: int
    ctrl_port: int
    state_dir: Path
    runner: proc.Runner = proc.run

    @property
    def tcti(self) -> str:
        return swtpm_tcti(self.host, self.port)

    def tpm(self) -> Tpm:
        return Tpm(self.tcti, self.runner)

    def reboot(self) -> None:
        """Orderly shutdown, TPM reset, TPM2_Startup(CLEAR): PCRs back to zero, persistent keys kept."""
        self.tpm().shutdown()
        try:
            self.runner(["swtpm_ioctl", "--tcp", f"{self.host}:{self.ctrl_port}", "-i"], timeout=10)
        except proc.ProcessError as exc:
            raise TpmError(f"could not reset swtpm (pid {self.process.pid}): {exc}") from exc
        self.tpm().startup()

    def stop(self) -> None:
        self.process.stop()


def start_swtpm(state_dir: Path, *, host: str = LOOPBACK, log: Path | None = None) -> Swtpm:
    """Start a TPM 2.0 swtpm keeping its state in ``state_dir``, on free loopback ports P and P+1."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    port = free_port_pair(host)
    ctrl_port = port + 1
    argv = [
        "swtpm", "socket", "--tpm2",
        "--server", f"type=tcp,port={port},bindaddr={host}",
        "--ctrl", f"type=tcp,port={ctrl_port},bindaddr={host}",
        "--tpmstate", f"dir={state_dir}",
        "--flags", "not-need-init,startup-clear",
    ]  # fmt: skip
    process = proc.spawn(argv, log=log)
    swtpm = Swtpm(process, host, port, ctrl_port, state_dir)
    try:
        _wait_listening(swtpm)
    except BaseException:
        process.stop()
        raise
    return swtpm


def _wait_listening(swtpm: Swtpm) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        code = swtpm.process.poll()
        if code is not None:
            raise TpmError(f"swtpm exited with code {code} at start (port {swtpm.port} taken? see its log)")
        try:
            with socket.create_connection((swtpm.host, swtpm.ctrl_port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TpmError(f"swtpm (pid {swtpm.process.pid}) did not listen on {swtpm.host}:{swtpm.ctrl_port}")
