"""NetworkPolicy on the real API server (3-member etcd): kubectl old and new, 422 causes, roles, protobuf,
and the firewall loop (nestlab.proxy.firewall) following real watches with a host's credentials."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from nestlab.api import protobuf
from nestlab.api.client import ApiClient, Credentials
from nestlab.api.resources import NAMESPACES, NETWORKPOLICIES, PODS
from nestlab.controller.informer import InformerFactory
from nestlab.proxy.firewall import Firewall
from nestlab.runtime import proc
from tests.integration.api.conftest import BOB_TOKEN, NODE_TOKEN, ApiServer, wait_until
from tests.integration.api.workloads import LoopThread

pytestmark = pytest.mark.integration

POLICIES = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-all
spec:
  podSelector: {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-from-team-b
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {team: b}
      podSelector: {}
    - ipBlock: {cidr: 198.18.0.0/16, except: [198.18.1.0/24]}
    ports:
    - port: http
    - port: 8000
      endPort: 9000
  egress:
  - ports:
    - {port: 53, protocol: UDP}
"""
BAD_PORT = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: bad
spec:
  podSelector: {}
  ingress:
  - ports:
    - port: 70000
"""


def base(ns: str) -> str:
    return f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"


def test_kubectl_create_get_list(kubectl: Any, apiserver: ApiServer, tmp_path: Path) -> None:
    ns = "np-" + kubectl.version.replace(".", "-")
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    try:
        manifest = tmp_path / "policies.yaml"
        manifest.write_text(POLICIES)
        created = kubectl("create", "-n", ns, "-f", str(manifest)).stdout
        assert "networkpolicy.networking.k8s.io/deny-all created" in created, created
        assert "networkpolicy.networking.k8s.io/web-from-team-b created" in created, created

        table = kubectl("get", "netpol", "-n", ns).stdout.splitlines()
        assert table[0].split() == ["NAME", "POD-SELECTOR", "AGE"], table
        rows = {line.split()[0]: line.split()[1] for line in table[1:]}
        assert rows == {"deny-all": "<none>", "web-from-team-b": "app=web"}, table

        types = kubectl(
            "get", "networkpolicy", "web-from-team-b", "-n", ns, "-o", "jsonpath={.spec.policyTypes}"
        )
        assert re.sub(r"[\s\"]", "", types.stdout) == "[Ingress,Egress]"
        port = kubectl("get", "netpol", "deny-all", "-n", ns, "-o", "jsonpath={.spec.policyTypes}").stdout
        assert re.sub(r"[\s\"]", "", port) == "[Ingress]"
        protocol = "jsonpath={.spec.ingress[0].ports[1].protocol}"
        assert kubectl("get", "netpol", "web-from-team-b", "-n", ns, "-o", protocol).stdout == "TCP"
        if kubectl.version != "1.20":  # 1.20 reads /openapi/v2 as protobuf, served without definitions
            explained = kubectl("explain", "networkpolicy.spec.policyTypes").stdout
            assert "policyTypes" in explained, explained
        everywhere = kubectl("get", "networkpolicies", "-A").stdout
        assert re.search(rf"^{ns}\s+web-from-team-b\s+app=web\s", everywhere, re.MULTILINE), everywhere

        bad = tmp_path / "bad.yaml"
        bad.write_text(BAD_PORT)
        refused = kubectl("create", "-n", ns, "-f", str(bad), check=False)
        assert refused.returncode != 0
        expected = (
            "spec.ingress[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"
        )
        assert expected in refused.stderr, refused.stderr
        deleted = kubectl("delete", "netpol", "deny-all", "-n", ns).stdout
        assert 'networkpolicy.networking.k8s.io "deny-all" deleted' in deleted
    finally:
        apiserver.request("DELETE", f"/api/v1/namespaces/{ns}")


def policy(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


CASES = [
    (
        policy("range", ingress=[{"ports": [{"port": 90, "endPort": 80}]}]),
        "spec.ingress[0].ports[0].endPort",
        "Invalid value: 80: must be greater than or equal to `port`",
    ),
    (
        policy("named-range", ingress=[{"ports": [{"port": "http", "endPort": 90}]}]),
        "spec.ingress[0].ports[0].endPort",
        "Invalid value: 90: may not be specified when `port` is non-numeric",
    ),
    (
        policy("two-peers", egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {}}]}]),
        "spec.egress[0].to[0]",
        "Forbidden: may not specify both ipBlock and another peer",
    ),
    (
        policy(
            "except", egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}}]}]
        ),
        "spec.egress[0].to[0].ipBlock.except[0]",
        'Invalid value: "192.168.0.0/16": must be a strict subset of `cidr`',
    ),
    (
        policy("label", podSelector={"matchLabels": {"app": "-web"}}),
        "spec.podSelector.matchLabels",
        'Invalid value: "-web": a valid label must be an empty string',
    ),
    (
        policy("types", policyTypes=["Ingress", "Outbound"]),
        "spec.policyTypes[1]",
        'Unsupported value: "Outbound": supported values: "Ingress", "Egress"',
    ),
]


def test_bad_policies_get_422_with_causes(apiserver: ApiServer) -> None:
    ns = "np-invalid"
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    try:
        for body, field, message in CASES:
            code, answer = apiserver.request("POST", base(ns), body)
            assert code == 422, answer
            assert answer["reason"] == "Invalid"
            assert answer["details"]["group"] == "networking.k8s.io"
            assert answer["details"]["kind"] == "NetworkPolicy"
            causes = answer["details"]["causes"]
            assert any(c["field"] == field and c["message"].startswith(message) for c in causes), causes
        assert apiserver.request("GET", base(ns))[1]["items"] == []
    finally:
        apiserver.request("DELETE", f"/api/v1/namespaces/{ns}")


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number: int, value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def test_roles_and_protobuf(apiserver: ApiServer) -> None:
    ns = "np-roles"
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    try:
        spec = _field(1, b"") + _field(4, "Ingress")
        type_meta = _field(1, "networking.k8s.io/v1") + _field(2, "NetworkPolicy")
        body = protobuf.MAGIC + _field(1, type_meta) + _field(2, _field(1, _field(1, "pb")) + _field(2, spec))
        code, made = apiserver.request("POST", base(ns), raw=body, content_type=protobuf.MEDIA_TYPE)
        assert code == 201, made
        assert made["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
        code, listed = apiserver.request("GET", base(ns), token=NODE_TOKEN)  # every host's proxy watches them
        assert code == 200, listed
        assert [item["metadata"]["name"] for item in listed["items"]] == ["pb"]
        assert apiserver.request("POST", base(ns), policy("x"), token=NODE_TOKEN)[0] == 403
        assert apiserver.request("GET", base(ns), token=BOB_TOKEN)[0] == 403
    finally:
        apiserver.request("DELETE", f"/api/v1/namespaces/{ns}")


# -- the enforcement loop on real watches ---------------------------------------------------------
class NftInNamespace:
    """Records each transaction and, as root with nft installed, commits it in a scratch netns."""

    def __init__(self) -> None:
        self.transactions: list[list[str]] = []
        self.netns = f"nlnpfw{os.getpid() % 100000}" if os.geteuid() == 0 and shutil.which("nft") else ""
        if self.netns:
            proc.run(["ip", "netns", "add", self.netns], timeout=15)

    def __call__(self, commands: Sequence[str]) -> None:
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, "nft", "-f", "-"]
            proc.run(argv, timeout=30, stdin="\n".join(commands) + "\n")
        self.transactions.append(list(commands))

    def seen(self, text: str) -> bool:
        return any(text in command for transaction in list(self.transactions) for command in transaction)

    def close(self) -> None:
        if self.netns:
            proc.run(["ip", "netns", "del", self.netns], timeout=15, check=False)


def test_firewall_follows_the_api_with_node_credentials(apiserver: ApiServer) -> None:
    ns, node, ip = "np-fw", "esx-07", "198.19.7.20"
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    pod = {
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox:1.36"}]},
    }
    assert apiserver.request("POST", f"/api/v1/namespaces/{ns}/pods", pod)[0] == 201
    status = {"status": {"phase": "Running", "podIP": ip}}
    patched = apiserver.request(
        "PATCH",
        f"/api/v1/namespaces/{ns}/pods/web/status",
        status,
        content_type="application/merge-patch+json",
    )
    assert patched[0] == 200, patched
    nft = NftInNamespace()
    thread = LoopThread()
    # the proxy runs with its host's credentials: the node role must be enough to enforce policies
    client = ApiClient(Credentials(apiserver.url, apiserver.pki.ca, NODE_TOKEN))
    factory = InformerFactory(client)
    firewall = Firewall(
        node,
        pods=factory.informer(PODS),
        namespaces=factory.informer(NAMESPACES),
        policies=factory.informer(NETWORKPOLICIES),
        apply=nft,
    )

    async def start() -> asyncio.Task[None]:
        factory.start()
        return asyncio.create_task(firewall.run())

    task = thread.run(start())
    try:
        # at least one: an informer's relist or a late pod event may rebuild before the first look
        wait_until(lambda: len(nft.transactions) >= 1, "the first build of the table")
        started = time.monotonic()
        code, body = apiserver.request("POST", base(ns), policy("deny-all", podSelector={}))
        assert code == 201, body
        wait_until(
            lambda: nft.seen(f"add element ip nestlab-policy ingress_isolated {{ {ip} }}"), "isolation"
        )
        print(
            f"policy to nft on this host: {time.monotonic() - started:.3f}s"
        )  # a measurement, shown with -s
        assert apiserver.request("DELETE", f"{base(ns)}/deny-all")[0] == 200
        wait_until(
            lambda: nft.seen(f"delete element ip nestlab-policy ingress_isolated {{ {ip} }}"), "release"
        )
        assert all(
            "delete table" not in c for t in nft.transactions[1:] for c in t
        )  # incremental after start
    finally:
        task.cancel()
        thread.run(factory.stop())
        thread.run(client.close())
        thread.stop()
        nft.close()
        apiserver.request("DELETE", f"/api/v1/namespaces/{ns}/pods/web?gracePeriodSeconds=0")
        apiserver.request("DELETE", f"/api/v1/namespaces/{ns}")
