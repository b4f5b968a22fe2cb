"""Service networking on the teaching lab (issue 12, "What it must show"), with both kubectl generations.

NSX gives vSphere Pods a distributed load balancer on every host (here: nestlab-proxy's nftables
rules), cluster DNS (unbound on the control plane, fed by nestlab-dns), NetworkPolicy as a
distributed firewall, and LoadBalancer addresses on the Edge pair. Checked here:

- ``kubectl expose`` (modern and 1.20) gives a Deployment a ClusterIP; from a client pod on every
  host, 30 fetches of ``web.<ns>.svc.cluster.local`` are answered by all 3 replicas, the short name
  resolves in the namespace, a headless Service resolves to the pod addresses, and the
  ``kubernetes`` Service answers;
- from a pod, the hosts' SSH and agent ports (its own host's and, through that host's pod gateway,
  another host's), the control plane and the depot are unreachable;
- scaling to 1 takes the others out of the endpoints and out of every host's rules (time printed);
- NetworkPolicy: deny-all ingress, allow one namespace, egress deny blocks DNS;
- a proxy stopped while the endpoints change leaves the old rules in place (Services keep
  answering) and, started again, programs the new endpoints;
- a LoadBalancer Service answers from the outer machine and keeps answering while the LB node
  holding it is stopped (gap printed);
- nestlab-dns runs as its own user (``system:nestlab-dns``, issue 14.5): every control-plane node's
  feeder keeps its Lease with that certificate, which reads Services and may not create a pod.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import KUBECTL, LiveLab, nestlab
from tests.e2e.labtools import (
    RESTORE_TIMEOUT_S,
    address_of,
    apply,
    get_json,
    kubectl,
    nodes,
    on_node,
    plan,
    wait_for,
    wait_lab_healthy,
)
from tests.e2e.services import (
    answers,
    client_pod,
    connect,
    fetch_loop,
    rules_mention,
    run_probes,
    tagged,
    wait_endpoints,
    wait_rules,
    web_deployment,
)

NS = "services-e2e"
FETCHES = 30  # the "over 30 requests"


@pytest.fixture(scope="module")
def web(agents: LiveLab) -> Iterator[LiveLab]:
    """A namespace with the 3-replica web Deployment, its pods ready; removed at the end."""
    kubectl(agents, "create", "namespace", NS)
    try:
        apply(agents, web_deployment("web", NS))
        kubectl(agents, "rollout", "status", "deployment/web", "-n", NS, "--timeout=600s")
        yield agents
    finally:
        kubectl(agents, "delete", "namespace", NS, "--wait=false", check=False)


def pod_gateway(lab: LiveLab, host: str) -> str:
    """The pod gateway address of ``host`` (its pod bridge): the first address of its subnet."""
    subnet = next(n["podSubnet"] for n in plan(lab)["nodes"] if n["name"] == host)
    return str(next(ipaddress.ip_network(subnet).hosts()))


def test_expose_with_both_kubectl_generations(web: LiveLab, kubectl_old: str) -> None:
    kubectl(web, "expose", "deployment", "web", "-n", NS, "--port=80", "--target-port=http")
    kubectl(web, "expose", "deployment", "web", "-n", NS, "--name=web-old", "--port=8080", "--target-port=80",
            binary=kubectl_old)  # fmt: skip
    apply(web, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-headless", "namespace": NS},
                "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}})  # fmt: skip
    services_cidr = ipaddress.ip_network(plan(web)["networks"]["services"])
    for name in ("web", "web-old"):
        ip = get_json(web, "service", name, "-n", NS)["spec"]["clusterIP"]
        assert ipaddress.ip_address(ip) in services_cidr, f"{name}: {ip} outside {services_cidr}"
        assert len(wait_endpoints(web, NS, name, 3)) == 3
    for binary in (KUBECTL, kubectl_old):
        table = kubectl(web, "get", "services", "-n", NS, binary=binary).stdout
        header = table.splitlines()[0].split()
        assert header[:5] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"], table
        assert "8080/TCP" in table, table
        assert "None" in table, table


def test_clients_on_every_host_reach_every_replica(web: LiveLab) -> None:
    hosts = nodes(web, "host")
    replicas = {p["metadata"]["name"] for p in get_json(web, "pods", "-n", NS, "-l", "app=web")["items"]}
    pod_ips = set(wait_endpoints(web, NS, "web", 3))
    cp = address_of(web, nodes(web, "control-plane")[0])
    depot = address_of(web, "depot")
    probes = []
    for index, host in enumerate(hosts):
        other = hosts[(index + 1) % len(hosts)]  # another host: reached through its pod gateway
        script = "; ".join(
            [
                fetch_loop(f"http://web.{NS}.svc.cluster.local/host", FETCHES),
                fetch_loop("http://web/host", 3, tag="SHORT"),
                "nslookup web-headless | grep -i address | sed 's/^/DNS /'",
                connect("kubernetes.default.svc", 443, "kubernetes"),
                connect(pod_gateway(web, host), 22, "gateway-ssh"),
                connect(pod_gateway(web, host), 10250, "gateway-agent"),
                connect(address_of(web, host), 10250, "agent"),
                connect(pod_gateway(web, other), 22, "other-gateway-ssh"),
                connect(pod_gateway(web, other), 10250, "other-gateway-agent"),
                connect(cp, 6443, "control-plane"),
                connect(depot, 5000, "depot"),
            ]
        )
        probes.append(client_pod(f"probe-{host}", NS, host, script))
    logs = run_probes(web, NS, probes)
    for host in hosts:
        log = logs[f"probe-{host}"]
        got = answers(log)
        assert set(got) == replicas, f"from {host}: {dict(got)} (replicas {sorted(replicas)})\n{log}"
        assert set(answers(log, "SHORT")) <= replicas, log
        assert len(tagged(log, "SHORT")) == 3, log
        resolved = " ".join(tagged(log, "DNS"))
        assert all(ip in resolved for ip in pod_ips), f"headless from {host}: {resolved}\n{log}"
        results = dict(line.split() for line in tagged(log, "NC"))
        assert results["kubernetes"] == "0", log
        forbidden_targets = ("gateway-ssh", "gateway-agent", "agent", "other-gateway-ssh",
                             "other-gateway-agent", "control-plane", "depot")  # fmt: skip
        for forbidden in forbidden_targets:
            assert results[forbidden] != "0", f"a pod on {host} reached {forbidden}\n{log}"


def test_scaling_down_updates_endpoints_and_every_hosts_rules(web: LiveLab) -> None:
    hosts = nodes(web, "host")
    before = wait_endpoints(web, NS, "web", 3)
    wait_rules(web, hosts, gone=set(), kept=before)
    start = time.monotonic()
    kubectl(web, "scale", "deployment/web", "-n", NS, "--replicas=1")
    kept = wait_endpoints(web, NS, "web", 1)
    endpoints_s = time.monotonic() - start
    rules_s = endpoints_s + wait_rules(web, hosts, gone=before - kept, kept=kept)
    print(f"\nscale 3 -> 1: endpoints {endpoints_s:.1f} s, rules on {len(hosts)} hosts {rules_s:.1f} s "
          "(includes the pods' graceful termination start and kubectl/ssh polling)")  # fmt: skip
    kubectl(web, "scale", "deployment/web", "-n", NS, "--replicas=3")
    after = wait_endpoints(web, NS, "web", 3)
    wait_rules(web, hosts, gone=set(), kept=after)


def test_network_policy_isolates_namespaces(web: LiveLab) -> None:
    hosts = nodes(web, "host")
    allowed, other = "netpol-allowed", "netpol-other"
    for ns in (allowed, other):
        kubectl(web, "create", "namespace", ns)
    try:
        url = f"http://web.{NS}.svc.cluster.local/host"

        def probe(tag: str, script: str) -> dict[str, str]:
            """Run ``script`` from a pod in each namespace (on two hosts); namespace -> log."""
            pods = {
                ns: client_pod(tag, ns, hosts[i % len(hosts)], script)
                for i, ns in enumerate((allowed, other))
            }
            for pod in pods.values():
                kubectl(web, "apply", "-f", "-", stdin=json.dumps(pod))
            return {ns: run_probes(web, ns, [pod])[tag] for ns, pod in pods.items()}

        deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "deny-ingress", "namespace": NS},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}  # fmt: skip
        apply(web, deny)
        logs = probe("deny", fetch_loop(url, 3))
        for ns, log in logs.items():
            assert all(value.startswith("!") for value in tagged(log, "WEB")), f"{ns} got in: {log}"
        allow = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": "allow-one-namespace", "namespace": NS},
                 "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [
                     {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": allowed}}}]}]}}  # fmt: skip
        apply(web, allow)
        logs = probe("allow", fetch_loop(url, 3))
        assert not any(v.startswith("!") for v in tagged(logs[allowed], "WEB")), logs[allowed]
        assert all(v.startswith("!") for v in tagged(logs[other], "WEB")), logs[other]
        no_egress = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                     "metadata": {"name": "no-egress", "namespace": other},
                     "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}  # fmt: skip
        apply(web, no_egress)
        lookup = f'timeout 5 nslookup web.{NS}.svc.cluster.local >/dev/null 2>&1; echo "LOOKUP $?"'
        logs = probe("egress", lookup)
        assert tagged(logs[allowed], "LOOKUP") == ["0"], logs[allowed]
        assert tagged(logs[other], "LOOKUP") != ["0"], logs[other]
    finally:
        kubectl(web, "delete", "networkpolicy", "--all", "-n", NS, check=False)
        for ns in (allowed, other):
            kubectl(web, "delete", "namespace", ns, "--wait=false", check=False)


def test_restarted_proxy_keeps_and_restores_rules(web: LiveLab) -> None:
    """Stopped, the proxy leaves its rules in the kernel; the endpoints change meanwhile; started
    again, it must program the new set itself (nothing else writes table ip nestlab)."""
    hosts = nodes(web, "host")
    host = hosts[0]
    before = wait_endpoints(web, NS, "web", 3)
    wait_rules(web, [host], gone=set(), kept=before)
    on_node(web, host, "systemctl stop nestlab-proxy")
    try:
        kubectl(web, "scale", "deployment/web", "-n", NS, "--replicas=1")
        kept = wait_endpoints(web, NS, "web", 1)
        wait_rules(web, hosts[1:], gone=before - kept, kept=kept)  # the running proxies followed
        stale = [a for a in before if rules_mention(web, host, a)]
        assert sorted(stale) == sorted(before), f"{host}'s rules changed with its proxy stopped: {stale}"
    finally:
        on_node(web, host, "systemctl start nestlab-proxy")
    wait_rules(web, [host], gone=before - kept, kept=kept)
    kept_pods = {p["metadata"]["name"] for p in get_json(web, "pods", "-n", NS, "-l", "app=web")["items"]
                 if (p.get("status") or {}).get("podIP") in kept}  # fmt: skip
    log = run_probes(web, NS, [client_pod("after-restart", NS, host, fetch_loop(f"http://web.{NS}/host", 5))])
    got = tagged(log["after-restart"], "WEB")
    assert len(got) == 5, log
    assert set(got) == kept_pods, f"answered by {got}, endpoints now {sorted(kept_pods)}: {log}"
    kubectl(web, "scale", "deployment/web", "-n", NS, "--replicas=3")
    after = wait_endpoints(web, NS, "web", 3)
    wait_rules(web, hosts, gone=set(), kept=after)


FETCH_ERRORS: dict[str, str] = {}
"""The last error of :func:`fetch` per URL, for the failure message (refused: no rule; timed out:
no route or no answer)."""


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (http:// built above)
            return str(response.read().decode()).strip()
    except OSError as exc:
        FETCH_ERRORS[url] = repr(exc)
        return None


def test_load_balancer_answers_from_outside_and_survives_its_lb(web: LiveLab) -> None:
    apply(web, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-lb", "namespace": NS},
                "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}})  # fmt: skip
    ingress: list[str] = []

    def assigned() -> bool:
        status = get_json(web, "service", "web-lb", "-n", NS).get("status") or {}
        ingress[:] = [i["ip"] for i in (status.get("loadBalancer") or {}).get("ingress") or []]
        return bool(ingress)

    wait_for(assigned, "an ingress address for web-lb", timeout=60)
    assert ipaddress.ip_address(ingress[0]) in ipaddress.ip_network(plan(web)["networks"]["ingress"])
    assert "EXTERNAL-IP" in kubectl(web, "get", "svc", "web-lb", "-n", NS).stdout
    url = f"http://{ingress[0]}/host"
    wait_for(lambda: fetch(url) is not None, f"{url} from the outer machine", timeout=120)
    holder = next(lb for lb in nodes(web, "load-balancer")
                  if on_node(web, lb, f"ip -o addr show | grep -q ' {plan(web)['vip']}/'", check=False).returncode == 0)  # fmt: skip
    nestlab("node", "stop", holder, "--hard", "--name", web.name)  # its power pulled: no clean VRRP goodbye
    try:
        failed, slowest = 0, 0.0  # fetches that failed, and the longest answer, over 30 s after the stop
        stopped = time.monotonic()
        while time.monotonic() - stopped < 30:
            began = time.monotonic()
            answered = fetch(url) is not None
            failed += not answered
            slowest = max(slowest, time.monotonic() - began) if answered else slowest
            time.sleep(0.1)
        try:
            wait_for(lambda: fetch(url) is not None, f"{url} with {holder} stopped", timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the last fetch: {FETCH_ERRORS.get(url)}") from exc
        print(f"\nLoadBalancer {ingress[0]}: {holder} lost power; over the next 30 s {failed} fetch(es) failed "
              f"(2 s timeout each), the slowest answer took {slowest:.2f} s")  # fmt: skip
    finally:
        nestlab("node", "start", holder, "--name", web.name, timeout=RESTORE_TIMEOUT_S)
        wait_lab_healthy(web)


def dns_lease_moved(lab: LiveLab, node: str, since: str) -> bool:
    """Whether ``node``'s nestlab-dns renewed its Lease since ``since`` (its renewTime then)."""
    lease = get_json(lab, "lease", f"nestlab-dns-{node}", "-n", "kube-system")
    return str(lease["spec"]["renewTime"]) != since


