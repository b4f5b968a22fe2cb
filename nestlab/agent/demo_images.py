"""The lab's demo pod images: a static web server and a job that exits 0 or non-zero.

Built on the outer machine from Debian's static busybox (lab nodes have no way out, and no image
comes from outside the machine) and pushed to the depot registry, where pods pull them as
``nestlab/web:1``, ``nestlab/web:2`` (the same server in another image, for rolling updates),
``nestlab/job:ok`` and ``nestlab/job:fail``. :func:`publish` is what
``nestlab up`` (or the depot role) calls once the registry answers.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from nestlab import paths
from nestlab.agent import oci
from nestlab.agent.registry import RegistryClient
from nestlab.runtime import disks

RECIPES_DIR = paths.repo_root() / "images" / "pods"
APPLETS = ("sh", "echo", "cat", "ls", "sleep", "uname", "hostname", "wget", "httpd", "true", "false", "env")
JOB = "echo job running on kernel $(uname -r); exit ${EXIT_CODE:-0}"


def _root(directory: Path) -> Path:
    root = disks.busybox_root(directory / "root", applets=APPLETS)
    (root / "www").mkdir()
    shutil.copy(RECIPES_DIR / "web" / "index.html", root / "www" / "index.html")
    return root


def publish(registry: str, client: Callable[[str], RegistryClient] = RegistryClient) -> dict[str, str]:
    """Build and push every demo image to ``registry`` (``host:port``); image -> manifest digest."""
    pushed: dict[str, str] = {}
    target = client(registry)
    with tempfile.TemporaryDirectory(prefix="nestlab-demo-images-") as tmp:
        root = _root(Path(tmp))
        web = oci.Recipe(cmd=("httpd", "-f", "-p", "80", "-h", "/www"))
        pushed["nestlab/web:1"] = oci.push(target, "nestlab/web", ["1"], root, web)
        web2 = oci.Recipe(cmd=web.cmd, env={"NESTLAB_WEB_VERSION": "2"})  # another config: another digest
        pushed["nestlab/web:2"] = oci.push(target, "nestlab/web", ["2"], root, web2)
        for tag, code in (("ok", "0"), ("fail", "3")):
            job = oci.Recipe(cmd=("sh", "-c", JOB), env={"EXIT_CODE": code})
            pushed[f"nestlab/job:{tag}"] = oci.push(target, "nestlab/job", [tag], root, job)
    return {f"{registry}/{name}": digest for name, digest in pushed.items()}
