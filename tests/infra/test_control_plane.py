"""The Supervisor control plane on cp-N: one healthy etcd cluster and a ready API server on each node."""

from __future__ import annotations

import json

import lab
from testinfra.host import Host

testinfra_hosts = lab.hosts("control-plane")

ETCDCTL_ANY = (
    "ETCDCTL_API=3 etcdctl --cacert=/etc/nestlab/pki/ca.crt --cert=/etc/nestlab/pki/node.crt"
    " --key=/etc/nestlab/pki/node.key --command-timeout=10s"
)
ETCDCTL = f"{ETCDCTL_ANY} --endpoints=https://127.0.0.1:2379"


def _control_plane() -> list[dict[str, str]]:
    return lab.nodes("control-plane")


def test_etcd_cluster_has_every_control_plane_node_started(host: Host) -> None:
    members = json.loads(host.check_output(f"{ETCDCTL} member list --write-out=json"))["members"]
    by_name = {m.get("name", ""): m for m in members}
    assert sorted(by_name) == sorted(n["name"] for n in _control_plane())
    for node in _control_plane():
        member = by_name[node["name"]]
        assert member["clientURLs"] == [f"https://{node['address']}:2379"], "a member that never started"
        assert member["peerURLs"] == [f"https://{node['address']}:2380"]


def test_every_etcd_endpoint_is_healthy(host: Host) -> None:
    endpoints = ",".join(f"https://{n['address']}:2379" for n in _control_plane())
    out = host.run(f"{ETCDCTL_ANY} --endpoints={endpoints} endpoint health --write-out=json")
    assert out.rc == 0, out.stderr
    health = json.loads(out.stdout)
    assert len(health) == len(_control_plane())
    assert all(entry["health"] for entry in health), health


def test_etcd_refuses_clients_without_a_lab_certificate(host: Host) -> None:
    out = host.run(
        "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/nestlab/pki/ca.crt"
        " --command-timeout=5s endpoint health"
    )
    assert out.rc != 0


def test_etcd_runs_with_the_lab_timeouts_and_cpu_priority(host: Host) -> None:
    env = host.file("/etc/default/etcd").content_string
    assert 'ETCD_HEARTBEAT_INTERVAL="100"' in env
    assert 'ETCD_ELECTION_TIMEOUT="1000"' in env
    assert 'ETCD_PRE_VOTE="true"' in env
    assert 'ETCD_AUTO_COMPACTION_MODE="periodic"' in env
    assert 'ETCD_AUTO_COMPACTION_RETENTION="5m"' in env
    assert 'ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL="5s"' in env
    assert host.service("etcd").is_running
    assert host.service("etcd").is_enabled
    pid = host.check_output("systemctl show -p MainPID --value etcd")
    assert int(host.check_output(f"ps -o nice= -p {pid}")) < 0
    running = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ").splitlines()
    assert "ETCD_AUTO_COMPACTION_MODE=periodic" in running  # the running member compacts, not just the file
    assert "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL=5s" in running


def test_api_server_and_controller_units_run(host: Host) -> None:
    for unit in ("nestlab-apiserver", "nestlab-controller"):
        assert host.service(unit).is_running, unit
        assert host.service(unit).is_enabled, unit
        assert host.check_output(f"systemctl show -p Restart --value {unit}") == "on-failure"


def test_api_server_is_ready_over_lab_ca_tls(host: Host) -> None:
    address = lab.node(host.backend.hostname)["address"]
    out = host.run(f"curl -sS --cacert /etc/nestlab/pki/ca.crt https://{address}:6443/readyz")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_api_server_needs_a_client_certificate_for_resources(host: Host) -> None:
    address = lab.node(host.backend.hostname)["address"]
    anonymous = host.check_output(
        f"curl -s -o /dev/null -w '%{{http_code}}' --cacert /etc/nestlab/pki/ca.crt https://{address}:6443/api/v1/pods"
    )
    assert anonymous == "401"
    controller = host.check_output(
        "curl -s -o /dev/null -w '%{http_code}' --cacert /etc/nestlab/pki/ca.crt"
        " --cert /etc/nestlab/pki/controller.crt --key /etc/nestlab/pki/controller.key"
        f" https://{address}:6443/api/v1/pods"
    )
    assert controller == "200"


def test_the_dns_feed_has_its_own_identity(host: Host) -> None:
    """nestlab-dns runs as system:nestlab-dns: it reads Services, and may not create a pod."""
    key = host.file("/etc/nestlab/pki/dns.key")
    assert (key.user, key.mode) == ("root", 0o600)
    assert (
        "--client-certificate=/etc/nestlab/pki/dns.crt"
        in host.file("/etc/systemd/system/nestlab-dns.service").content_string
    )
    address = lab.node(host.backend.hostname)["address"]
    curl = (
        "curl -s -o /dev/null -w '%{http_code}' --cacert /etc/nestlab/pki/ca.crt"
        " --cert /etc/nestlab/pki/dns.crt --key /etc/nestlab/pki/dns.key"
    )
    assert host.check_output(f"{curl} https://{address}:6443/api/v1/services") == "200"
    pod = '{"metadata":{"name":"dns-may-not"},"spec":{"containers":[{"name":"c","image":"x"}]}}'
    created = host.check_output(
        f"{curl} -X POST -H 'Content-Type: application/json' -d '{pod}'"
        f" https://{address}:6443/api/v1/namespaces/default/pods"
    )
    assert created == "403"


def test_nestlab_came_from_the_depot_wheelhouse(host: Host) -> None:
    assert host.file("/opt/nestlab/bin/nestlab-apiserver").exists
    assert host.file("/opt/nestlab/.wheelhouse-digest").exists
    pip = host.run("/opt/nestlab/bin/python -m pip --version")
    assert pip.rc == 0, pip.stderr
