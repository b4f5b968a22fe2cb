"""SSH to lab nodes with the lab's key and known_hosts: argv for users and a readiness wait.

Options make it non-interactive (BatchMode), strict (only the lab's known_hosts, which holds each
node's real host key) and independent of the user's ~/.ssh/config.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Address

from nestlab.runtime import proc
from nestlab.spec import NodeName
from nestlab.substrate.local.errors import NodeUnreachableError
from nestlab.substrate.local.layout import LabLayout

CONNECT_TIMEOUT_S = 5  # a node on a local bridge answers in milliseconds once sshd listens
PROBE_TIMEOUT_S = 20.0
RETRY_INTERVAL_S = 1.0


def ssh_argv(layout: LabLayout, address: IPv4Address, command: Sequence[str] = ()) -> list[str]:
    """``ssh`` arguments that log in as root on ``address``, optionally running ``command``."""
    return [
        "ssh",
        "-F", "/dev/null",
        "-i", str(layout.ssh_key),
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={layout.known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
        "-o", "LogLevel=ERROR",
        f"root@{address}",
        *command,
    ]  # fmt: skip


def ssh_config(layout: LabLayout, addresses: Mapping[str, IPv4Address]) -> str:
    """An ssh_config naming every node (``ssh -F <it> cp-1``), for people, Ansible and testinfra."""
    blocks = []
    for name, address in addresses.items():
        blocks.append(
            f"Host {name}\n"
            f"    HostName {address}\n"
            "    User root\n"
            f"    IdentityFile {layout.ssh_key}\n"
            "    IdentitiesOnly yes\n"
            "    BatchMode yes\n"
            "    StrictHostKeyChecking yes\n"
            f"    UserKnownHostsFile {layout.known_hosts}\n"
            "    GlobalKnownHostsFile /dev/null\n"
            f"    ConnectTimeout {CONNECT_TIMEOUT_S}\n"
            "    LogLevel ERROR\n"
        )
    return "".join(blocks)


def reachable(run: proc.Runner, layout: LabLayout, address: IPv4Address, attempts: int = 1) -> bool:
    """Whether a real SSH login to ``address`` runs ``true`` (within ``attempts`` tries)."""
    for _ in range(attempts):
        try:
            result = run(ssh_argv(layout, address, ["true"]), timeout=PROBE_TIMEOUT_S, check=False)
        except proc.ProcessError:
            continue
        if result.returncode == 0:
            return True
    return False


def wait_reachable(
    run: proc.Runner,
    layout: LabLayout,
    addresses: dict[str, IPv4Address],
    *,
    timeout: float,
    alive: Callable[[str], bool] = lambda _name: True,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Wait until every node in ``addresses`` answers SSH; NodeUnreachableError after ``timeout``.

    ``alive(name)`` is asked between tries, so a node whose nspawn died fails at once.
    """
    waiting = dict(addresses)
    deadline = clock() + timeout
    while waiting:
        for name, address in list(waiting.items()):
            if reachable(run, layout, address):
                del waiting[name]
            elif not alive(name):
                raise NodeUnreachableError(
                    f"node {name} stopped while booting; see {layout.console_log(NodeName(name))}"
                )
        if not waiting:
            return
        if clock() > deadline:
            names = ", ".join(sorted(waiting))
            raise NodeUnreachableError(
                f"sshd did not answer on {names} within {timeout:g}s; the node consoles are "
                f"{layout.files.logs}/console-<node>.log"
            )
        sleep(RETRY_INTERVAL_S)
