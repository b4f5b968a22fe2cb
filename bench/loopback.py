"""The shared loopback set-up of the benchmarks that run a real etcd and nestlab-apiserver.

Why it exists: bench/authz.py, image_push.py, login.py, pod_start.py and scheduler_throughput.py
all stand up the same throwaway pieces before they measure anything: a one-member etcd on
loopback ports and a bench CA with a serving certificate for 127.0.0.1 (authz.py only with
``--http``). One copy here keeps those
set-ups identical, so figures from different benchmarks come from the same conditions. It builds
on the integration fixtures' helpers (tests/integration/api/conftest.py), so the benchmarks run
what the tests run. The scripts put the repository root on ``sys.path`` before importing this.
"""

from __future__ import annotations

from pathlib import Path

from nestlab.runtime import proc
from tests.integration.api.conftest import Pki, _cert, etcd_healthy, free_port, wait_until

MEMBER = "b"  # the one member's name; nothing reads it but etcd's own --initial-cluster
ETCD_READY_S = 60.0  # generous: the host is shared, and a benchmark is no place to fail on a slow start
CERT_DAYS = "1"  # the CA lives as long as one benchmark run (minutes), then its directory is removed


def pki(directory: Path) -> Pki:
    """A bench CA, a serving certificate for 127.0.0.1 and a client certificate in nestlab:admins.

    The client certificate is alice's (``/O=nestlab:admins/CN=alice``); the Pki's carol fields
    repeat it, since no benchmark needs a second certificate user. All files go to ``directory``.
    """
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    proc.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(ca_key), "-out", str(ca), "-days", CERT_DAYS, "-subj", "/CN=bench-ca"],
        timeout=30,
    )  # fmt: skip
    server = _cert(directory, "server", "/CN=apiserver", ca, ca_key, server=True)
    alice = _cert(directory, "alice", "/O=nestlab:admins/CN=alice", ca, ca_key)
    return Pki(ca, server[0], server[1], alice[0], alice[1], alice[0], alice[1])


def etcd_argv(data_dir: Path, client_url: str, peer_url: str) -> list[str]:
    """The command line of a one-member etcd serving ``client_url``, its data in ``data_dir``."""
    return [
        "etcd", "--name", MEMBER, "--data-dir", str(data_dir),
        "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"{MEMBER}={peer_url}",
    ]  # fmt: skip


def one_member_etcd(work: Path) -> tuple[str, proc.Process]:
    """Start a one-member etcd on two free loopback ports and wait until it is healthy.

    Its data goes to ``work/etcd`` and its output to ``work/etcd.log``. Returns the client URL and
    the process, which the caller stops. If etcd is not healthy within ETCD_READY_S seconds, it is
    stopped here and the error (read ``work/etcd.log`` for why) propagates.
    """
    client_url, peer_url = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    etcd = proc.spawn(etcd_argv(work / "etcd", client_url, peer_url), log=work / "etcd.log")
    try:
        wait_until(lambda: etcd_healthy(client_url), "etcd", ETCD_READY_S)
    except BaseException:
        etcd.stop()
        raise
    return client_url, etcd
