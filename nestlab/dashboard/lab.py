"""The dashboard's connection to a real lab: its API, its admin credentials and its facts' sources.

Everything the rest of the package takes as parameters, built from the lab's directory on this
machine (the saved plan, the admin kubeconfig's server, the lab-admin certificate, the lab's SSH).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nestlab import labnodes, lifecycle
from nestlab.api.client import Credentials
from nestlab.dashboard.labfacts import Endpoints, LabWatcher
from nestlab.dashboard.model import SubstrateNode
from nestlab.errors import UsageError
from nestlab.identity_client import Lab
from nestlab.provision.remote import Remote
from nestlab.runtime import proc

API_PORT = 6443  # roles/control_plane/defaults/main.yml: control_plane_api_port
SSH_S = 15.0  # one read on a node; a stopped node fails fast (ConnectTimeout), a loaded one answers


@dataclass(frozen=True)
class LabAccess:
    """What the dashboard needs of lab ``name``."""

    name: str
    server: str
    admin: Credentials
    watcher: LabWatcher


def _short_ssh(
    argv: Sequence[str],
    *,
    timeout: float,
    check: bool = True,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    capture: bool = True,
) -> proc.Result:
    """proc.run with the dashboard's shorter SSH timeout (provisioning's is minutes)."""
    return proc.run(
        argv, timeout=min(timeout, SSH_S), check=check, stdin=stdin, env=env, cwd=cwd, capture=capture
    )


def for_lab(name: str) -> LabAccess:
    """Lab ``name``'s access; UsageError (exit 2) when it is not up."""
    lab = Lab.named(name)  # UsageError when there is no kubeconfig
    plan = labnodes.saved_plan(name)
    states = lifecycle.status(name, check_ssh=False)
    if not any(n.state == "running" for n in states):
        raise UsageError(f"lab {name!r} is not up (no node running): start it with `nestlab up`")
    ca = lab.files.pki / "ca.crt"
    admin = Credentials(lab.server, ca, None, lab.files.pki / "admin.crt", lab.files.pki / "admin.key")
    servers = tuple(
        (str(n.name), f"https://{n.address}:{API_PORT}") for n in plan.nodes if str(n.role) == "control-plane"
    )
    remote = Remote(lab.files, runner=_short_ssh)

    def nodes() -> list[SubstrateNode]:
        return [
            SubstrateNode(str(n.name), str(n.role), str(n.placed_on), str(n.address), str(n.state))
            for n in lifecycle.status(name, check_ssh=False)
        ]

    def run_on(node: str, command: list[str]) -> tuple[int, str]:
        try:
            result = remote.run(node, command, check=False)
        except Exception:  # a node that cannot be read is shown as unknown
            return 255, ""
        return result.returncode, result.stdout

    watcher = LabWatcher(name, Endpoints(lab.server, ca, servers), nodes, run_on)
    return LabAccess(name, lab.server, admin, watcher)
