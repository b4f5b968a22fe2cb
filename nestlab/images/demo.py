"""The lab's demo pod images: a static web server, a job that exits 0 or non-zero, and a client.

Built on the outer machine from Debian's static busybox (lab nodes have no way out, and no image
comes from outside the machine) and pushed to the depot registry, where pods pull them as
``nestlab/web:1``, ``nestlab/web:2`` (the same server saying version 2, for rolling updates),
``nestlab/job:ok``, ``nestlab/job:fail`` and ``nestlab/client:1`` (a shell with wget, nslookup and
nc, to probe Services and DNS from inside a pod, tar and the file tools ``kubectl exec`` and
``kubectl cp`` need, and curl). :func:`sync` is what ``nestlab up`` calls once the registry
answers (:func:`publish` is the same, answering only image -> digest).

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

Publishing again is cheap when nothing changed (a second ``nestlab up``). Each image's cache key
(:func:`image_keys`) hashes everything that goes into it: its recipe, its applet list, the busybox
binary, the page template and version, curl and each library ``ldd`` finds for it (path, mode,
content), the umask its files are written under, and the code that builds it. An unchanged image is
read back from the outer machine's cache (:class:`nestlab.images.oci.BuildCache`) instead of built,
and one the registry's tag names already is not pushed (:func:`nestlab.images.oci.ensure_pushed`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nestlab import paths
from nestlab.agent.registry import RegistryClient
from nestlab.images import oci
from nestlab.runtime import disks, proc

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
BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static on the outer machine (scripts/bootstrap.sh)
CURL = Path("/usr/bin/curl")  # Debian's curl on the outer machine (scripts/apt-packages.txt)
TEMPLATE = RECIPES_DIR / "web" / "index.html"
PAGE = "/usr/share/nestlab/index.html"  # the page's template; @POD@ becomes the pod's hostname
WEB_VERSIONS = ("1", "2")  # nestlab/web:<version>; @VERSION@ in the page is filled at build time
JOB = "echo job running on kernel $(uname -r); exit ${EXIT_CODE:-0}"
WEB = (
    f'hostname > /www/host; sed "s/@POD@/$(hostname)/" {PAGE} > /www/index.html; exec httpd -f -p 80 -h /www'
)
# Stopped pods end at once: the trap answers pod-init's SIGTERM (a shell that is PID 1 of its
# namespace ignores signals it has no handler for), and `wait` lets it run while sleep sleeps.
CLIENT = "trap 'exit 0' TERM; while true; do sleep 3600 & wait $!; done"


@dataclass(frozen=True)
class Sources:
    """The outer machine's files the demo images are made of (unit tests give their own)."""

    busybox: Path = BUSYBOX
    curl: Path = CURL
    template: Path = TEMPLATE
    """The web page, ``@VERSION@`` and ``@POD@`` still in it."""
    run: proc.Runner = proc.run
    """Runs ``ldd`` on curl."""


@dataclass(frozen=True)
class DemoImage:
    """One demo image: where it goes and what it is made of."""

    repository: str
    tag: str
    root: str
    """The files of its one layer: ``web-1``, ``web-2`` or ``client``."""
    recipe: oci.Recipe

    @property
    def name(self) -> str:
        """``repository:tag``."""
        return f"{self.repository}:{self.tag}"


IMAGES = (
    *(DemoImage("nestlab/web", v, f"web-{v}", oci.Recipe(cmd=("sh", "-c", WEB))) for v in WEB_VERSIONS),
    # the jobs share web:2's layer: one blob in the registry for three images
    DemoImage("nestlab/job", "ok", "web-2", oci.Recipe(cmd=("sh", "-c", JOB), env={"EXIT_CODE": "0"})),
    DemoImage("nestlab/job", "fail", "web-2", oci.Recipe(cmd=("sh", "-c", JOB), env={"EXIT_CODE": "3"})),
    DemoImage("nestlab/client", "1", "client", oci.Recipe(cmd=("sh", "-c", CLIENT))),
)


@dataclass(frozen=True)
class Published:
    """What :func:`sync` did."""

    digests: dict[str, str]
    """``registry/repository:tag`` -> manifest digest, for every image."""
    pushed: tuple[str, ...]
    """Images (``repository:tag``) the registry did not hold as built: sent."""
    skipped: tuple[str, ...]
    """Images the registry held already: nothing sent."""
    built: tuple[str, ...]
    """Images built now; the others came from the cache."""

    def summary(self) -> str:
        """One line for the ``up`` step: pushed vs skipped, built vs cached."""
        sent = f"{len(self.pushed)} pushed" + (f" ({', '.join(self.pushed)})" if self.pushed else "")
        cached = len(self.digests) - len(self.built)
        return (
            f"{len(self.digests)} images: {sent}, {len(self.skipped)} already in the registry; "
            f"{len(self.built)} built, {cached} from the cache"
        )


