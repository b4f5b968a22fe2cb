"""Authentication (tokens, lab-CA client certificates) and per-namespace view/edit/admin, for real."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nestlab.runtime import proc
from tests.integration.api.conftest import BOB_TOKEN, NODE_TOKEN, ApiServer, write_kubeconfig

pytestmark = pytest.mark.integration
NS = "team-a"
KUBECTL = Path("/usr/bin/kubectl")


@pytest.fixture(scope="module")
def team_namespace(apiserver: ApiServer) -> Iterator[str]:
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
    yield NS
    apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")


def binding(name: str, role: str, kind: str, subject: str) -> dict[str, object]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}],
    }


def pod(name: str) -> dict[str, object]:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}


def test_client_certificate_of_admin_group_may_do_everything(
    apiserver: ApiServer, team_namespace: str
) -> None:
    alice = apiserver.context(apiserver.pki.alice_cert, apiserver.pki.alice_key)
    code, body = apiserver.request("GET", "/api/v1/nodes", token=None, context=alice)
    assert code == 200, body
    code, body = apiserver.request(
        "POST", f"/api/v1/namespaces/{NS}/pods", pod("by-alice"), token=None, context=alice
    )
    assert code == 201, body


def test_rolebindings_grant_view_then_edit(apiserver: ApiServer, team_namespace: str) -> None:
    carol = apiserver.context(apiserver.pki.carol_cert, apiserver.pki.carol_key)
    pods = f"/api/v1/namespaces/{NS}/pods"
    code, body = apiserver.request("GET", pods, token=None, context=carol)
    assert (code, body["message"]) == (
        403,
        'pods is forbidden: User "carol" cannot list resource "pods" in API group "" in the namespace "team-a"',
    )
    bindings = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings"
    assert apiserver.request("POST", bindings, binding("devs-view", "view", "Group", "devs"))[0] == 201
    assert apiserver.request("GET", pods, token=None, context=carol)[0] == 200
    code, body = apiserver.request("POST", pods, pod("by-carol"), token=None, context=carol)
    assert code == 403, body
    assert apiserver.request("POST", bindings, binding("carol-edit", "edit", "User", "carol"))[0] == 201
    assert apiserver.request("POST", pods, pod("by-carol"), token=None, context=carol)[0] == 201
    code, body = apiserver.request(
        "POST", bindings, binding("x", "admin", "User", "carol"), token=None, context=carol
    )
    assert code == 403, body  # edit may not grant roles
    assert apiserver.request("GET", "/api/v1/namespaces/default/pods", token=None, context=carol)[0] == 403
    assert apiserver.request("GET", f"/api/v1/namespaces/{NS}", token=None, context=carol)[0] == 200
    assert apiserver.request("DELETE", f"/api/v1/namespaces/{NS}", token=None, context=carol)[0] == 403


def test_bob_with_admin_role_manages_bindings_through_kubectl(
    apiserver: ApiServer, team_namespace: str, tmp_path: Path
) -> None:
    config = write_kubeconfig(tmp_path / "kubeconfig", apiserver, token=BOB_TOKEN)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(config)}
    denied = proc.run([KUBECTL, "get", "pods", "-n", NS], timeout=60, check=False, env=env)
    assert denied.returncode != 0
    assert 'User "bob" cannot list resource "pods"' in denied.stderr
    bindings = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings"
    assert apiserver.request("POST", bindings, binding("bob-admin", "admin", "User", "bob"))[0] == 201
    listed = proc.run([KUBECTL, "get", "pods", "-n", NS], timeout=60, env=env)
    assert "by-alice" in listed.stdout
    created = proc.run(
        [KUBECTL, "create", "rolebinding", "dave-view", "--clusterrole=view", "--user=dave", "-n", NS],
        timeout=60,
        env=env,
    )
    assert "rolebinding.rbac.authorization.k8s.io/dave-view created" in created.stdout
    nodes = proc.run([KUBECTL, "get", "nodes"], timeout=60, check=False, env=env)
    assert nodes.returncode != 0
    assert "at the cluster scope" in nodes.stderr


def test_node_agent_rights_and_node_restriction(apiserver: ApiServer, team_namespace: str) -> None:
    """A node agent (system:node:esx-07) writes its own Node, its own Lease and its own pods only."""
    assert (
        apiserver.request("POST", "/api/v1/nodes", {"metadata": {"name": "esx-07"}}, token=NODE_TOKEN)[0]
        == 201
    )
    code, body = apiserver.request(
        "POST", "/api/v1/nodes", {"metadata": {"name": "esx-08"}}, token=NODE_TOKEN
    )
    assert (code, body["message"]) == (
        403,
        'nodes "esx-08" is forbidden: node "esx-07" is not allowed to modify node "esx-08"',
    )
    leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    lease = {"metadata": {"name": "esx-07"}, "spec": {"holderIdentity": "esx-07", "leaseDurationSeconds": 40}}
    assert apiserver.request("POST", leases, lease, token=NODE_TOKEN)[0] == 201
    other = {"metadata": {"name": "esx-08"}, "spec": {"holderIdentity": "esx-07"}}
    assert apiserver.request("POST", leases, other, token=NODE_TOKEN)[0] == 403

    pods = f"/api/v1/namespaces/{NS}/pods"
    assert apiserver.request("GET", pods, token=NODE_TOKEN)[0] == 200
    assert apiserver.request("POST", pods, pod("by-node"), token=NODE_TOKEN)[0] == 403
    assert apiserver.request("POST", pods, pod("for-esx-07"))[0] == 201
    running = {"status": {"phase": "Running"}}
    merge = "application/merge-patch+json"
    code, body = apiserver.request(
        "PATCH", f"{pods}/for-esx-07/status", running, token=NODE_TOKEN, content_type=merge
    )
    assert (code, body["message"]) == (
        403,
        'pods "for-esx-07" is forbidden: node "esx-07" can only update pod status for pods with '
        "spec.nodeName set to itself",
    )
    binding = {"target": {"kind": "Node", "name": "esx-07"}}
    assert apiserver.request("POST", f"{pods}/for-esx-07/binding", binding)[0] == 201
    code, body = apiserver.request(
        "PATCH", f"{pods}/for-esx-07/status", running, token=NODE_TOKEN, content_type=merge
    )
    assert code == 200, body
    assert body["status"]["phase"] == "Running"
    marked = apiserver.request("DELETE", f"{pods}/for-esx-07")[1]  # a user deletes: graceful
    assert marked["metadata"]["deletionTimestamp"]
    confirmed = apiserver.request("DELETE", f"{pods}/for-esx-07?gracePeriodSeconds=0", token=NODE_TOKEN)
    assert confirmed[0] == 200  # the agent confirms the pod is gone
    assert apiserver.request("GET", f"{pods}/for-esx-07")[0] == 404
    assert apiserver.request("DELETE", f"{leases}/esx-07", token=NODE_TOKEN)[0] == 200
    assert apiserver.request("DELETE", "/api/v1/nodes/esx-07", token=NODE_TOKEN)[0] == 200


@pytest.mark.parametrize("generation", ["1.20", "current"])
def test_kubectl_auth_can_i(apiserver: ApiServer, kubectl_120: Path, tmp_path: Path, generation: str) -> None:
    """``kubectl auth can-i`` (a SelfSubjectAccessReview, sent as protobuf by new kubectl) answers
    what the authorizer decides for the real request."""
    binary = kubectl_120 if generation == "1.20" else KUBECTL
    ns = f"can-i-{generation.replace('.', '')}"
    config = write_kubeconfig(tmp_path / "kubeconfig", apiserver, token=BOB_TOKEN)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(config)}

    def can_i(*args: str) -> str:
        result = proc.run([binary, "auth", "can-i", *args, "-n", ns], timeout=60, check=False, env=env)
        assert result.returncode in (0, 1), result.stderr
        return result.stdout.strip()

    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    try:
        assert can_i("list", "nodes") == "no"
        assert can_i("create", "pods") == "no"
        bindings = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"
        assert apiserver.request("POST", bindings, binding("bob-edit", "edit", "User", "bob"))[0] == 201
        assert can_i("create", "pods") == "yes"
        assert can_i("get", "pods", "--subresource=log") == "yes"
        assert can_i("create", "rolebindings") == "no"
        assert can_i("delete", f"namespace/{ns}") == "no"
        pod_created = apiserver.request("POST", f"/api/v1/namespaces/{ns}/pods", pod("p"), token=BOB_TOKEN)
        assert pod_created[0] == 201  # the review and the real request agree
    finally:
        apiserver.request("DELETE", f"/api/v1/namespaces/{ns}")
