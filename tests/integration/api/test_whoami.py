"""``kubectl auth whoami`` (a SelfSubjectReview) against the REAL nestlab-apiserver (3-member etcd,
started with a service-account signing key): the admin, a pod-bound ServiceAccount token (its uid
and the pod in extra), impersonation (``--as=alice --as-group=g`` shows alice), ``-o yaml``, and
kubectl 1.27, which asks only v1beta1/v1alpha1 (off in upstream 1.30) and meets upstream's error.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nestlab.runtime import proc
from tests.integration.api.conftest import (
    ADMIN_TOKEN,
    ApiServer,
    EtcdMember,
    Pki,
    service_account_apiserver,
    write_kubeconfig,
)

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
SDK = Path("/usr/lib/google-cloud-sdk/bin")
VERSIONS = [v for v in ("1.28", "1.30", "1.33") if (SDK / f"kubectl.{v}").exists()]
KUBECTL_127 = SDK / "kubectl.1.27"


@pytest.fixture(scope="module")
def api(pki: Pki, etcd_cluster: list[EtcdMember]) -> Iterator[ApiServer]:
    with service_account_apiserver(pki, etcd_cluster, "nestlab-whoami-") as server:
        yield server


@pytest.fixture(scope="module")
def bound(api: ApiServer) -> Iterator[tuple[str, Obj, Obj, str]]:
    """A namespace, its ``default`` ServiceAccount, a pod running as it, and a token bound to the pod."""
    ns = f"who-{uuid.uuid4().hex[:8]}"
    assert api.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    code, account = api.request(
        "POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "default"}}
    )
    assert code == 201, account
    body = {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    code, pod = api.request("POST", f"/api/v1/namespaces/{ns}/pods", body)
    assert code == 201, pod
    ref = {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": pod["metadata"]["uid"]}
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"boundObjectRef": ref},
    }
    code, answer = api.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/default/token", request)
    assert code == 201, answer
    try:
        yield ns, account, pod, answer["status"]["token"]
    finally:
        api.request("DELETE", f"/api/v1/namespaces/{ns}/pods/web?gracePeriodSeconds=0")
        api.request("DELETE", f"/api/v1/namespaces/{ns}")


def whoami(api: ApiServer, binary: Path, tmp_path: Path, token: str, *args: str) -> proc.Result:
    config = write_kubeconfig(tmp_path / f"kubeconfig-{uuid.uuid4().hex[:6]}", api, token=token)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(config)}
    return proc.run([str(binary), "auth", "whoami", *args], timeout=60, check=False, env=env)


def rows(table: str) -> dict[str, str]:
    """ATTRIBUTE -> VALUE of kubectl's whoami table (columns padded by its tabwriter)."""
    lines = table.splitlines()
    assert lines[0].split() == ["ATTRIBUTE", "VALUE"], table
    found = {}
    for line in lines[1:]:
        name, _, value = line.partition("   ")
        found[name.strip()] = value.strip()
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_whoami_admin(api: ApiServer, tmp_path: Path, version: str) -> None:
    result = whoami(api, SDK / f"kubectl.{version}", tmp_path, ADMIN_TOKEN)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "ATTRIBUTE   VALUE\n"
        "Username    admin\n"
        "UID         1\n"
        "Groups      [nestlab:admins system:authenticated]\n"
    )
    shown = whoami(api, SDK / f"kubectl.{version}", tmp_path, ADMIN_TOKEN, "-o", "yaml")
    assert shown.returncode == 0, shown.stderr
    review = yaml.safe_load(shown.stdout)
    assert (review["apiVersion"], review["kind"]) == ("authentication.k8s.io/v1", "SelfSubjectReview")
    assert list(review["metadata"]) == ["creationTimestamp"]
    assert review["status"] == {
        "userInfo": {"username": "admin", "uid": "1", "groups": ["nestlab:admins", "system:authenticated"]}
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_whoami_pod_bound_service_account_token(
    api: ApiServer, bound: tuple[str, Obj, Obj, str], tmp_path: Path, version: str
) -> None:
    ns, account, pod, token = bound
    result = whoami(api, SDK / f"kubectl.{version}", tmp_path, token)
    assert result.returncode == 0, result.stderr
    table = rows(result.stdout)
    assert table["Username"] == f"system:serviceaccount:{ns}:default"
    assert table["UID"] == account["metadata"]["uid"]
    assert table["Groups"] == f"[system:serviceaccounts system:serviceaccounts:{ns} system:authenticated]"
    assert table["Extra: authentication.kubernetes.io/pod-name"] == "[web]"
    assert table["Extra: authentication.kubernetes.io/pod-uid"] == f"[{pod['metadata']['uid']}]"
    assert table["Extra: authentication.kubernetes.io/credential-id"].startswith("[JTI=")
    shown = whoami(api, SDK / f"kubectl.{version}", tmp_path, token, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    info = yaml.safe_load(shown.stdout)["status"]["userInfo"]
    assert info["extra"]["authentication.kubernetes.io/pod-name"] == ["web"]


@pytest.mark.parametrize("version", VERSIONS)
def test_whoami_as_another_user(api: ApiServer, tmp_path: Path, version: str) -> None:
    result = whoami(api, SDK / f"kubectl.{version}", tmp_path, ADMIN_TOKEN, "--as=alice", "--as-group=g")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ATTRIBUTE   VALUE\nUsername    alice\nGroups      [g system:authenticated]\n"


@pytest.mark.skipif(not KUBECTL_127.exists(), reason="kubectl 1.27 not installed")
def test_kubectl_127_meets_upstreams_not_enabled_error(api: ApiServer, tmp_path: Path) -> None:
    """kubectl 1.27 asks authentication.k8s.io/v1beta1, then v1alpha1: neither is served by a
    v1.30 kube-apiserver by default, so it fails there as here."""
    result = whoami(api, KUBECTL_127, tmp_path, ADMIN_TOKEN)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: the selfsubjectreviews API is not enabled in the cluster\n"
        "enable APISelfSubjectReview feature gate and authentication.k8s.io/v1alpha1 or "
        "authentication.k8s.io/v1beta1 API"
    )
