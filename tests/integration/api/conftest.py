"""Fixture ladder for the API server: pki -> etcd_cluster -> apiserver -> kubeconfig/kubectl.

A REAL 3-member etcd cluster on loopback, the REAL ``nestlab-apiserver`` as a process over HTTPS
with a lab CA, static tokens and client certificates; kubectl binaries and the Python client
talk to it. Every process is stopped by PID and every directory removed, also on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from nestlab import paths
from nestlab.api import encryption
from nestlab.provision.pki import ensure_signing_key
from nestlab.runtime import proc

if TYPE_CHECKING:
    from tests.integration.api.workloads import LoopThread

ADMIN_TOKEN = "admin-token-0123456789"  # noqa: S105 - a test credential
BOB_TOKEN = "bob-token-0123456789"  # noqa: S105
NODE_TOKEN = "node-token-0123456789"  # noqa: S105
# Secrets are encrypted at rest as in a lab (aesgcm, then identity); a fixed test key, not a lab's.
ENCRYPTION_KEY_NAME = "key1"
ENCRYPTION_KEY = bytes(range(32))
# Lab users' login tokens are signed with this key, made next to the server's log (one per directory,
# shared by every server started there, as the control-plane nodes of a lab share theirs).
IDENTITY_KEY = "identity-signing.key"
# Debian's kubectl 1.20 unpacked from its .deb; the package version names the cache entry.
KUBECTL_120_CACHE = Path(os.environ.get("NESTLAB_KUBECTL_CACHE") or paths.cache_dir() / "kubectl-deb")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{what} not ready after {timeout:g}s (last error: {last})")


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    alice_cert: Path
    alice_key: Path
    carol_cert: Path
    carol_key: Path


def _cert(
    directory: Path, name: str, subject: str, ca: Path, ca_key: Path, *, server: bool = False
) -> tuple[Path, Path]:
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    proc.run(
        [
            "openssl",
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key,
            "-out",
            csr,
            "-subj",
            subject,
        ],
        timeout=30,
    )
    ext = directory / f"{name}.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
        if server
        else "extendedKeyUsage=clientAuth\n"
    )
    proc.run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            cert,
            "-extfile",
            ext,
        ],
        timeout=30,
    )
    return cert, key


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A lab CA, a serving certificate for 127.0.0.1 and two client certificates."""
    directory = tmp_path_factory.mktemp("pki")
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    proc.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            ca_key,
            "-out",
            ca,
            "-days",
            "2",
            "-subj",
            "/CN=nestlab-test-ca",
        ],
        timeout=30,
    )
    server_cert, server_key = _cert(directory, "server", "/CN=apiserver", ca, ca_key, server=True)
    alice_cert, alice_key = _cert(directory, "alice", "/O=nestlab:admins/CN=alice", ca, ca_key)
    carol_cert, carol_key = _cert(directory, "carol", "/O=devs/CN=carol", ca, ca_key)
    return Pki(ca, server_cert, server_key, alice_cert, alice_key, carol_cert, carol_key)


@dataclass
class EtcdMember:
    name: str
    client_url: str
    data_dir: Path
    argv: list[str]
    log: Path
    process: proc.Process | None = None

    def start(self) -> None:
        self.process = proc.spawn(self.argv, log=self.log)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=5)
            self.process = None


def etcd_members(root: Path, prefix: str, *timing: str) -> list[EtcdMember]:
    """Three etcd members ``{prefix}1..3`` on loopback ports, their data under ``root`` (not started);
    ``timing``: extra etcd flags (heartbeat, election timeout, pre-vote)."""
    names = [f"{prefix}{i}" for i in (1, 2, 3)]
    peers = {n: f"http://127.0.0.1:{free_port()}" for n in names}
    clients = {n: f"http://127.0.0.1:{free_port()}" for n in names}
    cluster = ",".join(f"{n}={peers[n]}" for n in names)
    return [
        EtcdMember(
            name,
            clients[name],
            root / name,
            [
                "etcd",
                *("--name", name, "--data-dir", str(root / name)),
                *("--listen-client-urls", clients[name], "--advertise-client-urls", clients[name]),
                *("--listen-peer-urls", peers[name], "--initial-advertise-peer-urls", peers[name]),
                *("--initial-cluster", cluster, "--initial-cluster-state", "new"),
                *("--initial-cluster-token", f"nestlab-{prefix}-{os.getpid()}"),
                *timing,
            ],
            root / f"{name}.log",
        )
        for name in names
    ]


START_ATTEMPTS = 3
"""How often a cluster is started on new ports: a port free_port() found can be taken by another
process before etcd binds it (seen once in a full run: a member never listened)."""


