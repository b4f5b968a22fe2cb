"""Record shapes of the Kubernetes DNS spec, per Service type, and the name-level diff unbound needs."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.dns.records import Change, Record, diff, is_name, owned, parse_record, service_records, zone_of

Obj = dict[str, Any]
Z = "cluster.local."


def service(name: str = "web", namespace: str = "shop", **spec: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace}
    if "annotations" in spec:
        meta["annotations"] = spec.pop("annotations")
    return {"metadata": meta, "spec": spec}


def endpoint(address: str, ready: bool | None = True, hostname: str | None = None) -> Obj:
    found: Obj = {"addresses": [address]}
    if ready is not None:
        found["conditions"] = {"ready": ready}
    if hostname:
        found["hostname"] = hostname
    return found


def slice_of(*endpoints: Obj, ports: list[Obj] | None = None, address_type: str = "IPv4") -> Obj:
    return {"addressType": address_type, "endpoints": list(endpoints), "ports": ports or []}


def rr(name: str, kind: str, data: str, ttl: int = 5) -> Record:
    return Record(name, kind, data, ttl)


def test_cluster_ip_service_has_a_ptr_and_srv_for_named_ports_only() -> None:
    svc = service(
        clusterIP="198.18.32.5",
        ports=[
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"port": 8080, "protocol": "TCP"},  # unnamed: no SRV
        ],
    )
    base = "web.shop.svc.cluster.local."
    assert service_records(svc, []) == {
        rr(base, "A", "198.18.32.5"),
        rr("5.32.18.198.in-addr.arpa.", "PTR", base),
        rr("_http._tcp." + base, "SRV", f"0 100 80 {base}"),
        rr("_dns._udp." + base, "SRV", f"0 100 53 {base}"),
    }


def test_cluster_ip_service_ignores_endpoints_and_dual_stack_gives_aaaa() -> None:
    svc = service(clusterIP="198.18.32.5", clusterIPs=["198.18.32.5", "fd00::5"])
    records = service_records(svc, [slice_of(endpoint("198.19.1.4"))], "Cluster.Local", ttl=30)
    base = "web.shop.svc.cluster.local."
    assert rr(base, "AAAA", "fd00::5", 30) in records
    assert rr(base, "A", "198.18.32.5", 30) in records
    assert all("198.19.1.4" not in r.data for r in records)


def test_service_without_cluster_ip_yet_has_no_records() -> None:
    assert service_records(service(clusterIP=""), []) == frozenset()


def test_headless_service_answers_ready_endpoints_with_hostnames_srv_and_ptr() -> None:
    svc = service("db", clusterIP="None")
    ports = [{"name": "pg", "port": 5432, "protocol": "TCP"}]
    slices = [
        slice_of(
            endpoint("198.19.1.4", hostname="db-0"),
            endpoint("198.19.2.7"),  # no hostname: the dashed address names it, as CoreDNS does
            endpoint("198.19.3.9", ready=False),  # not ready: absent
            endpoint("198.19.3.10", ready=None),  # unknown: ready, as the EndpointSlice API says
            ports=ports,
        )
    ]
    base = "db.shop.svc.cluster.local."
    records = service_records(svc, slices)
    hosts = {
        "198.19.1.4": "db-0." + base,
        "198.19.2.7": "198-19-2-7." + base,
        "198.19.3.10": "198-19-3-10." + base,
    }
    expected = set()
    for address, host in hosts.items():
        expected |= {rr(base, "A", address), rr(host, "A", address)}
        reverse = ".".join(reversed(address.split("."))) + ".in-addr.arpa."
        expected.add(rr(reverse, "PTR", host))
        expected.add(rr("_pg._tcp." + base, "SRV", f"0 33 5432 {host}"))
    assert records == expected


def test_headless_publish_not_ready_addresses_includes_unready_endpoints() -> None:
    unready = [slice_of(endpoint("198.19.3.9", ready=False))]
    base = "db.shop.svc.cluster.local."
    assert rr(base, "A", "198.19.3.9") in service_records(
        service("db", clusterIP="None", publishNotReadyAddresses=True), unready
    )
    legacy = service(
        "db", clusterIP="None", annotations={"service.alpha.kubernetes.io/tolerate-unready-endpoints": "true"}
    )
    assert rr(base, "A", "198.19.3.9") in service_records(legacy, unready)


def test_headless_without_ready_endpoints_is_nxdomain_and_fqdn_slices_are_ignored() -> None:
    svc = service("db", clusterIP="None")
    assert service_records(svc, []) == frozenset()
    assert service_records(svc, [slice_of(endpoint("198.19.3.9", ready=False))]) == frozenset()
    assert (
        service_records(svc, [slice_of({"addresses": ["example.com"]}, address_type="FQDN")]) == frozenset()
    )


def test_an_address_in_two_slices_is_one_record() -> None:
    svc = service("db", clusterIP="None")
    twice = [slice_of(endpoint("198.19.1.4")), slice_of(endpoint("198.19.1.4"))]
    assert len([r for r in service_records(svc, twice) if r.type == "A"]) == 2  # service name + host name


def test_external_name_is_a_cname_to_the_absolute_target() -> None:
    svc = service("ext", type="ExternalName", externalName="DB.Example.COM")
    assert service_records(svc, []) == {rr("ext.shop.svc.cluster.local.", "CNAME", "db.example.com.")}


def test_hostile_names_never_become_records() -> None:
    svc = service("ext", type="ExternalName", externalName="evil.com.\nlocal_zone . transparent")
    assert service_records(svc, []) == frozenset()
    headless = service("db", clusterIP="None")
    bad_host = [slice_of(endpoint("198.19.1.4", hostname="a b\nc"))]
    hosts = {r.name for r in service_records(headless, bad_host)}
    assert "198-19-1-4.db.shop.svc.cluster.local." in hosts
    assert all(is_name(name) for name in hosts)


def test_zone_of_refuses_a_bad_domain() -> None:
    assert zone_of("cluster.local") == Z
    with pytest.raises(ValueError, match="not a valid DNS name"):
        zone_of("cluster..local")


def test_owned_covers_the_zone_below_its_apex_and_ptrs_into_it() -> None:
    assert owned(rr("web.shop.svc.cluster.local.", "A", "198.18.32.5"), Z)
    assert owned(rr("5.32.18.198.in-addr.arpa.", "PTR", "web.shop.svc.cluster.local."), Z)
    assert not owned(rr(Z, "SOA", "ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"), Z)
    assert not owned(rr("dns-version.cluster.local.", "TXT", '"1.1.0"'), Z)
    assert not owned(rr("1.0.0.127.in-addr.arpa.", "PTR", "localhost."), Z)
    assert not owned(rr("web.cluster.localx.", "A", "1.2.3.4"), Z)


def test_parse_record_reads_unbound_listing_lines() -> None:
    line = "_http._tcp.web.shop.svc.cluster.local.\t5\tIN\tSRV\t0 100 80 web.shop.svc.cluster.local."
    assert parse_record(line) == rr(
        "_http._tcp.web.shop.svc.cluster.local.", "SRV", "0 100 80 web.shop.svc.cluster.local."
    )
    assert parse_record("") is None
    assert parse_record(rr("a.cluster.local.", "A", "1.2.3.4").text()) == rr(
        "a.cluster.local.", "A", "1.2.3.4"
    )


def test_diff_adds_new_names_and_clears_names_that_lose_records() -> None:
    a1, a2 = rr("h.cluster.local.", "A", "1.1.1.1"), rr("h.cluster.local.", "A", "2.2.2.2")
    other = rr("o.cluster.local.", "A", "3.3.3.3")
    assert diff(set(), {a1, other}) == Change(frozenset(), frozenset({a1, other}))
    # gaining a record: just add it
    assert diff({a1}, {a1, a2}) == Change(frozenset(), frozenset({a2}))
    # losing one of two: unbound removes by name, so clear it and add back what stays
    assert diff({a1, a2, other}, {a2, other}) == Change(frozenset({"h.cluster.local."}), frozenset({a2}))
    assert diff({a1, other}, {other}) == Change(frozenset({"h.cluster.local."}), frozenset())
    assert not diff({a1}, {a1})