def _web_root(directory: Path, version: str, sources: Sources | None = None) -> Path:
    """Web image ``version``'s files: the page's template (its version filled in), /www/version, and
    /www holding the page without the pod's name (what a pod serves when its spec replaces the
    image's command with plain ``httpd -h /www``)."""
    sources = sources or Sources()
    root = disks.busybox_root(directory / f"web-{version}", sources.busybox, applets=APPLETS)
    template = sources.template.read_text().replace("@VERSION@", version)
    page = root / PAGE.lstrip("/")
    page.parent.mkdir(parents=True)
    page.write_text(template)
    (root / "www").mkdir()
    static = "".join(line for line in template.splitlines(keepends=True) if "@POD@" not in line)
    (root / "www" / "index.html").write_text(static)
    (root / "www" / "version").write_text(f"{version}\n")
    return root


def client_root(directory: Path, sources: Sources | None = None) -> Path:
    """The client image's files: busybox with :data:`CLIENT_APPLETS`, and curl with its libraries."""
    sources = sources or Sources()
    root = disks.busybox_root(directory / "client", sources.busybox, applets=CLIENT_APPLETS)
    disks.copy_dynamic(sources.curl, root, sources.run)
    return root


def _stage(root: str, directory: Path, sources: Sources) -> Path:
    if root == "client":
        return client_root(directory, sources)
    return _web_root(directory, root.removeprefix("web-"), sources)


def _file(path: Path, hint: str, *, placed: bool = False) -> str:
    """A file as a key part: its content's sha256 (a symlink followed, as the image gets the file it
    names) and, when it is ``placed`` in the image at its own path with its own mode (curl and its
    libraries), the path and mode too. busybox and the template land at fixed paths and modes."""
    try:
        mode = path.stat().st_mode
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise proc.ProcessError(f"{path} is missing: {hint}") from None
    return f"{path} {mode:o} {digest}" if placed else digest


def _umask() -> str:
    """The process's umask (directories and written files get their modes from it), read without
    setting it (``os.umask`` would change it for every thread meanwhile)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return ""
    return next((line.split()[1] for line in status.splitlines() if line.startswith("Umask:")), "")


def image_keys(sources: Sources | None = None) -> dict[str, str]:
    """Each demo image's cache key (``repository:tag`` -> sha256 hex): it changes when anything
    that goes into the image does (module docstring), and only then."""
    sources = sources or Sources()
    code = b"".join(Path(module).read_bytes() for module in (__file__, disks.__file__))
    shared = [
        hashlib.sha256(code).hexdigest(),
        oci.builder_fingerprint(),
        _umask(),
        _file(sources.busybox, "install busybox-static (scripts/bootstrap.sh)"),
    ]
    roots = {
        f"web-{v}": ["web", v, *APPLETS, _file(sources.template, "the checkout is damaged")]
        for v in WEB_VERSIONS
    }
    apt = "install the package that ships it (scripts/apt-packages.txt)"
    curl = _file(sources.curl, apt, placed=True)  # before ldd: a missing curl is named, not ldd's error
    needed = disks.parse_ldd(sources.run(["ldd", str(sources.curl)], timeout=disks.LDD_TIMEOUT_S).stdout)
    roots["client"] = [
        "client",
        *CLIENT_APPLETS,
        curl,
        *(_file(Path(lib), apt, placed=True) for lib in needed),
    ]
    return {
        image.name: hashlib.sha256(
            json.dumps([*shared, *roots[image.root], image.recipe.canonical()]).encode()
        ).hexdigest()
        for image in IMAGES
    }


def sync(
    registry: str,
    client: Callable[[str], RegistryClient] = RegistryClient,
    *,
    cache: oci.BuildCache | None = None,
    sources: Sources | None = None,
) -> Published:
    """Make ``registry`` (``host:port``) hold every demo image: each is built unless ``cache``
    (default: :func:`nestlab.paths.image_build_cache`) has it, and pushed unless the registry has it."""
    sources = sources or Sources()
    cache = cache or oci.BuildCache(paths.image_build_cache())
    target = client(registry)
    keys = image_keys(sources)
    digests: dict[str, str] = {}
    pushed: list[str] = []
    skipped: list[str] = []
    built: list[str] = []
    with tempfile.TemporaryDirectory(prefix="nestlab-demo-images-") as tmp:
        staged: dict[str, Path] = {}

        def make(image: DemoImage) -> oci.Image:
            if image.root not in staged:
                staged[image.root] = _stage(image.root, Path(tmp), sources)
            return oci.build_image(staged[image.root], image.recipe)

        for image in IMAGES:
            found, fresh = cache.image(keys[image.name], functools.partial(make, image))
            if fresh:
                built.append(image.name)
            sent = oci.ensure_pushed(target, image.repository, [image.tag], found)
            (pushed if sent else skipped).append(image.name)
            digests[f"{registry}/{image.name}"] = found.digest
    return Published(digests, tuple(pushed), tuple(skipped), tuple(built))


def publish(
    registry: str,
    client: Callable[[str], RegistryClient] = RegistryClient,
    *,
    cache: oci.BuildCache | None = None,
) -> dict[str, str]:
    """Build (or take from the cache) and push (unless there) every demo image to ``registry``
    (``host:port``); image -> manifest digest. :func:`sync` also says what it did."""
    return sync(registry, client, cache=cache).digests