def _why_not_up(members: list[EtcdMember], timeout: float = 60.0) -> str:
    """Start ``members`` and wait until each is healthy: "" when they are, else what went wrong with
    the end of each failed member's log (a member whose process exited fails at once)."""
    for member in members:
        member.start()
    problems: list[str] = []
    for member in members:
        deadline, last = time.monotonic() + timeout, ""
        while True:
            try:
                if etcd_healthy(member.client_url):
                    break
            except (OSError, ValueError) as exc:
                last = str(exc)
            exited = member.process is not None and member.process.poll() is not None
            if exited or time.monotonic() > deadline:
                tail = member.log.read_text(errors="replace")[-1500:] if member.log.exists() else ""
                state = "exited" if exited else f"not healthy after {timeout:g}s"
                problems.append(f"etcd {member.name} {state} (last error: {last}); its log ends:\n{tail}")
                break
            time.sleep(0.2)
    return "\n".join(problems)


@contextmanager
def running(make: Callable[[Path], list[EtcdMember]], root: Path) -> Iterator[list[EtcdMember]]:
    """Start the members ``make`` gives for a data root, wait until each is healthy; stop them by PID
    and remove ``root`` after. A cluster that does not come up is stopped and made again on new
    ports (``make`` picks them), up to :data:`START_ATTEMPTS` times, then the last reason fails."""
    members: list[EtcdMember] = []
    try:
        for attempt in range(1, START_ATTEMPTS + 1):
            data = root / f"start{attempt}"
            data.mkdir(parents=True, exist_ok=True)
            members = make(data)
            why = _why_not_up(members)
            if not why:
                break
            for member in members:
                member.stop()
            if attempt == START_ATTEMPTS:
                raise AssertionError(
                    f"the etcd cluster did not come up in {attempt} starts; the last:\n{why}"
                )
            print(f"etcd cluster start {attempt} failed, again on new ports:\n{why}", file=sys.stderr)
        yield members
    finally:
        for member in members:
            member.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="package")
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EtcdMember]]:
    """Three etcd members on loopback, stopped by PID at the end of the package's tests.

    Package scope, not session: the packages that import this ladder into their conftest (agent,
    dashboard, exercises, proxy) each get their own, and each is stopped when its package's tests
    are done. As session fixtures, five idle control planes (15 etcd members, 5 API servers) ran
    until the end of the suite: half a core through the whole e2e phase."""
    root = tmp_path_factory.mktemp("etcd")
    # A loaded 2-core machine: slower heartbeats keep elections from churning.
    timing = ("--heartbeat-interval", "250", "--election-timeout", "2500")
    progress = ("--experimental-watch-progress-notify-interval", "1s")  # the lab's is 5s
    with running(lambda data: etcd_members(data, "e", *timing, *progress), root) as members:
        yield members


def etcd_healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310 - loopback test URL
        return bool(json.loads(response.read()).get("health") == "true")


@dataclass(frozen=True)
class ApiServer:
    url: str
    pki: Pki
    log: Path
    process: proc.Process

    def context(self, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        if cert is not None:
            context.load_cert_chain(str(cert), str(key))
        return context

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = ADMIN_TOKEN,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        context: ssl.SSLContext | None = None,
    ) -> tuple[int, Any]:
        """One HTTP request; (status code, decoded JSON body or text)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        if data is not None:
            request.add_header("Content-Type", content_type)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, context=context or self.context(), timeout=20) as response:  # noqa: S310
                code, payload = response.status, response.read()
        except urllib.error.HTTPError as exc:
            code, payload = exc.code, exc.read()
        try:
            return code, json.loads(payload)
        except ValueError:
            return code, payload.decode(errors="replace")


SERVICE_RANGE = "198.18.32.0/20"  # the lab's default Services CIDR
ADVERTISE_ADDRESS = "198.18.0.100"  # stands for the API VIP: only written into Endpoints, never bound


def start_apiserver(
    pki: Pki, etcd_urls: list[str], directory: Path, *extra: str, wait_ready: bool = True
) -> tuple[str, proc.Process, Path]:
    tokens = directory / "tokens.csv"
    tokens.write_text(
        f'{ADMIN_TOKEN},admin,1,"nestlab:admins"\n{BOB_TOKEN},bob,2\n{NODE_TOKEN},system:node:esx-07,3,"system:nodes"\n'
    )
    identity_key = ensure_signing_key(directory, IDENTITY_KEY)
    port = free_port()
    log = directory / f"apiserver-{port}.log"
    argv = [
        sys.executable,
        "-m",
        "nestlab.api.main",
        "--etcd-servers",
        ",".join(etcd_urls),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--tls-cert-file",
        pki.server_cert,
        "--tls-private-key-file",
        pki.server_key,
        "--client-ca-file",
        pki.ca,
        "--token-auth-file",
        tokens,
        "--service-cluster-ip-range",
        SERVICE_RANGE,
        "--advertise-address",
        ADVERTISE_ADDRESS,
        "--identity-signing-key",
        identity_key,
        *extra,
    ]
    process = proc.spawn(argv, log=log)
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(pki.ca))

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"apiserver exited {process.poll()}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", context=context, timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except urllib.error.HTTPError as exc:  # 500 until its bootstrap is done: closed, asked again
            exc.close()
            return False

    def live() -> bool:
        with urllib.request.urlopen(f"{url}/livez", context=context, timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)

    try:
        wait_until(ready if wait_ready else live, "nestlab-apiserver", timeout=30)
    except BaseException:
        process.stop()
        raise
    return url, process, log


@contextmanager
def service_account_apiserver(pki: Pki, etcd_cluster: list[EtcdMember], prefix: str) -> Iterator[ApiServer]:
    """A nestlab-apiserver that signs bound service-account tokens (its own key in a temporary
    directory named ``prefix``...), stopped by PID after; its log must hold no traceback."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    key = ensure_signing_key(directory, "service-account.key")
    url, process, log = start_apiserver(
        pki, [m.client_url for m in etcd_cluster], directory, "--service-account-signing-key-file", str(key)
    )
    try:
        yield ApiServer(url, pki, log, process)
    finally:
        process.stop()
        text = log.read_text()
        shutil.rmtree(directory, ignore_errors=True)
    assert "Traceback" not in text, text[-4000:]


