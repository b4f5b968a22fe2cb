"""The lab's demo pod images: a static web server, a job that exits 0 or non-zero, and a client.

Built on the outer machine from Debian's static busybox (lab nodes have no way out, and no image
comes from outside the machine) and pushed to the depot registry, where pods pull them as
``nestlab/web:1``, ``nestlab/web:2`` (the same server saying version 2, for rolling updates),
``nestlab/job:ok``, ``nestlab/job:fail`` and ``nestlab/client:1`` (a shell with wget, nslookup and
nc, to probe Services and DNS from inside a pod, tar and the file tools ``kubectl exec`` and
``kubectl cp`` need, and curl). :func:`publish` is what ``nestlab up`` (or the
depot role) calls once the registry answers.

busybox's wget cannot talk TLS to the API server ("got bad TLS record"), so the client also carries
the outer machine's Debian curl (package ``curl``) with its shared libraries and the dynamic loader
(:func:`nestlab.runtime.disks.copy_dynamic`): a pod calls the API through the ``kubernetes`` Service
with its projected service-account token and ``--cacert`` (no CA store in the image). curl and
its 32 libraries grow the client's layer from 1.0 to 9.1 MB gzip'd (its erofs disk from 2.0 to
21 MB), most of it the OpenSSL, GnuTLS, Kerberos and LDAP libraries Debian's curl links.

The web server says which pod answered (its index page names the pod, and ``/host`` holds just the
pod's hostname), so a client can count the replicas behind a Service; and which version it is (the
page says "Version 1" or "Version 2", ``/version`` holds just the number), so a learner watching a
rolling update from web:1 to web:2 sees the answers change. The client's default command
sleeps until the pod is stopped; its work is the command a pod spec gives it. Debian's busybox 1.35
segfaults on ``wget -T N``: clients bound requests with ``timeout N wget`` (images/pods/README.md).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from nestlab import paths
from nestlab.agent.registry import RegistryClient
from nestlab.images import oci
from nestlab.runtime import disks

RECIPES_DIR = paths.repo_root() / "images" / "pods"
APPLETS = (
    "sh", "echo", "cat", "ls", "sleep", "uname", "hostname", "wget", "httpd", "true", "false", "env", "sed",
)  # fmt: skip
CLIENT_APPLETS = (
    "sh", "wget", "nslookup", "nc", "timeout", "cat", "echo", "sleep", "ping", "ip", "hostname", "env",
    "grep", "head", "sort", "uniq", "wc", "tr", "seq", "true", "false",
    # for kubectl exec and cp: cp runs `tar` in the container, a shell wants the file tools
    "tar", "ls", "rm", "mkdir", "touch", "stty", "ps", "cp", "mv", "find", "dd", "tee",
)  # fmt: skip
CURL = Path("/usr/bin/curl")  # Debian's curl on the outer machine (scripts/apt-packages.txt)
PAGE = "/usr/share/nestlab/index.html"  # the page's template; @POD@ becomes the pod's hostname
WEB_VERSIONS = ("1", "2")  # nestlab/web:<version>; @VERSION@ in the page is filled at build time
JOB = "echo job running on kernel $(uname -r); exit ${EXIT_CODE:-0}"
WEB = (
    f'hostname > /www/host; sed "s/@POD@/$(hostname)/" {PAGE} > /www/index.html; exec httpd -f -p 80 -h /www'
)
# Stopped pods end at once: the trap answers pod-init's SIGTERM (a shell that is PID 1 of its
# namespace ignores signals it has no handler for), and `wait` lets it run while sleep sleeps.
CLIENT = "trap 'exit 0' TERM; while true; do sleep 3600 & wait $!; done"


def _web_root(directory: Path, version: str) -> Path:
    """Web image ``version``'s files: the page's template (its version filled in), /www/version, and
    /www holding the page without the pod's name (what a pod serves when its spec replaces the
    image's command with plain ``httpd -h /www``)."""
    root = disks.busybox_root(directory / f"web-{version}", applets=APPLETS)
    template = (RECIPES_DIR / "web" / "index.html").read_text().replace("@VERSION@", version)
    page = root / PAGE.lstrip("/")
    page.parent.mkdir(parents=True)
    page.write_text(template)
    (root / "www").mkdir()
    static = "".join(line for line in template.splitlines(keepends=True) if "@POD@" not in line)
    (root / "www" / "index.html").write_text(static)
    (root / "www" / "version").write_text(f"{version}\n")
    return root


def client_root(directory: Path) -> Path:
    """The client image's files: busybox with :data:`CLIENT_APPLETS`, and curl with its libraries."""
    root = disks.busybox_root(directory / "client", applets=CLIENT_APPLETS)
    disks.copy_dynamic(CURL, root)
    return root


def publish(registry: str, client: Callable[[str], RegistryClient] = RegistryClient) -> dict[str, str]:
    """Build and push every demo image to ``registry`` (``host:port``); image -> manifest digest."""
    pushed: dict[str, str] = {}
    target = client(registry)
    with tempfile.TemporaryDirectory(prefix="nestlab-demo-images-") as tmp:
        web = oci.Recipe(cmd=("sh", "-c", WEB))
        for version in WEB_VERSIONS:
            root = _web_root(Path(tmp), version)
            pushed[f"nestlab/web:{version}"] = oci.push(target, "nestlab/web", [version], root, web)
        for tag, code in (("ok", "0"), ("fail", "3")):
            job = oci.Recipe(cmd=("sh", "-c", JOB), env={"EXIT_CODE": code})
            pushed[f"nestlab/job:{tag}"] = oci.push(target, "nestlab/job", [tag], root, job)
        probe = oci.Recipe(cmd=("sh", "-c", CLIENT))
        pushed["nestlab/client:1"] = oci.push(target, "nestlab/client", ["1"], client_root(Path(tmp)), probe)
    return {f"{registry}/{name}": digest for name, digest in pushed.items()}
