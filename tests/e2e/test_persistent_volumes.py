"""Persistent volumes from the lab datastore on the teaching lab (issue 13, item 3, "What it must show").

- a StatefulSet pod writes to the PVC its volumeClaimTemplate made (provisioned on the depot's
  datastore when the pod was scheduled: WaitForFirstConsumer), its host is stopped and declared
  out of service (upstream's non-graceful node shutdown), the pod comes back on another host and
  reads the same data; the VolumeAttachment moved with it (ReadWriteOnce: one host at a time);
- bad input: a PVC larger than the namespace's storage quota is refused with upstream's 403, and a
  PVC of a missing StorageClass stays Pending with a ProvisioningFailed Event;
- reclaimPolicy Delete: deleting the claim deletes its PersistentVolume.

The host-stop test restores the lab (untaints and starts the host, every Node Ready) so the next
module starts from a healthy lab.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.e2e.conftest import LiveLab, nestlab
from tests.e2e.labtools import (
    RESTORE_TIMEOUT_S,
    apply,
    condition,
    get_json,
    kubectl,
    nodes,
    placed_on,
    pod_json,
    wait_for,
    wait_lab_healthy,
)
from tests.e2e.services import CLIENT
from tests.e2e.workloads import LIMITS

Obj = dict[str, Any]
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute"
# the client image's shell: the marker is written once, on the first start, then only read
KEEP = (
    'busybox test -f /data/marker || echo "$MARK" > /data/marker; echo "MARKER $(cat /data/marker)"; '
    "trap 'exit 0' TERM; while true; do sleep 3600 & wait $!; done"
)


def statefulset(namespace: str, mark: str, avoid: list[str]) -> Obj:
    container = {
        "name": "db",
        "image": CLIENT,
        "command": ["sh", "-c", KEEP],
        "env": [{"name": "MARK", "value": mark}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "resources": LIMITS,
    }
    away = {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": avoid}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {
                    "containers": [container],
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [{"matchExpressions": [away]}]
                            }
                        }
                    },
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "64Mi"}},
                    },
                }
            ],
        },
    }


def claim(name: str, namespace: str, size: str, storage_class: str | None = None) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def running_on(lab: LiveLab, namespace: str, name: str) -> str:
    """The node the pod runs on ('' while it is not Running)."""
    pod = get_json(lab, "pods", "-n", namespace, "--field-selector", f"metadata.name={name}")["items"]
    if not pod or pod[0]["status"].get("phase") != "Running" or pod[0]["metadata"].get("deletionTimestamp"):
        return ""
    return str(pod[0]["spec"].get("nodeName", ""))


def marker(lab: LiveLab, namespace: str, name: str) -> str:
    out = kubectl(lab, "logs", name, "-n", namespace, check=False).stdout
    lines = [line.removeprefix("MARKER ") for line in out.splitlines() if line.startswith("MARKER ")]
    return lines[-1] if lines else ""


def attachments(lab: LiveLab, pv: str) -> list[Obj]:
    items = get_json(lab, "volumeattachments")["items"]
    return [a for a in items if a["spec"]["source"].get("persistentVolumeName") == pv]


def test_statefulset_volume_follows_its_pod_to_another_host(agents: LiveLab, namespace: str) -> None:
    lab = agents
    mark = uuid.uuid4().hex
    depot_host = placed_on(lab, "depot")  # stopping it would take the datastore and the registry away
    apply(lab, statefulset(namespace, mark, [depot_host]))
    wait_for(lambda: running_on(lab, namespace, "db-0") != "", "db-0 Running")
    wait_for(lambda: marker(lab, namespace, "db-0") == mark, "db-0 wrote and read its marker")
    host = running_on(lab, namespace, "db-0")
    pvc = get_json(lab, "pvc", "data-db-0", "-n", namespace)
    assert pvc["status"]["phase"] == "Bound", pvc["status"]
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == host
    pv = pvc["spec"]["volumeName"]
    first = attachments(lab, pv)
    assert [(a["spec"]["nodeName"], a["status"].get("attached")) for a in first] == [(host, True)], first

    nestlab("node", "stop", host, "--name", lab.name)
    try:
        wait_for(
            lambda: condition(get_json(lab, "node", host), "Ready") != "True",
            f"{host} NotReady",
            180,
            transient=True,
        )
        # Upstream's non-graceful node shutdown: the admin declares the host dead, so its pods are
        # force-deleted and their volumes released (the datastore ends the dead host's export).
        kubectl(lab, "taint", "node", host, OUT_OF_SERVICE)

        def moved() -> bool:
            on = running_on(lab, namespace, "db-0")
            return on not in ("", host) and marker(lab, namespace, "db-0") == mark

        wait_for(moved, "db-0 Running on another host, reading the marker it wrote", transient=True)
        now = running_on(lab, namespace, "db-0")
        assert now != depot_host
        moved_to = [(a["spec"]["nodeName"], a["status"].get("attached")) for a in attachments(lab, pv)]
        assert moved_to == [(now, True)], moved_to
        assert get_json(lab, "pvc", "data-db-0", "-n", namespace)["spec"]["volumeName"] == pv
    finally:
        kubectl(lab, "taint", "node", host, f"{OUT_OF_SERVICE}-", check=False)
        nestlab("node", "start", host, "--name", lab.name, timeout=RESTORE_TIMEOUT_S)
        wait_lab_healthy(lab)
    assert host in nodes(lab, "host")


def test_claims_bad_input_and_delete_reclaim(agents: LiveLab, namespace: str) -> None:
    lab = agents
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "storage", "namespace": namespace},
        "spec": {"hard": {"requests.storage": "100Mi", "persistentvolumeclaims": "2"}},
    }
    apply(lab, quota)
    wait_for(
        lambda: get_json(lab, "quota", "storage", "-n", namespace).get("status", {}).get("hard"), "quota"
    )
    big = kubectl(lab, "apply", "-f", "-", stdin=json.dumps(claim("big", namespace, "1Gi")), check=False)
    assert big.returncode != 0
    assert "exceeded quota: storage" in big.stderr, big.stderr
    assert "requests.storage=1Gi" in big.stderr, big.stderr

    apply(lab, claim("nowhere", namespace, "16Mi", "no-such-class"))

    def failed_event() -> bool:
        events = get_json(lab, "events", "-n", namespace)["items"]
        return any(
            e["reason"] == "ProvisioningFailed"
            and e["involvedObject"]["name"] == "nowhere"
            and 'storageclass.storage.k8s.io "no-such-class" not found' in e["message"]
            for e in events
        )

    wait_for(failed_event, "ProvisioningFailed Event for the missing StorageClass")
    assert get_json(lab, "pvc", "nowhere", "-n", namespace)["status"]["phase"] == "Pending"
    kubectl(lab, "delete", "pvc", "nowhere", "-n", namespace)

    # A claim used by a pod is provisioned (WaitForFirstConsumer), and Delete reclaim removes its PV.
    apply(lab, claim("used", namespace, "16Mi"))
    user = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "user", "namespace": namespace},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": CLIENT,
                    "command": ["sh", "-c", "echo hello > /v/f && cat /v/f"],
                    "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                    "resources": LIMITS,
                }
            ],
            "restartPolicy": "Never",
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "used"}}],
        },
    }
    apply(lab, user)
    wait_for(
        lambda: pod_json(lab, namespace, "user")["status"].get("phase") in ("Succeeded", "Failed"),
        "the claim's pod ran",
    )
    assert pod_json(lab, namespace, "user")["status"]["phase"] == "Succeeded"
    assert kubectl(lab, "logs", "user", "-n", namespace).stdout.strip() == "hello"
    pv = get_json(lab, "pvc", "used", "-n", namespace)["spec"]["volumeName"]
    kubectl(lab, "delete", "pod", "user", "-n", namespace)
    kubectl(lab, "delete", "pvc", "used", "-n", namespace)
    wait_for(
        lambda: pv not in {p["metadata"]["name"] for p in get_json(lab, "pv")["items"]},
        f"{pv} deleted with its claim (reclaimPolicy Delete)",
    )
