"""Secrets encrypted at rest on the teaching lab: what etcd holds on a control-plane node is
ciphertext under the lab's key, what the API answers through the VIP is the value (kubectl of
both generations), and a ConfigMap, which is not encrypted, is stored as it is."""

from __future__ import annotations

import base64
import uuid

import pytest

from tests.e2e.conftest import LiveLab
from tests.e2e.labtools import kubectl, nodes, on_node

pytestmark = [pytest.mark.e2e, pytest.mark.root]

ETCDCTL = (
    "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/nestlab/pki/ca.crt "
    "--cert=/etc/nestlab/pki/node.crt --key=/etc/nestlab/pki/node.key"
)


def stored(lab: LiveLab, key: str) -> bytes:
    """The raw value etcd holds at ``key``, read on the first control-plane node (base64 in transit)."""
    command = f"{ETCDCTL} get {key} --print-value-only | base64 -w0"
    return base64.b64decode(on_node(lab, nodes(lab, "control-plane")[0], command).stdout.strip())


def test_a_secret_is_ciphertext_in_etcd_and_plain_through_the_api(
    agents: LiveLab, namespace: str, kubectl_binary: str
) -> None:
    value = f"s3cret-{uuid.uuid4().hex}"
    kubectl(agents, "create", "secret", "generic", "db", f"--from-literal=password={value}", "-n", namespace,
            binary=kubectl_binary)  # fmt: skip
    kubectl(agents, "create", "configmap", "settings", f"--from-literal=color={value}", "-n", namespace,
            binary=kubectl_binary)  # fmt: skip

    raw = stored(agents, f"/registry/secrets/{namespace}/db")
    assert raw.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert value.encode() not in raw
    assert base64.b64encode(value.encode()) not in raw
    shown = kubectl(agents, "get", "secret", "db", "-n", namespace, "-o", "jsonpath={.data.password}",
                    binary=kubectl_binary).stdout  # fmt: skip
    assert base64.b64decode(shown).decode() == value

    assert value.encode() in stored(agents, f"/registry/configmaps/{namespace}/settings")
