"""Exercise 5, a rolling update: done when Deployment ex05/web runs 3 ready replicas of ``web:2``
and its history shows it came from ``web:1`` (docs/exercises/05-rolling-update.md).

The check reads what the Deployment controller wrote, as ``kubectl rollout status`` and
``rollout history`` do: the Deployment's status for "rolled out", and the ReplicaSets it owns
(one per template revision, kept at 0 replicas when old) for the history.
"""

from __future__ import annotations

from nestlab.exercises.base import Exercise, Lab, Obj
from nestlab.exercises.common import delete_namespaces

NAMESPACE = "ex05"
NAME = "web"
REPLICAS = 3
OLD_IMAGE = "depot:5000/nestlab/web:1"
NEW_IMAGE = "depot:5000/nestlab/web:2"
DEPLOYMENT = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{NAME}"
REPLICASETS = f"/apis/apps/v1/namespaces/{NAMESPACE}/replicasets"


def images(template_owner: Obj) -> list[str]:
    """The container images of a Deployment's or ReplicaSet's pod template."""
    template = (template_owner.get("spec") or {}).get("template") or {}
    containers = (template.get("spec") or {}).get("containers") or []
    return [str(c.get("image", "")) for c in containers]


def owned_replicasets(lab: Lab, deployment: Obj) -> list[Obj]:
    """The ReplicaSets whose controller is ``deployment`` (its revisions)."""
    uid = (deployment.get("metadata") or {}).get("uid")
    found = []
    for replicaset in lab.items(REPLICASETS):
        owners = (replicaset.get("metadata") or {}).get("ownerReferences") or []
        if any(o.get("uid") == uid and o.get("controller") for o in owners):
            found.append(replicaset)
    return found


def rollout_missing(deployment: Obj) -> list[str]:
    """What keeps the Deployment from being rolled out to 3 ready replicas (``rollout status``)."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    wanted = spec.get("replicas", 1)
    if wanted != REPLICAS:
        return [
            f"deployment web in {NAMESPACE} asks for {wanted} replicas, not {REPLICAS} "
            "(step 4 scales it back)"
        ]
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    counts = {key: int(status.get(key) or 0) for key in ("updatedReplicas", "availableReplicas", "replicas")}
    if status.get("observedGeneration", 0) < generation or counts != dict.fromkeys(counts, REPLICAS):
        return [
            f"deployment web in {NAMESPACE} has not finished rolling out: {counts['updatedReplicas']} of "
            f"{REPLICAS} replicas updated, {counts['availableReplicas']} available, "
            f"{counts['replicas']} in all "
            f"(wait with: kubectl -n {NAMESPACE} rollout status deployment/web)"
        ]
    return []


def check(lab: Lab) -> list[str]:
    """What of the Deployment, its update to web:2 and its history is still missing."""
    if lab.get(f"/api/v1/namespaces/{NAMESPACE}") is None:
        return [f"namespace {NAMESPACE} does not exist yet (step 1)"]
    deployment = lab.get(DEPLOYMENT)
    if deployment is None:
        return [f"deployment web in {NAMESPACE} does not exist yet (step 1)"]
    missing = []
    running = images(deployment)
    if running != [NEW_IMAGE]:
        missing.append(
            f"deployment web in {NAMESPACE} does not run image web:2 yet "
            f"(its template has {', '.join(running) or 'no container'}; step 5)"
        )
    missing.extend(rollout_missing(deployment))
    # A revision with web:1 beside a template of web:2 means at least 2 revisions: the update happened.
    if not any(images(r) == [OLD_IMAGE] for r in owned_replicasets(lab, deployment)):
        missing.append(
            f"the rollout history of deployment web in {NAMESPACE} has no revision with web:1 "
            "(create it with web:1 in step 1, then update it in step 5)"
        )
    return missing


def reset(lab: Lab) -> None:
    """Delete namespace ex05 (the Deployment, its ReplicaSets and pod VMs with it).

    Forced (:func:`delete_namespaces`): the web server ignores SIGTERM, so a graceful delete would
    wait out each pod's 30 s grace period.
    """
    delete_namespaces(lab, NAMESPACE, force=True)


EXERCISE = Exercise(
    number=5, slug="rolling-update", title="A rolling update", minutes=15, check=check, reset=reset
)
