"""Object-count quota through kubectl against the REAL etcd + API server: `kubectl create quota`
with count/<resource>, the upstream 403 when it is full, and a key nothing enforces refused (422)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.api.conftest import ApiServer

pytestmark = pytest.mark.integration


@pytest.fixture
def namespace(apiserver: ApiServer, kubectl: Any) -> Iterator[str]:
    name = f"quota-{uuid.uuid4().hex[:8]}"  # a deleted namespace lingers while it terminates
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    yield name
    apiserver.request("DELETE", f"/api/v1/namespaces/{name}")


def test_count_quota_refuses_the_object_beyond_it(kubectl: Any, namespace: str) -> None:
    kubectl("create", "quota", "objects", "--hard=count/configmaps=1,secrets=1", "-n", namespace)
    kubectl("create", "configmap", "one", "--from-literal=k=v", "-n", namespace)
    refused = kubectl("create", "configmap", "two", "--from-literal=k=v", "-n", namespace, check=False)
    assert refused.returncode != 0
    assert (
        'configmaps "two" is forbidden: exceeded quota: objects, requested: count/configmaps=1, '
        "used: count/configmaps=1, limited: count/configmaps=1"
    ) in refused.stderr
    described = kubectl("describe", "quota", "objects", "-n", namespace).stdout
    assert "count/configmaps" in described
    assert "secrets" in described
    kubectl("delete", "configmap", "one", "-n", namespace)
    kubectl("create", "configmap", "two", "--from-literal=k=v", "-n", namespace)


def test_a_quota_nothing_enforces_is_refused(kubectl: Any, namespace: str) -> None:
    refused = kubectl(
        "create", "quota", "storage", "--hard=requests.ephemeral-storage=1Gi", "-n", namespace, check=False
    )
    assert refused.returncode != 0
    assert (
        'spec.hard[requests.ephemeral-storage]: Unsupported value: "requests.ephemeral-storage"'
        in refused.stderr
    )
