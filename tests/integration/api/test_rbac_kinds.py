"""Role, ClusterRole, RoleBinding, ClusterRoleBinding against the real API server: built-in roles,
kubectl create/get/print, roleRef immutability, escalation prevention, ClusterRole aggregation."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nestlab.api.client import ApiClient, Credentials
from nestlab.controller.clusterroleaggregation import ClusterRoleAggregationController
from nestlab.controller.manager import Term
from tests.integration.api.conftest import ADMIN_TOKEN, BOB_TOKEN, ApiServer

pytestmark = pytest.mark.integration
RBAC = "/apis/rbac.authorization.k8s.io/v1"
NS = "rbac-kinds"
Obj = dict[str, Any]
Kubectl = Callable[..., Any]


def poll(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """``check()``'s first truthy answer, or fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def namespace(apiserver: ApiServer) -> Iterator[str]:
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
    yield NS
    apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")


@pytest.fixture
def cleanup(apiserver: ApiServer) -> Iterator[list[str]]:
    """Paths to DELETE at the end of the test (the session API server is shared)."""
    paths: list[str] = []
    yield paths
    for path in reversed(paths):
        apiserver.request("DELETE", path)


def binding(name: str, kind: str, role: str, subject: Obj) -> Obj:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": [subject],
    }


def test_built_in_roles_and_bindings_exist(apiserver: ApiServer) -> None:
    def built_in() -> bool:
        return apiserver.request("GET", f"{RBAC}/clusterrolebindings/system:public-info-viewer")[0] == 200

    poll(built_in, "the built-in roles of the API server's bootstrap")
    for name in ("cluster-admin", "admin", "edit", "view", "system:basic-user", "system:discovery"):
        code, role = apiserver.request("GET", f"{RBAC}/clusterroles/{name}")
        assert code == 200, role
        assert role["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] == "true"
        assert role["rules"], name
    code, admin = apiserver.request("GET", f"{RBAC}/clusterroles/admin")
    assert admin["aggregationRule"]["clusterRoleSelectors"] == [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}}
    ]
    code, crb = apiserver.request("GET", f"{RBAC}/clusterrolebindings/cluster-admin")
    assert code == 200, crb
    assert {s["name"] for s in crb["subjects"]} == {"system:masters", "nestlab:admins"}


def test_kubectl_creates_and_prints_roles_and_bindings(
    kubectl: Kubectl, namespace: str, cleanup: list[str]
) -> None:
    suffix = str(kubectl.version).replace(".", "-")  # type: ignore[attr-defined]
    role, crole, rb, crb, agg = (f"{what}-{suffix}" for what in ("reader", "c-reader", "rb", "crb", "agg"))
    cleanup += [
        f"{RBAC}/clusterroles/{agg}",
        f"{RBAC}/namespaces/{NS}/roles/{role}",
        f"{RBAC}/clusterroles/{crole}",
        f"{RBAC}/namespaces/{NS}/rolebindings/{rb}",
        f"{RBAC}/clusterrolebindings/{crb}",
    ]
    kubectl("create", "role", role, "--verb=get,list", "--resource=pods,pods/log", "-n", NS)
    kubectl("create", "clusterrole", crole, "--verb=get", "--non-resource-url=/healthz")
    kubectl("create", "clusterrole", agg, "--aggregation-rule=example.com/aggregate-to-agg=true")
    selectors = kubectl(
        "get", "clusterrole", agg, "-o", "jsonpath={.aggregationRule.clusterRoleSelectors}"
    ).stdout
    assert "example.com/aggregate-to-agg" in selectors
    kubectl(
        "create", "rolebinding", rb, f"--role={role}", "--user=alice", "--group=devs",
        f"--serviceaccount={NS}:builder", "-n", NS,
    )  # fmt: skip
    kubectl("create", "clusterrolebinding", crb, "--clusterrole=view", "--group=auditors")
    ghost = f"ghost-{suffix}"
    cleanup.append(f"{RBAC}/namespaces/{NS}/rolebindings/{ghost}")
    typo = kubectl("create", "rolebinding", ghost, "--clusterrole=vew", "--user=dave", "-n", NS)
    assert 'Warning: ClusterRole "vew" not found: this binding grants nothing until it exists' in typo.stderr
    lines = kubectl("get", "role", role, "-n", NS).stdout.splitlines()
    assert lines[0].split() == ["NAME", "CREATED", "AT"]
    assert lines[1].split()[0] == role
    assert lines[1].split()[1].endswith("Z")  # RFC 3339 creation time
    lines = kubectl("get", "clusterrole", crole).stdout.splitlines()
    assert lines[0].split() == ["NAME", "CREATED", "AT"]
    lines = kubectl("get", "rolebinding", rb, "-n", NS, "-o", "wide").stdout.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    cells = lines[1].split()
    assert cells[:2] == [rb, f"Role/{role}"]
    assert cells[3:] == ["alice", "devs", f"{NS}/builder"]
    lines = kubectl("get", "clusterrolebinding", crb).stdout.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "AGE"]
    assert lines[1].split()[:2] == [crb, "ClusterRole/view"]
    stored = kubectl("get", "role", role, "-n", NS, "-o", "jsonpath={.rules[0].resources}").stdout
    assert "pods/log" in stored


