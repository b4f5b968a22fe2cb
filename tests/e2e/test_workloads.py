"""Workloads that outlive their pods, on the teaching lab, with modern kubectl and Debian's 1.20.

A vSphere Pod is never vMotioned or restarted elsewhere: Deployments, StatefulSets and Jobs keep
an application up by creating new pods. Checked here (issue 11, "What it must show"):

- a 3-replica Deployment spreads over the 3 hosts; ``--cascade=orphan`` keeps its ReplicaSet and
  pods, a foreground delete of the ReplicaSet takes its pods, a background delete of a Deployment
  takes every ReplicaSet and pod it had;
- a rolling update with maxUnavailable 0 never has fewer than 3 ready replicas, and undo returns;
- a Job (completions 5, parallelism 2) completes, a CronJob fires.

The rest of the issue's list rides on the exercises that make the same disruption
(tests/e2e/riders.py): maintenance mode (the eviction API's 429 naming the budget, a blocked then
successful ``enter``, never fewer than 2 ready replicas) on exercise 10's, and the host failure
(replicas and StatefulSet pods back, pinned pods restarted in place, the Service by name from a
surviving host, no pod Running without its QEMU) on exercise 9's host stop. Other refusals of the
eviction API: test_workload_refusals.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import KUBECTL, LiveLab
from tests.e2e.labtools import (
    POD_TIMEOUT_S,
    LabApi,
    apply,
    get_json,
    kubectl,
    wait_for,
)
from tests.e2e.workloads import (
    JOB,
    LIMITS,
    NEW_WEB,
    SURGE,
    WEB,
    PodWatcher,
    deployment,
    owned_by,
    pod_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.root]
Obj = dict[str, Any]

CRON_FIRST_JOB_S = 150.0  # "*/1 * * * *" fires within 60 s of creation; margin for a loaded controller


def pods(lab: LiveLab, namespace: str, selector: str, binary: str = KUBECTL) -> list[Obj]:
    return list(get_json(lab, "pods", "-n", namespace, "-l", selector, binary=binary)["items"])


def ready_on(lab: LiveLab, namespace: str, selector: str) -> dict[str, str]:
    """name -> host of the Ready (and not deleted) pods matching ``selector``."""
    return {
        p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods(lab, namespace, selector) if pod_ready(p)
    }


def rollout_status(lab: LiveLab, namespace: str, what: str, binary: str = KUBECTL) -> None:
    kubectl(lab, "rollout", "status", what, "-n", namespace, f"--timeout={POD_TIMEOUT_S:.0f}s", binary=binary)


def test_deployment_spreads_and_deletion_orphans_or_cascades(
    agents: LiveLab, namespace: str, kubectl_binary: str
) -> None:
    apply(agents, deployment("hello", namespace), binary=kubectl_binary)
    rollout_status(agents, namespace, "deployment/hello", kubectl_binary)
    placed = ready_on(agents, namespace, "app=hello")
    assert len(placed) == 3, placed
    assert len(set(placed.values())) == 3, f"not one replica per host: {placed}"
    wide = kubectl(agents, "get", "pods", "-n", namespace, "-o", "wide", binary=kubectl_binary).stdout
    assert all(name in wide and host in wide for name, host in placed.items()), wide

    (rs,) = get_json(agents, "replicasets", "-n", namespace, "-l", "app=hello")["items"]
    assert owned_by(rs, "Deployment", "hello"), rs["metadata"]
    rs_name = rs["metadata"]["name"]
    uids = {p["metadata"]["uid"] for p in pods(agents, namespace, "app=hello")}
    kubectl(
        agents, "delete", "deployment", "hello", "-n", namespace, "--cascade=orphan", binary=kubectl_binary
    )

    def orphaned() -> bool:  # the garbage collector drops the owner reference, keeps the object
        found = get_json(agents, "replicasets", "-n", namespace)["items"]
        return [r["metadata"]["name"] for r in found if not owned_by(r, "Deployment")] == [rs_name]

    wait_for(orphaned, f"ReplicaSet {rs_name} kept without its Deployment", timeout=120)
    assert not get_json(agents, "deployments", "-n", namespace)["items"]
    kept = pods(agents, namespace, "app=hello")
    assert {p["metadata"]["uid"] for p in kept} == uids, "orphan took pods"
    assert all(owned_by(p, "ReplicaSet", rs_name) for p in kept), "the pods lost their ReplicaSet"

    kubectl(
        agents, "delete", "replicaset", rs_name, "-n", namespace, "--cascade=foreground", "--timeout=300s",
        binary=kubectl_binary,
    )  # fmt: skip
    wait_for(lambda: not pods(agents, namespace, "app=hello"), "the ReplicaSet's pods deleted", timeout=300)


def test_rolling_update_never_drops_below_three_ready_and_undo_returns(
    agents: LiveLab, namespace: str, kubectl_old: str
) -> None:
    old = kubectl_old
    apply(agents, deployment("web", namespace, strategy=SURGE))
    rollout_status(agents, namespace, "deployment/web")

    def images() -> set[str]:
        return {
            p["spec"]["containers"][0]["image"] for p in pods(agents, namespace, "app=web") if pod_ready(p)
        }

    with PodWatcher(LabApi(agents), namespace, "app=web") as watcher:
        kubectl(agents, "set", "image", "deployment/web", f"web={NEW_WEB}", "-n", namespace)
        rollout_status(agents, namespace, "deployment/web")
        wait_for(lambda: images() == {NEW_WEB}, "only new-image pods ready", timeout=120)
        kubectl(agents, "rollout", "undo", "deployment/web", "-n", namespace, binary=old)
        rollout_status(agents, namespace, "deployment/web", old)
        wait_for(lambda: images() == {WEB}, "only old-image pods ready after undo", timeout=120)
    assert watcher.lowest >= 3, f"ready replicas fell to {watcher.lowest}: {watcher.timeline()}"
    history = kubectl(agents, "rollout", "history", "deployment/web", "-n", namespace, binary=old).stdout
    revisions = [line.split()[0] for line in history.splitlines() if line[:1].isdigit()]
    assert revisions == ["2", "3"], history  # undo makes revision 1's template revision 3, as upstream

    assert len(get_json(agents, "replicasets", "-n", namespace, "-l", "app=web")["items"]) == 2
    kubectl(agents, "delete", "deployment", "web", "-n", namespace)  # background propagation
    wait_for(
        lambda: (
            not get_json(agents, "replicasets", "-n", namespace)["items"]
            and not pods(agents, namespace, "app=web")
        ),
        "every ReplicaSet and pod of the deleted Deployment gone",
        timeout=300,
    )


def test_job_completes_five_two_at_a_time_and_cronjob_fires(
    agents: LiveLab, namespace: str, kubectl_old: str
) -> None:
    old = kubectl_old
    pod_template = {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "job", "image": JOB, "resources": LIMITS}]}
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "count", "namespace": namespace},
        "spec": {"completions": 5, "parallelism": 2, "backoffLimit": 2, "template": pod_template},
    }

    def active(pod: Obj) -> bool:  # what the Job controller counts against parallelism
        phase = (pod.get("status") or {}).get("phase")
        deleting = pod["metadata"].get("deletionTimestamp")
        return owned_by(pod, "Job", "count") and phase not in ("Succeeded", "Failed") and not deleting

    with PodWatcher(LabApi(agents), namespace, count=active) as watcher:
        apply(agents, job)
        kubectl(
            agents,
            "wait",
            "--for=condition=complete",
            "job/count",
            "-n",
            namespace,
            f"--timeout={POD_TIMEOUT_S:.0f}s",
        )
    kubectl(
        agents, "wait", "--for=condition=complete", "job/count", "-n", namespace, "--timeout=30s", binary=old
    )
    assert (
        kubectl(
            agents, "get", "job", "count", "-n", namespace, "-o", "jsonpath={.status.succeeded}", binary=old
        ).stdout
        == "5"
    )
    assert watcher.highest <= 2, f"more than parallelism 2 pods at once: {watcher.timeline()}"
    succeeded = [
        p for p in get_json(agents, "pods", "-n", namespace)["items"]
        if owned_by(p, "Job", "count") and p["status"].get("phase") == "Succeeded"
    ]  # fmt: skip
    assert len(succeeded) == 5

    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "tick", "namespace": namespace},
        "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": pod_template}}},
    }
    apply(agents, cron, binary=old)
    wait_for(
        lambda: any(
            owned_by(j, "CronJob", "tick") for j in get_json(agents, "jobs", "-n", namespace)["items"]
        ),
        "the CronJob's first Job",
        timeout=CRON_FIRST_JOB_S,
    )
    assert kubectl(
        agents, "get", "cronjob", "tick", "-n", namespace, "-o", "jsonpath={.status.lastScheduleTime}"
    ).stdout
    kubectl(agents, "delete", "cronjob", "tick", "-n", namespace)
