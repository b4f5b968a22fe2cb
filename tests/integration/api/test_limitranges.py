"""LimitRange and LimitRanger through kubectl against the REAL etcd + API server: `kubectl get limits`,
defaults filled into a pod that names no resources (then charged by quota), upstream's 403 for a
container under the minimum, and a LimitRange whose default exceeds its max refused (422)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.api.conftest import ApiServer

pytestmark = pytest.mark.integration

LIMITS = {
    "apiVersion": "v1",
    "kind": "LimitRange",
    "metadata": {"name": "nestlab-defaults"},
    "spec": {
        "limits": [
            {
                "type": "Container",
                "default": {"cpu": "500m", "memory": "256Mi"},
                "defaultRequest": {"cpu": "250m", "memory": "128Mi"},
                "min": {"cpu": "100m"},
            }
        ]
    },
}


def pod(name: str, resources: dict[str, Any] | None = None) -> str:
    container: dict[str, Any] = {"name": "c", "image": "busybox:1.36"}
    if resources is not None:
        container["resources"] = resources
    return json.dumps(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [container]}}
    )


@pytest.fixture
def namespace(apiserver: ApiServer, kubectl: Any) -> Iterator[str]:
    name = f"limits-{uuid.uuid4().hex[:8]}"  # a deleted namespace lingers while it terminates
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    yield name
    apiserver.request("DELETE", f"/api/v1/namespaces/{name}")


def test_defaults_fill_a_bare_pod_and_quota_charges_them(
    kubectl: Any, apiserver: ApiServer, namespace: str
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(LIMITS))
    kubectl("create", "quota", "compute", "--hard=requests.cpu=2,limits.memory=1Gi", "-n", namespace)
    listed = kubectl("get", "limits", "-n", namespace).stdout
    assert listed.split("\n")[0].split() == ["NAME", "CREATED", "AT"]
    assert "nestlab-defaults" in listed
    kubectl("create", "-n", namespace, "-f", "-", stdin=pod("bare"))
    code, made = apiserver.request("GET", f"/api/v1/namespaces/{namespace}/pods/bare")
    assert code == 200
    assert made["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "250m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    assert made["metadata"]["annotations"]["kubernetes.io/limit-ranger"].startswith(
        "LimitRanger plugin set: "
    )
    code, quota = apiserver.request("GET", f"/api/v1/namespaces/{namespace}/resourcequotas/compute")
    assert quota["status"]["used"] == {"requests.cpu": "250m", "limits.memory": "256Mi"}


def test_a_container_under_the_minimum_gets_upstreams_403(kubectl: Any, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(LIMITS))
    small = pod("small", {"requests": {"cpu": "50m"}, "limits": {"cpu": "50m"}})
    refused = kubectl("create", "-n", namespace, "-f", "-", stdin=small, check=False)
    assert refused.returncode != 0
    assert (
        'pods "small" is forbidden: minimum cpu usage per Container is 100m, but request is 50m'
        in refused.stderr
    )


def test_an_inconsistent_limitrange_is_refused(kubectl: Any, namespace: str) -> None:
    bad = json.loads(json.dumps(LIMITS))
    bad["spec"]["limits"][0]["max"] = {"memory": "128Mi"}
    refused = kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(bad), check=False)
    assert refused.returncode != 0
    assert "default value 256Mi is greater than max value 128Mi" in refused.stderr
