"""The templates render every view from fixed objects; output is escaped; fragments are only <main>."""

from __future__ import annotations

from nestlab.dashboard import model, render
from tests.unit.dashboard.objects import facts, snapshot


def test_inventory_shows_hosts_with_their_nodes_pods_and_state() -> None:
    html = render.page(
        "inventory.html.j2", inv=model.inventory(snapshot(), facts("stopped")), refused={}, user="u"
    )
    assert 'data-host="esx-03" data-state="stopped"' in html
    assert 'data-host="esx-02" data-state="maintenance"' in html
    assert "cp-1 (control-plane, running)" in html
    assert "team-a/web (pid 2222)" in html
    assert 'data-namespace="team-a"' in html
    assert 'data-probe="cp-3 API server"' in html
    assert "<!DOCTYPE html>" in html
    assert 'new EventSource("/stream")' in html


def test_a_fragment_is_only_the_main_part() -> None:
    html = render.page(
        "inventory.html.j2", fragment=True, inv=model.inventory(snapshot(), facts()), refused={}
    )
    assert html.lstrip().startswith("<h1>Inventory</h1>")
    assert "<html" not in html
    assert "EventSource" not in html


def test_host_page_lists_pod_microvms_with_pid_memory_and_kernel() -> None:
    row = model.host(snapshot(), facts(), "esx-01")
    html = render.page("host.html.j2", h=row, name="esx-01", refused={})
    assert 'data-pod="team-a/web"' in html
    assert "<td>2222</td>" in html
    assert "288 MiB" in html
    assert "nestlab-pod-kernel 6.1+nl1" in html
    assert "lb-1" in html


def test_unknown_host_page_says_so() -> None:
    html = render.page("host.html.j2", h=None, name="esx-09", refused={})
    assert "No host esx-09" in html


def test_namespace_page_escapes_event_messages() -> None:
    view = model.namespace(snapshot(), facts(), "team-a")
    html = render.page("namespace.html.j2", ns=view, refused={"pods": "forbidden"})
    assert "&lt;insufficient memory&gt;" in html
    assert "<insufficient memory>" not in html
    assert 'data-quota="pods"' in html
    assert "30%" in html
    assert "Not shown: pods (forbidden)" in html


def test_attestation_and_control_plane_pages() -> None:
    hosts = model.host_rows(snapshot(), facts())
    html = render.page("attestation.html.j2", hosts=hosts, refused={})
    assert 'data-verdict="FAILED"' in html
    assert "PCR 9 does not replay" in html
    assert "True AttestationPassed" in html
    inv = model.inventory(snapshot(), facts())
    html = render.page("control_plane.html.j2", inv=inv, refused={})
    assert "nestlab-scheduler" in html
    assert 'data-node="depot"' in html


def test_login_page_shows_the_error() -> None:
    html = render.page("login.html.j2", error="wrong user name or password", lab="unit")
    assert 'id="login-error"' in html
    assert "Log in to lab unit" in html
    assert "EventSource" not in html  # no live stream before a login
