"""nestlab-dns against the REAL API server (3-member etcd) and a REAL unbound, queried with dig.

The feeder runs in-process (a background thread with its own event loop), as ``nestlab-dns`` runs
it: a Service and its EndpointSlice become names, deleting them makes the names NXDOMAIN, and the
``kube-system/kube-dns`` Endpoints hold the address of every feeder whose Lease is renewed: a feeder
stopped without cleanup (its node died) leaves once its Lease expired; a clean stop leaves at once.

Every feeder runs as nestlab-dns does on a lab: with its own client certificate (CN
``system:nestlab-dns``, no group), so the API server's built-in ClusterRole and kube-system Role of
that name must allow all it does; and that identity is refused every other write (403).
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nestlab.api.client import ApiClient, Credentials
from nestlab.controller.informer import InformerFactory
from nestlab.dns import local
from nestlab.dns.feeder import Feeder, FeederConfig, serve
from nestlab.dns.presence import Presence, PresenceConfig, endpoint_addresses
from nestlab.dns.unbound import UnboundConfig
from nestlab.runtime import proc
from tests.integration.api.conftest import SERVICE_RANGE, ApiServer, Pki, _cert, wait_until
from tests.integration.dns.dig import dig

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("unbound") is None or shutil.which("dig") is None,
        reason="needs unbound and dig (apt-get install unbound bind9-dnsutils; scripts/bootstrap.sh does)",
    ),
]
Obj = dict[str, Any]
NS = "dns-feed"
ONE, TWO, THREE = "198.18.0.11", "198.18.0.12", "198.18.0.13"  # announced by the feeders, never bound
USER = "system:nestlab-dns"


@pytest.fixture(scope="module")
def identity(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """nestlab-dns's client certificate and key (CN system:nestlab-dns, signed by the lab CA)."""
    directory = tmp_path_factory.mktemp("dns-identity")
    return _cert(directory, "nestlab-dns", f"/CN={USER}", pki.ca, pki.ca.parent / "ca.key")


