"""Exercise 10, maintenance mode: done when Deployment ex10/web is guarded by PodDisruptionBudget
ex10/web (relaxed to ``minAvailable: 2``), its pod on esx-03 was evicted and replaced elsewhere
(no web pod left on esx-03, more pods created than the 3 replicas), esx-03 is out of maintenance
mode again and the 3 replicas are ready (docs/exercises/10-maintenance-mode.md).

Evictions leave no Event of their own (upstream neither), so the check reads what they leave
behind: where the pods run now and the ReplicaSet's ``SuccessfulCreate`` Events.
"""

from __future__ import annotations

from nestlab.exercises.base import Exercise, Lab
from nestlab.exercises.common import delete_namespaces
from nestlab.exercises.ex09_host_failure import restore_lab

NAMESPACE = "ex10"
HOST = "esx-03"
REPLICAS = 3


def check(lab: Lab) -> list[str]:
    """What of the budget, the evictions and the end of maintenance is still missing."""
    deployment = lab.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/web")
    if deployment is None:
        return ["there is no Deployment ex10/web: create it with 3 replicas (step 1)"]
    missing: list[str] = []
    budget = lab.get(f"/apis/policy/v1/namespaces/{NAMESPACE}/poddisruptionbudgets/web")
    if budget is None:
        missing.append("there is no PodDisruptionBudget ex10/web (step 2)")
    elif str((budget.get("spec") or {}).get("minAvailable")) != "2":
        found = (budget.get("spec") or {}).get("minAvailable")
        missing.append(f"PodDisruptionBudget ex10/web has minAvailable {found}, not 2 (step 4)")
    pods = [
        p
        for p in lab.items(f"/api/v1/namespaces/{NAMESPACE}/pods")
        if ((p.get("metadata") or {}).get("labels") or {}).get("app") == "web"
        and not (p.get("metadata") or {}).get("deletionTimestamp")
    ]
    if any((p.get("spec") or {}).get("nodeName") == HOST for p in pods):
        missing.append(f"a pod of ex10/web still runs on {HOST}: put it into maintenance mode (step 5)")
    created = [
        e
        for e in lab.items(f"/api/v1/namespaces/{NAMESPACE}/events")
        if e.get("reason") == "SuccessfulCreate"
        and (e.get("involvedObject") or {}).get("kind") == "ReplicaSet"
    ]
    if len(created) <= REPLICAS:
        missing.append("no pod of ex10/web was evicted and replaced yet (step 5)")
    node = lab.get(f"/api/v1/nodes/{HOST}")
    if node is None or (node.get("spec") or {}).get("unschedulable"):
        missing.append(
            f"{HOST} is still in maintenance mode (SchedulingDisabled): "
            f"`.venv/bin/nestlab host maintenance exit {HOST}` (step 7)"
        )
    ready = (deployment.get("status") or {}).get("readyReplicas") or 0
    if ready < REPLICAS:
        missing.append(f"Deployment ex10/web has {ready} of 3 replicas ready")
    return missing


def reset(lab: Lab) -> None:
    """Take esx-03 out of maintenance mode (and restore anything else), delete namespace ex10."""
    restore_lab(lab)
    delete_namespaces(lab, NAMESPACE, force=True)


EXERCISE = Exercise(
    number=10,
    slug="maintenance-mode",
    title="Maintenance mode",
    minutes=15,
    check=check,
    reset=reset,
    destructive=True,
)
