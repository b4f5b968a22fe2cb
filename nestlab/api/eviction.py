"""The ``pods/eviction`` subresource: a delete that asks the pod's PodDisruptionBudget first.

``kubectl drain`` and ``nestlab host maintenance enter`` evict instead of deleting so that an
application keeps the replicas its budget promises: the API server refuses with 429
TooManyRequests, naming the budget, while the budget allows no disruption, and the client retries.
The rules follow upstream's ``pkg/registry/core/pod/storage/eviction.go``:

- a pod that is Pending, Succeeded, Failed or already being deleted is deleted without looking
  at any budget (it is not serving, or already disrupted);
- more than one budget selecting the pod is a 500 (upstream does not support it either);
- a budget whose status the disruption controller has not yet computed for its current
  generation answers 429 ("still being processed");
- an unready pod is deleted without spending the budget when the policy allows it
  (``unhealthyPodEvictionPolicy`` AlwaysAllow, or IfHealthyBudget while the budget is met);
- otherwise ``status.disruptionsAllowed`` is decremented and the pod recorded in
  ``status.disruptedPods`` by a compare-and-swap on the budget, and only then is the pod deleted
  (gracefully, with the Eviction's deleteOptions) after being marked DisruptionTarget.

The decisions are pure functions of (pod, budgets, time); :func:`evict` is the thin I/O around
them. Selector, readiness and condition helpers live here too, because the disruption controller
must read a budget exactly as the eviction does.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nestlab.api import status
from nestlab.api.registry import Registry
from nestlab.api.resources import PDBS, PODS
from nestlab.api.status import ApiError, Cause, Details
from nestlab.api.store import Obj

EVICTION_VERSIONS = ("policy/v1", "policy/v1beta1")  # kubectl 1.20 still sends v1beta1
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"  # policyv1.DisruptionBudgetCause
DISRUPTION_ALLOWED = "DisruptionAllowed"
SUFFICIENT_PODS, INSUFFICIENT_PODS = "SufficientPods", "InsufficientPods"
ALWAYS_ALLOW, IF_HEALTHY_BUDGET = "AlwaysAllow", "IfHealthyBudget"
VIOLATES_BUDGET = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE_BUDGETS = (
    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
)
MAX_DISRUPTED_PODS = 2000  # upstream MaxDisruptedPodSize: evictions the controller has not confirmed
PROCESSING_RETRY_S = 10  # upstream's Retry-After while a budget is "still being processed"
_RETRIES = 20  # upstream EvictionsRetry steps for compare-and-swap on a budget or pod


def timestamp(moment: datetime) -> str:
    """``moment`` as Kubernetes writes times (RFC 3339, seconds, Z)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime | None:
    """A Kubernetes timestamp, or None when it is not one."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def selector_matches(selector: Any, labels: dict[str, str], *, empty_matches_all: bool) -> bool:
    """Whether a metav1.LabelSelector selects ``labels``.

    A null selector selects nothing. An empty one (``{}``) selects everything for the disruption
    controller (policy/v1) but nothing for the eviction, which upstream guards against a budget
    that "creeps in" with an empty selector; callers say which they are. An invalid selector
    selects nothing.
    """
    if not isinstance(selector, dict):
        return False
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not isinstance(match_labels, dict) or not isinstance(expressions, list):
        return False
    if not match_labels and not expressions:
        return empty_matches_all
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    return all(_expression_matches(e, labels) for e in expressions)


def _expression_matches(expression: Any, labels: dict[str, str]) -> bool:
    if not isinstance(expression, dict):
        return False
    key, operator = expression.get("key"), expression.get("operator")
    values = expression.get("values") or []
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False  # an unknown operator makes the selector invalid: it selects nothing


def labels_of(obj: Obj) -> dict[str, str]:
    """The object's labels (empty when absent)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, dict) else {}


