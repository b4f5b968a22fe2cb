"""The workload kinds through real kubectl (1.20 and modern): create, scale, set image, bad input,
server-side apply, explain, cascading delete options, the refused DaemonSet, Job defaulting.

Only the API server runs here (no controllers): these tests check what the API answers and stores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.api.conftest import ApiServer

pytestmark = pytest.mark.integration

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {selector}}}}}
  template:
    metadata: {{labels: {{app: {label}}}}}
    spec:
      containers: [{{name: web, image: "depot:5000/nestlab/web:1"}}]
"""


def _ns(kubectl: Any, prefix: str) -> str:
    ns = f"{prefix}-{kubectl.version.replace('.', '-')}"
    kubectl("create", "namespace", ns)
    return ns


def _get(kubectl: Any, *args: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("get", *args, "-o", "json").stdout))


def test_deployment_commands(kubectl: Any) -> None:
    ns = _ns(kubectl, "wl")
    out = kubectl("create", "deployment", "web", "--image=depot:5000/nestlab/web:1", "--replicas=3", "-n", ns)
    assert "deployment.apps/web created" in out.stdout
    deployment = _get(kubectl, "deployment", "web", "-n", ns)
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    assert deployment["metadata"]["generation"] == 1
    header = kubectl("get", "deployments", "-n", ns).stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    wide = kubectl("get", "deploy", "web", "-n", ns, "-o", "wide").stdout
    assert "depot:5000/nestlab/web:1" in wide
    assert "app=web" in wide

    assert (
        "deployment.apps/web scaled" in kubectl("scale", "deployment", "web", "--replicas=5", "-n", ns).stdout
    )
    scaled = _get(kubectl, "deployment", "web", "-n", ns)
    assert (scaled["spec"]["replicas"], scaled["metadata"]["generation"]) == (5, 2)
    out = kubectl("set", "image", "deployment/web", "web=depot:5000/nestlab/web:2", "-n", ns)
    assert "image updated" in out.stdout
    updated = _get(kubectl, "deployment", "web", "-n", ns)
    assert updated["spec"]["template"]["spec"]["containers"][0]["image"] == "depot:5000/nestlab/web:2"
    assert updated["metadata"]["generation"] == 3
    kubectl("rollout", "pause", "deployment/web", "-n", ns)
    assert _get(kubectl, "deployment", "web", "-n", ns)["spec"]["paused"] is True


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (DEPLOYMENT.format(name="a", replicas=1, selector="one", label="two"), "`selector` does not match template `labels`"),
        (DEPLOYMENT.format(name="b", replicas=-1, selector="x", label="x"), "spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        (
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec:\n  selector: {matchLabels: {app: s}}\n"
            "  template:\n    metadata: {labels: {app: s}}\n    spec: {containers: [{name: c, image: i}]}\n",
            "spec.serviceName: Required value",
        ),
    ],
)  # fmt: skip
def test_bad_workloads_are_refused_with_causes(
    kubectl: Any, tmp_path: Path, manifest: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(manifest)
    result = kubectl("apply", "-n", "default", "-f", str(path), check=False)
    assert result.returncode != 0
    assert "is invalid" in result.stderr, result.stderr
    assert expected in result.stderr, result.stderr


def test_selector_is_immutable(kubectl: Any, tmp_path: Path) -> None:
    ns = _ns(kubectl, "imm")
    path = tmp_path / "d.yaml"
    path.write_text(DEPLOYMENT.format(name="d", replicas=1, selector="x", label="x"))
    kubectl("apply", "-n", ns, "-f", str(path))
    path.write_text(DEPLOYMENT.format(name="d", replicas=1, selector="z", label="z"))
    result = kubectl("apply", "-n", ns, "-f", str(path), check=False)
    assert "spec.selector: Invalid value" in result.stderr, result.stderr
    assert "field is immutable" in result.stderr, result.stderr


def test_server_side_apply(kubectl: Any, tmp_path: Path) -> None:
    ns = _ns(kubectl, "ssa")
    path = tmp_path / "d.yaml"
    path.write_text(DEPLOYMENT.format(name="s", replicas=2, selector="s", label="s"))
    first = kubectl("apply", "--server-side", "-n", ns, "-f", str(path))
    assert "deployment.apps/s serverside-applied" in first.stdout
    shown = [] if kubectl.version == "1.20" else ["--show-managed-fields"]  # 1.20 always shows them
    managed = _get(kubectl, "deployment", "s", "-n", ns, *shown)["metadata"]["managedFields"]
    assert [(m["manager"], m["operation"]) for m in managed] == [("kubectl", "Apply")]
    assert "f:replicas" in managed[0]["fieldsV1"]["f:spec"]
    kubectl("patch", "deployment", "s", "-n", ns, "-p", '{"spec":{"replicas":4}}')
    path.write_text(DEPLOYMENT.format(name="s", replicas=3, selector="s", label="s"))
    conflict = kubectl("apply", "--server-side", "-n", ns, "-f", str(path), check=False)
    assert conflict.returncode != 0
    assert "Apply failed with 1 conflict" in conflict.stderr
    assert ".spec.replicas" in conflict.stderr
    forced = kubectl("apply", "--server-side", "--force-conflicts", "-n", ns, "-f", str(path))
    assert "serverside-applied" in forced.stdout
    assert _get(kubectl, "deployment", "s", "-n", ns)["spec"]["replicas"] == 3


def test_explain_reads_the_published_schema(kubectl: Any) -> None:
    if kubectl.version == "1.20":
        pytest.skip(
            "kubectl 1.20 explains from the v2 protobuf document, which carries no schemas (docs/api.md)"
        )
    text = kubectl("explain", "deployment.spec").stdout
    assert "replicas" in text
    assert "<integer>" in text
    assert "Number of desired pods" in text
    assert "maxSurge" in kubectl("explain", "deployment.spec.strategy.rollingUpdate").stdout


def test_cascade_orphan_and_foreground_set_the_collectors_finalizers(kubectl: Any, tmp_path: Path) -> None:
    ns = _ns(kubectl, "casc")
    for name in ("o", "f"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(DEPLOYMENT.format(name=name, replicas=1, selector=name, label=name))
        kubectl("apply", "-n", ns, "-f", str(path))
    kubectl("delete", "deployment", "o", "-n", ns, "--cascade=orphan", "--wait=false")
    kubectl("delete", "deployment", "f", "-n", ns, "--cascade=foreground", "--wait=false")
    orphaned, foreground = (
        _get(kubectl, "deployment", "o", "-n", ns),
        _get(kubectl, "deployment", "f", "-n", ns),
    )
    assert orphaned["metadata"]["finalizers"] == ["orphan"]
    assert orphaned["metadata"]["deletionTimestamp"]
    assert foreground["metadata"]["finalizers"] == ["foregroundDeletion"]


def test_daemonsets_are_refused_with_the_vsphere_reason(kubectl: Any) -> None:
    manifest = (
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {a: b}}\n"
        "  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: i}]}\n"
    )
    result = kubectl("apply", "-n", "default", "-f", "-", stdin=manifest, check=False)
    assert result.returncode != 0
    assert "DaemonSets are not supported on vSphere Pods" in result.stderr, result.stderr
    assert "No resources found" in kubectl("get", "daemonsets", "-A").stderr


def test_job_gets_its_selector_and_labels_from_its_uid(kubectl: Any) -> None:
    ns = _ns(kubectl, "job")
    kubectl("create", "job", "once", "--image=depot:5000/nestlab/web:1", "-n", ns)
    job = _get(kubectl, "job", "once", "-n", ns)
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "once"
    assert labels["controller-uid"] == uid
    assert (job["spec"]["completions"], job["spec"]["parallelism"], job["spec"]["backoffLimit"]) == (1, 1, 6)


def test_partial_object_metadata_and_scale(apiserver: ApiServer) -> None:
    body = json.loads(
        DEPLOYMENT.format(name="m", replicas=2, selector="m", label="m").replace("{", "{").__repr__() and "{}"
    )
    del body
    manifest = yaml.safe_load(DEPLOYMENT.format(name="m", replicas=2, selector="m", label="m"))
    code, _ = apiserver.request("POST", "/apis/apps/v1/namespaces/default/deployments", manifest)
    assert code == 201
    accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
    code, listed = apiserver.request(
        "GET", "/apis/apps/v1/namespaces/default/deployments", headers={"Accept": accept}
    )
    assert code == 200
    assert listed["kind"] == "PartialObjectMetadataList"
    assert {i["kind"] for i in listed["items"]} == {"PartialObjectMetadata"}
    assert "spec" not in listed["items"][0]
    code, one = apiserver.request(
        "GET", "/apis/apps/v1/namespaces/default/deployments/m",
        headers={"Accept": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"},
    )  # fmt: skip
    assert (code, one["kind"], one["metadata"]["name"]) == (200, "PartialObjectMetadata", "m")
    code, scale = apiserver.request("GET", "/apis/apps/v1/namespaces/default/deployments/m/scale")
    assert code == 200
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 2
    assert scale["status"]["selector"] == "app=m"
    scale["spec"]["replicas"] = -2
    code, refused = apiserver.request("PUT", "/apis/apps/v1/namespaces/default/deployments/m/scale", scale)
    assert code == 422
    assert refused["details"]["causes"][0]["field"] == "spec.replicas"
