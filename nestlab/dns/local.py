"""A private unbound on loopback, for the integration tests and ``bench/dns_lookup.py``.

Same configuration as a control-plane node's (:func:`~nestlab.dns.unbound.render_config`), but on
127.0.0.1 with its own port, its control socket and log in a temporary directory, no user switch,
and stopped by PID. Never used on a node: there systemd runs unbound.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from nestlab.dns.unbound import Unbound, UnboundConfig, UnboundError, render_config
from nestlab.runtime import proc

START_TIMEOUT = 20.0
"""Seconds for unbound to answer ``unbound-control status`` after launch (well under 1 s idle)."""


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (unbound listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


@dataclass
class LocalUnbound:
    """A running private unbound: where it answers, how to control it, and how to stop it."""

    directory: Path
    port: int
    config_file: Path
    log: Path
    process: proc.Process
    control: Unbound

    def stop(self) -> None:
        """Stop unbound by PID and remove its directory."""
        try:
            self.process.stop(grace=5)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def start(config: UnboundConfig | None = None) -> LocalUnbound:
    """Start unbound on 127.0.0.1 (a free port unless ``config`` names one) and wait until it answers.

    ``config``'s listen, control socket, user and directory are replaced by private ones; its
    domain, TTL, allowed clients and reverse networks are kept.
    """
    if shutil.which("unbound") is None:
        raise proc.ProcessError("unbound is not installed (apt-get install unbound; scripts/bootstrap.sh)")
    directory = Path(tempfile.mkdtemp(prefix="nestlab-unbound-"))
    base = config or UnboundConfig(listen=("127.0.0.1",))
    port = base.port if config is not None and base.port != 53 else free_udp_tcp_port()
    settings = replace(
        base,
        listen=("127.0.0.1",),
        port=port,
        control_socket=str(directory / "control.sock"),
        username="",
        directory=str(directory),
    )
    config_file, log = directory / "unbound.conf", directory / "unbound.log"
    config_file.write_text(render_config(settings))
    process = proc.spawn(["unbound", "-d", "-p", "-c", str(config_file)], log=log)
    server = LocalUnbound(directory, port, config_file, log, process, Unbound(config_file))
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            server.stop()
            raise proc.ProcessError(f"unbound exited {process.poll()} at start: {text}")
        try:
            server.control.status()
        except UnboundError:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.05)
            continue
        return server
