"""A REAL unbound configured by render_config and fed through nestlab.dns.unbound, queried with dig."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from nestlab.dns import local
from nestlab.dns.records import Record, diff, service_records
from nestlab.dns.unbound import UnboundConfig, UnboundError
from tests.integration.dns.dig import dig

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("unbound") is None or shutil.which("dig") is None,
        reason="needs unbound and dig (apt-get install unbound bind9-dnsutils; scripts/bootstrap.sh does)",
    ),
]
Obj = dict[str, Any]
WEB = "web.shop.svc.cluster.local."
DB = "db.shop.svc.cluster.local."


@pytest.fixture
def server() -> Iterator[local.LocalUnbound]:
    """unbound on a free loopback port, the lab's zones (services 198.18.32.0/20, pods 198.19.0.0/16)."""
    config = UnboundConfig(listen=("127.0.0.1",), reverse=("198.18.32.0/20", "198.19.0.0/16"))
    running = local.start(config)
    try:
        yield running
    finally:
        running.stop()
        assert running.process.poll() is not None


def web() -> Obj:
    ports = [{"name": "http", "port": 80, "protocol": "TCP"}]
    return {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"clusterIP": "198.18.32.5", "ports": ports},
    }


def db_slices(*addresses: str) -> list[Obj]:
    endpoints = [{"addresses": [a], "conditions": {"ready": True}} for a in addresses]
    endpoints[0]["hostname"] = "db-0"
    return [
        {
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        }
    ]


DB_SERVICE: Obj = {"metadata": {"name": "db", "namespace": "shop"}, "spec": {"clusterIP": "None"}}
EXT: Obj = {
    "metadata": {"name": "ext", "namespace": "shop"},
    "spec": {"type": "ExternalName", "externalName": "db.example.com"},
}


def load(server: local.LocalUnbound) -> set[Record]:
    records = set(service_records(web(), [])) | set(
        service_records(DB_SERVICE, db_slices("198.19.1.4", "198.19.2.7"))
    )
    records |= service_records(EXT, [])
    server.control.apply(diff(set(), records))
    return records


def test_records_answer_as_the_kubernetes_dns_spec_says(server: local.LocalUnbound) -> None:
    load(server)
    port = server.port
    assert dig(port, WEB).data("A") == {"198.18.32.5"}
    assert dig(port, WEB, tcp=True).data("A") == {"198.18.32.5"}
    assert dig(port, "_http._tcp." + WEB, "SRV").data("SRV") == {f"0 100 80 {WEB}"}
    assert dig(port, "5.32.18.198.in-addr.arpa.", "PTR").data("PTR") == {WEB}
    # headless: every ready address, the pod's hostname, SRV per endpoint, PTR to its host name
    assert dig(port, DB).data("A") == {"198.19.1.4", "198.19.2.7"}
    assert dig(port, "db-0." + DB).data("A") == {"198.19.1.4"}
    assert dig(port, "_pg._tcp." + DB, "SRV").data("SRV") == {
        f"0 50 5432 db-0.{DB}",
        f"0 50 5432 198-19-2-7.{DB}",
    }
    assert dig(port, "7.2.19.198.in-addr.arpa.", "PTR").data("PTR") == {"198-19-2-7." + DB}
    assert dig(port, "ext.shop.svc.cluster.local.").data("CNAME") == {"db.example.com."}
    assert dig(port, "dns-version.cluster.local.", "TXT").data("TXT") == {'"1.1.0"'}


def test_unknown_names_in_the_zones_are_nxdomain_and_the_rest_is_refused(server: local.LocalUnbound) -> None:
    load(server)
    missing = dig(server.port, "nope.shop.svc.cluster.local.")
    assert missing.status == "NXDOMAIN"
    assert {kind for _, kind, _ in missing.authority} == {"SOA"}  # the miss is cached for the TTL only
    assert dig(server.port, "9.32.18.198.in-addr.arpa.", "PTR").status == "NXDOMAIN"
    assert (
        dig(server.port, "web.shop.svc.cluster.local.shop.svc.cluster.local.").status == "NXDOMAIN"
    )  # ndots:5 search
    # outside the lab: REFUSED at once rather than a recursion that would time out
    assert dig(server.port, "example.com.").status == "REFUSED"
    assert dig(server.port, "1.0.18.198.in-addr.arpa.", "PTR").status == "REFUSED"


def test_incremental_changes_remove_exactly_what_left(server: local.LocalUnbound) -> None:
    before = load(server)
    # one endpoint of the headless Service goes: its address, host name, SRV and PTR go, the rest stays
    after = (before - set(service_records(DB_SERVICE, db_slices("198.19.1.4", "198.19.2.7")))) | set(
        service_records(DB_SERVICE, db_slices("198.19.1.4"))
    )
    server.control.apply(diff(before, after))
    assert dig(server.port, DB).data("A") == {"198.19.1.4"}
    assert dig(server.port, "198-19-2-7." + DB).status == "NXDOMAIN"
    assert dig(server.port, "7.2.19.198.in-addr.arpa.", "PTR").status == "NXDOMAIN"
    assert dig(server.port, "_pg._tcp." + DB, "SRV").data("SRV") == {f"0 100 5432 db-0.{DB}"}
    # the Service is deleted: NXDOMAIN; the other Services are untouched
    final = after - set(service_records(web(), []))
    server.control.apply(diff(after, final))
    assert dig(server.port, WEB).status == "NXDOMAIN"
    assert dig(server.port, "5.32.18.198.in-addr.arpa.", "PTR").status == "NXDOMAIN"
    assert dig(server.port, DB).data("A") == {"198.19.1.4"}
    # what unbound lists back is exactly what we hold (the start-up resync relies on it)
    held = {r for r in server.control.listing() if r.name.endswith("svc.cluster.local.") or r.type == "PTR"}
    assert {r for r in held if r.data != "localhost."} == final


def test_a_refused_record_is_an_error_naming_it(server: local.LocalUnbound) -> None:
    with pytest.raises(UnboundError, match="local_datas"):
        server.control.add([Record("x.cluster.local.", "A", "not-an-address")])
