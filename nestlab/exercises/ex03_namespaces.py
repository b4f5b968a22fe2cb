"""Exercise 3, namespaces, quota and permissions: done when user ex03-dev exists and may edit the
vSphere Namespace ex03 (1 CPU, 512Mi, 2 pods) where pod web runs (docs/exercises/03-namespaces.md)."""

from __future__ import annotations

from nestlab.exercises.base import Exercise, Lab
from nestlab.exercises.common import delete_namespaces, pod_missing

NAMESPACE = "ex03"
USER = "ex03-dev"
LIMITS = {"limits.cpu": "1", "limits.memory": "512Mi", "pods": "2"}


def check(lab: Lab) -> list[str]:
    """What of the user, the Namespace, its quota, the permission and the pod is missing."""
    missing = []
    users = lab.nestlab("user", "list").split()
    if USER not in users:
        missing.append(f"there is no lab user {USER} (step 1)")
    if lab.get(f"/api/v1/namespaces/{NAMESPACE}") is None:
        return [*missing, f"namespace {NAMESPACE} does not exist (step 2)"]
    quota = lab.get(f"/api/v1/namespaces/{NAMESPACE}/resourcequotas/nestlab-limits")
    hard = ((quota or {}).get("spec") or {}).get("hard") or {}
    for key, value in LIMITS.items():
        if str(hard.get(key)) != value:
            missing.append(f"namespace {NAMESPACE}'s quota {key} is {hard.get(key)!r}, not {value} (step 2)")
    binding = lab.get(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/rolebindings/nestlab-edit")
    subjects = {str(s.get("name")) for s in ((binding or {}).get("subjects") or [])}
    if USER not in subjects:
        missing.append(f"{USER} may not edit namespace {NAMESPACE} (step 2: --edit {USER})")
    return missing + pod_missing(lab, NAMESPACE, "web", "step 5")


def reset(lab: Lab) -> None:
    """Delete namespace ex03 and user ex03-dev."""
    delete_namespaces(lab, NAMESPACE, force=True)
    if USER in lab.nestlab("user", "list").split():
        lab.nestlab("user", "remove", USER)


EXERCISE = Exercise(
    number=3,
    slug="namespaces",
    title="Namespaces, quota and permissions",
    minutes=15,
    check=check,
    reset=reset,
)
