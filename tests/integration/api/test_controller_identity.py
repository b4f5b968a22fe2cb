"""The real nestlab-controller as ``system:nestlab-controller`` (its own certificate, no administrators'
group) against a real, audited API server: its built-in ClusterRole must cover every call it makes.

The controller process runs its controllers and passes (scheduler, endpoints, EndpointSlices,
ServiceAccounts, Deployments and ReplicaSets, StatefulSets and their claims, Jobs, disruption
budgets, ClusterRole aggregation, garbage collection) over a small workload; the audit log (one
Event per request) must then show its requests and not one 403, and the controller's own log no
refusal.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nestlab.runtime import proc
from tests.integration.api.conftest import (
    ApiServer,
    EtcdMember,
    Pki,
    _cert,
    start_apiserver,
    wait_until,
)

pytestmark = pytest.mark.integration
USER = "system:nestlab-controller"
SUFFIX = uuid.uuid4().hex[:6]
NS = f"ctl-identity-{SUFFIX}"
NODE = f"ctl-node-{SUFFIX}"
IDENTITY = f"ctl-identity-{SUFFIX}"
AGGREGATED = f"ctl-aggregated-{SUFFIX}"
PART = f"ctl-part-{SUFFIX}"
POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    nonResourceURLs: ["/readyz*", "/livez*", "/healthz*"]
  - level: Metadata
"""
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def audited(
    pki: Pki, etcd_cluster: list[EtcdMember], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiServer, Path]]:
    directory = tmp_path_factory.mktemp("controller-identity")
    policy = directory / "audit-policy.yaml"
    policy.write_text(POLICY)
    log_path = directory / "audit.log"
    url, process, log = start_apiserver(
        pki,
        [m.client_url for m in etcd_cluster],
        directory,
        "--audit-policy-file",
        str(policy),
        "--audit-log-path",
        str(log_path),
    )
    try:
        yield ApiServer(url, pki, log, process), log_path
    finally:
        process.stop()


def created(server: ApiServer, path: str, body: Obj) -> Obj:
    code, answer = server.request("POST", path, body)
    assert code == 201, answer
    return dict(answer)


