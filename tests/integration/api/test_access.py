"""Authentication (tokens, lab-CA client certificates), RBAC, impersonation and access reviews, for real."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nestlab.runtime import proc
from tests.integration.api.conftest import ADMIN_TOKEN, BOB_TOKEN, NODE_TOKEN, ApiServer, write_kubeconfig

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
    denied = proc.run([str(KUBECTL), "get", "pods", "-n", NS], timeout=60, check=False, env=env)
    assert denied.returncode != 0
    assert 'User "bob" cannot list resource "pods"' in denied.stderr
    bindings = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings"
    assert apiserver.request("POST", bindings, binding("bob-admin", "admin", "User", "bob"))[0] == 201
    listed = proc.run([str(KUBECTL), "get", "pods", "-n", NS], timeout=60, env=env)
    assert "by-alice" in listed.stdout
    created = proc.run(
        [str(KUBECTL), "create", "rolebinding", "dave-view", "--clusterrole=view", "--user=dave", "-n", NS],
        timeout=60,
        env=env,
    )
    assert "rolebinding.rbac.authorization.k8s.io/dave-view created" in created.stdout
    nodes = proc.run([str(KUBECTL), "get", "nodes"], timeout=60, check=False, env=env)
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
        result = proc.run([str(binary), "auth", "can-i", *args, "-n", ns], timeout=60, check=False, env=env)
        assert result.returncode in (0, 1), result.stderr
        assert result.stdout.strip(), (result.returncode, result.stderr)
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


def cluster_binding(name: str, role: str, user: str) -> dict[str, object]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


@pytest.mark.parametrize("generation", ["1.20", "current"])
def test_kubectl_auth_can_i_as_another_user_and_list(
    apiserver: ApiServer, kubectl_120: Path, tmp_path: Path, generation: str
) -> None:
    """``--as`` (impersonation) answers what alice would meet; only holders of ``impersonate`` may
    use it (upstream 403); ``--list`` (a SelfSubjectRulesReview) shows alice's rules."""
    binary = kubectl_120 if generation == "1.20" else KUBECTL
    ns = f"as-{generation.replace('.', '')}"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def kubectl(token: str | None, *args: str) -> proc.Result:
        config = write_kubeconfig(tmp_path / f"kubeconfig-{token}", apiserver, token=token or ADMIN_TOKEN)
        argv = [str(binary), *args]
        return proc.run(argv, timeout=60, check=False, env={**env, "KUBECONFIG": str(config)})

    rbac = "/apis/rbac.authorization.k8s.io/v1"
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    try:
        asked = kubectl(None, "auth", "can-i", "create", "pods", "-n", ns, "--as=alice")
        assert (asked.returncode, asked.stdout.strip()) == (1, "no"), asked.stderr
        alice_edit = binding("alice-edit", "edit", "User", "alice")
        assert apiserver.request("POST", f"{rbac}/namespaces/{ns}/rolebindings", alice_edit)[0] == 201
        asked = kubectl(None, "auth", "can-i", "create", "pods", "-n", ns, "--as=alice")
        assert (asked.returncode, asked.stdout.strip()) == (0, "yes"), asked.stderr
        asked = kubectl(None, "auth", "can-i", "create", "rolebindings", "-n", ns, "--as=alice")
        assert asked.stdout.strip() == "no"
        listed = kubectl(None, "auth", "can-i", "--list", "-n", ns, "--as=alice")
        assert listed.returncode == 0, listed.stderr
        rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:] if line.strip()}
        assert "create" in rows["pods"], listed.stdout
        assert "delete" in rows["pods"], listed.stdout
        assert "selfsubjectaccessreviews.authorization.k8s.io" in rows, listed.stdout  # system:basic-user
        assert "rolebindings.rbac.authorization.k8s.io" not in rows, listed.stdout

        refused = kubectl(BOB_TOKEN, "auth", "can-i", "create", "pods", "-n", ns, "--as=alice")
        assert refused.returncode != 0
        assert (
            'users "alice" is forbidden: User "bob" cannot impersonate resource "users" in API group "" '
            "at the cluster scope"
        ) in refused.stderr
        impersonator = {
            "metadata": {"name": f"impersonate-alice-{ns}"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["users"],
                    "verbs": ["impersonate"],
                    "resourceNames": ["alice"],
                }
            ],
        }
        assert apiserver.request("POST", f"{rbac}/clusterroles", impersonator)[0] == 201
        bob_may = cluster_binding(f"bob-impersonates-{ns}", f"impersonate-alice-{ns}", "bob")
        assert apiserver.request("POST", f"{rbac}/clusterrolebindings", bob_may)[0] == 201
        asked = kubectl(BOB_TOKEN, "auth", "can-i", "create", "pods", "-n", ns, "--as=alice")
        assert (asked.returncode, asked.stdout.strip()) == (0, "yes"), asked.stderr
        carol = kubectl(BOB_TOKEN, "auth", "can-i", "create", "pods", "-n", ns, "--as=carol")
        assert 'users "carol" is forbidden' in carol.stderr  # resourceNames: alice only
        created = kubectl(BOB_TOKEN, "run", "web", "--image=busybox:1.36", "-n", ns, "--as=alice")
        assert created.returncode == 0, created.stderr  # a real request as alice, not only a review
    finally:
        apiserver.request("DELETE", f"{rbac}/clusterrolebindings/bob-impersonates-{ns}")
        apiserver.request("DELETE", f"{rbac}/clusterroles/impersonate-alice-{ns}")
        apiserver.request("DELETE", f"{rbac}/namespaces/{ns}/rolebindings/alice-edit")
        apiserver.request("DELETE", f"/api/v1/namespaces/{ns}/pods/web?gracePeriodSeconds=0")
        apiserver.request("DELETE", f"/api/v1/namespaces/{ns}")


def test_subject_access_reviews(apiserver: ApiServer, team_namespace: str) -> None:
    """SubjectAccessReview and LocalSubjectAccessReview through the API, validated as upstream."""
    group = "/apis/authorization.k8s.io/v1"
    spec = {"user": "zed", "resourceAttributes": {"namespace": NS, "verb": "get", "resource": "pods"}}
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
    code, body = apiserver.request("POST", f"{group}/subjectaccessreviews", review)
    assert (code, body["status"]) == (201, {"allowed": False}), body
    code, body = apiserver.request("POST", f"{group}/subjectaccessreviews", review, token=BOB_TOKEN)
    assert code == 403, body  # asking about others is not for everyone
    local = {**review, "kind": "LocalSubjectAccessReview"}
    code, body = apiserver.request("POST", f"{group}/namespaces/default/localsubjectaccessreviews", local)
    assert code == 422, body
    assert body["message"] == (
        'LocalSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes.namespace: '
        'Invalid value: "team-a": must match metadata.namespace'
    )
    path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings"
    assert apiserver.request("POST", path, binding("zed-view", "view", "User", "zed"))[0] == 201
    try:
        code, body = apiserver.request("POST", f"{group}/namespaces/{NS}/localsubjectaccessreviews", local)
        assert code == 201, body
        assert body["status"] == {
            "allowed": True,
            "reason": f'RBAC: allowed by RoleBinding "zed-view/{NS}" of ClusterRole "view" to User "zed"',
        }
        nobody = {**review, "spec": {"resourceAttributes": spec["resourceAttributes"]}}
        code, body = apiserver.request("POST", f"{group}/subjectaccessreviews", nobody)
        assert code == 422
        assert "at least one of user or group must be specified" in body["message"]
    finally:
        apiserver.request("DELETE", f"{path}/zed-view")
