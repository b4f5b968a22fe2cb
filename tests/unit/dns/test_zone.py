"""The zone across Services: a name shared by two Services keeps the other's records."""

from __future__ import annotations

from nestlab.dns.records import Change, Record
from nestlab.dns.zone import Zone

PTR = "4.1.19.198.in-addr.arpa."


def rec(name: str, kind: str, data: str) -> Record:
    return Record(name, kind, data)


def test_a_new_service_adds_its_records() -> None:
    zone = Zone()
    web = {rec("web.a.svc.cluster.local.", "A", "198.18.32.5")}
    assert zone.update({"a/web": web}) == Change(frozenset(), frozenset(web))
    assert zone.records() == web
    assert zone.keys() == {"a/web"}


def test_unchanged_service_is_no_change_and_deleted_service_clears_its_names() -> None:
    zone = Zone()
    web = {rec("web.a.svc.cluster.local.", "A", "198.18.32.5")}
    zone.update({"a/web": web})
    assert not zone.update({"a/web": web})
    assert zone.update({"a/web": set()}) == Change(frozenset({"web.a.svc.cluster.local."}), frozenset())
    assert zone.records() == frozenset()
    assert zone.keys() == set()


def test_removing_one_services_ptr_keeps_the_other_services_ptr_on_the_same_name() -> None:
    zone = Zone()
    one = rec(PTR, "PTR", "198-19-1-4.db.a.svc.cluster.local.")
    two = rec(PTR, "PTR", "198-19-1-4.cache.a.svc.cluster.local.")
    zone.update({"a/db": {one}, "a/cache": {two}})
    change = zone.update({"a/db": set()})
    # unbound removes by name: the name is cleared and the other Service's PTR added back
    assert change == Change(frozenset({PTR}), frozenset({two}))
    assert zone.records() == {two}


def test_the_same_record_from_two_services_stays_until_both_drop_it() -> None:
    zone = Zone()
    shared = rec("x.a.svc.cluster.local.", "A", "198.19.1.4")
    zone.update({"a/one": {shared}, "a/two": {shared}})
    assert not zone.update({"a/one": set()})
    assert zone.records() == {shared}
    assert zone.update({"a/two": set()}) == Change(frozenset({shared.name}), frozenset())