def workload() -> list[tuple[str, Obj]]:
    """(collection path, object): what makes every controller of the process call the API."""
    labels = {"app": "web"}
    template: Obj = {
        "metadata": {"labels": labels},
        "spec": {
            "nodeSelector": {"ctl-identity": SUFFIX},
            "containers": [{"name": "c", "image": "busybox:1.36"}],
        },
    }
    claim = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    apps, core = f"/apis/apps/v1/namespaces/{NS}", f"/api/v1/namespaces/{NS}"
    selector = {"matchLabels": labels}
    return [
        (f"{apps}/deployments", {"metadata": {"name": "web"}, "spec": {"replicas": 2, "selector": selector, "template": template}}),
        (f"{core}/services", {"metadata": {"name": "web"}, "spec": {"selector": labels, "ports": [{"port": 80}]}}),
        (f"{core}/services", {"metadata": {"name": "edge"}, "spec": {"type": "LoadBalancer", "selector": labels, "ports": [{"port": 80}]}}),
        (f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets", {"metadata": {"name": "web"}, "spec": {"minAvailable": 1, "selector": selector}}),
        (f"/apis/batch/v1/namespaces/{NS}/jobs", {"metadata": {"name": "once"}, "spec": {"template": {**template, "spec": {**template["spec"], "restartPolicy": "Never"}}}}),
        (f"{apps}/statefulsets", {"metadata": {"name": "db"}, "spec": {"serviceName": "web", "replicas": 1, "selector": {"matchLabels": {"app": "db"}}, "template": {**template, "metadata": {"labels": {"app": "db"}}}, "volumeClaimTemplates": [claim]}}),
    ]  # fmt: skip


def test_the_controller_works_with_its_own_role_and_meets_no_403(
    audited: tuple[ApiServer, Path], pki: Pki, tmp_path: Path
) -> None:
    server, audit_log = audited
    cert, key = _cert(tmp_path, "controller", f"/CN={USER}", pki.ca, pki.ca.parent / "ca.key")
    node = {"metadata": {"name": NODE, "labels": {"ctl-identity": SUFFIX}}}
    made = created(server, "/api/v1/nodes", node)
    made["status"] = {
        "conditions": [{"type": "Ready", "status": "True"}],
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "20"},
    }
    assert server.request("PUT", f"/api/v1/nodes/{NODE}/status", made)[0] == 200
    created(server, "/api/v1/namespaces", {"metadata": {"name": NS}})
    rbac = "/apis/rbac.authorization.k8s.io/v1/clusterroles"
    label = {"rbac.authorization.k8s.io/aggregate-to-" + SUFFIX: "true"}
    created(server, rbac, {"metadata": {"name": PART, "labels": label}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]})  # fmt: skip
    aggregated = {"metadata": {"name": AGGREGATED}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": label}]}}  # fmt: skip
    created(server, rbac, aggregated)
    log = tmp_path / "controller.log"
    argv = [
        sys.executable, "-m", "nestlab.controller.main", "--server", server.url,
        "--certificate-authority", str(pki.ca), "--client-certificate", str(cert), "--client-key", str(key),
        "--identity", IDENTITY, "--leader-elect-lease-duration", "4", "--interval", "0.3",
        "--node-monitor-grace-period", "600", "--ingress-cidr", "198.18.200.0/29",
    ]  # fmt: skip
    controller = proc.spawn(argv, log=log)
    try:
        for path, body in workload():
            created(server, path, body)

        def pods() -> list[Obj]:
            listing = server.request("GET", f"/api/v1/namespaces/{NS}/pods")[1]
            return list(listing["items"])

        def settled() -> bool:
            bound = [p for p in pods() if p["spec"].get("nodeName") == NODE]
            account = server.request("GET", f"/api/v1/namespaces/{NS}/serviceaccounts/default")[0]
            root_ca = server.request("GET", f"/api/v1/namespaces/{NS}/configmaps/kube-root-ca.crt")[0]
            endpoints = server.request("GET", f"/api/v1/namespaces/{NS}/endpoints/web")[0]
            claim = server.request("GET", f"/api/v1/namespaces/{NS}/persistentvolumeclaims/data-db-0")[0]
            role = server.request("GET", f"{rbac}/{AGGREGATED}")[1]
            edge = server.request("GET", f"/api/v1/namespaces/{NS}/services/edge")[1]
            return (
                len(bound) >= 4  # 2 of the Deployment, the Job's, the StatefulSet's
                and (account, root_ca, endpoints, claim) == (200, 200, 200, 200)
                and bool(role.get("rules"))
                and bool((edge.get("status") or {}).get("loadBalancer", {}).get("ingress"))
            )

        try:
            wait_until(settled, "the controller's work on the workload", timeout=90)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {USER} was refused: {refusals(audit_log)}") from exc
        # the garbage collector deletes the ReplicaSet and pods of a deleted Deployment
        assert server.request("DELETE", f"/apis/apps/v1/namespaces/{NS}/deployments/web")[0] == 200

        def collected() -> bool:  # pods bound to a node without an agent stay, marked for deletion
            replica_sets = server.request("GET", f"/apis/apps/v1/namespaces/{NS}/replicasets")[1]["items"]
            web = [p for p in pods() if p["metadata"]["name"].startswith("web-")]
            return not replica_sets and all(p["metadata"].get("deletionTimestamp") for p in web)

        wait_until(collected, "the Deployment's ReplicaSet and pods collected", timeout=60)
    finally:
        controller.stop()
        cleanup(server)
    mine = requests_of(audit_log)
    assert len(mine) > 50, "the controller's requests are not in the audit log"
    verbs = {
        (e["verb"], e.get("objectRef", {}).get("resource"), e.get("objectRef", {}).get("subresource"))
        for e in mine
    }
    assert ("create", "pods", None) in verbs
    assert ("create", "pods", "binding") in verbs
    assert refusals(audit_log) == []
    text = log.read_text()
    assert "forbidden" not in text.lower(), text[-4000:]
    assert "Traceback" not in server.log.read_text(), server.log.read_text()[-4000:]


def requests_of(audit_log: Path) -> list[Obj]:
    """The audit Events of the controller's requests."""
    events = [json.loads(line) for line in audit_log.read_text().splitlines() if line.strip()]
    return [e for e in events if e["user"]["username"] == USER]


def refusals(audit_log: Path) -> list[str]:
    """``verb URI`` of each of the controller's requests answered 403."""
    return [
        f"{e['verb']} {e['requestURI']}" for e in requests_of(audit_log) if e["responseStatus"]["code"] == 403
    ]


def cleanup(server: ApiServer) -> None:
    """Delete everything the test made (the session's etcd is shared)."""
    base = f"/api/v1/namespaces/{NS}"
    for path in (
        f"/apis/apps/v1/namespaces/{NS}/statefulsets/db",
        f"/apis/apps/v1/namespaces/{NS}/deployments/web",
        f"/apis/batch/v1/namespaces/{NS}/jobs/once?propagationPolicy=Background",
        f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/web",
    ):
        server.request("DELETE", path)
    for kind in ("replicasets", "controllerrevisions"):
        listing = server.request("GET", f"/apis/apps/v1/namespaces/{NS}/{kind}")[1]
        for item in listing.get("items", []) if isinstance(listing, dict) else []:
            server.request("DELETE", f"/apis/apps/v1/namespaces/{NS}/{kind}/{item['metadata']['name']}")
    for kind in (
        "pods",
        "persistentvolumeclaims",
        "services",
        "endpoints",
        "events",
        "configmaps",
        "serviceaccounts",
    ):
        listing = server.request("GET", f"{base}/{kind}")[1]
        for item in listing.get("items", []) if isinstance(listing, dict) else []:
            server.request("DELETE", f"{base}/{kind}/{item['metadata']['name']}?gracePeriodSeconds=0")
    slices = server.request("GET", f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices")[1]
    for item in slices.get("items", []) if isinstance(slices, dict) else []:
        server.request(
            "DELETE", f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices/{item['metadata']['name']}"
        )
    server.request("DELETE", base)
    server.request("DELETE", f"/api/v1/nodes/{NODE}")
    for role in (AGGREGATED, PART):
        server.request("DELETE", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{role}")
    lease = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/nestlab-scheduler"
    code, held = server.request("GET", lease)
    if code == 200 and held["spec"].get("holderIdentity") == IDENTITY:
        server.request("DELETE", lease)
