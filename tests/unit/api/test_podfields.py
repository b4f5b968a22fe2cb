"""The pod-field table: each kind of refusal, pod templates too, defaults accepted, docs in step."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nestlab.agent import podvolumes as agent_volumes
from nestlab.api import kinds, podfieldsdoc
from nestlab.api import resources as r
from nestlab.api.kinds import pod as pod_kind
from nestlab.api.kinds import podfields

ROOT = Path(__file__).resolve().parents[3]
NOT_YET = "Forbidden: nestlab does not implement this field yet (docs/api.md lists what a pod may use)"
HOST = f"Forbidden: {podfields.HOST}"
PRIVILEGED = f"Forbidden: {podfields.PRIVILEGED}"


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "c", "image": "depot:5000/nestlab/web:1", **fields}


def causes(spec: dict[str, Any]) -> list[str]:
    obj = {"metadata": {"name": "web", "namespace": "demo"}, "spec": copy.deepcopy(spec)}
    pod_kind.default(obj)
    return [f"{c.field}: {c.message}" for c in pod_kind.validate(obj)]


def test_a_plain_pod_with_every_default_spelled_out_is_accepted() -> None:
    spec = {
        "containers": [
            container(
                imagePullPolicy="Always",
                terminationMessagePath="/dev/termination-log",
                terminationMessagePolicy="File",
                ports=[{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                securityContext={"privileged": False, "allowPrivilegeEscalation": True, "runAsUser": 1000},
                resources={"limits": {"cpu": "1", "memory": "256Mi"}},
                stdin=False,
                tty=False,
                env=[{"name": "A", "value": "b"}],
            )
        ],
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "enableServiceLinks": True,
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "os": {"name": "linux"},
        "priority": 0,
        "volumes": [],
    }
    assert causes(spec) == []
    assert causes({"containers": [container(lifecycle={}, volumeMounts=[])], "priorityClassName": ""}) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"hostNetwork": True}, f"spec.hostNetwork: {HOST}"),
        ({"hostPID": True}, f"spec.hostPID: {HOST}"),
        ({"hostIPC": True}, f"spec.hostIPC: {HOST}"),
        (
            {"containers": [container(ports=[{"containerPort": 80, "hostPort": 8080}])]},
            f"spec.containers[0].ports[0].hostPort: {HOST}",
        ),
        (
            {"containers": [container(ports=[{"containerPort": 80, "hostIP": "10.0.0.1"}])]},
            f"spec.containers[0].ports[0].hostIP: {HOST}",
        ),
        (
            {"containers": [container(securityContext={"privileged": True})]},
            f"spec.containers[0].securityContext.privileged: {PRIVILEGED}",
        ),
        (
            {"containers": [container(securityContext={"capabilities": {"add": ["CHOWN", "SYS_ADMIN"]}})]},
            f"spec.containers[0].securityContext.capabilities.add: {PRIVILEGED} (SYS_ADMIN)",
        ),
        (
            {"volumes": [{"name": "etc", "hostPath": {"path": "/etc"}}]},
            f"spec.volumes[0].hostPath: Forbidden: {podfields.HOST_PATH}",
        ),
        (
            {"volumes": [{"name": "logs", "hostPath": {"path": "/var/log/pods/x"}}]},
            f"spec.volumes[0].hostPath: Forbidden: {podfields.HOST_PATH}",
        ),
        (
            {"os": {"name": "windows"}},
            f"spec.os.name: Forbidden: {podfields.LINUX}",
        ),
        (
            {
                "containers": [
                    container(resizePolicy=[{"resourceName": "cpu", "restartPolicy": "NotRequired"}])
                ]
            },
            f"spec.containers[0].resizePolicy: {NOT_YET}",
        ),
        (
            {"volumes": [{"name": "v", "nfs": {"server": "nas", "path": "/"}}]},
            f"spec.volumes[0].nfs: {NOT_YET}",
        ),
        (
            {"containers": [container(livenessProbe={"grpc": {"port": 9000}})]},
            f"spec.containers[0].livenessProbe.grpc: {NOT_YET}",
        ),
        (
            {"containers": [container(lifecycle={"preStop": {"sleep": {"seconds": 5}}})]},
            f"spec.containers[0].lifecycle.preStop.sleep: {NOT_YET}",
        ),
        ({"ephemeralContainers": [container()]}, f"spec.ephemeralContainers: {NOT_YET}"),
        ({"readinessGates": [{"conditionType": "x"}]}, f"spec.readinessGates: {NOT_YET}"),
        (
            {"shareProcessNamespace": True},
            "spec.shareProcessNamespace: Forbidden: nestlab does not implement this field yet, beyond false "
            "(docs/api.md lists what a pod may use)",
        ),
        (
            {"securityContext": {"runAsGroup": 5}},
            f"spec.securityContext.runAsGroup: Forbidden: {podfields.GROUP_ALONE_MSG}",
        ),
    ],
)
def test_each_refusal_names_the_field_and_why(spec: dict[str, Any], expected: str) -> None:
    full = {"containers": [container()], **spec}
    assert causes(full) == [expected]


def test_a_non_default_value_of_a_defaulted_field_is_refused_and_says_what_passes() -> None:
    found = causes({"containers": [container(terminationMessagePolicy="FallbackToLogsOnError")]})
    assert found == [
        "spec.containers[0].terminationMessagePolicy: Forbidden: nestlab does not implement this field "
        'yet, beyond "File" (docs/api.md lists what a pod may use)'
    ]
    assert causes({"containers": [container(imagePullPolicy="Never")]}) == []


def test_one_cause_per_refused_field() -> None:
    found = causes(
        {
            "hostNetwork": True,
            "containers": [
                container(tty=True, securityContext={"privileged": True}),
                container(name="d", volumeDevices=[{"name": "v", "devicePath": "/dev/xvda"}]),
            ],
        }
    )
    assert [f.split(":")[0] for f in found] == [
        "spec.hostNetwork",
        "spec.containers[0].securityContext.privileged",
        "spec.containers[1].volumeDevices",
    ]


def test_run_as_group_with_run_as_user_is_honoured() -> None:
    spec = {"securityContext": {"runAsUser": 1, "runAsGroup": 2}, "containers": [container()]}
    assert causes(spec) == []
    spec = {"containers": [container(securityContext={"runAsGroup": 2})]}
    assert [c.split(":")[0] for c in causes(spec)] == ["spec.containers[0].securityContext.runAsGroup"]


def test_container_rows_apply_to_init_containers() -> None:
    spec = {"initContainers": [container(name="init", securityContext={"privileged": True})],
            "containers": [container()]}  # fmt: skip
    assert causes(spec) == [f"spec.initContainers[0].securityContext.privileged: {PRIVILEGED}"]


def _template(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "web"}}, "spec": spec}


def _workload(resource: r.Resource, pod_spec: dict[str, Any]) -> dict[str, Any]:
    selector = {"matchLabels": {"app": "web"}}
    template = _template(pod_spec)
    spec: dict[str, Any] = {"selector": selector, "template": template}
    if resource is r.STATEFULSETS:
        spec["serviceName"] = "web"
    if resource is r.REPLICATION_CONTROLLERS:
        spec["selector"] = {"app": "web"}
    if resource is r.JOBS:
        spec = {"template": template}
    if resource is r.CRONJOBS:
        spec = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}}
    return {"metadata": {"name": "web", "namespace": "demo"}, "spec": spec}


@pytest.mark.parametrize(
    "resource",
    [r.DEPLOYMENTS, r.REPLICASETS, r.STATEFULSETS, r.JOBS, r.CRONJOBS, r.REPLICATION_CONTROLLERS],
    ids=lambda res: res.plural,
)
def test_pod_templates_are_refused_like_pods(resource: r.Resource) -> None:
    """(DaemonSets are refused whole, with vSphere's reason, by kinds/daemonset.py.)"""
    restart = "Never" if resource in (r.JOBS, r.CRONJOBS) else "Always"
    pod_spec = {
        "restartPolicy": restart,
        "containers": [container()],
        "volumes": [{"name": "data", "csi": {"driver": "datastore.nestlab.io"}}],
    }
    unit = kinds.of(resource)
    obj = _workload(resource, pod_spec)
    unit.default(obj)
    found = [f"{c.field}: {c.message}" for c in unit.validate(obj)]
    refused = [f for f in found if f.endswith(NOT_YET)]
    where = "spec.jobTemplate.spec.template" if resource is r.CRONJOBS else "spec.template"
    assert refused == [f"{where}.spec.volumes[0].csi: {NOT_YET}"], found
    plain = _workload(resource, {"restartPolicy": restart, "containers": [container()]})
    unit.default(plain)
    assert not [c for c in unit.validate(plain) if c.reason == podfields.FORBIDDEN and "nestlab" in c.message]


def test_every_row_is_one_line_and_unique() -> None:
    paths = [row.path for row in podfields.ROWS]
    assert len(paths) == len(set(paths))
    source = (ROOT / "nestlab/api/kinds/podfields.py").read_text()
    for path in paths:
        assert re.search(rf'^    Row\("{re.escape(path)}", .*\),$', source, re.M), path


def test_the_docs_table_is_the_generated_one() -> None:
    docs = (ROOT / "docs/api.md").read_text()
    section = docs.split("<!-- podfields:begin -->\n", 1)[1].split("<!-- podfields:end -->", 1)[0]
    assert section == podfields.markdown(), "regenerate: python -m nestlab.api.podfieldsdoc --write"
    assert podfieldsdoc.with_table(docs, section) == docs
    printed = subprocess.run(
        [sys.executable, "-m", "nestlab.api.podfieldsdoc"], capture_output=True, text=True, check=True
    ).stdout
    assert printed == section


def test_resource_names_other_than_cpu_and_memory_are_refused_by_name() -> None:
    resources = {"limits": {"cpu": "1", "ephemeral-storage": "1Gi"}, "requests": {"memory": "64Mi"}}
    assert causes({"containers": [container(resources=resources)]}) == [
        f"spec.containers[0].resources.limits[ephemeral-storage]: {NOT_YET}",
        f"spec.containers[0].resources.requests[ephemeral-storage]: {NOT_YET}",  # defaulted from the limit
    ]


def test_a_template_follows_the_table_down_to_a_probes_kind() -> None:
    """httpGet probes run inside the pod (HONOURED); a gRPC one does not yet and is refused by name."""
    probes = {
        "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
        "livenessProbe": {"grpc": {"port": 9}},
    }
    obj = _workload(r.DEPLOYMENTS, {"containers": [container(**probes)]})
    unit = kinds.of(r.DEPLOYMENTS)
    unit.default(obj)
    found = [f"{c.field}: {c.message}" for c in unit.validate(obj)]
    assert found == [f"spec.template.spec.containers[0].livenessProbe.grpc: {NOT_YET}"]


SIZE_ON_DISK = f"Forbidden: {podfields.SIZE_ON_DISK_MSG}"


def test_an_emptydir_size_limit_on_disk_is_refused_by_name() -> None:
    """Nothing would enforce it on the ephemeral disk (upstream's kubelet evicts the pod): 422."""
    spec = {
        "containers": [container()],
        "volumes": [
            {"name": "scratch", "emptyDir": {"sizeLimit": "500Mi"}},
            {"name": "plain", "emptyDir": {}},
            {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
            {"name": "disk", "emptyDir": {"medium": "", "sizeLimit": "1Gi"}},
        ],
    }
    assert causes(spec) == [
        f"spec.volumes[0].emptyDir.sizeLimit: {SIZE_ON_DISK}",
        f"spec.volumes[3].emptyDir.sizeLimit: {SIZE_ON_DISK}",
    ]
    assert "medium: Memory" in podfields.SIZE_ON_DISK_MSG


def test_a_memory_emptydir_keeps_its_size_limit() -> None:
    """medium: Memory honours sizeLimit: the tmpfs's size, which the agent adds to the VM's memory."""
    spec = {
        "containers": [container()],
        "volumes": [{"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
    }
    assert causes(spec) == []
    assert agent_volumes.tmpfs_mib({"spec": spec}) == 64


def test_pod_templates_refuse_a_disk_size_limit_too() -> None:
    pod_spec = {
        "containers": [container()],
        "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
    }
    unit = kinds.of(r.DEPLOYMENTS)
    obj = _workload(r.DEPLOYMENTS, pod_spec)
    unit.default(obj)
    found = [f"{c.field}: {c.message}" for c in unit.validate(obj)]
    assert f"spec.template.spec.volumes[0].emptyDir.sizeLimit: {SIZE_ON_DISK}" in found


def test_the_docs_table_says_where_size_limit_works() -> None:
    table = podfields.markdown()
    assert (
        "| `volumes[].emptyDir.sizeLimit` | not yet: accepted values only | any, with medium: Memory |"
        in table
    )
