"""A REAL nestlab-agent started with kubelet-style DNS flags: its pods' containers find the resolv.conf
and hosts file the kubelet would write, and the REAL API server refuses bad DNS fields with 422."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.agent.conftest import AgentProcess, Registry, start_agent, stop_agent
from tests.integration.agent.test_agent import NS, _events, _logs, _pod, _wait_phase, busybox_image, namespace
from tests.integration.api.conftest import ApiServer

pytestmark = pytest.mark.integration
__all__ = ["busybox_image", "namespace"]  # fixtures shared with the agent's other tests
CLUSTER_DNS = "198.18.32.10"  # the default lab's services range + 10 (never answered here: only written)


@pytest.fixture
def dns_agent(
    apiserver: ApiServer, registry: Registry, pod_boot: tuple[Path, Path], tmp_path: Path
) -> Iterator[AgentProcess]:
    resolv = tmp_path / "node-resolv.conf"
    resolv.write_text("nameserver 198.18.0.1\nsearch lab.example\n")
    agent = start_agent(
        apiserver, registry, pod_boot, tmp_path, "--cluster-dns", CLUSTER_DNS, "--resolv-conf", str(resolv)
    )
    try:
        yield agent
    finally:
        stop_agent(agent)


def test_pods_get_the_cluster_dns_and_their_hosts_file(
    apiserver: ApiServer, dns_agent: AgentProcess, namespace: str, busybox_image: str
) -> None:
    show = ["sh", "-c", "cat /etc/resolv.conf /etc/hosts; echo hostname=$(hostname)"]
    pod = _pod("named", busybox_image, show)
    pod["spec"] |= {
        "hostname": "db-0",
        "subdomain": "db",
        "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local"]}],
        "dnsConfig": {"searches": ["corp.example"], "options": [{"name": "ndots", "value": "2"}]},
    }
    assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", pod)[0] == 201
    assert _wait_phase(apiserver, "named", ("Succeeded", "Failed"))["status"]["phase"] == "Succeeded"
    lines = _logs(dns_agent, apiserver, "named").splitlines()
    assert lines[:3] == [
        f"search {NS}.svc.cluster.local svc.cluster.local cluster.local lab.example corp.example",
        f"nameserver {CLUSTER_DNS}",
        "options ndots:2",
    ]
    assert "# Kubernetes-managed hosts file." in lines
    # this agent has no pod network: no address, so no line for the pod itself (the agent with a
    # network writes "<ip>\tdb-0.db.<ns>.svc.cluster.local\tdb-0", see tests/unit/agent/test_poddns.py)
    assert not [line for line in lines if "\tdb-0" in line]
    assert "10.1.2.3\tfoo.local" in lines
    assert lines[-1] == "hostname=db-0"

    default = _pod("node-dns", busybox_image, ["cat", "/etc/resolv.conf"])
    default["spec"]["dnsPolicy"] = "Default"
    assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", default)[0] == 201
    assert _wait_phase(apiserver, "node-dns", ("Succeeded", "Failed"))["status"]["phase"] == "Succeeded"
    assert _logs(dns_agent, apiserver, "node-dns") == "search lab.example\nnameserver 198.18.0.1\n"
    assert not [e for e in _events(apiserver, "named") if e["type"] == "Warning"]


def test_bad_dns_fields_are_refused_with_upstream_causes(apiserver: ApiServer, namespace: str) -> None:
    pod = _pod("bad-dns", "demo/busybox:1", ["true"])
    pod["spec"] |= {
        "dnsPolicy": "None",
        "dnsConfig": {"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"]},
        "hostAliases": [{"ip": "not-an-ip", "hostnames": ["ok"]}],
    }
    code, body = apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", pod)
    assert code == 422, body
    assert body["reason"] == "Invalid"
    causes = {c["field"]: c["message"] for c in body["details"]["causes"]}
    assert causes == {
        "spec.dnsConfig.nameservers": 'Invalid value: []string{"1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"}: '
        "must not have more than 3 nameservers",
        "spec.hostAliases[0].ip": 'Invalid value: "not-an-ip": must be a valid IP address, '
        "(e.g. 10.9.8.7 or 2001:db8::ffff)",
    }
    none = _pod("no-config", "demo/busybox:1", ["true"])
    none["spec"]["dnsPolicy"] = "None"
    code, body = apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", none)
    assert code == 422, body
    assert body["details"]["causes"] == [
        {
            "field": "spec.dnsConfig",
            "message": "Required value: must provide `dnsConfig` when `dnsPolicy` is None",
            "reason": "FieldValueRequired",
        }
    ]
