"""Exercise 7, network policy: done when namespace ex07 has a default-deny ingress policy and one
that lets pods labelled ``app=frontend`` reach the web pods, and the hosts' firewall really lets
``frontend`` in and keeps ``other`` out (docs/exercises/07-network-policy.md).

The check reads the policies as the learner wrote them (any names), then fetches from both client
pods, the way step 4 does: objects alone would not show that the hosts enforce them.
"""

from __future__ import annotations

from typing import Any

from nestlab.exercises.base import Exercise, Lab, Obj
from nestlab.exercises.common import delete_namespaces, pod, pod_missing

NAMESPACE = "ex07"
POLICIES = f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/networkpolicies"
CLIENTS = {"frontend": "frontend", "other": "other"}
"""Client pod -> the value its ``app`` label must have."""
FETCH = "timeout 5 wget -q -O- http://web/host 2>/dev/null || echo blocked"  # busybox wget -T crashes


def _selects_everything(selector: Any) -> bool:
    return not (selector or {}).get("matchLabels") and not (selector or {}).get("matchExpressions")


def is_default_deny(policy: Obj) -> bool:
    """Selects every pod of the namespace, isolates ingress, allows nothing in."""
    spec = policy.get("spec") or {}
    return (
        _selects_everything(spec.get("podSelector"))
        and "Ingress" in (spec.get("policyTypes") or ["Ingress"])
        and not spec.get("ingress")
    )


def allows_frontend(policy: Obj) -> bool:
    """Selects the web pods and lets in pods labelled app=frontend of this namespace."""
    spec = policy.get("spec") or {}
    if ((spec.get("podSelector") or {}).get("matchLabels") or {}) != {"app": "web"}:
        return False
    for rule in spec.get("ingress") or []:
        for peer in rule.get("from") or []:
            labels = (peer.get("podSelector") or {}).get("matchLabels") or {}
            if labels.get("app") == "frontend" and "namespaceSelector" not in peer:
                return True
    return False


def clients_missing(lab: Lab) -> list[str]:
    """What is wrong with the two client pods (running, labelled as step 1 made them)."""
    missing: list[str] = []
    for name, app in CLIENTS.items():
        not_running = pod_missing(lab, NAMESPACE, name, "step 1")
        found = pod(lab, NAMESPACE, name)
        if not_running or found is None:
            missing.extend(not_running)
            continue
        label = ((found.get("metadata") or {}).get("labels") or {}).get("app")
        if label != app:
            missing.append(
                f"pod {name} in {NAMESPACE} is labelled app={label}, not app={app} "
                f"(kubectl -n {NAMESPACE} label pod {name} app={app} --overwrite)"
            )
    return missing


def fetch(lab: Lab, client: str) -> str:
    """What ``client`` gets from http://web/host: a pod name, or ``blocked``."""
    out = lab.kubectl("-n", NAMESPACE, "exec", client, "--", "sh", "-c", FETCH, check=False)
    lines = out.strip().splitlines()
    return lines[-1].strip() if lines else "no output: kubectl exec failed; is the pod's host up?"


def check(lab: Lab) -> list[str]:
    """What of the policies, the clients and the enforcement is still missing."""
    if lab.get(f"/api/v1/namespaces/{NAMESPACE}") is None:
        return [f"namespace {NAMESPACE} does not exist yet (step 1)"]
    missing = [
        f"there is no {kind} web in {NAMESPACE} (step 1)"
        for kind, path in (
            ("deployment", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/web"),
            ("service", f"/api/v1/namespaces/{NAMESPACE}/services/web"),
        )
        if lab.get(path) is None
    ]
    missing.extend(clients_missing(lab))
    policies = lab.items(POLICIES)
    if not any(is_default_deny(p) for p in policies):
        missing.append(
            f"no default-deny NetworkPolicy in {NAMESPACE} (empty podSelector, policyTypes [Ingress], "
            "no ingress rules; step 3)"
        )
    if not any(allows_frontend(p) for p in policies):
        missing.append(
            f"no NetworkPolicy in {NAMESPACE} lets pods labelled app=frontend reach the web pods (step 4)"
        )
    if missing:
        return missing
    got = fetch(lab, "frontend")
    if not got.startswith("web-"):
        missing.append(f"pod frontend in {NAMESPACE} cannot reach http://web/host (it got: {got})")
    got = fetch(lab, "other")
    if got != "blocked":
        missing.append(f"pod other in {NAMESPACE} still reaches http://web/host (it got: {got})")
    return missing


def reset(lab: Lab) -> None:
    """Delete namespace ex07 (policies, pods and their firewall rules on every host with it).

    Forced (:func:`delete_namespaces`): the web server ignores SIGTERM, so a graceful delete would
    wait out each pod's 30 s grace period.
    """
    delete_namespaces(lab, NAMESPACE, force=True)


EXERCISE = Exercise(
    number=7,
    slug="network-policy",
    title="Network policy, the distributed firewall",
    minutes=15,
    check=check,
    reset=reset,
)