def test_cluster_dns_feeds_with_its_own_identity(agents: LiveLab) -> None:
    """Least privilege: the DNS feed is not the controller; its certificate reads, and writes no pod."""
    pki = "/etc/nestlab/pki"
    curl = f"curl -s -o /dev/null -w '%{{http_code}}' --cacert {pki}/ca.crt --cert {pki}/dns.crt --key {pki}/dns.key"
    pod = '{"metadata":{"name":"dns-may-not"},"spec":{"containers":[{"name":"c","image":"x"}]}}'
    for cp in nodes(agents, "control-plane"):
        unit = on_node(agents, cp, "systemctl show -p ExecStart --value nestlab-dns").stdout
        assert f"--client-certificate={pki}/dns.crt" in unit, unit
        first = str(get_json(agents, "lease", f"nestlab-dns-{cp}", "-n", "kube-system")["spec"]["renewTime"])
        wait_for(  # renewed every 2 s, with that identity
            functools.partial(dns_lease_moved, agents, cp, first), f"{cp}'s nestlab-dns renews", timeout=30
        )
        assert on_node(agents, cp, f"{curl} https://127.0.0.1:6443/api/v1/services").stdout.strip() == "200"
        create = f"{curl} -X POST -H 'Content-Type: application/json' -d '{pod}'"
        code = on_node(agents, cp, f"{create} https://127.0.0.1:6443/api/v1/namespaces/default/pods").stdout
        assert code.strip() == "403"