def test_role_ref_is_immutable_and_bindings_are_validated(
    apiserver: ApiServer, namespace: str, cleanup: list[str]
) -> None:
    path = f"{RBAC}/namespaces/{NS}/rolebindings"
    created = binding("immutable", "ClusterRole", "view", {"kind": "User", "name": "dave"})
    code, body = apiserver.request("POST", path, created)
    assert code == 201, body
    cleanup.append(f"{path}/immutable")
    assert body["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"  # defaulted as upstream
    body["roleRef"]["name"] = "edit"
    code, answer = apiserver.request("PUT", f"{path}/immutable", body)
    assert (code, answer["reason"]) == (422, "Invalid"), answer
    assert answer["details"]["causes"][0] == {
        "reason": "FieldValueInvalid",
        "field": "roleRef",
        "message": 'Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", '
        'Name:"edit"}: cannot change roleRef',
    }
    bad = binding("bad", "Robot", "x", {"kind": "ServiceAccount", "name": "Bad_Name"})
    code, answer = apiserver.request("POST", path, bad)
    assert code == 422, answer
    assert [c["field"] for c in answer["details"]["causes"]] == ["roleRef.kind", "subjects[0].name"]
    missing = binding("to-missing", "ClusterRole", "no-such-role", {"kind": "User", "name": "dave"})
    code, answer = apiserver.request("POST", path, missing)
    assert code == 201, answer  # upstream accepts it: it grants nothing until the role exists
    cleanup.append(f"{path}/to-missing")


def test_escalation_is_refused_for_a_namespace_admin(
    apiserver: ApiServer, namespace: str, cleanup: list[str]
) -> None:
    roles, bindings = f"{RBAC}/namespaces/{NS}/roles", f"{RBAC}/namespaces/{NS}/rolebindings"
    bob_admin = binding("bob-admin", "ClusterRole", "admin", {"kind": "User", "name": "bob"})
    assert apiserver.request("POST", bindings, bob_admin)[0] == 201
    cleanup.append(f"{bindings}/bob-admin")

    def as_bob(path: str, body: Obj) -> tuple[int, Any]:
        return apiserver.request("POST", path, body, token=BOB_TOKEN)

    within = {
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    }
    code, body = as_bob(roles, within)  # a denial is re-checked against etcd: no wait needed
    assert code == 201, body
    cleanup.append(f"{roles}/pod-reader")
    wider = {
        "metadata": {"name": "everything"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    }
    code, body = as_bob(roles, wider)
    assert (code, body["reason"]) == (403, "Forbidden"), body
    assert body["message"] == (
        'roles.rbac.authorization.k8s.io "everything" is forbidden: user "bob" (groups=["system:authenticated"]) '
        "is attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}'
    )
    to_cluster_admin = binding("bob-root", "ClusterRole", "cluster-admin", {"kind": "User", "name": "bob"})
    code, body = as_bob(bindings, to_cluster_admin)
    assert code == 403, body
    assert body["message"].startswith(
        'rolebindings.rbac.authorization.k8s.io "bob-root" is forbidden: user "bob"'
    )
    code, body = as_bob(
        bindings, binding("carol-edit", "ClusterRole", "edit", {"kind": "User", "name": "carol"})
    )
    assert code == 201, body  # admin holds everything edit grants
    cleanup.append(f"{bindings}/carol-edit")
    code, body = as_bob(bindings, binding("reader", "Role", "pod-reader", {"kind": "User", "name": "carol"}))
    assert code == 201, body
    cleanup.append(f"{bindings}/reader")


@contextlib.contextmanager
def aggregation_controller(server: ApiServer) -> Iterator[None]:
    """The ClusterRole aggregation controller on real informers, in a thread."""
    started = threading.Event()
    running: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        running.update(loop=asyncio.get_running_loop(), stop=stop)
        client = ApiClient(Credentials(server.url, server.pki.ca, ADMIN_TOKEN))
        term = Term(client, [ClusterRoleAggregationController])
        term.start()
        started.set()
        try:
            await stop.wait()
        finally:
            await term.stop()
            await client.close()
            await asyncio.sleep(0.25)  # aiohttp's advice: let TLS connections finish closing

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(timeout=30), "the aggregation controller thread did not start"
    try:
        yield
    finally:
        running["loop"].call_soon_threadsafe(running["stop"].set)
        thread.join(timeout=30)
        assert not thread.is_alive(), "the aggregation controller thread did not stop"


def test_aggregated_cluster_role_gathers_labelled_roles(apiserver: ApiServer, cleanup: list[str]) -> None:
    path = f"{RBAC}/clusterroles"
    label = {"example.com/aggregate-to-monitoring": "true"}
    monitoring: Obj = {
        "metadata": {"name": "test-monitoring"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": label}]},
    }
    member: Obj = {
        "metadata": {"name": "test-monitoring-pods", "labels": label},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    }
    for role in (monitoring, member):
        code, body = apiserver.request("POST", path, role)
        assert code == 201, body
        cleanup.append(f"{path}/{role['metadata']['name']}")

    def rules() -> list[Obj]:
        return list(apiserver.request("GET", f"{path}/test-monitoring")[1].get("rules") or [])

    with aggregation_controller(apiserver):
        assert poll(rules, "the aggregated rules") == member["rules"]
        services = {"apiGroups": [""], "resources": ["services"], "verbs": ["get"]}
        code, current = apiserver.request("GET", f"{path}/test-monitoring-pods")
        current["rules"].append(services)
        assert apiserver.request("PUT", f"{path}/test-monitoring-pods", current)[0] == 200
        poll(lambda: services in rules(), "a member's new rule in the aggregated role")
        assert apiserver.request("DELETE", f"{path}/test-monitoring-pods")[0] == 200
        poll(lambda: rules() == [], "the deleted member's rules leaving the aggregated role")