def pod_ready(pod: Obj) -> bool:
    """upstream IsPodReady: the Ready condition is True."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def set_condition(conditions: list[Obj], condition: Obj, now: datetime) -> list[Obj]:
    """upstream meta.SetStatusCondition: replace the condition of the same type, keeping its
    lastTransitionTime unless the status changed."""
    result, found = [], False
    for current in conditions:
        if current.get("type") != condition["type"]:
            result.append(current)
            continue
        found = True
        merged = {**condition, "lastTransitionTime": current.get("lastTransitionTime") or timestamp(now)}
        if current.get("status") != condition["status"]:
            merged["lastTransitionTime"] = timestamp(now)
        result.append(merged)
    if not found:
        result.append({**condition, "lastTransitionTime": timestamp(now)})
    return result


def disruption_condition(pdb_status: Obj, now: datetime) -> list[Obj]:
    """upstream UpdateDisruptionAllowedCondition: the conditions with DisruptionAllowed refreshed."""
    allowed = int(pdb_status.get("disruptionsAllowed") or 0) > 0
    condition = {
        "type": DISRUPTION_ALLOWED,
        "status": "True" if allowed else "False",
        "reason": SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS,
        "message": "",
        "observedGeneration": int(pdb_status.get("observedGeneration") or 0),
    }
    return set_condition(list(pdb_status.get("conditions") or []), condition, now)


def generation(obj: Obj) -> int:
    """metadata.generation (1 when the server has not set one: a new object's generation)."""
    return int((obj.get("metadata") or {}).get("generation") or 1)


def ignores_budgets(pod: Obj) -> bool:
    """upstream canIgnorePDB: not serving (Pending), finished, or already being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    deleting = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    return phase in ("Pending", "Succeeded", "Failed") or deleting


def enforces_version(pod: Obj) -> bool:
    """upstream shouldEnforceResourceVersion: pin the delete to the pod we judged, unless finished."""
    phase = (pod.get("status") or {}).get("phase")
    deleting = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    return phase not in ("Succeeded", "Failed") and not deleting


def budgets_for(pod: Obj, pdbs: list[Obj]) -> list[Obj]:
    """The budgets of the pod's namespace whose selector selects it (empty selectors: none)."""
    namespace, labels = pod["metadata"].get("namespace"), labels_of(pod)
    return [
        pdb
        for pdb in pdbs
        if pdb["metadata"].get("namespace") == namespace
        and selector_matches((pdb.get("spec") or {}).get("selector"), labels, empty_matches_all=False)
    ]


def still_processing(name: str) -> ApiError:
    """429 while the disruption controller has not computed the budget (createTooManyRequestsError)."""
    cause = Cause(
        "", f"The disruption budget {name} is still being processed by the server.", DISRUPTION_BUDGET_CAUSE
    )
    return ApiError(
        429, "TooManyRequests", VIOLATES_BUDGET, Details(causes=(cause,), retry_after=PROCESSING_RETRY_S)
    )


def upstream_shortfall(pdb: Obj) -> str:
    """Why the budget allows no disruption, in upstream's words (the 429's cause message, kept
    byte for byte: clients and ``kubectl`` scripts match it)."""
    pdb_status = pdb.get("status") or {}
    desired, current = int(pdb_status.get("desiredHealthy") or 0), int(pdb_status.get("currentHealthy") or 0)
    name = pdb["metadata"]["name"]
    return f"The disruption budget {name} needs {desired} healthy pods and has {current} currently"


def shortfall(pdb: Obj) -> str:
    """Upstream's words, then what they leave out, for the person waiting on a drain.

    "needs 3 healthy pods and has 3 currently" reads as a contradiction: the budget counts the
    pods left *after* the eviction, so it is the 2 that would remain that fall short. Say that,
    say where the number lives (``status.disruptionsAllowed``) and what unblocks it.
    """
    pdb_status = pdb.get("status") or {}
    desired, current = int(pdb_status.get("desiredHealthy") or 0), int(pdb_status.get("currentHealthy") or 0)
    allowed = int(pdb_status.get("disruptionsAllowed") or 0)
    pending = len(pdb_status.get("disruptedPods") or {})
    if current > desired and pending:
        why = (
            f"{pending} eviction(s) it already granted are not yet confirmed by the disruption controller; "
            "retry in a few seconds"
        )
    else:
        why = (
            f"evicting one more pod would leave {max(current - 1, 0)} healthy, fewer than the {desired} it "
            "needs; wait until more of its pods are Ready, scale the workload up, or relax the budget's "
            "minAvailable/maxUnavailable"
        )
    return (
        f"{upstream_shortfall(pdb)}: it allows {allowed} disruptions now (status.disruptionsAllowed), {why}"
    )


def violates(pdb: Obj) -> ApiError:
    """429 naming the budget and its numbers, in upstream's words (``kubectl drain`` prints only the
    message; ``nestlab host maintenance`` adds :func:`shortfall`'s explanation)."""
    cause = Cause("", upstream_shortfall(pdb), DISRUPTION_BUDGET_CAUSE)
    return ApiError(429, "TooManyRequests", VIOLATES_BUDGET, Details(causes=(cause,)))


@dataclass(frozen=True)
class Verdict:
    """What to do with one eviction request, decided from the pod and its budgets."""

    budget: Obj | None = None
    """The one budget guarding the pod (None: no budget applies)."""
    spend: bool = False
    """Whether the budget must be decremented (checkAndDecrement) before the delete."""
    pin: bool = False
    """Whether the delete is pinned to the judged pod's resourceVersion (unready pod, budget kept)."""
    error: ApiError | None = field(default=None)
    """A refusal to answer instead of deleting."""


def judge(pod: Obj, pdbs: list[Obj]) -> Verdict:
    """The verdict for a pod that cannot ignore budgets (see :func:`ignores_budgets`)."""
    matching = budgets_for(pod, pdbs)
    if len(matching) > 1:
        return Verdict(error=ApiError(500, "", MULTIPLE_BUDGETS))
    if not matching:
        return Verdict()
    pdb = matching[0]
    if not pod_ready(pod):
        policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") or IF_HEALTHY_BUDGET
        pdb_status = pdb.get("status") or {}
        healthy, desired = (
            int(pdb_status.get("currentHealthy") or 0),
            int(pdb_status.get("desiredHealthy") or 0),
        )
        if policy == ALWAYS_ALLOW or (healthy >= desired > 0):
            # An unready pod does not count towards currentHealthy: deleting it disrupts nothing.
            return Verdict(budget=pdb, pin=True)
    return Verdict(budget=pdb, spend=True)


def decrement(pdb: Obj, pod_name: str, now: datetime, *, dry_run: bool = False) -> Obj:
    """upstream checkAndDecrement: the budget with one disruption spent on ``pod_name``, or the refusal."""
    name = pdb["metadata"]["name"]
    pdb_status = dict(pdb.get("status") or {})
    allowed = int(pdb_status.get("disruptionsAllowed") or 0)
    if int(pdb_status.get("observedGeneration") or 0) < generation(pdb):
        raise still_processing(name)
    if allowed < 0:
        raise status.admission_forbidden(
            "poddisruptionbudget", "policy", name, "pdb disruptions allowed is negative"
        )
    disrupted = dict(pdb_status.get("disruptedPods") or {})
    if len(disrupted) > MAX_DISRUPTED_PODS:
        raise status.admission_forbidden(
            "poddisruptionbudget",
            "policy",
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        )
    if allowed == 0:
        raise violates(pdb)
    pdb_status["disruptionsAllowed"] = allowed - 1
    if allowed - 1 == 0:
        pdb_status["conditions"] = disruption_condition(pdb_status, now)
    if not dry_run:
        disrupted[pod_name] = timestamp(now)
        pdb_status["disruptedPods"] = disrupted
    spent = copy.deepcopy(pdb)
    spent["status"] = pdb_status
    return spent


def parse_eviction(name: str, body: Any) -> Obj:
    """The Eviction's deleteOptions (validated), or a 400 like upstream's decoding and checks."""
    if not isinstance(body, dict):
        raise status.bad_request("the body must be an Eviction object")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind not in (None, "Eviction") or api_version not in (None, *EVICTION_VERSIONS):
        raise status.bad_request(
            f"not a Eviction object: {api_version}, Kind={kind} (this subresource takes policy/v1 Eviction)"
        )
    meta = body.get("metadata") or {}
    if not isinstance(meta, dict) or meta.get("name") != name:
        raise status.bad_request("name in URL does not match name in Eviction object")
    options = body.get("deleteOptions") or {}
    if not isinstance(options, dict):
        raise status.bad_request("deleteOptions must be a DeleteOptions object")
    return copy.deepcopy(options)


def _dry_run(options: Obj) -> bool:
    dry = options.get("dryRun") or []
    return isinstance(dry, list) and "All" in dry


def _rv_unset(options: Obj) -> bool:
    return not (options.get("preconditions") or {}).get("resourceVersion")


def _pinned(options: Obj, version: str) -> Obj:
    pinned = copy.deepcopy(options)
    pinned["preconditions"] = {**(pinned.get("preconditions") or {}), "resourceVersion": version}
    return pinned


SUCCESS: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


async def evict(registry: Registry, namespace: str, name: str, body: Any) -> Obj:
    """POST pods/<name>/eviction: delete the pod if its budget allows; the Status to answer (201)."""
    options = parse_eviction(name, body)
    dry_run = _dry_run(options)
    pods = registry.dry_run() if dry_run else registry
    retry = _rv_unset(options)
    pod: Obj = {}
    for attempt in range(_RETRIES):
        pod = await registry.get(PODS, namespace, name)
        if not ignores_budgets(pod):
            break
        delete_options = options
        if enforces_version(pod) and retry:
            delete_options = _pinned(options, pod["metadata"]["resourceVersion"])
        try:
            await pods.delete(PODS, namespace, name, delete_options)
        except ApiError as exc:
            if exc.reason == "Conflict" and retry and attempt + 1 < _RETRIES:
                continue
            raise
        return dict(SUCCESS)
    pdbs = (await registry.list(PDBS, namespace, lambda _obj: True))["items"]
    verdict = judge(pod, pdbs)
    if verdict.error is not None:
        raise verdict.error
    if verdict.spend and verdict.budget is not None:
        await _spend(registry, namespace, verdict.budget, name, dry_run=dry_run)
    delete_options = _pinned(options, pod["metadata"]["resourceVersion"]) if verdict.pin else options
    try:
        await _delete(pods, namespace, name, delete_options, dry_run=dry_run)
    except ApiError as exc:
        if exc.reason == "Conflict" and verdict.pin and verdict.budget is not None and retry:
            # The unready pod changed (became ready?) since it was judged: let the client retry.
            raise still_processing(verdict.budget["metadata"]["name"]) from exc
        raise
    return dict(SUCCESS)


async def _spend(registry: Registry, namespace: str, pdb: Obj, pod_name: str, *, dry_run: bool) -> None:
    """Decrement the budget by compare-and-swap, re-reading it after each lost race."""
    name = pdb["metadata"]["name"]
    for _ in range(_RETRIES):
        spent = decrement(pdb, pod_name, datetime.now(UTC), dry_run=dry_run)
        if dry_run:
            return
        try:
            await registry.store.replace(PDBS, namespace, spent, int(pdb["metadata"]["resourceVersion"]))
        except ApiError as exc:
            if exc.reason != "Conflict":
                raise
        else:
            return
        pdb = await registry.get(PDBS, namespace, name)
    raise ApiError(
        504,
        "Timeout",
        f'Timeout: couldn\'t update PodDisruptionBudget "{name}" due to conflicts',
        Details(retry_after=10),
    )


async def _delete(registry: Registry, namespace: str, name: str, options: Obj, *, dry_run: bool) -> None:
    """upstream addConditionAndDeletePod: mark the pod DisruptionTarget, then delete it."""
    if not dry_run:
        pinned = (options.get("preconditions") or {}).get("resourceVersion")
        uid = (options.get("preconditions") or {}).get("uid")

        async def mark(pod: Obj) -> Obj:
            if uid and uid != pod["metadata"].get("uid"):
                found = pod["metadata"].get("uid")
                why = f"Precondition failed: UID in precondition: {uid}, UID in object meta: {found}"
                raise status.conflict("pods", "", name, why)
            if pinned and pinned != pod["metadata"]["resourceVersion"]:
                raise status.conflict("pods", "", name)
            condition = {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "EvictionByEvictionAPI",
                "message": "Eviction API: evicting",
            }
            pod_status = pod.setdefault("status", {})
            pod_status["conditions"] = set_condition(
                list(pod_status.get("conditions") or []), condition, datetime.now(UTC)
            )
            return pod

        marked = await registry.store.mutate(PODS, namespace, name, mark)
        if pinned:
            # We wrote the pod ourselves: the pin moves to the version we just wrote.
            options = _pinned(options, marked["metadata"]["resourceVersion"])
    await registry.delete(PODS, namespace, name, options)