@pytest.fixture(scope="package")
def apiserver(
    pki: Pki, etcd_cluster: list[EtcdMember], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """``nestlab-apiserver`` over HTTPS against the 3-member cluster, stopped by PID at the end of
    the package's tests (see :func:`etcd_cluster`).

    At the end its log must hold no traceback: whatever the tests sent, the server answered with
    a Status, never an unhandled exception (a 500).
    """
    directory = tmp_path_factory.mktemp("apiserver")
    at_rest = directory / "encryption-config.yaml"
    at_rest.write_text(encryption.render(ENCRYPTION_KEY_NAME, ENCRYPTION_KEY))
    url, process, log = start_apiserver(
        pki, [m.client_url for m in etcd_cluster], directory, "--encryption-provider-config", str(at_rest)
    )
    try:
        yield ApiServer(url, pki, log, process)
    finally:
        process.stop()
    text = log.read_text()
    assert "Traceback" not in text, text[-4000:]


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    """An event loop on a thread of its own for the test's asyncio clients, stopped at the end."""
    from tests.integration.api.workloads import LoopThread  # workloads imports this module

    thread = LoopThread()
    try:
        yield thread
    finally:
        thread.stop()


def write_kubeconfig(
    path: Path,
    server: ApiServer,
    *,
    token: str | None = None,
    cert: Path | None = None,
    key: Path | None = None,
) -> Path:
    user: dict[str, str] = (
        {"token": token} if token else {"client-certificate": str(cert), "client-key": str(key)}
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "lab", "cluster": {"server": server.url, "certificate-authority": str(server.pki.ca)}}
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "u"}}],
        "current-context": "lab",
    }
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="session")
def kubectl_120() -> Path:
    """Debian's kubectl 1.20, unpacked (not installed: it conflicts with the kubectl package).

    Cached under the .deb's name (package and version), so a re-run downloads nothing.
    """
    cached = sorted(KUBECTL_120_CACHE.glob("kubernetes-client_*/usr/bin/kubectl"))
    if cached:
        return cached[-1]
    KUBECTL_120_CACHE.mkdir(parents=True, exist_ok=True)
    download = Path(tempfile.mkdtemp(prefix="download-", dir=KUBECTL_120_CACHE))
    try:
        try:
            proc.run(["apt-get", "download", "kubernetes-client"], timeout=300, cwd=download)
        except proc.ProcessError:
            proc.run(["apt-get", "update", "-qq"], timeout=600)
            proc.run(["apt-get", "download", "kubernetes-client"], timeout=300, cwd=download)
        debs = sorted(download.glob("kubernetes-client_*.deb"))
        assert debs, "apt-get download kubernetes-client produced no .deb"
        staging = download / "root"
        proc.run(["dpkg-deb", "-x", debs[-1], staging], timeout=120)
        target = KUBECTL_120_CACHE / debs[-1].stem
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(download, ignore_errors=True)
    return target / "usr" / "bin" / "kubectl"


NEW_KUBECTLS = {
    "1.27": Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.27"),
    "1.33": Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.33"),
    "dispatcher": Path("/usr/bin/kubectl"),
}


def kubectl_binaries() -> list[str]:
    return ["1.20", *[name for name, path in NEW_KUBECTLS.items() if path.exists()]]


@pytest.fixture(params=kubectl_binaries())
def kubectl(request: pytest.FixtureRequest, kubectl_120: Path, apiserver: ApiServer, tmp_path: Path):
    binary = kubectl_120 if request.param == "1.20" else NEW_KUBECTLS[request.param]
    config = write_kubeconfig(tmp_path / "kubeconfig", apiserver, token=ADMIN_TOKEN)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(config)}

    def run(*args: str, check: bool = True, stdin: str | None = None) -> proc.Result:
        return proc.run([str(binary), *args], timeout=60, check=check, env=env, stdin=stdin)

    run.version = request.param  # type: ignore[attr-defined]
    run.argv0 = str(binary)  # type: ignore[attr-defined]
    run.env = env  # type: ignore[attr-defined]
    return run
