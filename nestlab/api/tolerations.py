"""Tolerations, as upstream matches and defaults them: shared by the API server and the controller.

Two pieces of upstream behaviour live here, pure so both sides agree on them:

- :func:`tolerates` is ``Toleration.ToleratesTaint`` (k8s.io/api/core/v1): how one toleration
  matches one taint. The NoExecute taint manager uses it to decide who is evicted.
- :func:`default_tolerations` is the DefaultTolerationSeconds admission plugin: on pod create it
  adds ``node.kubernetes.io/not-ready`` and ``node.kubernetes.io/unreachable`` NoExecute
  tolerations with a ``tolerationSeconds``, unless the pod already tolerates them. That is what
  makes a pod stay on a failed host for a while (in case it comes back) and then be evicted, and
  what ``kubectl get pod -o yaml`` shows on every pod of a real cluster.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

NOT_READY = "node.kubernetes.io/not-ready"
"""Taint of a node whose agent reports Ready=False (upstream ``v1.TaintNodeNotReady``)."""
UNREACHABLE = "node.kubernetes.io/unreachable"
"""Taint of a node whose heartbeat stopped: Ready=Unknown (upstream ``v1.TaintNodeUnreachable``)."""
NO_EXECUTE = "NoExecute"
NO_SCHEDULE = "NoSchedule"
UPSTREAM_DEFAULT_SECONDS = 300
"""kube-apiserver's --default-not-ready-toleration-seconds / --default-unreachable-toleration-seconds."""


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Whether ``toleration`` matches ``taint`` (upstream ``Toleration.ToleratesTaint``).

    An empty effect matches every effect, an empty key every key; ``Exists`` ignores the value,
    ``Equal`` (or no operator) compares it; any other operator matches nothing.
    """
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def _covers(toleration: Obj, key: str) -> bool:
    """The plugin's own test: a toleration of ``key`` (or of every key) for NoExecute (or every effect).

    Deliberately not :func:`tolerates`: upstream looks only at key and effect here, so a pod that
    tolerates ``not-ready`` with any operator or seconds keeps its own toleration untouched.
    """
    return (toleration.get("key") or "") in ("", key) and (toleration.get("effect") or "") in ("", NO_EXECUTE)


def default_tolerations(pod: Obj, not_ready_seconds: int, unreachable_seconds: int) -> None:
    """Add the not-ready/unreachable NoExecute tolerations a new pod lacks (DefaultTolerationSeconds).

    Mutates ``pod`` in place, appending after the pod's own tolerations in upstream's order
    (not-ready, then unreachable). A pod whose ``spec`` or ``spec.tolerations`` has the wrong type
    is left alone: validation refuses it with a message naming the field.
    """
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    current = spec.get("tolerations")
    if current is None:
        current = []
    if not isinstance(current, list):
        return
    existing = [t for t in current if isinstance(t, dict)]
    added = [
        {"key": key, "operator": "Exists", "effect": NO_EXECUTE, "tolerationSeconds": seconds}
        for key, seconds in ((NOT_READY, not_ready_seconds), (UNREACHABLE, unreachable_seconds))
        if not any(_covers(t, key) for t in existing)
    ]
    if added:
        spec["tolerations"] = [*current, *added]
