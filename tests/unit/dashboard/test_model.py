"""The dashboard's views computed from fixed API objects and lab facts."""

from __future__ import annotations

from nestlab.dashboard import model
from nestlab.runtime import qemu
from tests.unit.dashboard.objects import facts, node, pod, snapshot, started


def test_inventory_places_nodes_and_pods_on_hosts() -> None:
    inv = model.inventory(snapshot(), facts())
    hosts = {h.name: h for h in inv.hosts}
    assert list(hosts) == ["esx-01", "esx-02", "esx-03"]
    assert [n.name for n in hosts["esx-01"].infra] == ["cp-1", "lb-1"]
    assert [n.name for n in hosts["esx-03"].infra] == ["cp-3", "depot"]
    assert [p.name for p in hosts["esx-01"].pods] == ["web", "db"]
    assert [p.name for p in inv.unplaced] == ["waiting"]
    assert inv.leaders == (("nestlab-scheduler", "cp-1"),)
    assert hosts["esx-01"].heartbeat == "2026-12-06T02:00:01Z"
    assert hosts["esx-01"].address == "198.18.100.31"


def test_host_state_combines_power_node_ready_and_cordon() -> None:
    hosts = {h.name: h for h in model.host_rows(snapshot(), facts())}
    assert hosts["esx-01"].state == "ok"
    assert hosts["esx-02"].state == "maintenance"
    assert hosts["esx-03"].state == "not-responding"
    stopped = {h.name: h for h in model.host_rows(snapshot(), facts(esx03="stopped"))}
    assert stopped["esx-03"].state == "stopped"  # the power state shows before the Node goes Unknown
    assert [n.state for n in stopped["esx-03"].infra] == ["stopped", "stopped"]
    stopping = {h.name: h for h in model.host_rows(snapshot(), facts(esx03="stopping"))}
    assert stopping["esx-03"].state == "stopping"


def test_a_host_without_a_node_object_is_still_listed() -> None:
    bare = {**snapshot(), "nodes": [node("esx-01")]}
    hosts = {h.name: h for h in model.host_rows(bare, facts())}
    assert hosts["esx-02"].ready == "absent"
    assert hosts["esx-02"].state == "not-ready"
    assert hosts["esx-02"].verdict.result == "not attested yet"


def test_pod_rows_take_the_latest_qemu_pid_memory_and_kernel() -> None:
    rows = {p.name: p for p in model.host_rows(snapshot(), facts())[0].pods}
    assert rows["web"].qemu_pid == 2222  # restarted: the later Started event wins
    assert rows["db"].qemu_pid == 3333
    assert rows["web"].memory_mib == 256 + qemu.POD_OVERHEAD_MIB
    assert rows["db"].memory_mib == qemu.DEFAULT_CONTAINER_MIB + qemu.POD_OVERHEAD_MIB
    assert rows["web"].kernel == "nestlab-pod-kernel 6.1+nl1"


def test_a_pod_that_is_not_running_shows_no_pid() -> None:
    objects = {"pods": [pod("a", "p", "esx-01", phase="Failed")], "events": [started("a", "p", 7, "t")]}
    row = model.namespace(objects, model.LabFacts(), "a").pods[0]
    assert row.qemu_pid is None
    assert not row.ready


def test_verdicts_fail_closed() -> None:
    hosts = {h.name: h.verdict for h in model.host_rows(snapshot(), facts())}
    assert (hosts["esx-01"].result, hosts["esx-01"].condition) == ("passed", "True AttestationPassed")
    assert hosts["esx-02"].result == "FAILED"
    assert hosts["esx-02"].reasons == ("PCR 9 does not replay",)
    assert hosts["esx-03"].result == "not attested yet"
    assert model.verdict(node("esx-09", verdict="{not json")).result == "FAILED"
    assert model.verdict(node("esx-09", verdict="[1]")).result == "FAILED"
    assert model.verdict(node("esx-09", verdict={"passed": False})).reasons == ("no reason recorded",)


def test_namespace_view_has_quota_use_pods_and_newest_events_first() -> None:
    view = model.namespace(snapshot(), facts(), "team-a")
    quotas = {q.resource: q for q in view.summary.quotas}
    assert (quotas["pods"].used, quotas["pods"].hard, quotas["pods"].percent) == ("3", "10", 30)
    assert quotas["limits.memory"].percent == 50
    assert view.summary.pods == 3
    assert view.summary.running == 2
    assert view.events[0].reason == "FailedScheduling"
    assert view.events[0].object == "pod/waiting"
    assert view.events[0].count == 4


def test_an_unknown_namespace_is_an_empty_view() -> None:
    view = model.namespace(snapshot(), facts(), "nope")
    assert (view.summary.name, view.pods, view.events, view.summary.quotas) == ("nope", (), (), ())


def test_quota_percent_is_capped_and_survives_bad_quantities() -> None:
    assert model._percent("3", "2") == 100
    assert model._percent("1", "0") is None
    assert model._percent("x", "2") is None


def test_host_lookup() -> None:
    assert model.host(snapshot(), facts(), "esx-02") is not None
    assert model.host(snapshot(), facts(), "esx-99") is None
