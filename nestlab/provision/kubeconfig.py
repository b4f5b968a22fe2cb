"""Client credentials of a lab: the admin kubeconfig people use, and the controller's certificate.

``nestlab up`` writes ``<lab dir>/kubeconfig`` so ``export KUBECONFIG=$(nestlab kubeconfig --path)``
gives kubectl the lab through the load balancers' VIP, like a Supervisor's kubeconfig points at its
control plane's load-balanced address. Certificates are embedded (``*-data``), so the file still
works when copied elsewhere.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

from nestlab.paths import LabFiles
from nestlab.provision.pki import Issued, ensure_ca, issue
from nestlab.spec.plan import Plan

API_PORT = 6443  # the Supervisor API's port, on the VIP and on every API server
ADMIN = "admin"  # the lab-admin client certificate (O=system:masters), issued by ensure_lab_pki
CONTROLLER = "system:nestlab-controller"
"""The controller's user (certificate CN, no group; file ``<pki>/system:nestlab-controller.crt``,
installed as ``controller.crt`` on control-plane nodes): the API server's built-in ClusterRole of
the same name grants exactly what its controllers call (nestlab.api.bootstraproles), as
kube-controller-manager is ``system:kube-controller-manager`` and not an administrator."""


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def kubeconfig(plan: Plan, ca: Path, admin: Issued, *, server: str | None = None) -> dict[str, Any]:
    """The admin kubeconfig of ``plan``'s lab, as a YAML-ready mapping (server: the VIP by default)."""
    name = plan.lab.name
    user = f"{ADMIN}@{name}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": server or f"https://{plan.vip}:{API_PORT}",
                    "certificate-authority-data": _b64(ca),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(admin.cert),
                    "client-key-data": _b64(admin.key),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user, "namespace": "default"}}],
        "current-context": name,
        "preferences": {},
    }


def write_kubeconfig(plan: Plan, files: LabFiles) -> Path:
    """Write the lab's admin kubeconfig (0600: it holds the admin key); returns its path."""
    ca = ensure_ca(files.pki, plan.lab.name)
    admin = Issued(files.pki / f"{ADMIN}.crt", files.pki / f"{ADMIN}.key")
    if not admin.cert.exists():
        admin = issue(files.pki, ca, ADMIN, organization="system:masters", server=False)
    text = yaml.safe_dump(kubeconfig(plan, ca.cert, admin), sort_keys=False)
    path = files.kubeconfig
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return path
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return path


def ensure_controller_cert(plan: Plan, files: LabFiles) -> Issued:
    """The client certificate every nestlab-controller uses (kept when it exists): CN
    ``system:nestlab-controller`` without an administrators' group. A lab made before it had
    ``controller.crt`` (group nestlab:admins), left unused on the outer machine."""
    ca = ensure_ca(files.pki, plan.lab.name)
    return issue(files.pki, ca, CONTROLLER, server=False)
