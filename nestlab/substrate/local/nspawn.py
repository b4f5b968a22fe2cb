"""The systemd-nspawn command line that boots one node. Pure, so every flag is unit-tested.

The outer machine has no systemd as PID 1, hence ``--register=no --keep-unit``: nspawn neither asks
machined to register the machine nor a unit manager for a scope. nspawn's SIGTERM handling sends
the node's init SIGRTMIN+3, so stopping the nspawn PID shuts the node down cleanly.
"""

from __future__ import annotations

from pathlib import Path

from nestlab.spec import NodeName
from nestlab.substrate.local.layout import BridgeName, MachineName

NSPAWN = "systemd-nspawn"
TUN = Path("/dev/net/tun")
KVM = Path("/dev/kvm")


def nspawn_argv(
    *,
    root: Path,
    machine: MachineName,
    hostname: NodeName,
    bridge: BridgeName,
    tun: bool,
    kvm: bool,
) -> list[str]:
    """Boot ``root`` as ``machine`` on ``bridge``; ``tun``/``kvm`` bind those devices in."""
    argv = [
        NSPAWN,
        "--boot",
        "--register=no",
        "--keep-unit",
        f"--directory={root}",
        f"--machine={machine}",
        f"--hostname={hostname}",
        f"--network-bridge={bridge}",
        "--link-journal=no",  # the node's journal stays in its overlay, not on the outer machine
        "--resolv-conf=off",  # nodes have no route out; the outer resolver would only mislead
        "--timezone=off",  # roles/common owns /etc/localtime; nspawn would relink it at every boot
        "--console=read-only",  # the console goes to the node's log, no terminal needed
    ]
    if tun:
        argv.append(f"--bind={TUN}")  # pods' tap devices
    if kvm:
        argv.append(f"--bind={KVM}")
    return argv


def is_node_process(cmdline: list[str], machine: MachineName) -> bool:
    """Whether a process command line is the nspawn of ``machine`` (guards against PID reuse), or the
    shell that enters the node's cgroups and then becomes that nspawn (for the moment before its
    ``exec``; :func:`nestlab.substrate.local.cgroups.enter_argv`)."""
    if not cmdline or f"--machine={machine}" not in cmdline:
        return False
    program = Path(cmdline[0]).name
    return program == NSPAWN or (program == "sh" and cmdline[1:2] == ["-c"] and NSPAWN in cmdline)