class FeederThread:
    """One nestlab-dns (informers, feeder, Lease) on its own event loop in a thread."""

    def __init__(
        self,
        server: ApiServer,
        unbound: local.LocalUnbound,
        identity: str,
        address: str,
        certificate: tuple[Path, Path],
    ) -> None:
        self.server, self.unbound, self.certificate = server, unbound, certificate
        self.presence_config = PresenceConfig(identity, address)
        self.withdraw = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True, name=f"nestlab-dns-{identity}")

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by stop()
            self.error = exc

    async def _run(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()
        cert, key = self.certificate
        client = ApiClient(Credentials(self.server.url, self.server.pki.ca, None, cert, key))
        try:
            informers = InformerFactory(client)
            feeder = Feeder(informers, self.unbound.control, FeederConfig())
            presence = Presence(client, self.presence_config)
            await serve(informers, feeder, presence, self._stop, withdraw=False)
            if self.withdraw:  # decided at stop time, as a SIGTERM (withdraw) or a crash (not)
                await presence.withdraw()
        finally:
            await client.close()
            await asyncio.sleep(0.25)  # aiohttp's advice: let TLS connections finish closing

    def start(self) -> FeederThread:
        self._thread.start()
        assert self._started.wait(30), "the feeder thread did not start"
        return self

    def stop(self, *, withdraw: bool = True) -> None:
        """Stop; without ``withdraw`` it just vanishes, as when its node dies."""
        if not self._thread.is_alive():
            return
        self.withdraw = withdraw
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the feeder thread did not stop"
        assert self.error is None, repr(self.error)


@pytest.fixture(scope="module", autouse=True)
def forget_kube_dns_endpoints(apiserver: ApiServer) -> Iterator[None]:
    """The kube-dns Endpoints the feeders write go at the end: other modules share this API server."""
    yield
    apiserver.request("DELETE", "/api/v1/namespaces/kube-system/endpoints/kube-dns")


@pytest.fixture
def unbound() -> Iterator[local.LocalUnbound]:
    running = local.start(UnboundConfig(listen=("127.0.0.1",), reverse=(SERVICE_RANGE, "198.19.0.0/16")))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def feeders(apiserver: ApiServer, unbound: local.LocalUnbound) -> Iterator[list[FeederThread]]:
    started: list[FeederThread] = []
    try:
        yield started
    finally:
        for feeder in started:
            feeder.stop()
        for name in ("nestlab-dns-cp-one", "nestlab-dns-cp-two"):
            apiserver.request("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}")


def create(apiserver: ApiServer, path: str, body: Obj) -> Obj:
    code, created = apiserver.request("POST", path, body)
    assert code == 201, created
    return dict(created)


def kube_dns_addresses(apiserver: ApiServer) -> frozenset[str]:
    code, endpoints = apiserver.request("GET", "/api/v1/namespaces/kube-system/endpoints/kube-dns")
    return endpoint_addresses(endpoints) if code == 200 else frozenset()


def test_services_resolve_while_they_exist(
    apiserver: ApiServer,
    unbound: local.LocalUnbound,
    feeders: list[FeederThread],
    identity: tuple[Path, Path],
) -> None:
    code, _ = apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
    assert code in (201, 409)
    feeders.append(FeederThread(apiserver, unbound, "cp-one", ONE, identity).start())
    port = unbound.port

    # the kube-dns Service the API server ensured resolves to range + 10
    dns_ip = str(ipaddress.ip_network(SERVICE_RANGE).network_address + 10)
    wait_until(
        lambda: dig(port, "kube-dns.kube-system.svc.cluster.local.").data("A") == {dns_ip}, "kube-dns A"
    )

    web = create(
        apiserver,
        f"/api/v1/namespaces/{NS}/services",
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]},
        },
    )
    cluster_ip, name = web["spec"]["clusterIP"], f"web.{NS}.svc.cluster.local."
    wait_until(lambda: dig(port, name).data("A") == {cluster_ip}, "web A")
    assert dig(port, f"_http._tcp.{name}", "SRV").data("SRV") == {f"0 100 80 {name}"}
    reverse = ipaddress.ip_address(cluster_ip).reverse_pointer + "."
    assert dig(port, reverse, "PTR").data("PTR") == {name}

    # a headless Service gets its addresses from its EndpointSlice
    create(
        apiserver,
        f"/api/v1/namespaces/{NS}/services",
        {"metadata": {"name": "db"}, "spec": {"clusterIP": "None"}},
    )
    endpoints = [
        {"addresses": ["198.19.1.4"], "conditions": {"ready": True}, "hostname": "db-0"},
        {"addresses": ["198.19.2.7"], "conditions": {"ready": True}},
        {"addresses": ["198.19.3.9"], "conditions": {"ready": False}},
    ]
    slice_body = {
        "metadata": {"name": "db-abcde", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
    }
    create(apiserver, f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices", slice_body)
    db = f"db.{NS}.svc.cluster.local."
    wait_until(lambda: dig(port, db).data("A") == {"198.19.1.4", "198.19.2.7"}, "db A (ready endpoints only)")
    assert dig(port, f"db-0.{db}").data("A") == {"198.19.1.4"}

    # deleted: NXDOMAIN
    code, _ = apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/services/web")
    assert code == 200
    wait_until(lambda: dig(port, name).status == "NXDOMAIN", "web gone")
    code, _ = apiserver.request(
        "DELETE", f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices/db-abcde"
    )
    assert code == 200
    wait_until(lambda: dig(port, db).status == "NXDOMAIN", "db gone with its slice")
    apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/services/db")


def test_kube_dns_endpoints_follow_the_live_feeders(
    apiserver: ApiServer,
    unbound: local.LocalUnbound,
    feeders: list[FeederThread],
    identity: tuple[Path, Path],
) -> None:
    one = FeederThread(apiserver, unbound, "cp-one", ONE, identity).start()
    feeders.append(one)
    wait_until(lambda: ONE in kube_dns_addresses(apiserver), "cp-one in kube-dns")
    two = FeederThread(apiserver, unbound, "cp-two", TWO, identity).start()
    feeders.append(two)
    wait_until(lambda: kube_dns_addresses(apiserver) >= {ONE, TWO}, "both feeders in kube-dns")

    # cp-two's node dies: no cleanup; cp-one drops it once its Lease (6 s) expired
    two.stop(withdraw=False)
    assert TWO in kube_dns_addresses(apiserver)
    wait_until(lambda: TWO not in kube_dns_addresses(apiserver), "expired cp-two out of kube-dns", timeout=30)
    assert ONE in kube_dns_addresses(apiserver)

    # a clean stop: Lease deleted and address withdrawn at once
    one.stop()
    assert ONE not in kube_dns_addresses(apiserver)
    code, _ = apiserver.request(
        "GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/nestlab-dns-cp-one"
    )
    assert code == 404


def test_the_nestlab_dns_process_joins_and_withdraws_on_sigterm(
    apiserver: ApiServer, unbound: local.LocalUnbound, tmp_path: Path, identity: tuple[Path, Path]
) -> None:
    cert, key = identity
    argv = [
        sys.executable, "-m", "nestlab.dns.main",
        "--server", apiserver.url, "--certificate-authority", str(apiserver.pki.ca),
        "--client-certificate", str(cert), "--client-key", str(key),
        "--identity", "cp-three", "--address", THREE, "--unbound-config", str(unbound.config_file),
    ]  # fmt: skip
    log = tmp_path / "nestlab-dns.log"
    process = proc.spawn(argv, log=log)
    try:
        dns_ip = str(ipaddress.ip_network(SERVICE_RANGE).network_address + 10)
        name = "kube-dns.kube-system.svc.cluster.local."
        wait_until(lambda: dig(unbound.port, name).data("A") == {dns_ip}, "kube-dns A from the process")
        wait_until(lambda: THREE in kube_dns_addresses(apiserver), "the process in kube-dns")
        assert process.stop(grace=30) == 0, log.read_text()[-3000:]  # SIGTERM: a clean stop
    finally:
        process.stop()
    assert THREE not in kube_dns_addresses(apiserver)
    code, _ = apiserver.request(
        "GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/nestlab-dns-cp-three"
    )
    assert code == 404
    assert "Traceback" not in log.read_text()


def test_the_dns_identity_may_write_nothing_else(apiserver: ApiServer, identity: tuple[Path, Path]) -> None:
    """Reads of what it feeds from, yes; any write beyond its Lease and kube-dns's Endpoints: 403."""
    context = apiserver.context(*identity)

    def call(method: str, path: str, body: Obj | None = None) -> tuple[int, Obj]:
        code, answer = apiserver.request(method, path, body, token=None, context=context)
        return code, dict(answer) if isinstance(answer, dict) else {"message": str(answer)}

    assert call("GET", "/api/v1/services")[0] == 200
    assert call("GET", "/apis/discovery.k8s.io/v1/endpointslices?watch=false")[0] == 200
    pod = {"metadata": {"name": "dns-may-not"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    code, answer = call("POST", "/api/v1/namespaces/default/pods", pod)
    assert (code, answer["message"]) == (
        403,
        f'pods is forbidden: User "{USER}" cannot create resource "pods" in API group "" '
        'in the namespace "default"',
    )
    lease = {"metadata": {"name": "nestlab-dns-elsewhere"}, "spec": {"holderIdentity": ONE}}
    assert call("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", lease)[0] == 403
    code, kubernetes = apiserver.request("GET", "/api/v1/namespaces/default/endpoints/kubernetes")
    assert code == 200, kubernetes
    assert call("PUT", "/api/v1/namespaces/default/endpoints/kubernetes", dict(kubernetes))[0] == 403
    assert call("GET", "/api/v1/namespaces/kube-system/endpoints/kubernetes")[0] == 403  # kube-dns's only
    code, service = apiserver.request("GET", "/api/v1/namespaces/kube-system/services/kube-dns")
    assert code == 200, service
    assert call("PUT", "/api/v1/namespaces/kube-system/services/kube-dns", dict(service))[0] == 403
    assert call("POST", "/api/v1/namespaces", {"metadata": {"name": "dns-may-not"}})[0] == 403
    assert call("GET", "/api/v1/namespaces/kube-system/secrets")[0] == 403
